/* The response_delay stage: a uniform, seeded delay before the response
 * head goes out, reported in X-Response-Delay-Ms, recorded as the simulated
 * outcome "delayed" (docs/failure-simulation.md, "Response delay").
 *
 * Where the delay happens: right before the request goes to its source
 * (the upstream stage asks rd_response_delay_hold first), not by holding the
 * source's head once it arrived. For the client both are the same (nothing
 * of the response comes before the delay is over, and the head is the first
 * thing it sees), but this way nothing is buffered, no source has to be
 * paused with a head in hand, and the upstream's timeout does not run
 * during the delay. A stage that answers by itself (the cache stage on a
 * hit) calls rd_response_delay_hold before it answers; that is what
 * cache_only delays. */
#include <stdio.h>
#include <stdlib.h>

#include "proxy/failure.h"
#include "proxy/req.h"
#include "proxy/stages/stages.h"
#include "util/json.h"
#include "util/mem.h"

struct delay_cfg {
    uint64_t min_ms, max_ms;
    bool cache_only;
    uint64_t label; /* rd_rng_label("response_delay") */
};

static int compile(const struct rd_stage_env *env, void **out, struct rd_config_err *err)
{
    (void)err;
    *out = NULL;
    struct json_object *b = rd_json_get(env->doc, "response_delay");
    if (b == NULL || !rd_json_get_bool(b, "enabled", true))
        return 0;
    struct delay_cfg *c = rd_calloc(1, sizeof *c);
    /* The schema checked the range and min_ms <= max_ms. */
    c->min_ms = (uint64_t)rd_json_get_int(b, "min_ms", 0);
    c->max_ms = (uint64_t)rd_json_get_int(b, "max_ms", (int64_t)c->min_ms);
    c->cache_only = rd_json_get_bool(b, "cache_only", false);
    c->label = rd_rng_label("response_delay");
    *out = c;
    return 0;
}

static void release(void *state)
{
    free(state);
}

bool rd_response_delay_hold(struct rd_req *req, void (*then)(struct rd_req *req))
{
    const struct delay_cfg *c = req->snap->pipeline.state[RD_STAGE_RESPONSE_DELAY];
    if (c == NULL || (c->cache_only && req->cache != RD_CACHE_HIT))
        return false;
    struct rd_rng rng;
    rd_req_rng(req, c->label, &rng);
    uint64_t ms = rd_rng_range(&rng, c->min_ms, c->max_ms);
    /* failure.reveal false hides this header too: with cache_only it would
     * tell cache hits apart, the very thing the delay is there to hide. */
    if (req->snap->failure.reveal) {
        char *v = rd_arena_alloc(&req->arena, 24);
        snprintf(v, 24, "%llu", (unsigned long long)ms);
        rd_hdrs_add_ref(&req->add_hdrs, "X-Response-Delay-Ms", v);
    }
    if (ms == 0)
        return false; /* reported, but nothing was simulated */
    rd_req_simulated(req, RD_FAIL_DELAYED);
    rd_req_wait(req, ms, then);
    return true;
}

/* No run of its own (a response-side stage: the upstream stage, and later
 * the cache stage, ask it); compiled state only. */
const struct rd_stage rd_stage_response_delay = {
    .name = "response_delay",
    .compile = compile,
    .release = release,
};
