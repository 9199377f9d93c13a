/* See filter.h. */
#include "obs/filter.h"

#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static bool has(const char *hay, const char *needle)
{
    return strstr(hay, needle) != NULL;
}

bool rd_log_filter_match(const struct rd_log_filter *f, const struct rd_log_rec *r)
{
    if (f->proxy_id && r->proxy_id != f->proxy_id)
        return false;
    if (f->status && r->status != f->status)
        return false;
    if (f->status_class && r->status / 100 != f->status_class)
        return false;
    if (f->cache >= 0 && (int)r->cache != f->cache)
        return false;
    if (f->failure_type) {
        const char *want = strcmp(f->failure_type, "none") == 0 ? "" : f->failure_type;
        if (strcmp(r->failure_type, want) != 0)
            return false;
    }
    if (f->model && strcmp(r->model, f->model) != 0)
        return false;
    if (f->since_ms && r->ts_ms < f->since_ms)
        return false;
    if (f->until_ms && r->ts_ms >= f->until_ms)
        return false;
    if (f->q && f->q[0] &&
        !(has(r->id, f->q) || has(r->path, f->q) || has(r->model, f->q) || has(r->client_ip, f->q) ||
          has(r->upstream_request_id, f->q) || has(r->trace_id, f->q) || has(r->prompt_hash, f->q)))
        return false;
    return true;
}

void rd_log_cursor(const struct rd_log_rec *r, char *buf, size_t len)
{
    snprintf(buf, len, "%" PRId64 ".%" PRIu64, r->ts_ms, r->seq);
}

static int hexval(char c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    if (c >= 'a' && c <= 'f')
        return c - 'a' + 10;
    if (c >= 'A' && c <= 'F')
        return c - 'A' + 10;
    return -1;
}

int rd_url_decode(const char *s, size_t n, char *out, size_t len)
{
    size_t o = 0;
    for (size_t i = 0; i < n; i++) {
        int c = (unsigned char)s[i];
        if (c == '+') {
            c = ' ';
        } else if (c == '%') {
            if (n - i < 3 || hexval(s[i + 1]) < 0 || hexval(s[i + 2]) < 0)
                return -1;
            c = hexval(s[i + 1]) * 16 + hexval(s[i + 2]);
            i += 2;
        }
        if (c == 0 || o + 1 >= len)
            return -1;
        out[o++] = (char)c;
    }
    out[o] = '\0';
    return (int)o;
}

static int parse_i64(const char *s, int64_t min, int64_t max, int64_t *out)
{
    char *end = NULL;
    errno = 0;
    long long v = strtoll(s, &end, 10);
    if (errno || end == s || *end != '\0' || v < min || v > max)
        return -1;
    *out = v;
    return 0;
}

static int parse_cursor(const char *s, int64_t *ts, uint64_t *seq)
{
    const char *dot = strchr(s, '.');
    char a[24];
    int64_t t, q;
    if (dot == NULL || (size_t)(dot - s) >= sizeof a)
        return -1;
    memcpy(a, s, (size_t)(dot - s));
    a[dot - s] = '\0';
    if (parse_i64(a, 0, INT64_MAX, &t) < 0 || parse_i64(dot + 1, 1, INT64_MAX, &q) < 0)
        return -1;
    *ts = t;
    *seq = (uint64_t)q;
    return 0;
}

static bool in_list(const char *const *list, const char *name)
{
    for (; list && *list; list++)
        if (strcmp(*list, name) == 0)
            return true;
    return false;
}

#define BAD(field, ...)                                                                                          \
    do {                                                                                                         \
        *bad_field = (field);                                                                                    \
        snprintf(err, errlen, __VA_ARGS__);                                                                      \
        return -1;                                                                                               \
    } while (0)

int rd_log_query_parse(const char *query, const char *const *allowed_extra, struct rd_log_query *out,
                       const char **bad_field, char *err, size_t errlen)
{
    memset(out, 0, sizeof *out);
    out->f.cache = -1;
    out->limit = 100;
    static const char *const names[] = {"proxy_id", "status", "status_class", "cache", "failure_type", "model",
                                        "since",    "until",  "q",            "limit", "cursor",       "count"};
    const char *p = query ? query : "";
    while (*p) {
        const char *end = strchr(p, '&');
        size_t seg = end ? (size_t)(end - p) : strlen(p);
        const char *eq = memchr(p, '=', seg);
        size_t nlen = eq ? (size_t)(eq - p) : seg;
        char name[32], val[512];
        if (nlen == 0 || nlen >= sizeof name) {
            if (seg == 0) { /* "a=1&&b=2" */
                p = end ? end + 1 : p + seg;
                continue;
            }
            BAD("query", "malformed query parameter");
        }
        memcpy(name, p, nlen);
        name[nlen] = '\0';
        const char *field = NULL;
        for (size_t i = 0; i < sizeof names / sizeof names[0]; i++)
            if (strcmp(names[i], name) == 0)
                field = names[i];
        if (field == NULL) {
            if (in_list(allowed_extra, name)) {
                p = end ? end + 1 : p + seg;
                continue;
            }
            BAD("query", "unknown query parameter '%.31s'", name);
        }
        const char *raw = eq ? eq + 1 : p + seg;
        size_t rlen = eq ? seg - nlen - 1 : 0;
        if (rd_url_decode(raw, rlen, val, sizeof val) < 0)
            BAD(field, "%s: malformed or too long value", field);
        int64_t v;
        if (strcmp(field, "proxy_id") == 0) {
            if (parse_i64(val, 1, INT64_MAX, &v) < 0)
                BAD(field, "proxy_id: expected a positive integer");
            out->f.proxy_id = v;
        } else if (strcmp(field, "status") == 0) {
            if (parse_i64(val, 100, 599, &v) < 0)
                BAD(field, "status: expected an HTTP status code (100..599)");
            out->f.status = (int)v;
        } else if (strcmp(field, "status_class") == 0) {
            if (strlen(val) != 3 || val[0] < '1' || val[0] > '5' || (val[1] != 'x' && val[1] != 'X') ||
                (val[2] != 'x' && val[2] != 'X'))
                BAD(field, "status_class: expected 1xx, 2xx, 3xx, 4xx or 5xx");
            out->f.status_class = val[0] - '0';
        } else if (strcmp(field, "cache") == 0) {
            int c = rd_log_cache_parse(val);
            if (c < 0)
                BAD(field, "cache: expected hit, miss or bypass");
            out->f.cache = c;
        } else if (strcmp(field, "failure_type") == 0) {
            if (val[0] == '\0' || strlen(val) >= sizeof out->failure_type)
                BAD(field, "failure_type: expected a failure type or none");
            memcpy(out->failure_type, val, strlen(val) + 1);
            out->f.failure_type = out->failure_type;
        } else if (strcmp(field, "model") == 0) {
            if (val[0] == '\0' || strlen(val) >= sizeof out->model)
                BAD(field, "model: expected a model name (at most %zu bytes)", sizeof out->model - 1);
            memcpy(out->model, val, strlen(val) + 1);
            out->f.model = out->model;
        } else if (strcmp(field, "since") == 0 || strcmp(field, "until") == 0) {
            int64_t ms;
            if (rd_log_parse_time(val, &ms) < 0)
                BAD(field, "%s: expected an ISO 8601 time (2026-12-03T06:00:00Z) or epoch milliseconds", field);
            if (field[0] == 's')
                out->f.since_ms = ms;
            else
                out->f.until_ms = ms;
        } else if (strcmp(field, "q") == 0) {
            if (strlen(val) >= sizeof out->q)
                BAD(field, "q: at most %zu bytes", sizeof out->q - 1);
            memcpy(out->q, val, strlen(val) + 1);
            out->f.q = out->q[0] ? out->q : NULL;
        } else if (strcmp(field, "limit") == 0) {
            if (parse_i64(val, 1, 1000, &v) < 0)
                BAD(field, "limit: expected 1..1000");
            out->limit = (size_t)v;
        } else if (strcmp(field, "cursor") == 0) {
            if (parse_cursor(val, &out->f.before_ts, &out->f.before_seq) < 0)
                BAD(field, "cursor: not a cursor this API returned");
        } else if (strcmp(field, "count") == 0) {
            if (strcmp(val, "true") == 0 || strcmp(val, "1") == 0)
                out->count = true;
            else if (strcmp(val, "false") == 0 || strcmp(val, "0") == 0)
                out->count = false;
            else
                BAD(field, "count: expected true or false");
        }
        p = end ? end + 1 : p + seg;
    }
    if (out->f.since_ms && out->f.until_ms && out->f.until_ms <= out->f.since_ms)
        BAD("until", "until must be after since");
    return 0;
}
