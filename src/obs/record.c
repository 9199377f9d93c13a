/* See record.h. */
#include "obs/record.h"

#include <inttypes.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "proxy/req.h"
#include "util/json.h"
#include "util/time.h"

/* A bounded copy of a short string, truncating, by hand: on every
 * request, where a strnlen and a memcpy call cost more than the bytes. */
static void copy_str(char *dst, size_t cap, const char *src)
{
    size_t i = 0;
    if (src)
        for (; i + 1 < cap && src[i]; i++)
            dst[i] = src[i];
    dst[i] = '\0';
}
#define COPY(dst, src) copy_str((dst), sizeof(dst), (src))
/* The request's own array of the same size, whole: a few vector moves, no
 * scan (the bytes past its NUL go along and are never read). */
#define COPY_ARRAY(dst, src)                                                                                           \
    do {                                                                                                               \
        _Static_assert(sizeof(dst) == sizeof(src), "same size");                                                       \
        memcpy((dst), (src), sizeof(dst));                                                                             \
        (dst)[sizeof(dst) - 1] = '\0';                                                                                 \
    } while (0)

static double us_to_ms(uint64_t from, uint64_t to)
{
    return from && to >= from ? (double)(to - from) / 1000.0 : -1.0;
}

void rd_log_rec_from_req(struct rd_log_rec *r, struct rd_req *req)
{
    /* Every field is set below (r is in the log's queue, not zeroed). */
    r->seq = 0;
    (void)rd_req_id(req); /* renders req->id_text */
    COPY_ARRAY(r->id, req->id_text);
    r->ts_ms = req->wall_ms;
    r->proxy_id = req->snap->id;
    r->node_id[0] = '\0'; /* the writer's */
    COPY_ARRAY(r->client_ip, req->client_ip);
    COPY(r->method, req->method);
    /* The path without its query: a query string can carry a key (?key=). */
    const char *path = req->path ? req->path : "";
    size_t plen = strcspn(path, "?");
    if (plen >= sizeof r->path)
        plen = sizeof r->path - 1;
    memcpy(r->path, path, plen);
    r->path[plen] = '\0';
    COPY(r->provider, req->provider ? req->provider->name : "");
    COPY_ARRAY(r->model, req->model);
    r->status = req->status_sent;
    /* A hit is replayed through the same callbacks as an upstream answer
     * (forward.c), but no upstream answered it. */
    bool hit = req->cache == RD_CACHE_HIT;
    r->upstream_status = hit ? 0 : req->status_upstream;
    uint64_t done = req->t_done ? req->t_done : rd_req_now_us();
    r->latency_ms = us_to_ms(req->t_received, done);
    if (r->latency_ms < 0)
        r->latency_ms = 0;
    r->upstream_latency_ms = hit ? -1.0 : us_to_ms(req->t_upstream, done);
    r->ttfb_ms = us_to_ms(req->t_received, req->t_first_byte);
    r->request_bytes = (int64_t)req->bytes_in;
    r->response_bytes = (int64_t)req->bytes_out;
    r->cache = (enum rd_log_cache)req->cache;
    COPY(r->failure_type, rd_failure_name(req->failure));
    r->response_delay_ms = (int64_t)req->delay_applied_ms;
    r->stream = req->stream;
    const struct rd_usage *u = rd_req_usage(req);
    r->input_tokens = u->input;
    r->output_tokens = u->output;
    r->cached_tokens = u->cached;
    r->reasoning_tokens = u->reasoning;
    r->cost_usd = 0;
    r->has_cost = rd_req_cost(req, &r->cost_usd);
    if (req->cache == RD_CACHE_HIT) {
        /* Answered from the cache: no upstream call, nothing billed (the
         * tokens are the cached answer's). */
        r->upstream_status = 0;
        r->upstream_latency_ms = -1;
        r->has_cost = true;
        r->cost_usd = 0;
    }
    if (req->prompt_hash_set) {
        static const char hex[] = "0123456789abcdef";
        for (size_t i = 0; i < sizeof req->prompt_hash; i++) {
            r->prompt_hash[2 * i] = hex[req->prompt_hash[i] >> 4];
            r->prompt_hash[2 * i + 1] = hex[req->prompt_hash[i] & 15];
        }
        r->prompt_hash[64] = '\0';
    } else {
        r->prompt_hash[0] = '\0';
    }
    COPY_ARRAY(r->upstream_request_id, req->upstream_request_id);
    COPY_ARRAY(r->trace_id, req->trace_id);
}

const char *rd_log_cache_name(enum rd_log_cache c)
{
    switch (c) {
    case RD_LOG_CACHE_HIT:
        return "hit";
    case RD_LOG_CACHE_MISS:
        return "miss";
    case RD_LOG_CACHE_BYPASS:
        return "bypass";
    case RD_LOG_CACHE_NONE:
        break;
    }
    return NULL;
}

int rd_log_cache_parse(const char *s)
{
    if (strcmp(s, "hit") == 0)
        return RD_LOG_CACHE_HIT;
    if (strcmp(s, "miss") == 0)
        return RD_LOG_CACHE_MISS;
    if (strcmp(s, "bypass") == 0)
        return RD_LOG_CACHE_BYPASS;
    return -1;
}

void rd_log_iso8601(int64_t ms, char *buf, size_t len)
{
    rd_time_format(ms, buf, len);
}

/* ---- JSON ---- */

static int key(struct rd_buf *b, const char *k, bool first)
{
    return rd_buf_printf(b, "%s\"%s\":", first ? "" : ",", k);
}

static int str_or_null(struct rd_buf *b, const char *k, const char *v)
{
    if (key(b, k, false) < 0)
        return -1;
    return v && v[0] ? rd_json_append_str(b, v, strlen(v)) : rd_buf_appends(b, "null");
}

static int i64_or_null(struct rd_buf *b, const char *k, int64_t v)
{
    if (key(b, k, false) < 0)
        return -1;
    return v < 0 ? rd_buf_appends(b, "null") : rd_buf_printf(b, "%" PRId64, v);
}

/* Milliseconds with microsecond resolution ("12.345"); null when < 0. */
static int ms_or_null(struct rd_buf *b, const char *k, double v)
{
    if (key(b, k, false) < 0)
        return -1;
    return v < 0 || !isfinite(v) ? rd_buf_appends(b, "null") : rd_buf_printf(b, "%.3f", v);
}

int rd_log_rec_json(struct rd_buf *b, const struct rd_log_rec *r)
{
    char ts[32];
    rd_log_iso8601(r->ts_ms, ts, sizeof ts);
    const char *cache = rd_log_cache_name(r->cache);
    int rc = rd_buf_appends(b, "{") | key(b, "id", true) | rd_json_append_str(b, r->id, strlen(r->id)) |
             key(b, "timestamp", false) | rd_json_append_str(b, ts, strlen(ts)) | key(b, "proxy_id", false) |
             rd_buf_printf(b, "%" PRId64, r->proxy_id) | str_or_null(b, "node_id", r->node_id) |
             str_or_null(b, "client_ip", r->client_ip) | str_or_null(b, "method", r->method) |
             str_or_null(b, "path", r->path) | str_or_null(b, "provider", r->provider) |
             str_or_null(b, "model", r->model) | i64_or_null(b, "status", r->status > 0 ? r->status : -1) |
             i64_or_null(b, "upstream_status", r->upstream_status > 0 ? r->upstream_status : -1) |
             ms_or_null(b, "latency_ms", r->latency_ms) |
             ms_or_null(b, "upstream_latency_ms", r->upstream_latency_ms) | ms_or_null(b, "ttfb_ms", r->ttfb_ms) |
             i64_or_null(b, "request_bytes", r->request_bytes) | i64_or_null(b, "response_bytes", r->response_bytes) |
             str_or_null(b, "cache", cache) | str_or_null(b, "failure_type", r->failure_type) |
             i64_or_null(b, "response_delay_ms", r->response_delay_ms) | key(b, "stream", false) |
             rd_buf_appends(b, r->stream ? "true" : "false") | key(b, "tokens", false) | rd_buf_appends(b, "{") |
             key(b, "input", true) |
             (r->input_tokens < 0 ? rd_buf_appends(b, "null") : rd_buf_printf(b, "%" PRId64, r->input_tokens)) |
             i64_or_null(b, "output", r->output_tokens) | i64_or_null(b, "cached", r->cached_tokens) |
             i64_or_null(b, "reasoning", r->reasoning_tokens) | rd_buf_appends(b, "}") | key(b, "cost_usd", false) |
             (r->has_cost && isfinite(r->cost_usd) ? rd_buf_printf(b, "%.10g", r->cost_usd)
                                                   : rd_buf_appends(b, "null")) |
             str_or_null(b, "prompt_hash", r->prompt_hash) |
             str_or_null(b, "upstream_request_id", r->upstream_request_id) |
             str_or_null(b, "trace_id", r->trace_id) | rd_buf_appends(b, "}");
    return rc < 0 ? -1 : 0;
}

/* ---- time parsing ---- */

static int digits(const char **p, int n, int *out)
{
    int v = 0;
    for (int i = 0; i < n; i++) {
        char c = (*p)[i];
        if (c < '0' || c > '9')
            return -1;
        v = v * 10 + (c - '0');
    }
    *p += n;
    *out = v;
    return 0;
}

static int64_t days_from_civil(int y, int m, int d)
{
    y -= m <= 2;
    int64_t era = (y >= 0 ? y : y - 399) / 400;
    int64_t yoe = y - era * 400;
    int64_t doy = (153 * (m + (m > 2 ? -3 : 9)) + 2) / 5 + d - 1;
    int64_t doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    return era * 146097 + doe - 719468;
}

int rd_log_parse_time(const char *s, int64_t *ms)
{
    if (s == NULL || s[0] == '\0')
        return -1;
    /* Epoch milliseconds: digits only. */
    if (strspn(s, "0123456789") == strlen(s)) {
        if (strlen(s) > 15)
            return -1;
        *ms = strtoll(s, NULL, 10);
        return 0;
    }
    const char *p = s;
    int y, mo, d, h = 0, mi = 0, sec = 0, frac = 0;
    if (digits(&p, 4, &y) < 0 || *p++ != '-' || digits(&p, 2, &mo) < 0 || *p++ != '-' || digits(&p, 2, &d) < 0)
        return -1;
    static const int mdays[] = {31, 29, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
    if (y < 1970 || mo < 1 || mo > 12 || d < 1 || d > mdays[mo - 1])
        return -1;
    if (mo == 2 && d == 29 && !((y % 4 == 0 && y % 100 != 0) || y % 400 == 0))
        return -1;
    int64_t off_min = 0;
    if (*p == 'T' || *p == 't' || *p == ' ') {
        p++;
        if (digits(&p, 2, &h) < 0 || *p++ != ':' || digits(&p, 2, &mi) < 0)
            return -1;
        if (*p == ':') {
            p++;
            if (digits(&p, 2, &sec) < 0)
                return -1;
            if (*p == '.') {
                p++;
                int n = 0;
                while (p[n] >= '0' && p[n] <= '9')
                    n++;
                if (n == 0 || n > 9)
                    return -1;
                int scale = 0;
                for (int i = 0; i < n; i++) {
                    if (i < 3)
                        frac = frac * 10 + (p[i] - '0'), scale++;
                }
                while (scale++ < 3)
                    frac *= 10;
                p += n;
            }
        }
        if (h > 23 || mi > 59 || sec > 60)
            return -1;
        if (*p == 'Z' || *p == 'z') {
            p++;
        } else if (*p == '+' || *p == '-') {
            int sign = *p++ == '-' ? -1 : 1, oh, om;
            if (digits(&p, 2, &oh) < 0)
                return -1;
            if (*p == ':')
                p++;
            if (digits(&p, 2, &om) < 0 || oh > 23 || om > 59)
                return -1;
            off_min = sign * (oh * 60 + om);
        } else if (*p != '\0') {
            return -1;
        }
    }
    if (*p != '\0')
        return -1;
    int64_t secs = days_from_civil(y, mo, d) * 86400 + h * 3600 + mi * 60 + sec - off_min * 60;
    *ms = secs * 1000 + frac;
    return 0;
}
