/* The stages of the request pipeline (proxy/pipeline.h), one file each. */
#ifndef RD_PROXY_STAGES_STAGES_H
#define RD_PROXY_STAGES_STAGES_H

#include "proxy/pipeline.h"

/* Hands the request to its source (upstream, libcurl or the emulator) and
 * relays the answer (proxy/forward.c). Always configured; always DONE. */
extern const struct rd_stage rd_stage_upstream;
/* Scenarios and X-Rubberduck-Fault overrides (stages/scenario.h). */
extern const struct rd_stage rd_stage_scenario;

/* response_delay (stages/response_delay.c): compiled state only, no run. */
extern const struct rd_stage rd_stage_response_delay;
/* If req's proxy has a response delay for this request (all of them, or
 * cache hits only with cache_only), draws it, adds X-Response-Delay-Ms
 * (unless failure.reveal is false), records "delayed" and suspends req; then(req) runs once the delay is
 * over (never if the client left first: the request is released). Returns
 * false, having done nothing else than the header for a 0 ms draw, when
 * the caller goes on at once. For a stage about to answer or to hand req to
 * its source. Worker loop. */
bool rd_response_delay_hold(struct rd_req *req, void (*then)(struct rd_req *req));
/* timeout_config: hangs, simulated 504 timeouts, delays (timeout.c). */
extern const struct rd_stage rd_stage_timeout;
/* error_injection: native errors by seeded draw (error_injection.c). */
extern const struct rd_stage rd_stage_error_injection;
/* Client address and IP/country filtering (stages/ip_filter.c). */
extern const struct rd_stage rd_stage_ip_filter;
/* rate_limiting: per-key request and token limits (proxy/ratelimit.h),
 * X-RateLimit-* on every response, the configured refusal. */
extern const struct rd_stage rd_stage_rate_limit;
/* Response side, through the event seam (stages/stream.h). */
extern const struct rd_stage rd_stage_stream_faults;
extern const struct rd_stage rd_stage_stream_timing;

#endif
