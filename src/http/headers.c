#include "http/headers.h"

#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "util/mem.h"

void rd_hdrs_init(struct rd_hdrs *h, struct rd_arena *arena)
{
    h->v = NULL;
    h->n = h->cap = 0;
    h->arena = arena;
}

static void push(struct rd_hdrs *h, struct rd_hdr hdr)
{
    if (h->n == h->cap) {
        h->cap = h->cap ? h->cap * 2 : 16;
        h->v = rd_realloc(h->v, h->cap * sizeof *h->v);
    }
    h->v[h->n++] = hdr;
}

void rd_hdrs_add(struct rd_hdrs *h, const char *name, size_t name_len, const char *value, size_t value_len)
{
    while (value_len && (value[0] == ' ' || value[0] == '\t')) {
        value++;
        value_len--;
    }
    while (value_len && (value[value_len - 1] == ' ' || value[value_len - 1] == '\t'))
        value_len--;
    struct rd_hdr hdr = {
        .name = rd_arena_strndup(h->arena, name, name_len),
        .name_len = name_len,
        .value = rd_arena_strndup(h->arena, value, value_len),
        .value_len = value_len,
    };
    push(h, hdr);
}

void rd_hdrs_add_ref(struct rd_hdrs *h, const char *name, const char *value)
{
    struct rd_hdr hdr = {.name = name, .name_len = strlen(name), .value = value, .value_len = strlen(value)};
    push(h, hdr);
}

bool rd_hdr_name_eq(const char *name, size_t len, const char *s)
{
    return strlen(s) == len && strncasecmp(name, s, len) == 0;
}

const struct rd_hdr *rd_hdrs_find(const struct rd_hdrs *h, const char *name)
{
    size_t len = strlen(name);
    for (size_t i = 0; i < h->n; i++)
        if (h->v[i].name_len == len && strncasecmp(h->v[i].name, name, len) == 0)
            return &h->v[i];
    return NULL;
}

const char *rd_hdrs_get(const struct rd_hdrs *h, const char *name)
{
    const struct rd_hdr *f = rd_hdrs_find(h, name);
    return f ? f->value : NULL;
}

size_t rd_hdrs_count(const struct rd_hdrs *h, const char *name)
{
    size_t len = strlen(name), n = 0;
    for (size_t i = 0; i < h->n; i++)
        if (h->v[i].name_len == len && strncasecmp(h->v[i].name, name, len) == 0)
            n++;
    return n;
}

void rd_hdrs_clear(struct rd_hdrs *h)
{
    h->n = 0;
}

void rd_hdrs_free(struct rd_hdrs *h)
{
    if (h == NULL)
        return;
    free(h->v);
    h->v = NULL;
    h->n = h->cap = 0;
}

bool rd_hdr_is_hop_by_hop(const char *name, size_t len)
{
    static const char *const hop[] = {"connection", "keep-alive", "te", "trailer", "transfer-encoding", "upgrade"};
    for (size_t i = 0; i < sizeof hop / sizeof hop[0]; i++)
        if (rd_hdr_name_eq(name, len, hop[i]))
            return true;
    return len >= 6 && strncasecmp(name, "proxy-", 6) == 0;
}

static bool token_eq(const char *p, size_t n, const char *token, size_t tlen)
{
    return n == tlen && strncasecmp(p, token, tlen) == 0;
}

bool rd_hdr_has_token(const char *value, const char *token)
{
    size_t tlen = strlen(token);
    const char *p = value;
    while (*p) {
        while (*p == ' ' || *p == '\t' || *p == ',')
            p++;
        const char *start = p;
        while (*p && *p != ',')
            p++;
        const char *end = p;
        while (end > start && (end[-1] == ' ' || end[-1] == '\t'))
            end--;
        if (end > start && token_eq(start, (size_t)(end - start), token, tlen))
            return true;
    }
    return false;
}

bool rd_hdrs_connection_lists(const struct rd_hdrs *h, const char *name, size_t len)
{
    char tmp[128];
    if (len >= sizeof tmp)
        return false;
    memcpy(tmp, name, len);
    tmp[len] = '\0';
    for (size_t i = 0; i < h->n; i++)
        if (rd_hdr_name_eq(h->v[i].name, h->v[i].name_len, "connection") && rd_hdr_has_token(h->v[i].value, tmp))
            return true;
    return false;
}

bool rd_http_is_tchar(unsigned char c)
{
    if (c >= '0' && c <= '9')
        return true;
    if ((c | 0x20) >= 'a' && (c | 0x20) <= 'z')
        return true;
    return c != '\0' && strchr("!#$%&'*+-.^_`|~", c) != NULL;
}

bool rd_http_is_token(const char *s, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if (!rd_http_is_tchar((unsigned char)s[i]))
            return false;
    return n > 0;
}
