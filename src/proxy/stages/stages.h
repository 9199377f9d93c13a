/* The stages of the request pipeline (proxy/pipeline.h), one file each. */
#ifndef RD_PROXY_STAGES_STAGES_H
#define RD_PROXY_STAGES_STAGES_H

#include "proxy/pipeline.h"

/* Hands the request to its source (upstream, libcurl or the emulator) and
 * relays the answer (proxy/forward.c). Always configured; always DONE. */
extern const struct rd_stage rd_stage_upstream;
/* Response side, through the event seam (stages/stream.h). */
extern const struct rd_stage rd_stage_stream_faults;
extern const struct rd_stage rd_stage_stream_timing;

#endif
