/* The error_injection stage: one seeded draw per request picks a status
 * (or none) from the compiled table (proxy/inject.c), and the request is
 * answered with the provider's native error for it: Retry-After on 429 and
 * 503, and the provider's rate-limit headers on 429. The stage runs once,
 * on the request side, before the cache stage: a request that would be a
 * cache hit is injected the same way, and never twice.
 * docs/failure-simulation.md, "Error injection". */
#include <stdlib.h>

#include "proxy/failure.h"
#include "proxy/inject.h"
#include "proxy/req.h"
#include "proxy/stages/stages.h"
#include "util/mem.h"
#include "util/time.h"

static int compile(const struct rd_stage_env *env, void **state, struct rd_config_err *err)
{
    (void)err;
    struct rd_inject_cfg *c = rd_malloc(sizeof *c);
    if (!rd_inject_compile(env->doc, c)) {
        free(c);
        return 0;
    }
    *state = c;
    return 0;
}

static void release(void *state)
{
    free(state);
}

static enum rd_stage_rc run(struct rd_req *req, const void *state)
{
    const struct rd_inject_cfg *c = state;
    if (req->plan.set) /* a scenario or an override decided: no draw of ours */
        return RD_STAGE_NEXT;
    struct rd_rng r;
    rd_req_rng(req, c->label, &r);
    int status = rd_inject_decide(c, &r);
    if (status == 0)
        return RD_STAGE_NEXT;
    struct rd_error_spec e = {.status = status, .message = rd_failure_message(status), .retry_after_s = -1};
    if (status == 429 || status == 503)
        e.retry_after_s = c->retry_after_s;
    if (status == 429) /* the limit is spent until the advertised retry time */
        rd_provider_ratelimit_headers(req->provider, c->limit, 0, (uint64_t)c->retry_after_s, rd_time_wall_ms(),
                                      &req->add_hdrs);
    rd_req_simulate_error(req, RD_FAIL_ERROR_INJECTION, &e);
    return RD_STAGE_DONE;
}

const struct rd_stage rd_stage_error_injection = {
    .name = "error_injection",
    .compile = compile,
    .release = release,
    .run = run,
};
