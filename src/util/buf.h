/* Growable byte buffer that always carries a maximum (curl's dynbuf).
 * The data is kept NUL-terminated for convenience; len excludes the NUL. */
#ifndef RD_UTIL_BUF_H
#define RD_UTIL_BUF_H

#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

struct rd_buf {
    char *data;   /* owned; NULL until the first append */
    size_t len;
    size_t cap;
    size_t max;   /* appends that would pass this fail with RD_ETOOBIG */
};

/* Initialises an empty buffer with the given cap (0 means SIZE_MAX / 2). */
void rd_buf_init(struct rd_buf *b, size_t max);
/* Appends n bytes. Returns 0 or RD_ETOOBIG (buffer unchanged). Inline for
 * the case where the bytes fit the storage already there: heads and bodies
 * are built from many small pieces on every request, and a call plus a
 * library memcpy per piece was a tenth of the proxy's instructions. */
int rd_buf_append_grow(struct rd_buf *b, const void *p, size_t n);
static inline int rd_buf_append(struct rd_buf *b, const void *p, size_t n)
{
    /* cap > len + n also proves len + n does not overflow */
    if (n < b->cap - b->len && b->len + n <= b->max) {
        if (n)
            memcpy(b->data + b->len, p, n);
        b->len += n;
        b->data[b->len] = '\0';
        return 0;
    }
    return rd_buf_append_grow(b, p, n);
}
int rd_buf_appends(struct rd_buf *b, const char *s);
int rd_buf_printf(struct rd_buf *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* Appends v in decimal (or hexadecimal, lower case) without printf: head
 * building runs for every request. Returns 0 or RD_ETOOBIG. */
int rd_buf_append_u64(struct rd_buf *b, uint64_t v);
int rd_buf_append_hex(struct rd_buf *b, uint64_t v);
/* Writes v in decimal or hex into out (at least 20 bytes), no NUL; returns the length. */
size_t rd_fmt_u64(char *out, uint64_t v);
size_t rd_fmt_hex(char *out, uint64_t v);
/* Removes the first n bytes (n <= len). */
void rd_buf_consume(struct rd_buf *b, size_t n);
void rd_buf_reset(struct rd_buf *b);
/* Frees the storage; the buffer is empty afterwards and may be reused. NULL-safe. */
void rd_buf_free(struct rd_buf *b);
/* Hands the storage to the caller (never NULL) and empties the buffer. */
char *rd_buf_steal(struct rd_buf *b, size_t *len);

#endif
