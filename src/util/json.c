#include "util/json.h"

#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#include "util/buf.h"
#include "util/err.h"

/* json-c's strict mode still takes single-quoted strings and raw control
 * characters inside strings, neither of which is JSON (RFC 8259 7): after a
 * successful parse, one pass finds them. Returns the offending offset or
 * n when the text is clean; *msg says what it is. */
static size_t lax_at(const char *s, size_t n, const char **msg)
{
    bool in_str = false;
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)s[i];
        if (in_str) {
            if (c == '\\') {
                i++;
            } else if (c == '"') {
                in_str = false;
            } else if (c < 0x20) {
                *msg = "control character in a string (escape it)";
                return i;
            }
        } else if (c == '"') {
            in_str = true;
        } else if (c == '\'') {
            *msg = "single-quoted string (JSON strings use double quotes)";
            return i;
        }
    }
    return n;
}

int rd_json_parse(const char *s, size_t n, size_t max_len, struct json_object **out, struct rd_json_err *err)
{
    *out = NULL;
    if (n > max_len || n > (size_t)INT32_MAX) {
        if (err) {
            err->msg = "document too large";
            err->pos = 0;
        }
        return RD_ETOOBIG;
    }
    struct json_tokener *tok = json_tokener_new_ex(RD_JSON_MAX_DEPTH);
    if (tok == NULL)
        abort();
    json_tokener_set_flags(tok, JSON_TOKENER_STRICT | JSON_TOKENER_VALIDATE_UTF8);
    struct json_object *obj = json_tokener_parse_ex(tok, s, (int)n);
    enum json_tokener_error jerr = json_tokener_get_error(tok);
    size_t pos = json_tokener_get_parse_end(tok);
    if (obj == NULL && jerr == json_tokener_continue && n > 0) {
        /* A bare number or literal needs a terminator to be complete. */
        obj = json_tokener_parse_ex(tok, "", 1);
        jerr = json_tokener_get_error(tok);
        pos = n;
    }
    json_tokener_free(tok);

    if (obj == NULL && jerr == json_tokener_continue) {
        if (err) {
            err->msg = n == 0 ? "empty document" : "unexpected end of document";
            err->pos = n;
        }
        return RD_EPROTO;
    }
    if (jerr != json_tokener_success) {
        if (err) {
            err->msg = json_tokener_error_desc(jerr);
            err->pos = pos;
        }
        json_object_put(obj);
        return RD_EPROTO;
    }
    for (size_t i = pos; i < n; i++) {
        char c = s[i];
        if (c != ' ' && c != '\t' && c != '\r' && c != '\n') {
            if (err) {
                err->msg = "trailing characters after the document";
                err->pos = i;
            }
            json_object_put(obj);
            return RD_EPROTO;
        }
    }
    const char *lax = NULL;
    size_t at = lax_at(s, n, &lax);
    if (at < n) {
        if (err) {
            err->msg = lax;
            err->pos = at;
        }
        json_object_put(obj);
        return RD_EPROTO;
    }
    *out = obj;
    return 0;
}

const char *rd_json_str(struct json_object *obj, size_t *len)
{
    size_t l = 0;
    const char *s =
        json_object_to_json_string_length(obj, JSON_C_TO_STRING_PLAIN | JSON_C_TO_STRING_NOSLASHESCAPE, &l);
    if (len)
        *len = l;
    return s;
}

struct json_object *rd_json_get(struct json_object *obj, const char *key)
{
    struct json_object *v = NULL;
    if (obj == NULL || !json_object_is_type(obj, json_type_object))
        return NULL;
    if (!json_object_object_get_ex(obj, key, &v))
        return NULL;
    return v;
}

const char *rd_json_get_str(struct json_object *obj, const char *key)
{
    struct json_object *v = rd_json_get(obj, key);
    return v && json_object_is_type(v, json_type_string) ? json_object_get_string(v) : NULL;
}

bool rd_json_get_bool(struct json_object *obj, const char *key, bool dflt)
{
    struct json_object *v = rd_json_get(obj, key);
    return v && json_object_is_type(v, json_type_boolean) ? json_object_get_boolean(v) : dflt;
}

int64_t rd_json_get_int(struct json_object *obj, const char *key, int64_t dflt)
{
    struct json_object *v = rd_json_get(obj, key);
    return v && json_object_is_type(v, json_type_int) ? json_object_get_int64(v) : dflt;
}

bool rd_json_is_int(struct json_object *v)
{
    return v && json_object_is_type(v, json_type_int);
}

bool rd_json_is_number(struct json_object *v)
{
    return v && (json_object_is_type(v, json_type_int) || json_object_is_type(v, json_type_double));
}

struct json_object *rd_json_new_str(const char *s)
{
    return json_object_new_string(s);
}

struct json_object *rd_json_new_strn(const char *s, size_t n)
{
    /* json-c takes an int length, which a larger size_t would wrap.
     * Callers pass generated text bounded by the emulator's caps, far below
     * INT32_MAX, so a longer string is a bug: fail like an allocation would. */
    if (n > (size_t)INT32_MAX)
        abort();
    return json_object_new_string_len(s, (int)n);
}

/* Length of the valid UTF-8 sequence at p (at most n bytes), 0 if invalid. */
static size_t utf8_len(const unsigned char *p, size_t n)
{
    unsigned char c = p[0];
    size_t len;
    uint32_t cp;
    if (c < 0x80)
        return 1;
    if (c >= 0xC2 && c <= 0xDF) {
        len = 2;
        cp = c & 0x1Fu;
    } else if (c >= 0xE0 && c <= 0xEF) {
        len = 3;
        cp = c & 0x0Fu;
    } else if (c >= 0xF0 && c <= 0xF4) {
        len = 4;
        cp = c & 0x07u;
    } else {
        return 0;
    }
    if (n < len)
        return 0;
    for (size_t i = 1; i < len; i++) {
        if ((p[i] & 0xC0) != 0x80)
            return 0;
        cp = (cp << 6) | (p[i] & 0x3Fu);
    }
    if ((len == 3 && (cp < 0x800 || (cp >= 0xD800 && cp <= 0xDFFF))) || (len == 4 && (cp < 0x10000 || cp > 0x10FFFF)))
        return 0;
    return len;
}

int rd_json_append_str(struct rd_buf *out, const char *s, size_t n)
{
    static const char hex[] = "0123456789abcdef";
    const unsigned char *p = (const unsigned char *)s;
    /* Most strings need no escape and are ASCII: one append. */
    size_t plain = 0;
    while (plain < n && p[plain] >= 0x20 && p[plain] < 0x80 && p[plain] != '"' && p[plain] != '\\')
        plain++;
    if (plain == n)
        return rd_buf_append(out, "\"", 1) | rd_buf_append(out, s, n) | rd_buf_append(out, "\"", 1) ? -1 : 0;
    if (rd_buf_append(out, "\"", 1) < 0)
        return -1;
    size_t run = 0; /* bytes of p[i - run .. i) to copy as they are */
    for (size_t i = 0; i < n;) {
        unsigned char c = p[i];
        const char *esc = NULL;
        char u[6];
        size_t elen = 0, skip = 1;
        if (c == '"')
            esc = "\\\"", elen = 2;
        else if (c == '\\')
            esc = "\\\\", elen = 2;
        else if (c == '\n')
            esc = "\\n", elen = 2;
        else if (c == '\r')
            esc = "\\r", elen = 2;
        else if (c == '\t')
            esc = "\\t", elen = 2;
        else if (c < 0x20) {
            u[0] = '\\', u[1] = 'u', u[2] = '0', u[3] = '0', u[4] = hex[c >> 4], u[5] = hex[c & 15];
            esc = u, elen = 6;
        } else if (c >= 0x80) {
            size_t l = utf8_len(p + i, n - i);
            if (l == 0)
                esc = "\xEF\xBF\xBD", elen = 3; /* U+FFFD */
            else
                skip = l, esc = NULL;
        }
        if (esc == NULL) {
            run += skip;
            i += skip;
            continue;
        }
        if ((run && rd_buf_append(out, p + i - run, run) < 0) || rd_buf_append(out, esc, elen) < 0)
            return -1;
        run = 0;
        i += skip;
    }
    if (run && rd_buf_append(out, p + n - run, run) < 0)
        return -1;
    return rd_buf_append(out, "\"", 1);
}
