/* The timeout stage (timeout_config): with one seeded draw per request,
 * hang it, make it wait delay_ms and fail with the provider's 504, or let
 * it pass (after delay_ms when the block sets no rate). The decision is
 * proxy/inject.c's; docs/failure-simulation.md, "Timeouts and hangs". */
#include <stdlib.h>

#include "proxy/failure.h"
#include "proxy/inject.h"
#include "proxy/req.h"
#include "proxy/stages/stages.h"
#include "util/mem.h"

static int compile(const struct rd_stage_env *env, void **state, struct rd_config_err *err)
{
    (void)err;
    struct rd_timeout_cfg c;
    if (!rd_timeout_compile(env->doc, &c))
        return 0;
    struct rd_timeout_cfg *out = rd_malloc(sizeof *out);
    *out = c;
    *state = out;
    return 0;
}

static void release(void *state)
{
    free(state);
}

/* The simulated timeout: the same 504 (status, native body, message) as
 * the proxy's own upstream deadline (req.c), so that nothing tells them
 * apart. Nothing has been sent yet, so a stream gets it before its head. */
static void on_timed_out(struct rd_req *req)
{
    struct rd_error_spec e = {.status = 504, .message = "The upstream server did not answer in time.",
                              .retry_after_s = -1};
    rd_req_simulate_error(req, RD_FAIL_TIMEOUT, &e);
}

static void on_delayed(struct rd_req *req)
{
    rd_pipeline_resume(req);
}

static enum rd_stage_rc run(struct rd_req *req, const void *state)
{
    const struct rd_timeout_cfg *c = state;
    /* A scenario or an override decided this request's outcome (and carries
     * out its delay or hang itself): no draw of ours. */
    if (req->plan.set)
        return RD_STAGE_NEXT;
    struct rd_rng r;
    rd_req_rng(req, c->label, &r);
    switch (rd_timeout_decide(c, &r)) {
    case RD_TIMEOUT_PASS: return RD_STAGE_NEXT;
    case RD_TIMEOUT_DELAY:
        rd_req_simulated(req, RD_FAIL_DELAYED);
        rd_req_wait(req, c->delay_ms, on_delayed);
        return RD_STAGE_SUSPEND;
    case RD_TIMEOUT_FAIL:
        if (c->delay_ms == 0) {
            on_timed_out(req);
            return RD_STAGE_DONE;
        }
        rd_req_wait(req, c->delay_ms, on_timed_out);
        return RD_STAGE_SUSPEND;
    case RD_TIMEOUT_HANG: rd_req_hang(req); return RD_STAGE_SUSPEND;
    }
    return RD_STAGE_NEXT; /* unreachable: the switch is exhaustive */
}

const struct rd_stage rd_stage_timeout = {
    .name = "timeout",
    .compile = compile,
    .release = release,
    .run = run,
};
