/* The decisions of the two stream-shaping stages (stream_faults.c,
 * stream_timing.c), apart from the request so that tests drive them with
 * a fixed clock and seed. Both stages work through the event seam
 * (proxy/pipeline.h): the decision for a stream is made as its head goes
 * out, the verdict for each event as it passes. Pure; any thread. */
#ifndef RD_PROXY_STAGES_STREAM_H
#define RD_PROXY_STAGES_STREAM_H

#include <json-c/json.h>
#include <stdbool.h>
#include <stdint.h>

#include "proxy/pipeline.h"
#include "proxy/req.h"
#include "util/rng.h"

/* Defaults of the stream_faults block (docs/failure-simulation.md). */
#define RD_SFAULT_AFTER_DEFAULT 1       /* *_after_events */
#define RD_SFAULT_STALL_MS_DEFAULT 1000 /* stall_ms */
#define RD_SFAULT_ERROR_STATUS_DEFAULT 500

/* stream_faults, compiled. The outcomes are indexed by enum rd_stream_fault
 * minus one (CUT, STALL, ERROR, MALFORMED, DUPLICATE). */
#define RD_SFAULT_KINDS 5
struct rd_stream_faults_cfg {
    double rates[RD_SFAULT_KINDS];
    uint32_t after[RD_SFAULT_KINDS];
    uint64_t stall_ms;
    int error_status;
    bool any_rate; /* some rate above 0: a draw per streamed response */
    uint64_t label;
};

/* Compiles the stream_faults block of doc (validated) into out. Without
 * an (enabled) block the stage still runs, with no rates, when the
 * document has a scenario list or failure.request_overrides: those may ask
 * for stream faults. Returns false when the stage has nothing to do. */
bool rd_stream_faults_read(struct json_object *doc, struct rd_stream_faults_cfg *out);

/* Decides the fault of one streamed response into plan's stream fields:
 * a plan that is set (a scenario, an X-Rubberduck-Fault override) is kept
 * as it is (a stall without stall_ms gets the configured or default one);
 * otherwise one draw of rng picks among the rates (fault NONE with
 * 1 - their sum). Returns the fault. */
enum rd_stream_fault rd_stream_faults_decide(const struct rd_stream_faults_cfg *c, struct rd_fault_plan *plan,
                                             struct rd_rng *rng);
/* The failure type of a fault (RD_FAIL_STREAM_*; RD_FAIL_NONE for none). */
enum rd_failure rd_stream_fault_failure(enum rd_stream_fault f);
/* The verdict of the decided fault for event v: the fault hits the event
 * after `after_events` events, or the provider's end-of-stream event if the
 * stream ends sooner (so a decided fault always happens when the stream
 * ends properly): CUT and ERROR end the stream there, STALL holds that
 * event until stall_ms after the previous one left, MALFORMED replaces it,
 * DUPLICATE sends it twice. Other events pass. */
void rd_stream_faults_verdict(const struct rd_fault_plan *plan, int error_status, const struct rd_stream_view *v,
                              struct rd_event_verdict *out);

/* stream_timing, compiled. */
struct rd_stream_timing_cfg {
    uint64_t ttft_ms;
    double tokens_per_second; /* 0: no rate */
    uint64_t jitter_ms;
    uint64_t label;
};

/* Compiles the stream_timing block of doc (validated); false when absent,
 * disabled or asking for nothing. */
bool rd_stream_timing_read(struct json_object *doc, struct rd_stream_timing_cfg *out);
/* When event v may leave (out->at_ms): the first ttft_ms after the head,
 * each next one 1/tokens_per_second after the previous one's scheduled
 * time (after the time it left, when something held it longer), plus a uniform jitter in [-jitter_ms, +jitter_ms] drawn from rng;
 * never before it arrived, and a late event (the upstream slower than the
 * rate) passes at once and the schedule goes on from it. *v->scratch keeps
 * the schedule in microseconds between events (0 before the first). */
void rd_stream_timing_verdict(const struct rd_stream_timing_cfg *c, const struct rd_stream_view *v,
                              struct rd_rng *rng, struct rd_event_verdict *out);

#endif
