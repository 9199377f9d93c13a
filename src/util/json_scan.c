/* See json_scan.h. The walker is a loop over one level at a time: find the
 * key in the current object, then either descend into its value (an object)
 * or report it. Skipping a value is iterative, with a depth counter. */
#include "util/json_scan.h"

#include <json-c/json.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "util/err.h"

static size_t skip_ws(const char *p, size_t i, size_t len)
{
    while (i < len && (p[i] == ' ' || p[i] == '\t' || p[i] == '\n' || p[i] == '\r'))
        i++;
    return i;
}

/* Bytes that end a plain run inside a string: the quote, the backslash and
 * control characters (which JSON does not allow raw). */
static const unsigned char str_special[256] = {
    [0x00] = 1, [0x01] = 1, [0x02] = 1, [0x03] = 1, [0x04] = 1, [0x05] = 1, [0x06] = 1, [0x07] = 1,
    [0x08] = 1, [0x09] = 1, [0x0a] = 1, [0x0b] = 1, [0x0c] = 1, [0x0d] = 1, [0x0e] = 1, [0x0f] = 1,
    [0x10] = 1, [0x11] = 1, [0x12] = 1, [0x13] = 1, [0x14] = 1, [0x15] = 1, [0x16] = 1, [0x17] = 1,
    [0x18] = 1, [0x19] = 1, [0x1a] = 1, [0x1b] = 1, [0x1c] = 1, [0x1d] = 1, [0x1e] = 1, [0x1f] = 1,
    ['"'] = 1,  ['\\'] = 1,
};

/* p[i] is '"': returns the index after the closing quote, or 0 if the
 * string is unterminated or holds a control character. *escaped is set if
 * it contains a backslash. */
static size_t skip_string(const char *p, size_t i, size_t len, bool *escaped)
{
    *escaped = false;
    for (i++; i < len; i++) {
        unsigned char c = (unsigned char)p[i];
        if (!str_special[c])
            continue;
        if (c == '"')
            return i + 1;
        if (c != '\\')
            return 0; /* control character */
        *escaped = true;
        if (++i >= len)
            return 0;
    }
    return 0;
}

/* Bytes that end a scalar (number, true, false, null). */
static const unsigned char scalar_end[256] = {[','] = 1, ['}'] = 1, [']'] = 1, [' '] = 1, ['\t'] = 1, ['\n'] = 1, ['\r'] = 1};

/* Bytes that matter while skipping a container. */
static const unsigned char cont_special[256] = {['"'] = 1, ['{'] = 1, ['}'] = 1, ['['] = 1, [']'] = 1};

/* The open brackets of the container being skipped, one bit each (1: '['),
 * so that a '}' closing a '[' is caught: inline for 512 levels, then on the
 * heap (skipping never recurses, however deep the document). */
struct bitstack {
    uint64_t inl[8];
    uint64_t *heap;
    size_t cap; /* words in heap */
};

static bool bs_set(struct bitstack *b, size_t depth, bool bracket)
{
    size_t w = depth / 64;
    uint64_t *words = b->inl;
    if (w >= 8) {
        if (w - 8 >= b->cap) {
            size_t cap = b->cap ? b->cap * 2 : 64;
            uint64_t *h = realloc(b->heap, cap * sizeof *h);
            if (h == NULL)
                return false;
            b->heap = h;
            b->cap = cap;
        }
        words = b->heap;
        w -= 8;
    }
    uint64_t bit = (uint64_t)1 << (depth % 64);
    words[w] = bracket ? words[w] | bit : words[w] & ~bit;
    return true;
}

static bool bs_get(const struct bitstack *b, size_t depth)
{
    size_t w = depth / 64;
    const uint64_t *words = w >= 8 ? b->heap : b->inl;
    if (w >= 8)
        w -= 8;
    return (words[w] >> (depth % 64)) & 1;
}

/* Skips the value starting at p[i] (after whitespace). Returns the index
 * after it, or 0 if malformed. Containers are skipped by depth with their
 * brackets paired; scalars up to the next delimiter (their exact form is not
 * checked). */
static size_t skip_value(const char *p, size_t i, size_t len)
{
    if (i >= len)
        return 0;
    bool esc;
    if (p[i] == '"')
        return skip_string(p, i, len, &esc);
    if (p[i] == '{' || p[i] == '[') {
        struct bitstack bs; /* inl is written at each depth before it is read */
        bs.heap = NULL;
        bs.cap = 0;
        size_t depth = 0, out = 0;
        while (i < len) {
            if (!cont_special[(unsigned char)p[i]]) {
                i++;
                continue;
            }
            char c = p[i];
            if (c == '"') {
                i = skip_string(p, i, len, &esc);
                if (i == 0)
                    break;
                continue;
            }
            if (c == '{' || c == '[') {
                if (!bs_set(&bs, depth, c == '['))
                    break;
                depth++;
            } else if (c == '}' || c == ']') {
                if (bs_get(&bs, depth - 1) != (c == ']'))
                    break; /* mismatched */
                if (--depth == 0) {
                    out = i + 1;
                    break;
                }
            }
            i++;
        }
        free(bs.heap);
        return out;
    }
    size_t start = i;
    while (i < len && !scalar_end[(unsigned char)p[i]])
        i++;
    return i > start ? i : 0;
}

/* Compares the raw key p[a..b) (quotes excluded) with key. Keys with
 * escapes are compared after decoding the one-character escapes. */
static bool key_eq(const char *p, size_t a, size_t b, bool escaped, const char *key)
{
    size_t klen = strlen(key);
    if (!escaped)
        return b - a == klen && memcmp(p + a, key, klen) == 0;
    size_t k = 0;
    for (size_t i = a; i < b; i++) {
        char c = p[i];
        if (c == '\\') {
            c = p[++i];
            switch (c) {
            case 'n': c = '\n'; break;
            case 't': c = '\t'; break;
            case 'r': c = '\r'; break;
            case 'b': c = '\b'; break;
            case 'f': c = '\f'; break;
            case '"':
            case '\\':
            case '/': break;
            default: return false; /* \u: never matches */
            }
        }
        if (k >= klen || key[k++] != c)
            return false;
    }
    return k == klen;
}

/* In the object starting at p[i] ('{'), finds key; returns the index of its
 * value (after whitespace), 0 when absent or malformed (*rc says which). */
static size_t find_key(const char *p, size_t i, size_t len, const char *key, int *rc)
{
    *rc = RD_EPROTO;
    i = skip_ws(p, i + 1, len);
    if (i < len && p[i] == '}') {
        *rc = RD_ENOTFOUND;
        return 0;
    }
    while (i < len) {
        if (p[i] != '"')
            return 0;
        bool esc;
        size_t end = skip_string(p, i, len, &esc);
        if (end == 0)
            return 0;
        bool match = key_eq(p, i + 1, end - 1, esc, key);
        i = skip_ws(p, end, len);
        if (i >= len || p[i] != ':')
            return 0;
        i = skip_ws(p, i + 1, len);
        if (i >= len)
            return 0;
        if (match) {
            *rc = 0;
            return i;
        }
        i = skip_value(p, i, len);
        if (i == 0)
            return 0;
        i = skip_ws(p, i, len);
        if (i < len && p[i] == ',') {
            i = skip_ws(p, i + 1, len);
            continue;
        }
        if (i < len && p[i] == '}')
            *rc = RD_ENOTFOUND;
        return 0;
    }
    return 0;
}

int rd_json_scan_find(const char *doc, size_t len, const char *const *path, struct rd_json_span *out)
{
    size_t i = skip_ws(doc, 0, len);
    for (int depth = 0; path[depth]; depth++) {
        if (depth >= RD_JSON_SCAN_MAX_DEPTH)
            return RD_ENOTFOUND;
        if (i >= len || doc[i] != '{')
            return i >= len ? RD_EPROTO : RD_ENOTFOUND;
        int rc;
        size_t v = find_key(doc, i, len, path[depth], &rc);
        if (v == 0)
            return rc;
        i = v;
    }
    size_t end = skip_value(doc, i, len);
    if (end == 0)
        return RD_EPROTO;
    out->p = doc + i;
    out->n = end - i;
    return 0;
}

/* Is the value at p[v] followed by nothing but more members of its object
 * and the '}' that ends the document (trailing whitespace allowed)? Then
 * the key before it belongs to the top-level object. *end receives the
 * index after the value. */
static bool rest_closes_doc(const char *p, size_t v, size_t len, size_t *end)
{
    size_t i = skip_value(p, v, len);
    if (i == 0)
        return false;
    *end = i;
    for (;;) {
        i = skip_ws(p, i, len);
        if (i < len && p[i] == '}')
            return skip_ws(p, i + 1, len) == len;
        if (i >= len || p[i] != ',')
            return false;
        i = skip_ws(p, i + 1, len);
        bool esc;
        if (i >= len || p[i] != '"' || (i = skip_string(p, i, len, &esc)) == 0)
            return false;
        i = skip_ws(p, i, len);
        if (i >= len || p[i] != ':')
            return false;
        i = skip_value(p, skip_ws(p, i + 1, len), len);
        if (i == 0)
            return false;
    }
}

/* Candidates tried from the end before falling back to the full walk. */
#define TAIL_TRIES 4

int rd_json_scan_find_top(const char *doc, size_t len, const char *key, struct rd_json_span *out)
{
    size_t klen = strlen(key);
    size_t q = len; /* candidates start before q */
    for (int tries = 0; tries < TAIL_TRIES && q >= klen + 2; tries++) {
        /* The last '"key"' starting before q: hop from quote to quote
         * backwards (memrchr), each one a candidate closing quote. */
        size_t s, e = q; /* candidate closing quotes lie before e */
        for (;;) {
            const char *c = e > klen + 1 ? memrchr(doc + klen + 1, '"', e - (klen + 1)) : NULL;
            if (c == NULL)
                goto full;
            e = (size_t)(c - doc);
            s = e - (klen + 1);
            if (doc[s] == '"' && memcmp(doc + s + 1, key, klen) == 0)
                break;
        }
        q = s + klen + 1; /* the next try starts before this one's end */
        /* An unescaped opening quote (a backslash before it: not proved)
         * and a key's place: after '{' or ',' and before ':'. */
        if (s == 0 || doc[s - 1] == '\\')
            continue;
        size_t b = s;
        while (b > 0 && (doc[b - 1] == ' ' || doc[b - 1] == '\t' || doc[b - 1] == '\n' || doc[b - 1] == '\r'))
            b--;
        if (b == 0 || (doc[b - 1] != '{' && doc[b - 1] != ','))
            continue;
        size_t i = skip_ws(doc, s + klen + 2, len);
        if (i >= len || doc[i] != ':')
            continue;
        i = skip_ws(doc, i + 1, len);
        size_t end;
        if (!rest_closes_doc(doc, i, len, &end))
            continue;
        out->p = doc + i;
        out->n = end - i;
        return 0;
    }
full:;
    const char *const path[] = {key, NULL};
    return rd_json_scan_find(doc, len, path, out);
}

int rd_json_scan_string(const char *doc, size_t len, const char *const *path, char *out, size_t cap)
{
    struct rd_json_span v;
    int rc = rd_json_scan_find(doc, len, path, &v);
    if (rc < 0)
        return rc;
    if (v.n < 2 || v.p[0] != '"')
        return RD_ENOTFOUND;
    if (cap == 0)
        return 0;
    if (memchr(v.p, '\\', v.n) == NULL) {
        size_t n = v.n - 2 < cap - 1 ? v.n - 2 : cap - 1;
        memcpy(out, v.p + 1, n);
        out[n] = '\0';
        return (int)n;
    }
    /* Escapes: let json-c decode exactly this token. */
    if (v.n > (size_t)INT32_MAX)
        return RD_ETOOBIG;
    struct json_tokener *tok = json_tokener_new();
    struct json_object *o = json_tokener_parse_ex(tok, v.p, (int)v.n);
    json_tokener_free(tok);
    if (o == NULL || !json_object_is_type(o, json_type_string)) {
        json_object_put(o);
        return RD_EPROTO;
    }
    size_t sl = (size_t)json_object_get_string_len(o);
    size_t n = sl < cap - 1 ? sl : cap - 1;
    memcpy(out, json_object_get_string(o), n);
    out[n] = '\0';
    json_object_put(o);
    return (int)n;
}

int rd_json_scan_members(const char *obj, size_t len, rd_json_member_fn fn, void *ud)
{
    size_t i = skip_ws(obj, 0, len);
    if (i >= len || obj[i] != '{')
        return RD_EPROTO;
    i = skip_ws(obj, i + 1, len);
    if (i < len && obj[i] == '}')
        return 0;
    while (i < len) {
        if (obj[i] != '"')
            return RD_EPROTO;
        bool esc;
        size_t end = skip_string(obj, i, len, &esc);
        if (end == 0)
            return RD_EPROTO;
        size_t k = i + 1, klen = end - 1 - k;
        i = skip_ws(obj, end, len);
        if (i >= len || obj[i] != ':')
            return RD_EPROTO;
        i = skip_ws(obj, i + 1, len);
        size_t vend = skip_value(obj, i, len);
        if (vend == 0)
            return RD_EPROTO;
        struct rd_json_span v = {obj + i, vend - i};
        int rc = fn(ud, obj + k, klen, esc, v);
        if (rc != 0)
            return rc;
        i = skip_ws(obj, vend, len);
        if (i < len && obj[i] == ',') {
            i = skip_ws(obj, i + 1, len);
            continue;
        }
        return i < len && obj[i] == '}' ? 0 : RD_EPROTO;
    }
    return RD_EPROTO;
}

int rd_json_scan_elements(const char *arr, size_t len, rd_json_element_fn fn, void *ud)
{
    size_t i = skip_ws(arr, 0, len);
    if (i >= len || arr[i] != '[')
        return RD_EPROTO;
    i = skip_ws(arr, i + 1, len);
    if (i < len && arr[i] == ']')
        return 0;
    for (size_t index = 0; i < len; index++) {
        size_t vend = skip_value(arr, i, len);
        if (vend == 0)
            return RD_EPROTO;
        int rc = fn(ud, index, (struct rd_json_span){arr + i, vend - i});
        if (rc != 0)
            return rc;
        i = skip_ws(arr, vend, len);
        if (i < len && arr[i] == ',') {
            i = skip_ws(arr, i + 1, len);
            continue;
        }
        return i < len && arr[i] == ']' ? 0 : RD_EPROTO;
    }
    return RD_EPROTO;
}

int rd_json_span_int64(struct rd_json_span v, int64_t *out)
{
    size_t i = 0;
    bool neg = false;
    if (i < v.n && v.p[i] == '-') {
        neg = true;
        i++;
    }
    if (i >= v.n || v.p[i] < '0' || v.p[i] > '9' || (v.p[i] == '0' && i + 1 < v.n))
        return RD_EPROTO;
    uint64_t acc = 0;
    for (; i < v.n; i++) {
        if (v.p[i] < '0' || v.p[i] > '9')
            return RD_EPROTO;
        uint64_t d = (uint64_t)(v.p[i] - '0');
        if (acc > (UINT64_MAX - d) / 10)
            return RD_ETOOBIG;
        acc = acc * 10 + d;
    }
    if (neg ? acc > (uint64_t)INT64_MAX + 1 : acc > (uint64_t)INT64_MAX)
        return RD_ETOOBIG;
    *out = neg ? (int64_t)(0 - acc) : (int64_t)acc;
    return 0;
}
