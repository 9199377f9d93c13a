/* The stream_timing stage (issue 7, item 3): when each event of a relayed
 * stream leaves the proxy. The first event ttft_ms after the head, then one
 * event per 1/tokens_per_second seconds (an event stands for one token:
 * providers send about one token per content event), each plus a seeded
 * uniform jitter. The events wait in the event seam (proxy/shape.h) with
 * the source paused. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "proxy/failure.h"
#include "proxy/stages/stages.h"
#include "proxy/stages/stream.h"
#include "util/json.h"
#include "util/mem.h"

bool rd_stream_timing_read(struct json_object *doc, struct rd_stream_timing_cfg *out)
{
    memset(out, 0, sizeof *out);
    out->label = rd_rng_label("stream_timing");
    struct json_object *blk = rd_json_get(doc, "stream_timing");
    if (blk == NULL || !rd_json_get_bool(blk, "enabled", true))
        return false;
    out->ttft_ms = (uint64_t)rd_json_get_int(blk, "ttft_ms", 0);
    out->jitter_ms = (uint64_t)rd_json_get_int(blk, "jitter_ms", 0);
    struct json_object *tps = rd_json_get(blk, "tokens_per_second");
    out->tokens_per_second = tps ? json_object_get_double(tps) : 0;
    if (!(out->tokens_per_second > 0))
        out->tokens_per_second = 0;
    return out->ttft_ms > 0 || out->tokens_per_second > 0 || out->jitter_ms > 0;
}

void rd_stream_timing_verdict(const struct rd_stream_timing_cfg *c, const struct rd_stream_view *v,
                              struct rd_rng *rng, struct rd_event_verdict *out)
{
    uint64_t now_us = v->now_ms * 1000;
    uint64_t sched;
    if (v->index == 0 || *v->scratch == 0) {
        sched = (v->head_ms + c->ttft_ms) * 1000;
    } else {
        uint64_t step = c->tokens_per_second > 0 ? (uint64_t)llround(1e6 / c->tokens_per_second) : 0;
        /* From the previous event's schedule, so timer lateness does not
         * add up; but from when it actually left if something held it
         * longer than a step (a stall, a slow client). */
        uint64_t prev_us = v->prev_ms * 1000;
        sched = (prev_us > *v->scratch + step ? prev_us : *v->scratch) + step;
    }
    /* Late (the upstream is slower than the rate): it goes now, and the
     * schedule goes on from here rather than catching up in a burst. */
    if (sched < now_us)
        sched = now_us;
    *v->scratch = sched;
    int64_t at = (int64_t)sched;
    if (c->jitter_ms > 0) {
        uint64_t j = rd_rng_range(rng, 0, 2 * c->jitter_ms * 1000);
        at += (int64_t)j - (int64_t)(c->jitter_ms * 1000);
    }
    if (at > (int64_t)now_us)
        out->at_ms = ((uint64_t)at + 999) / 1000; /* timers have millisecond steps: never early */
}

/* ---- the stage ---- */

static int compile(const struct rd_stage_env *env, void **state, struct rd_config_err *err)
{
    (void)err;
    struct rd_stream_timing_cfg c;
    if (!rd_stream_timing_read(env->doc, &c)) {
        *state = NULL;
        return 0;
    }
    struct rd_stream_timing_cfg *s = rd_malloc(sizeof *s);
    *s = c;
    *state = s;
    return 0;
}

static void release(void *state)
{
    free(state);
}

static bool on_stream(struct rd_req *req, const void *state, struct rd_hdrs *hdrs)
{
    (void)req;
    (void)state;
    (void)hdrs;
    return true; /* every streamed response is paced */
}

static void on_event(struct rd_req *req, const void *state, const struct rd_stream_view *v,
                     struct rd_event_verdict *out)
{
    const struct rd_stream_timing_cfg *c = state;
    struct rd_rng rng;
    /* One draw stream per event: a function of the seed, the request and
     * the event's index only. */
    rd_req_rng(req, c->label ^ ((v->index + 1) * UINT64_C(0x9E3779B97F4A7C15)), &rng);
    rd_stream_timing_verdict(c, v, &rng, out);
}

const struct rd_stage rd_stage_stream_timing = {
    .name = "stream_timing",
    .compile = compile,
    .release = release,
    .on_stream = on_stream,
    .on_event = on_event,
};
