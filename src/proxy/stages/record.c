/* The record stage ("logging" in middleware_pipeline): whether this proxy's
 * requests go to the request log (docs/observability.md, "Request log").
 * On unless the proxy's document says "logging": {"enabled": false} or its
 * middleware_pipeline leaves "logging" out; then it compiles to nothing and
 * rd_obs_done (obs.c) records nothing for the proxy.
 *
 * The record itself is built when the request is released (rd_obs_done),
 * from what the other stages left on the request. The one field that needs
 * the request's body, the prompt hash, is taken here as the response head
 * goes out, while the exchange is still live: the cache stage has set it
 * already when its key is the prompt hash's (scope "proxy", no key
 * headers); otherwise it is computed here, for cacheable routes only,
 * through the worker's key memo (stages.h rd_cache_prompt_hash). */
#include "proxy/pipeline.h"
#include "proxy/req.h"
#include "proxy/stages/stages.h"
#include "util/json.h"

/* The compiled state when logging is on: nothing to hold, but non-NULL
 * (a NULL state is "not configured"). */
static const char on = 1;

static int compile(const struct rd_stage_env *env, void **state, struct rd_config_err *err)
{
    (void)err;
    struct json_object *b = rd_json_get(env->doc, "logging");
    *state = b && !rd_json_get_bool(b, "enabled", true) ? NULL : (void *)&on;
    return 0;
}

static void on_head(struct rd_req *req, const void *state, int status, struct rd_hdrs *hdrs)
{
    (void)state, (void)status, (void)hdrs;
    rd_cache_prompt_hash(req);
}

const struct rd_stage rd_stage_record = {
    .name = "record",
    .compile = compile,
    .on_head = on_head,
};
