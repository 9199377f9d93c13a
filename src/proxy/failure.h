/* What the failure-simulation stages share (stages/timeout.c,
 * error_injection.c, scenario.c, ip_filter.c, rate_limit.c, stream_faults.c):
 * the configuration's seed and failure block, seeded draws per request, and
 * answering with a simulated outcome so that it looks like the provider's
 * own (docs/failure-simulation.md). Worker loop only, except
 * rd_failure_cfg_read (any thread). */
#ifndef RD_PROXY_FAILURE_H
#define RD_PROXY_FAILURE_H

#include <json-c/json.h>
#include <stdbool.h>
#include <stdint.h>

#include "providers/provider.h"
#include "util/rng.h"

struct rd_req;
enum rd_failure;

/* The top-level "seed" and the "failure" block, read once per snapshot. */
struct rd_failure_cfg {
    uint64_t seed;          /* the configured seed, else a random one per configuration */
    bool seeded;            /* "seed" was configured: outcomes repeat run after run */
    bool reveal;            /* failure.reveal (default true): X-Rubberduck-Failure on simulated outcomes */
    bool request_overrides; /* failure.request_overrides (default false): X-Rubberduck-Fault is honoured */
};

/* Reads doc's seed and failure block (doc may be NULL: the defaults). */
void rd_failure_cfg_read(struct json_object *doc, struct rd_failure_cfg *out);

/* The draw stream of decision `label` (rd_rng_label("error_injection"),
 * computed once at compile time) for req: a function of the seed, the
 * request's number (req->seq) and the label only, so the same seed and
 * request sequence give the same outcomes whatever the number of workers. */
void rd_req_rng(const struct rd_req *req, uint64_t label, struct rd_rng *out);

/* Records a simulated outcome on req (for the request log) and, unless
 * failure.reveal is false, adds X-Rubberduck-Failure: <type> to its
 * response. A second call replaces the first outcome (one type per
 * request: the last stage's). */
void rd_req_simulated(struct rd_req *req, enum rd_failure type);
/* Answers req with the provider's native error e as simulated outcome type
 * (rd_req_simulated, then rd_req_fail_spec). Releases req. */
void rd_req_simulate_error(struct rd_req *req, enum rd_failure type, const struct rd_error_spec *e);
/* Holds req without answering (a hang): no timer, no upstream call, no CPU;
 * the client's disconnect or a forced stop releases it. */
void rd_req_hang(struct rd_req *req);

/* The message of a simulated error with the given status when the
 * configuration names none: close to what the providers say (static). */
const char *rd_failure_message(int status);

#endif
