#include "util/buf.h"

#include <stdint.h>
#include <stdlib.h>
#include <stdio.h>
#include <string.h>

#include "util/err.h"
#include "util/mem.h"

void rd_buf_init(struct rd_buf *b, size_t max)
{
    b->data = NULL;
    b->len = 0;
    b->cap = 0;
    b->max = max ? max : SIZE_MAX / 2;
}

static int reserve(struct rd_buf *b, size_t extra)
{
    size_t need;
    if (__builtin_add_overflow(b->len, extra, &need) || need > b->max)
        return RD_ETOOBIG;
    if (need + 1 <= b->cap)
        return 0;
    size_t cap = b->cap ? b->cap : 64;
    while (cap < need + 1)
        cap = cap > SIZE_MAX / 4 ? need + 1 : cap * 2;
    b->data = rd_realloc(b->data, cap);
    b->cap = cap;
    return 0;
}

int rd_buf_append_grow(struct rd_buf *b, const void *p, size_t n)
{
    int rc = reserve(b, n);
    if (rc < 0)
        return rc;
    if (n)
        memcpy(b->data + b->len, p, n);
    b->len += n;
    b->data[b->len] = '\0';
    return 0;
}

int rd_buf_appends(struct rd_buf *b, const char *s)
{
    return rd_buf_append(b, s, strlen(s));
}

int rd_buf_printf(struct rd_buf *b, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    char small[256];
    int n = vsnprintf(small, sizeof small, fmt, ap);
    va_end(ap);
    if (n < 0)
        return RD_EINVAL;
    if ((size_t)n < sizeof small)
        return rd_buf_append(b, small, (size_t)n);
    int rc = reserve(b, (size_t)n);
    if (rc < 0)
        return rc;
    va_start(ap, fmt);
    vsnprintf(b->data + b->len, (size_t)n + 1, fmt, ap);
    va_end(ap);
    b->len += (size_t)n;
    return 0;
}

void rd_buf_consume(struct rd_buf *b, size_t n)
{
    if (n >= b->len) {
        b->len = 0;
    } else {
        memmove(b->data, b->data + n, b->len - n);
        b->len -= n;
    }
    if (b->data)
        b->data[b->len] = '\0';
}

void rd_buf_reset(struct rd_buf *b)
{
    b->len = 0;
    if (b->data)
        b->data[0] = '\0';
}

void rd_buf_free(struct rd_buf *b)
{
    if (b == NULL)
        return;
    free(b->data);
    b->data = NULL;
    b->len = b->cap = 0;
}

char *rd_buf_steal(struct rd_buf *b, size_t *len)
{
    if (b->data == NULL)
        (void)rd_buf_append(b, "", 0);
    char *p = b->data;
    if (len)
        *len = b->len;
    b->data = NULL;
    b->len = b->cap = 0;
    return p;
}

size_t rd_fmt_u64(char *out, uint64_t v)
{
    char tmp[20];
    size_t n = 0;
    do {
        tmp[n++] = (char)('0' + v % 10);
        v /= 10;
    } while (v);
    for (size_t i = 0; i < n; i++)
        out[i] = tmp[n - 1 - i];
    return n;
}

size_t rd_fmt_hex(char *out, uint64_t v)
{
    static const char digits[] = "0123456789abcdef";
    char tmp[16];
    size_t n = 0;
    do {
        tmp[n++] = digits[v & 0xf];
        v >>= 4;
    } while (v);
    for (size_t i = 0; i < n; i++)
        out[i] = tmp[n - 1 - i];
    return n;
}

int rd_buf_append_u64(struct rd_buf *b, uint64_t v)
{
    char tmp[20];
    return rd_buf_append(b, tmp, rd_fmt_u64(tmp, v));
}

int rd_buf_append_hex(struct rd_buf *b, uint64_t v)
{
    char tmp[16];
    return rd_buf_append(b, tmp, rd_fmt_hex(tmp, v));
}
