/* The request-log filter (struct rd_log_filter, store/store.h) outside the
 * database: matching a record in memory (the live stream) the way the
 * store's query does, and reading a filter from an API query string. */
#ifndef RD_OBS_FILTER_H
#define RD_OBS_FILTER_H

#include <stdbool.h>
#include <stddef.h>

#include "obs/record.h"
#include "store/store.h"

/* True when r passes f (the keyset fields ignored). Same semantics as
 * rd_store_log_query: q is a case-sensitive substring of id, path, model,
 * client_ip, upstream_request_id, trace_id or prompt_hash. Pure. */
bool rd_log_filter_match(const struct rd_log_filter *f, const struct rd_log_rec *r);

/* A filter with its own copies of the strings it points to. */
struct rd_log_query {
    struct rd_log_filter f;
    size_t limit;       /* ?limit=, 1..1000, default 100 (set by rd_log_query_parse) */
    bool count;         /* ?count=true */
    char model[128];
    char failure_type[32];
    char q[256];
};

/* Parses a URL query string ("a=1&b=2", no '?'; NULL or "" for none) into
 * *out: proxy_id, status, status_class (e.g. "4xx"), cache (hit|miss|bypass),
 * failure_type, model, since, until (ISO 8601 or epoch ms), q, limit,
 * cursor, count. Values are percent-decoded ('+' is a space). Parameters
 * in `allowed_extra` (a NULL-terminated list, may be NULL) are skipped;
 * any other parameter is an error. Returns 0, or -1 with the offending
 * parameter's name in *bad_field and a message in err. Pure. */
int rd_log_query_parse(const char *query, const char *const *allowed_extra, struct rd_log_query *out,
                       const char **bad_field, char *err, size_t errlen);

/* The cursor of the page after the one that ended with r ("<ts>.<seq>"),
 * into buf (at least 48 bytes). */
void rd_log_cursor(const struct rd_log_rec *r, char *buf, size_t len);

/* Decodes %XX and '+' of s[0..n) into out (NUL-terminated, at most len - 1
 * bytes). Returns the length, or -1 for a malformed escape, a NUL byte or
 * a value too long. Pure. */
int rd_url_decode(const char *s, size_t n, char *out, size_t len);

#endif
