/* See json_scan.h. The walker is a loop over one level at a time: find the
 * key in the current object, then either descend into its value (an object)
 * or report it. Skipping a value is iterative, with a depth counter. */
#include "util/json_scan.h"

#include <json-c/json.h>
#include <stdbool.h>
#include <stdint.h>
#include <string.h>

#include "util/err.h"

static size_t skip_ws(const char *p, size_t i, size_t len)
{
    while (i < len && (p[i] == ' ' || p[i] == '\t' || p[i] == '\n' || p[i] == '\r'))
        i++;
    return i;
}

/* p[i] is '"': returns the index after the closing quote, or 0 if the
 * string is unterminated or holds a control character. *escaped is set if
 * it contains a backslash. */
static size_t skip_string(const char *p, size_t i, size_t len, bool *escaped)
{
    *escaped = false;
    for (i++; i < len; i++) {
        unsigned char c = (unsigned char)p[i];
        if (c == '"')
            return i + 1;
        if (c == '\\') {
            *escaped = true;
            if (++i >= len)
                return 0;
        } else if (c < 0x20) {
            return 0;
        }
    }
    return 0;
}

/* Skips the value starting at p[i] (after whitespace). Returns the index
 * after it, or 0 if malformed. Containers are skipped by depth; scalars up to
 * the next delimiter (their exact form is not checked). */
static size_t skip_value(const char *p, size_t i, size_t len)
{
    if (i >= len)
        return 0;
    bool esc;
    if (p[i] == '"')
        return skip_string(p, i, len, &esc);
    if (p[i] == '{' || p[i] == '[') {
        size_t depth = 0;
        while (i < len) {
            char c = p[i];
            if (c == '"') {
                i = skip_string(p, i, len, &esc);
                if (i == 0)
                    return 0;
                continue;
            }
            if (c == '{' || c == '[')
                depth++;
            else if (c == '}' || c == ']') {
                if (--depth == 0)
                    return i + 1;
            }
            i++;
        }
        return 0;
    }
    size_t start = i;
    while (i < len && p[i] != ',' && p[i] != '}' && p[i] != ']' && p[i] != ' ' && p[i] != '\t' && p[i] != '\n' &&
           p[i] != '\r')
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
