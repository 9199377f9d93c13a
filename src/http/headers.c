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
    /* One allocation for both strings: this runs for every field twice per
     * proxied request (parsed, then the upstream's). */
    char *s = rd_arena_alloc(h->arena, name_len + value_len + 2);
    memcpy(s, name, name_len);
    s[name_len] = '\0';
    char *v = s + name_len + 1;
    if (value_len)
        memcpy(v, value, value_len);
    v[value_len] = '\0';
    struct rd_hdr hdr = {.name = s, .name_len = name_len, .value = v, .value_len = value_len};
    push(h, hdr);
}

void rd_hdrs_add_ref(struct rd_hdrs *h, const char *name, const char *value)
{
    struct rd_hdr hdr = {.name = name, .name_len = strlen(name), .value = value, .value_len = strlen(value)};
    push(h, hdr);
}

void rd_hdrs_add_refn(struct rd_hdrs *h, const char *name, size_t name_len, const char *value, size_t value_len)
{
    struct rd_hdr hdr = {.name = name, .name_len = name_len, .value = value, .value_len = value_len};
    push(h, hdr);
}

size_t rd_hdrs_remove(struct rd_hdrs *h, const char *name)
{
    size_t len = strlen(name), w = 0;
    for (size_t i = 0; i < h->n; i++)
        if (!(h->v[i].name_len == len && strncasecmp(h->v[i].name, name, len) == 0))
            h->v[w++] = h->v[i];
    size_t removed = h->n - w;
    h->n = w;
    return removed;
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
    /* By length: it runs for every field of every message, and most fields
     * have a length no hop-by-hop name has, so one compare at most. */
    switch (len) {
    case 2: return rd_hdr_name_eq(name, len, "te");
    case 7: return rd_hdr_name_eq(name, len, "trailer") || rd_hdr_name_eq(name, len, "upgrade");
    case 10:
        if (rd_hdr_name_eq(name, len, "connection") || rd_hdr_name_eq(name, len, "keep-alive"))
            return true;
        break;
    case 17:
        if (rd_hdr_name_eq(name, len, "transfer-encoding"))
            return true;
        break;
    default: break;
    }
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

bool rd_hdrs_connection_names_fields(const struct rd_hdrs *h)
{
    for (size_t i = 0; i < h->n; i++) {
        const struct rd_hdr *f = &h->v[i];
        if (!rd_hdr_name_eq(f->name, f->name_len, "connection"))
            continue;
        const char *p = f->value;
        while (*p) {
            while (*p == ' ' || *p == '\t' || *p == ',')
                p++;
            const char *b = p;
            while (*p && *p != ',')
                p++;
            const char *e = p;
            while (e > b && (e[-1] == ' ' || e[-1] == '\t'))
                e--;
            size_t n = (size_t)(e - b);
            if (n && !token_eq(b, n, "keep-alive", 10) && !token_eq(b, n, "close", 5))
                return true;
        }
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

/* RFC 9110 tchar as a table: it runs over every forwarded field name. */
#define T1(c) [c] = 1
static const unsigned char tchar_tab[256] = {
    T1('!'), T1('#'), T1('$'), T1('%'), T1('&'), T1('\''), T1('*'), T1('+'), T1('-'), T1('.'), T1('^'), T1('_'),
    T1('`'), T1('|'), T1('~'), T1('0'), T1('1'), T1('2'), T1('3'), T1('4'), T1('5'), T1('6'), T1('7'), T1('8'),
    T1('9'), T1('a'), T1('b'), T1('c'), T1('d'), T1('e'), T1('f'), T1('g'), T1('h'), T1('i'), T1('j'), T1('k'),
    T1('l'), T1('m'), T1('n'), T1('o'), T1('p'), T1('q'), T1('r'), T1('s'), T1('t'), T1('u'), T1('v'), T1('w'),
    T1('x'), T1('y'), T1('z'), T1('A'), T1('B'), T1('C'), T1('D'), T1('E'), T1('F'), T1('G'), T1('H'), T1('I'),
    T1('J'), T1('K'), T1('L'), T1('M'), T1('N'), T1('O'), T1('P'), T1('Q'), T1('R'), T1('S'), T1('T'), T1('U'),
    T1('V'), T1('W'), T1('X'), T1('Y'), T1('Z'),
};
#undef T1

bool rd_http_is_tchar(unsigned char c)
{
    return tchar_tab[c] != 0;
}

bool rd_http_is_token(const char *s, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if (!rd_http_is_tchar((unsigned char)s[i]))
            return false;
    return n > 0;
}
