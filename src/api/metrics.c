/* GET /api/v1/metrics/summary and /series (docs/api.md, "Metrics"): totals
 * and chart points of a window, read from the roll-ups (obs/rollup.h) and
 * what they have not written yet, never from request rows. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "api/api.h"
#include "obs/metrics.h"
#include "obs/obs.h"
#include "obs/rollup.h"
#include "util/mem.h"
#include "util/time.h"

/* A window: its name, the bucket size it is read in, how many buckets. */
struct window {
    const char *name;
    int32_t res_s;
    int points;
};

static const struct window windows[] = {
    {"1h", RD_ROLLUP_MINUTE, 60},
    {"24h", RD_ROLLUP_QUARTER, 96},
    {"7d", RD_ROLLUP_HOUR, 168},
};
#define DEFAULT_WINDOW 1 /* 24h */

struct params {
    const struct window *w;
    int64_t proxy_id; /* 0: every proxy */
};

#define MAX_VALUE 32

/* Parses the query: window and proxy_id only, each at most once, values
 * checked; anything else answers 400 and returns false. */
static bool parse_params(struct rd_http_exch *x, struct params *out)
{
    out->w = &windows[DEFAULT_WINDOW];
    out->proxy_id = 0;
    bool seen_window = false, seen_proxy = false;
    const char *p = x->req->query;
    while (p && *p) {
        const char *end = strchr(p, '&');
        size_t seg = end ? (size_t)(end - p) : strlen(p);
        const char *eq = memchr(p, '=', seg);
        size_t nlen = eq ? (size_t)(eq - p) : seg;
        const char *val = eq ? eq + 1 : p + seg;
        size_t vlen = eq ? seg - nlen - 1 : 0;
        char v[MAX_VALUE + 1];
        if (seg == 0) {
            p = end ? end + 1 : NULL; /* "a=1&&b=2": an empty segment says nothing */
            continue;
        }
        if (vlen > MAX_VALUE) {
            rd_api_send_error(x, 400, "invalid_field", NULL, "a query value is too long");
            return false;
        }
        memcpy(v, val, vlen);
        v[vlen] = '\0';
        if (nlen == 6 && memcmp(p, "window", 6) == 0) {
            const struct window *w = NULL;
            for (size_t i = 0; i < sizeof windows / sizeof windows[0]; i++)
                if (strcmp(v, windows[i].name) == 0)
                    w = &windows[i];
            if (w == NULL || seen_window) {
                rd_api_send_error(x, 400, "invalid_field", "window", "window is one of 1h, 24h, 7d, given once");
                return false;
            }
            out->w = w;
            seen_window = true;
        } else if (nlen == 8 && memcmp(p, "proxy_id", 8) == 0) {
            char *e;
            long long id = vlen > 0 && vlen <= 18 && v[0] >= '1' && v[0] <= '9' ? strtoll(v, &e, 10) : 0;
            if (id <= 0 || *e != '\0' || seen_proxy) {
                rd_api_send_error(x, 400, "invalid_field", "proxy_id", "proxy_id is a proxy's id, given once");
                return false;
            }
            out->proxy_id = id;
            seen_proxy = true;
        } else {
            rd_api_send_error(x, 400, "invalid_field", NULL, "unknown query parameter (window and proxy_id are known)");
            return false;
        }
        p = end ? end + 1 : NULL;
    }
    return true;
}

/* The window's buckets, filled from the roll-ups. */
struct points {
    const struct window *w;
    int64_t since_ms;        /* the first bucket's start */
    struct rd_rollup_agg *v; /* w->points of them */
};

static void fold(void *ud, const struct rd_rollup_agg *a)
{
    struct points *pts = ud;
    int64_t step = pts->w->res_s * 1000LL;
    /* A pending minute goes to the bucket its start falls in. */
    int64_t start = a->start_ms - a->start_ms % step;
    if (start < pts->since_ms)
        return;
    int64_t i = (start - pts->since_ms) / step;
    if (i < pts->w->points)
        rd_rollup_agg_merge(&pts->v[i], a);
}

/* Reads the window ending with the current bucket; false when it answered
 * an error. */
static bool read_window(struct rd_api *api, struct rd_http_exch *x, const struct params *q, struct points *pts)
{
    if (rd_obs.rollup == NULL) {
        rd_api_send_error(x, 503, "metrics_unavailable", NULL, "metric roll-ups are off (see the server log)");
        return false;
    }
    int64_t step = q->w->res_s * 1000LL, now = rd_time_wall_ms();
    pts->w = q->w;
    pts->since_ms = now - now % step - (int64_t)(q->w->points - 1) * step;
    pts->v = rd_calloc((size_t)q->w->points, sizeof *pts->v);
    for (int i = 0; i < q->w->points; i++)
        pts->v[i].start_ms = pts->since_ms + i * step;
    struct rd_rollup_filter f = {.res_s = q->w->res_s, .since_ms = pts->since_ms, .proxy_id = q->proxy_id};
    if (rd_rollup_read(rd_obs.rollup, api->store, &f, fold, pts) < 0) {
        free(pts->v);
        rd_api_send_error(x, 500, "store_error", NULL, "the roll-ups cannot be read");
        return false;
    }
    return true;
}

/* A figure with a few decimals, not json-c's 17 digits of binary rounding. */
static struct json_object *num(double v, int decimals)
{
    if (!isfinite(v))
        return NULL;
    char text[48];
    snprintf(text, sizeof text, "%.*f", decimals, v);
    return json_object_new_double_s(v, text);
}

static struct json_object *ratio(uint64_t a, uint64_t b)
{
    return b ? num((double)a / (double)b, 4) : NULL;
}

static struct json_object *quantile_ms(const struct rd_hist *h, double q)
{
    double us;
    return rd_hist_quantile(h, q, &us) ? num(us / 1000.0, 3) : NULL;
}

static struct json_object *cost(double usd)
{
    char text[32];
    snprintf(text, sizeof text, "%.10g", usd);
    return json_object_new_double_s(usd, text);
}

static void add_head(struct json_object *root, const struct params *q, const struct points *pts)
{
    char ts[32];
    json_object_object_add(root, "window", json_object_new_string(q->w->name));
    json_object_object_add(root, "resolution_s", json_object_new_int(q->w->res_s));
    json_object_object_add(root, "proxy_id", q->proxy_id ? json_object_new_int64(q->proxy_id) : NULL);
    json_object_object_add(root, "since", json_object_new_string(rd_time_format(pts->since_ms, ts, sizeof ts)));
}

static void get_summary(struct rd_api *api, struct rd_http_exch *x, const char *param)
{
    (void)param;
    struct params q;
    struct points pts;
    if (!parse_params(x, &q) || !read_window(api, x, &q, &pts))
        return;
    struct rd_rollup_agg *t = rd_calloc(1, sizeof *t);
    for (int i = 0; i < q.w->points; i++)
        rd_rollup_agg_merge(t, &pts.v[i]);
    free(pts.v);
    struct json_object *root = json_object_new_object();
    add_head(root, &q, &pts);
    json_object_object_add(root, "requests", json_object_new_int64((int64_t)t->requests));
    double minutes = (double)q.w->points * q.w->res_s / 60.0;
    json_object_object_add(root, "requests_per_minute", num((double)t->requests / minutes, 6));

    struct json_object *c = json_object_new_object();
    json_object_object_add(c, "hits", json_object_new_int64((int64_t)t->cache_hits));
    json_object_object_add(c, "misses", json_object_new_int64((int64_t)t->cache_misses));
    json_object_object_add(c, "bypass", json_object_new_int64((int64_t)t->cache_bypass));
    json_object_object_add(c, "hit_rate", ratio(t->cache_hits, t->cache_hits + t->cache_misses));
    json_object_object_add(root, "cache", c);

    struct json_object *e = json_object_new_object();
    uint64_t errors = t->errors_simulated + t->errors_upstream;
    json_object_object_add(e, "total", json_object_new_int64((int64_t)errors));
    json_object_object_add(e, "simulated", json_object_new_int64((int64_t)t->errors_simulated));
    json_object_object_add(e, "upstream", json_object_new_int64((int64_t)t->errors_upstream));
    json_object_object_add(e, "rate", ratio(errors, t->requests));
    json_object_object_add(e, "simulated_rate", ratio(t->errors_simulated, t->requests));
    json_object_object_add(e, "upstream_rate", ratio(t->errors_upstream, t->requests));
    json_object_object_add(root, "errors", e);

    struct json_object *l = json_object_new_object();
    json_object_object_add(l, "p50", quantile_ms(&t->latency, 0.50));
    json_object_object_add(l, "p95", quantile_ms(&t->latency, 0.95));
    json_object_object_add(l, "p99", quantile_ms(&t->latency, 0.99));
    json_object_object_add(root, "latency_ms", l);

    struct json_object *tok = json_object_new_object();
    json_object_object_add(tok, "input", json_object_new_int64(t->input_tokens));
    json_object_object_add(tok, "output", json_object_new_int64(t->output_tokens));
    json_object_object_add(tok, "cached", json_object_new_int64(t->cached_tokens));
    json_object_object_add(tok, "cache_write", json_object_new_int64(t->cache_write_tokens));
    json_object_object_add(tok, "reasoning", json_object_new_int64(t->reasoning_tokens));
    json_object_object_add(root, "tokens", tok);
    json_object_object_add(root, "cost_usd", cost(t->cost_usd));
    json_object_object_add(root, "unpriced_requests", json_object_new_int64((int64_t)t->unpriced));
    free(t);

    int total = 0, running = 0;
    for (struct rd_proxy_entry *pe = api->manager->entries; pe; pe = pe->next) {
        if (rd_proxy_is_deleting(pe))
            continue;
        total++;
        running += strcmp(rd_proxy_status_name(pe), "running") == 0;
    }
    struct json_object *px = json_object_new_object();
    json_object_object_add(px, "total", json_object_new_int(total));
    json_object_object_add(px, "running", json_object_new_int(running));
    json_object_object_add(px, "stopped", json_object_new_int(total - running));
    json_object_object_add(root, "proxies", px);
    json_object_object_add(root, "in_flight", json_object_new_int64((int64_t)rd_metrics_in_flight(rd_obs.metrics)));
    rd_api_send_json(x, 200, root);
}

static void get_series(struct rd_api *api, struct rd_http_exch *x, const char *param)
{
    (void)param;
    struct params q;
    struct points pts;
    if (!parse_params(x, &q) || !read_window(api, x, &q, &pts))
        return;
    struct json_object *root = json_object_new_object();
    add_head(root, &q, &pts);
    struct json_object *arr = json_object_new_array_ext(q.w->points);
    char ts[32];
    for (int i = 0; i < q.w->points; i++) {
        const struct rd_rollup_agg *a = &pts.v[i];
        struct json_object *o = json_object_new_object();
        json_object_object_add(o, "t", json_object_new_string(rd_time_format(a->start_ms, ts, sizeof ts)));
        json_object_object_add(o, "requests", json_object_new_int64((int64_t)a->requests));
        json_object_object_add(o, "cache_hits", json_object_new_int64((int64_t)a->cache_hits));
        json_object_object_add(o, "cache_misses", json_object_new_int64((int64_t)a->cache_misses));
        json_object_object_add(o, "cache_bypass", json_object_new_int64((int64_t)a->cache_bypass));
        json_object_object_add(o, "errors_simulated", json_object_new_int64((int64_t)a->errors_simulated));
        json_object_object_add(o, "errors_upstream", json_object_new_int64((int64_t)a->errors_upstream));
        json_object_object_add(o, "p50_ms", quantile_ms(&a->latency, 0.50));
        json_object_object_add(o, "p95_ms", quantile_ms(&a->latency, 0.95));
        json_object_object_add(o, "p99_ms", quantile_ms(&a->latency, 0.99));
        json_object_object_add(o, "input_tokens", json_object_new_int64(a->input_tokens));
        json_object_object_add(o, "output_tokens", json_object_new_int64(a->output_tokens));
        json_object_object_add(o, "cost_usd", cost(a->cost_usd));
        json_object_array_add(arr, o);
    }
    free(pts.v);
    json_object_object_add(root, "points", arr);
    rd_api_send_json(x, 200, root);
}

const struct rd_api_route rd_api_metrics_routes[] = {
    {"GET", "/api/v1/metrics/summary", get_summary, true},
    {"GET", "/api/v1/metrics/series", get_series, true},
};
const size_t rd_api_metrics_nroutes = sizeof rd_api_metrics_routes / sizeof rd_api_metrics_routes[0];
