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

/* The response cache (stages/cache.c, docs/caching.md). */
extern const struct rd_stage rd_stage_cache;
struct rd_cache_persist;
struct rd_cache_limits;
/* The write-behind store committed entries go to (main sets it once,
 * before any proxy runs; NULL: none). */
void rd_cache_stage_set_persist(struct rd_cache_persist *p);
struct rd_cache_entry;
/* The caches' removed callback (cache.h): ud is the proxy id; the entry's
 * stored copy is deleted. */
void rd_cache_stage_removed(void *ud, const struct rd_cache_entry *e);
/* memory_limits of doc (validated) as cache limits, defaults filled in. */
void rd_cache_limits_of(struct json_object *doc, struct rd_cache_limits *out);
/* The relay's recording of a miss this request leads (forward.c); each
 * does nothing for any other request. record_head: the source's head
 * (after the decoder was picked: req->stream is known); record_data: bytes
 * as the relay accepts them from the source; record_event: a stream event
 * ended at that offset of the source's body; record_done: the source
 * ended without error; record_end: the whole answer is relayed but its
 * last bytes (the last of a Content-Length body, a chunked or HTTP/2
 * end) have not left yet: a complete fill is committed here, so a client
 * that has the answer finds it stored (a request that ends any other way
 * gives its fill up when it is released). */
void rd_cache_record_head(struct rd_req *req, int status, const struct rd_hdrs *hdrs);
void rd_cache_record_data(struct rd_req *req, const char *p, size_t n);
void rd_cache_record_event(struct rd_req *req, uint64_t end);
void rd_cache_record_done(struct rd_req *req);
void rd_cache_record_end(struct rd_req *req);
/* A request that joined another's fill whose upstream failed before its
 * head (the replay source ended with RD_ESTATE): goes upstream itself.
 * Returns false (nothing done) for any other request. */
bool rd_cache_rejoin(struct rd_req *req);
/* Sets req->prompt_hash (for the request log) unless it is set already or
 * the route is not cacheable: the cache key req would have under cache
 * scope "proxy" and no key_headers (provider, method, path, the answer-
 * changing query parameters, the stream flag and the canonical body; no
 * credential), through the worker's key memo. Left unset for a body that
 * is not JSON. While req's exchange is live (it reads the body). */
void rd_cache_prompt_hash(struct rd_req *req);

/* record (stages/record.c): the request log's switch ("logging":
 * {"enabled": false} turns it off); computes the prompt hash as the
 * response head goes out. */
extern const struct rd_stage rd_stage_record;

#endif
