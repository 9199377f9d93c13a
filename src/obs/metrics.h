/* Request counters for the Prometheus exposition (GET /metrics on the admin
 * port, docs/observability.md, "Metrics").
 *
 * Threading: one slot per I/O worker (rd_req_env.index). A worker adds to
 * its own slot only, so the request path touches no cache line another
 * thread writes; the scrape (control thread) sums the slots. */
#ifndef RD_OBS_METRICS_H
#define RD_OBS_METRICS_H

#include <stdbool.h>
#include <stdint.h>

#include "util/buf.h"

struct rd_req;
struct rd_metrics;

/* Distinct models a slot keeps apart (over all proxies); the rest are
 * summed under the model "(other)" (a client can send any model name). */
#define RD_METRICS_MAX_MODELS 256

struct rd_metrics *rd_metrics_new(unsigned nslots);
void rd_metrics_free(struct rd_metrics *m); /* NULL-safe; after the workers are joined */

/* A request entered / left the proxy layer (in-flight gauge). The worker
 * that owns slot. NULL-safe. */
void rd_metrics_begin(struct rd_metrics *m, unsigned slot);
/* Counts a finished request (state DONE, everything final): requests by
 * proxy, provider and status sent, the duration histogram, simulated
 * failures, upstream errors, tokens and cost by model. NULL-safe. */
void rd_metrics_done(struct rd_metrics *m, unsigned slot, struct rd_req *req);

/* Requests in flight right now (begun, not done), summed over the slots.
 * Any thread. NULL-safe (0). */
uint64_t rd_metrics_in_flight(struct rd_metrics *m);

/* What the scrape adds from outside this module (control thread). */
struct rd_metrics_extra {
    uint64_t active_proxies;
    uint64_t log_dropped, log_written, log_pending;
    /* traces (rd_tracer_stats); has_tracer false: no exporter configured, no families */
    bool has_tracer;
    uint64_t spans_exported, spans_dropped, spans_failed;
    /* caches, summed over proxies by the caller */
    uint64_t cache_hits, cache_misses, cache_evictions, cache_bytes, cache_entries;
    uint64_t open_connections;
};

/* Appends the whole exposition (text format 0.0.4) to out. Control thread. */
int rd_metrics_render(struct rd_metrics *m, const struct rd_metrics_extra *extra, struct rd_buf *out);

#endif
