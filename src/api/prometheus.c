/* GET /metrics: the Prometheus exposition (docs/observability.md,
 * "Prometheus metrics"). Open unless RUBBERDUCK_METRICS_TOKEN is set; then
 * it wants that token, or the admin token, as a Bearer token (the same rule
 * as /health/detailed). The request counters come from obs/metrics.c (per
 * worker, summed here); what only the control thread knows (proxies
 * running, the caches, the log writer, connections) is gathered into
 * struct rd_metrics_extra first. */
#include <stdlib.h>

#include "api/api.h"
#include "cache/cache.h"
#include "obs/logwriter.h"
#include "obs/metrics.h"
#include "obs/obs.h"
#include "obs/prom.h"
#include "obs/trace.h"
#include "proxy/worker.h"
#include "util/arena.h"

/* An exposition larger than this is a bug (or millions of series): 503
 * rather than an unbounded buffer. */
#define RD_METRICS_MAX_BYTES (64u * 1024 * 1024)

static bool authorized(const struct rd_api *api, const struct rd_http_exch *x)
{
    if (api->metrics_token == NULL || api->metrics_token[0] == '\0')
        return true;
    return rd_api_bearer_matches(x, api->metrics_token) ||
           (api->admin_token && api->admin_token[0] && rd_api_bearer_matches(x, api->admin_token));
}

static void gather(const struct rd_api *api, struct rd_metrics_extra *e)
{
    const struct rd_manager *m = api->manager;
    e->active_proxies = (uint64_t)rd_manager_running(m);
    for (const struct rd_proxy_entry *p = m->entries; p; p = p->next) {
        if (p->cache == NULL || rd_proxy_is_deleting(p))
            continue;
        struct rd_cache_stats cs;
        rd_cache_stats(p->cache, &cs);
        e->cache_hits += cs.hits;
        e->cache_misses += cs.misses;
        e->cache_evictions += cs.evictions;
        e->cache_bytes += cs.bytes;
        e->cache_entries += cs.entries;
    }
    for (int i = 0; i < m->nworkers; i++)
        e->open_connections += rd_worker_connections(m->workers[i]);
    if (rd_obs.log) {
        struct rd_log_writer_stats ls;
        rd_log_writer_stats(rd_obs.log, &ls);
        e->log_dropped = ls.dropped;
        e->log_written = ls.written;
        e->log_pending = ls.pending;
    }
    if (rd_obs.tracer) {
        struct rd_tracer_stats ts;
        rd_tracer_stats(rd_obs.tracer, &ts);
        e->has_tracer = true;
        e->spans_exported = ts.exported;
        e->spans_dropped = ts.dropped;
        e->spans_failed = ts.failed;
    }
}

static void get_metrics(struct rd_api *api, struct rd_http_exch *x, const char *param)
{
    (void)param;
    if (!authorized(api, x)) {
        rd_api_send_error(x, 401, "unauthorized", NULL, "missing or invalid metrics token");
        return;
    }
    struct rd_metrics_extra extra = {0};
    gather(api, &extra);
    struct rd_buf body;
    rd_buf_init(&body, RD_METRICS_MAX_BYTES);
    if (rd_metrics_render(rd_obs.metrics, &extra, &body) != 0) {
        rd_buf_free(&body);
        rd_api_send_error(x, 503, "too_large", NULL, "the exposition passed %u bytes", RD_METRICS_MAX_BYTES);
        return;
    }
    struct rd_arena a;
    struct rd_hdrs h;
    rd_arena_init(&a);
    rd_hdrs_init(&h, &a);
    rd_hdrs_add_ref(&h, "Content-Type", RD_PROM_CONTENT_TYPE);
    rd_hdrs_add_ref(&h, "Cache-Control", "no-store");
    rd_http_respond(x, 200, &h, body.data ? body.data : "", body.len);
    rd_hdrs_free(&h);
    rd_arena_free(&a);
    rd_buf_free(&body);
}

const struct rd_api_route rd_api_prometheus_routes[] = {
    /* Its own check: open, or RUBBERDUCK_METRICS_TOKEN (or the admin token). */
    {"GET", "/metrics", get_metrics, false},
};
const size_t rd_api_prometheus_nroutes = sizeof rd_api_prometheus_routes / sizeof rd_api_prometheus_routes[0];
