/* Allocation helpers that abort on out-of-memory (redis zmalloc, h2o_mem_alloc).
 * Sizes that come from input must be checked against a cap before reaching
 * these; these only guard internal allocations. */
#ifndef RD_UTIL_MEM_H
#define RD_UTIL_MEM_H

#include <stddef.h>

void *rd_malloc(size_t n);
void *rd_calloc(size_t count, size_t size);
void *rd_realloc(void *p, size_t n);
/* Copies s (NULL gives NULL). The result is owned by the caller. */
char *rd_strdup(const char *s);
/* Copies n bytes of s and NUL-terminates. */
char *rd_strndup(const char *s, size_t n);

#endif
