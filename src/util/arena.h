/* Request-scoped bump allocator (nginx pools, h2o mem pools): allocations
 * never move and are all released at once by rd_arena_reset/rd_arena_free. */
#ifndef RD_UTIL_ARENA_H
#define RD_UTIL_ARENA_H

#include <stddef.h>

struct rd_arena_chunk;

struct rd_arena {
    struct rd_arena_chunk *head; /* owned chain, newest first */
    size_t total;                /* bytes handed out since the last reset */
};

void rd_arena_init(struct rd_arena *a);
/* Returns n bytes aligned to 16; aborts on OOM. */
void *rd_arena_alloc(struct rd_arena *a, size_t n);
/* Copies s[0..n) and NUL-terminates. */
char *rd_arena_strndup(struct rd_arena *a, const char *s, size_t n);
/* Releases everything but one chunk (the largest of standard size or less). */
void rd_arena_reset(struct rd_arena *a);
/* Releases everything. NULL-safe. */
void rd_arena_free(struct rd_arena *a);

#endif
