/* The stages of the request pipeline (proxy/pipeline.h), one file each. */
#ifndef RD_PROXY_STAGES_STAGES_H
#define RD_PROXY_STAGES_STAGES_H

#include "proxy/pipeline.h"

/* Hands the request to its source (upstream, libcurl or the emulator) and
 * relays the answer (proxy/forward.c). Always configured; always DONE. */
extern const struct rd_stage rd_stage_upstream;
/* rate_limiting: per-key request and token limits (proxy/ratelimit.h),
 * X-RateLimit-* on every response, the configured refusal. */
extern const struct rd_stage rd_stage_rate_limit;

#endif
