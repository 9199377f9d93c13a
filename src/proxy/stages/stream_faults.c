/* The stream_faults stage (issue 7, item 5): a streamed response is cut,
 * stalls, ends with the provider's mid-stream error, carries one malformed
 * event or one event twice, after N events counted in the provider's
 * framing. One seeded draw per streamed response, as its head goes out
 * (the X-Rubberduck-Failure header can only go on the head); a scenario or
 * an X-Rubberduck-Fault override decides instead when it set req->plan.
 * The events themselves go through the event seam (proxy/shape.h). */
#include <stdlib.h>
#include <string.h>

#include "proxy/failure.h"
#include "proxy/stages/stages.h"
#include "proxy/stages/stream.h"
#include "util/json.h"
#include "util/log.h"
#include "util/mem.h"

static const char *const kinds[RD_SFAULT_KINDS] = {"cut", "stall", "error", "malformed", "duplicate"};

bool rd_stream_faults_read(struct json_object *doc, struct rd_stream_faults_cfg *out)
{
    memset(out, 0, sizeof *out);
    out->label = rd_rng_label("stream_faults");
    out->stall_ms = RD_SFAULT_STALL_MS_DEFAULT;
    out->error_status = RD_SFAULT_ERROR_STATUS_DEFAULT;
    for (size_t i = 0; i < RD_SFAULT_KINDS; i++)
        out->after[i] = RD_SFAULT_AFTER_DEFAULT;
    struct json_object *blk = rd_json_get(doc, "stream_faults");
    if (blk && rd_json_get_bool(blk, "enabled", true)) {
        for (size_t i = 0; i < RD_SFAULT_KINDS; i++) {
            char key[32];
            snprintf(key, sizeof key, "%s_rate", kinds[i]);
            struct json_object *r = rd_json_get(blk, key);
            out->rates[i] = r ? json_object_get_double(r) : 0;
            if (out->rates[i] > 0)
                out->any_rate = true;
            snprintf(key, sizeof key, "%s_after_events", kinds[i]);
            out->after[i] = (uint32_t)rd_json_get_int(blk, key, RD_SFAULT_AFTER_DEFAULT);
        }
        out->stall_ms = (uint64_t)rd_json_get_int(blk, "stall_ms", RD_SFAULT_STALL_MS_DEFAULT);
        out->error_status = (int)rd_json_get_int(blk, "error_status", RD_SFAULT_ERROR_STATUS_DEFAULT);
    }
    struct json_object *scenario = rd_json_get(doc, "scenario");
    bool scripted = (scenario && json_object_is_type(scenario, json_type_array) &&
                     json_object_array_length(scenario) > 0) ||
                    rd_json_get_bool(rd_json_get(doc, "failure"), "request_overrides", false);
    return out->any_rate || scripted;
}

enum rd_stream_fault rd_stream_faults_decide(const struct rd_stream_faults_cfg *c, struct rd_fault_plan *plan,
                                             struct rd_rng *rng)
{
    if (plan->set) {
        if (plan->stream_fault == RD_SFAULT_STALL && plan->stall_ms == 0)
            plan->stall_ms = c->stall_ms;
        return plan->stream_fault;
    }
    int i = c->any_rate ? rd_rng_pick(rng, c->rates, RD_SFAULT_KINDS) : -1;
    if (i < 0) {
        plan->stream_fault = RD_SFAULT_NONE;
        return RD_SFAULT_NONE;
    }
    plan->stream_fault = (enum rd_stream_fault)(RD_SFAULT_CUT + i);
    plan->after_events = c->after[i];
    plan->stall_ms = plan->stream_fault == RD_SFAULT_STALL ? c->stall_ms : 0;
    return plan->stream_fault;
}

enum rd_failure rd_stream_fault_failure(enum rd_stream_fault f)
{
    switch (f) {
    case RD_SFAULT_CUT: return RD_FAIL_STREAM_CUT;
    case RD_SFAULT_STALL: return RD_FAIL_STREAM_STALL;
    case RD_SFAULT_ERROR: return RD_FAIL_STREAM_ERROR;
    case RD_SFAULT_MALFORMED: return RD_FAIL_STREAM_MALFORMED;
    case RD_SFAULT_DUPLICATE: return RD_FAIL_STREAM_DUPLICATE;
    case RD_SFAULT_NONE: break;
    }
    return RD_FAIL_NONE;
}

void rd_stream_faults_verdict(const struct rd_fault_plan *plan, int error_status, const struct rd_stream_view *v,
                              struct rd_event_verdict *out)
{
    uint64_t n = plan->after_events;
    if (!(v->index == n || (v->last && v->index < n)))
        return;
    switch (plan->stream_fault) {
    case RD_SFAULT_CUT: out->act = RD_EVENT_CUT; break;
    case RD_SFAULT_STALL: out->at_ms = v->prev_ms + plan->stall_ms; break;
    case RD_SFAULT_ERROR:
        out->act = RD_EVENT_ERROR;
        out->error_status = error_status;
        out->error_message = rd_failure_message(error_status);
        break;
    case RD_SFAULT_MALFORMED: out->act = RD_EVENT_MALFORM; break;
    case RD_SFAULT_DUPLICATE: out->act = RD_EVENT_DUPLICATE; break;
    case RD_SFAULT_NONE: break;
    }
}

/* ---- the stage ---- */

static int compile(const struct rd_stage_env *env, void **state, struct rd_config_err *err)
{
    (void)err;
    struct rd_stream_faults_cfg c;
    if (!rd_stream_faults_read(env->doc, &c)) {
        *state = NULL;
        return 0;
    }
    struct rd_stream_faults_cfg *s = rd_malloc(sizeof *s);
    *s = c;
    *state = s;
    return 0;
}

static void release(void *state)
{
    free(state);
}

/* The draw and the header happen here, as the head goes out: the header
 * cannot follow the events. A more specific stream type replaces a
 * "scenario" header the scenario stage put there. */
static bool on_stream(struct rd_req *req, const void *state, struct rd_hdrs *hdrs)
{
    const struct rd_stream_faults_cfg *c = state;
    struct rd_rng rng;
    rd_req_rng(req, c->label, &rng);
    enum rd_stream_fault f = rd_stream_faults_decide(c, &req->plan, &rng);
    if (f == RD_SFAULT_NONE)
        return false;
    req->failure = rd_stream_fault_failure(f);
    if (req->snap->failure.reveal) {
        (void)rd_hdrs_remove(hdrs, "X-Rubberduck-Failure");
        rd_hdrs_add_ref(hdrs, "X-Rubberduck-Failure", rd_failure_name(req->failure));
    }
    rd_req_debug(req, "simulated %s after %u events", rd_failure_name(req->failure), (unsigned)req->plan.after_events);
    return true;
}

static void on_event(struct rd_req *req, const void *state, const struct rd_stream_view *v,
                     struct rd_event_verdict *out)
{
    const struct rd_stream_faults_cfg *c = state;
    rd_stream_faults_verdict(&req->plan, c->error_status, v, out);
}

const struct rd_stage rd_stage_stream_faults = {
    .name = "stream_faults",
    .compile = compile,
    .release = release,
    .on_stream = on_stream,
    .on_event = on_event,
};
