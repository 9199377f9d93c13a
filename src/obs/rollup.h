/* Metric roll-ups (table metrics_rollups, docs/observability.md, "Roll-ups"):
 * per proxy and model, 1-minute buckets of requests, cache results, errors
 * (client-visible status >= 400, simulated or upstream), a latency
 * histogram, tokens and cost; aggregated into 15-minute and 1-hour buckets.
 * They answer /api/v1/metrics/summary and /series and the proxies' usage
 * and failure totals, so those survive a restart.
 *
 * Threading: one accumulator slot per I/O worker; rd_rollup_done adds to
 * the worker's own slot. A thread of its own takes the closed minutes out
 * of the slots, merges them and writes them on its own store connection. */
#ifndef RD_OBS_ROLLUP_H
#define RD_OBS_ROLLUP_H

#include <stddef.h>
#include <stdint.h>

struct rd_req;
struct rd_rollup;

/* Starts the roll-up thread on its own connection to store_url. Returns 0
 * or a negative rd_err with a reason in errbuf. Control thread. */
int rd_rollup_start(const char *store_url, unsigned nslots, struct rd_rollup **out, char *errbuf, size_t errlen);
/* Writes every bucket still open (also the current minute), stops, closes.
 * After the workers are joined. NULL-safe. */
void rd_rollup_stop(struct rd_rollup *r);
/* Counts a finished request in its minute (req->wall_ms). The worker that
 * owns slot. NULL-safe. */
void rd_rollup_done(struct rd_rollup *r, unsigned slot, struct rd_req *req);

#endif
