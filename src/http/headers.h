/* A list of HTTP header fields whose strings live in a caller-provided arena. */
#ifndef RD_HTTP_HEADERS_H
#define RD_HTTP_HEADERS_H

#include <stdbool.h>
#include <stddef.h>
#include <strings.h>

#include "util/arena.h"

struct rd_hdr {
    const char *name; /* NUL-terminated, as received (case preserved) */
    size_t name_len;
    const char *value; /* NUL-terminated, surrounding whitespace trimmed */
    size_t value_len;
};

struct rd_hdrs {
    struct rd_hdr *v; /* owned array (malloc) */
    size_t n;
    size_t cap;
    struct rd_arena *arena; /* borrowed: where name/value copies live */
};

void rd_hdrs_init(struct rd_hdrs *h, struct rd_arena *arena);
/* Copies name and value into the arena and appends them. */
void rd_hdrs_add(struct rd_hdrs *h, const char *name, size_t name_len, const char *value, size_t value_len);
/* Appends without copying: name and value must outlive h. */
void rd_hdrs_add_ref(struct rd_hdrs *h, const char *name, const char *value);
/* First field named name (case-insensitive), or NULL. */
const struct rd_hdr *rd_hdrs_find(const struct rd_hdrs *h, const char *name);
const char *rd_hdrs_get(const struct rd_hdrs *h, const char *name);
/* Number of fields named name. */
size_t rd_hdrs_count(const struct rd_hdrs *h, const char *name);
/* Removes every field named name (case-insensitive), keeping the order of
 * the others; returns how many were removed. */
size_t rd_hdrs_remove(struct rd_hdrs *h, const char *name);
/* Empties the list (the array is kept). */
void rd_hdrs_clear(struct rd_hdrs *h);
void rd_hdrs_free(struct rd_hdrs *h);

/* True for the hop-by-hop fields a proxy must not forward (RFC 9110 7.6.1):
 * Connection, Keep-Alive, TE, Trailer, Transfer-Encoding, Upgrade, Proxy-*. */
bool rd_hdr_is_hop_by_hop(const char *name, size_t len);
/* True if the comma-separated token list value contains token (case-insensitive). */
bool rd_hdr_has_token(const char *value, const char *token);
/* True if name is listed in any Connection field of h (so it is hop-by-hop too). */
bool rd_hdrs_connection_lists(const struct rd_hdrs *h, const char *name, size_t len);
/* Case-insensitive equality of a counted name with a C string. Inline: it
 * runs for every field of every request and response, mostly with literal
 * names whose length the compiler knows. */
static inline bool rd_hdr_name_eq(const char *name, size_t len, const char *s)
{
    return __builtin_strlen(s) == len && strncasecmp(name, s, len) == 0;
}
/* True if a Connection field of h lists a token other than keep-alive or
 * close, i.e. names further fields that are hop-by-hop: computed once per
 * message, so the common case skips rd_hdrs_connection_lists per field. */
bool rd_hdrs_connection_names_fields(const struct rd_hdrs *h);
/* rd_hdrs_add_ref with the lengths already known. */
void rd_hdrs_add_refn(struct rd_hdrs *h, const char *name, size_t name_len, const char *value, size_t value_len);

/* True for an RFC 9110 5.6.2 tchar: a letter, a digit or one of
 * !#$%&'*+-.^_`|~ (what methods and field names are made of). Pure. */
bool rd_http_is_tchar(unsigned char c);
/* True if s[0..n) is a token: at least one byte, all tchar. s need not be
 * NUL-terminated (and a NUL inside is no tchar). Pure. */
bool rd_http_is_token(const char *s, size_t n);

#endif
