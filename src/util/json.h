/* Thin wrapper over json-c: strict parsing with size and depth caps and
 * positioned errors, typed getters, and compact serialisation.
 * Never build or parse JSON by hand; go through here. */
#ifndef RD_UTIL_JSON_H
#define RD_UTIL_JSON_H

#include <json-c/json.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define RD_JSON_MAX_DEPTH 64

struct rd_json_err {
    const char *msg; /* static */
    size_t pos;      /* byte offset where parsing stopped */
};

/* Parses exactly one JSON value from s[0..n) (trailing whitespace allowed,
 * anything else is an error). Rejects inputs longer than max_len.
 * On success *out is a new reference owned by the caller. Returns 0,
 * RD_ETOOBIG or RD_EPROTO (err filled). */
int rd_json_parse(const char *s, size_t n, size_t max_len, struct json_object **out, struct rd_json_err *err);

/* Compact serialisation without escaping '/'. The string belongs to obj and
 * lives until obj is modified or freed. */
const char *rd_json_str(struct json_object *obj, size_t *len);

/* Typed lookups: return NULL / the default if key is missing or of another type. */
struct json_object *rd_json_get(struct json_object *obj, const char *key);
const char *rd_json_get_str(struct json_object *obj, const char *key);
bool rd_json_get_bool(struct json_object *obj, const char *key, bool dflt);
int64_t rd_json_get_int(struct json_object *obj, const char *key, int64_t dflt);
/* True for JSON numbers that are integers (not "1.5", not "1e3"). */
bool rd_json_is_int(struct json_object *v);
bool rd_json_is_number(struct json_object *v);

/* Convenience constructors that take ownership of nothing and return new objects.
 * rd_json_new_strn aborts if n exceeds INT32_MAX (json-c's length is an int). */
struct json_object *rd_json_new_str(const char *s);
struct json_object *rd_json_new_strn(const char *s, size_t n);

/* Appends s (n bytes) to out as a JSON string literal, quotes included:
 * '"', '\\' and control characters escaped (\n, \r, \t, \u00XX), bytes
 * that are not valid UTF-8 replaced by U+FFFD, so the output is always
 * valid JSON. Returns 0 or -1 (out of memory). Pure. */
struct rd_buf;
int rd_json_append_str(struct rd_buf *out, const char *s, size_t n);

#endif
