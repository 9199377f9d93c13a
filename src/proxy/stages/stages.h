/* The stages of the request pipeline (proxy/pipeline.h), one file each. */
#ifndef RD_PROXY_STAGES_STAGES_H
#define RD_PROXY_STAGES_STAGES_H

#include "proxy/pipeline.h"

/* Hands the request to its source (upstream, libcurl or the emulator) and
 * relays the answer (proxy/forward.c). Always configured; always DONE. */
extern const struct rd_stage rd_stage_upstream;
/* timeout_config: hangs, simulated 504 timeouts, delays (timeout.c). */
extern const struct rd_stage rd_stage_timeout;
/* error_injection: native errors by seeded draw (error_injection.c). */
extern const struct rd_stage rd_stage_error_injection;

#endif
