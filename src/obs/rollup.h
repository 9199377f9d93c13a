/* Metric roll-ups (table metrics_rollups, docs/observability.md, "Roll-ups"):
 * per proxy and model, 1-minute buckets of requests, cache results, errors
 * (client-visible status >= 400, simulated or upstream), a latency
 * histogram, tokens and cost; aggregated into 15-minute and 1-hour buckets.
 * They answer /api/v1/metrics/summary and /series and the proxies' usage
 * and failure totals, so those survive a restart.
 *
 * Threading: one accumulator slot per I/O worker; rd_rollup_done adds to
 * the worker's own slot under the slot's mutex, which only the flusher and
 * a reader take besides (briefly). A thread of its own takes the closed
 * minutes out of the slots, merges them and writes them on its own store
 * connection. Time is a parameter below the thread (rd_rollup_flush), so
 * tests step the clock. */
#ifndef RD_OBS_ROLLUP_H
#define RD_OBS_ROLLUP_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "obs/hist.h"
#include "providers/provider.h"
#include "store/store.h"

struct rd_req;
struct rd_rollup;

/* Bucket sizes in seconds, and how long the finer ones are kept (hourly
 * rows are kept for good: the usage totals are their sum). */
#define RD_ROLLUP_MINUTE 60
#define RD_ROLLUP_QUARTER 900
#define RD_ROLLUP_HOUR 3600
#define RD_ROLLUP_KEEP_MINUTES_MS (48LL * 3600 * 1000)
#define RD_ROLLUP_KEEP_QUARTERS_MS (14LL * 24 * 3600 * 1000)
/* Distinct (minute, proxy, provider, model) buckets a worker's slot keeps
 * apart; past it the model is counted as "(other)" (a client names any
 * model it likes). */
#define RD_ROLLUP_MAX_KEYS 256
/* Failure types counted (enum rd_failure values below this). */
#define RD_ROLLUP_FAIL_TYPES 32

/* One finished request as the roll-ups see it (rd_rollup_done fills it
 * from the request; tests fill it themselves). Strings are borrowed. */
struct rd_rollup_sample {
    int64_t wall_ms; /* when it was received: its minute */
    int64_t proxy_id;
    const char *provider;   /* "" when unknown */
    const char *model;      /* "" when unknown */
    int cache;              /* enum rd_req_cache */
    int status;             /* sent to the client; >= 400 is an error */
    bool simulated;         /* a simulated outcome (req->failure) */
    uint32_t failures_seen; /* bit (1 << type) per type simulated: each counted once */
    uint64_t latency_us;    /* received to done */
    bool billed;            /* tokens and cost count: not a cache hit */
    struct rd_usage usage;  /* fields -1 when not reported */
    bool has_cost;
    double cost_usd;
};

/* One bucket's counters, decoded (what readers of the roll-ups get). */
struct rd_rollup_agg {
    int32_t res_s;
    int64_t start_ms;
    int64_t proxy_id;
    char provider[32];
    char model[128];
    uint64_t requests, cache_hits, cache_misses, cache_bypass, errors_simulated, errors_upstream;
    int64_t input_tokens, output_tokens, cached_tokens, cache_write_tokens, reasoning_tokens;
    double cost_usd;
    uint64_t priced, unpriced;
    uint64_t failures[RD_ROLLUP_FAIL_TYPES]; /* by enum rd_failure */
    struct rd_hist latency;
};
/* Adds a's counts, failures and latency histogram into d (keys untouched). Pure. */
void rd_rollup_agg_merge(struct rd_rollup_agg *d, const struct rd_rollup_agg *a);

typedef void (*rd_rollup_agg_fn)(void *ud, const struct rd_rollup_agg *a);

/* Starts the roll-up thread on its own connection to store_url, after
 * reading what earlier runs left (the usage and failure totals). Returns
 * 0 or a negative rd_err with a reason in errbuf. Control thread, before
 * the workers take requests. RUBBERDUCK_ROLLUP_FLUSH_MS (for tests, 50 to
 * 60000; default 5000) sets how often the thread wakes. */
int rd_rollup_start(const char *store_url, unsigned nslots, struct rd_rollup **out, char *errbuf, size_t errlen);
/* Writes every bucket still open (also the current minute), stops, closes.
 * After the workers are joined. NULL-safe. */
void rd_rollup_stop(struct rd_rollup *r);
/* Counts a finished request in its minute (req->wall_ms). The worker that
 * owns slot. NULL-safe. */
void rd_rollup_done(struct rd_rollup *r, unsigned slot, struct rd_req *req);

/* ---- below the thread: what rd_rollup_start and the tests build on ---- */

/* A roll-up without thread or store (nslots at least 1). */
struct rd_rollup *rd_rollup_new(unsigned nslots);
void rd_rollup_free(struct rd_rollup *r); /* NULL-safe; writes nothing */
/* Counts s in slot (modulo the slot count). The worker that owns slot. */
void rd_rollup_add(struct rd_rollup *r, unsigned slot, const struct rd_rollup_sample *s);
/* Takes the minutes that closed before now_ms (every one with all) out of
 * the slots and adds them to their 1-minute, 15-minute and 1-hour rows in
 * store, one transaction. What fails to be written is kept for the next
 * flush (up to a cap, then dropped with a warning). Returns how many
 * minute buckets were written, or RD_ESTORE. The flusher's thread. */
int rd_rollup_flush(struct rd_rollup *r, struct rd_store *store, int64_t now_ms, bool all);
/* Deletes 1-minute rows older than RD_ROLLUP_KEEP_MINUTES_MS and 15-minute
 * rows older than RD_ROLLUP_KEEP_QUARTERS_MS before now_ms. Returns the
 * count or RD_ESTORE. */
int64_t rd_rollup_purge(struct rd_store *store, int64_t now_ms);
/* Reads into the totals of earlier runs (the sums of store's hourly rows)
 * what rd_rollup_usage_base and rd_rollup_failures_base answer. Before the
 * first flush; returns 0 or RD_ESTORE. */
int rd_rollup_load_base(struct rd_rollup *r, struct rd_store *store);

/* Calls fn for every bucket matching f: the rows of store (f->res_s) and,
 * with the same filter on their minute, those not written yet (res_s 60:
 * the caller folds them into its buckets). Consistent with a concurrent
 * flush: nothing counted twice or missed. failures are 0 in what is read
 * here. Returns 0 or RD_ESTORE. Any thread with its own store (the control
 * thread's). */
int rd_rollup_read(struct rd_rollup *r, struct rd_store *store, const struct rd_rollup_filter *f, rd_rollup_agg_fn fn,
                   void *ud);
/* The totals earlier runs left for proxy_id, by provider and model (start_ms:
 * its first hour). Any thread once started. NULL-safe (nothing). */
void rd_rollup_usage_base(const struct rd_rollup *r, int64_t proxy_id, rd_rollup_agg_fn fn, void *ud);
/* Adds the simulated outcomes earlier runs left for proxy_id to counts (by
 * enum rd_failure) and lowers *since_ms to its first hour. NULL-safe. */
void rd_rollup_failures_base(const struct rd_rollup *r, int64_t proxy_id, uint64_t counts[RD_ROLLUP_FAIL_TYPES],
                             int64_t *since_ms);

#endif
