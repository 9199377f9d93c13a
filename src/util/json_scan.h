/* Finding one value in a JSON document without building a tree: the
 * request path needs the model of every request and the usage of every
 * response, and parsing a 100 KB prompt with json-c for one field would cost
 * more than the proxy itself. The scanner walks the bytes once, skipping
 * values it does not need (strings with their escapes, nested containers by
 * depth), and hands the span of the value it found to json-c when the value
 * must be decoded. It never reads past len, never recurses, and rejects
 * malformed input it walks through (what it skips after the value is not
 * validated: the document is the upstream's or the client's business). */
#ifndef RD_UTIL_JSON_SCAN_H
#define RD_UTIL_JSON_SCAN_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define RD_JSON_SCAN_MAX_DEPTH 64 /* deeper documents are not searched */

/* A value's bytes inside the document. */
struct rd_json_span {
    const char *p;
    size_t n;
};

/* Finds the value at path (a NULL-terminated list of object keys, from the
 * top-level object down) in doc[0..len). Returns 0 with *out set, or
 * RD_ENOTFOUND (no such key, or doc is not an object there), or RD_EPROTO
 * (malformed before the value was found). Keys are compared after
 * unescaping simple escapes; keys with \u escapes never match. Pure. */
int rd_json_scan_find(const char *doc, size_t len, const char *const *path, struct rd_json_span *out);

/* rd_json_scan_find for one top-level key that providers put at the end of
 * their bodies ("usage", "usageMetadata"): looks for it from the end first
 * and walks only what follows it, so a 100 KB answer costs its tail, not
 * its length. A candidate is taken only when it is proved to be a member of
 * the top-level object: both quotes unescaped, a ':' after it, and from its
 * value on nothing but further members and the closing '}' that ends the
 * document. Otherwise (the key is earlier, or the tail does not prove it)
 * it falls back to the full walk, so the result is rd_json_scan_find's for
 * every document without duplicate keys (with duplicates, the last one
 * counts, as in JavaScript's JSON.parse). Pure. */
int rd_json_scan_find_top(const char *doc, size_t len, const char *key, struct rd_json_span *out);

/* Finds the string at path and copies it, decoded, into out (NUL-terminated,
 * truncated to cap - 1 bytes). Returns the decoded length (before
 * truncation is not reported: at most cap - 1), RD_ENOTFOUND if there is no
 * such string, RD_EPROTO if malformed. */
int rd_json_scan_string(const char *doc, size_t len, const char *const *path, char *out, size_t cap);

/* Called for each member of an object: the raw key (between the quotes,
 * escapes not decoded, escaped set if it has any) and the value's span. A
 * non-zero return stops the walk and is returned. */
typedef int (*rd_json_member_fn)(void *ud, const char *key, size_t key_len, bool escaped, struct rd_json_span value);

/* Walks the members of the object obj[0..len) (obj starts with '{', e.g. a
 * span found above) in one pass. Returns 0, fn's non-zero value, or
 * RD_EPROTO if the object is malformed. Pure. */
int rd_json_scan_members(const char *obj, size_t len, rd_json_member_fn fn, void *ud);

/* Called for each element of an array with its index and span. A non-zero
 * return stops the walk and is returned. */
typedef int (*rd_json_element_fn)(void *ud, size_t index, struct rd_json_span value);

/* Walks the elements of the array arr[0..len) (arr starts with '[' after
 * optional whitespace) in one pass, as rd_json_scan_members does for
 * objects. Returns 0, fn's non-zero value, or RD_EPROTO if the array is
 * malformed (elements before the fault were reported). Pure. */
int rd_json_scan_elements(const char *arr, size_t len, rd_json_element_fn fn, void *ud);

/* Reads span v as a JSON integer: optional '-', digits without a leading
 * zero, no fraction or exponent. Returns 0 with *out set, RD_EPROTO if v is
 * not such a number, RD_ETOOBIG if it does not fit in int64_t. */
int rd_json_span_int64(struct rd_json_span v, int64_t *out);

#endif
