/* See failure.h. */
#include "proxy/failure.h"

#include "http/server.h"
#include "proxy/req.h"
#include "util/json.h"
#include "util/log.h"

void rd_failure_cfg_read(struct json_object *doc, struct rd_failure_cfg *out)
{
    struct json_object *seed = rd_json_get(doc, "seed");
    struct json_object *f = rd_json_get(doc, "failure");
    out->seeded = seed != NULL;
    out->seed = seed ? (uint64_t)json_object_get_int64(seed) : 0;
    if (!out->seeded && rd_rng_seed_random(&out->seed) != 0)
        out->seed = (uint64_t)(uintptr_t)out; /* no system randomness: still varies between configurations */
    out->reveal = rd_json_get_bool(f, "reveal", true);
    out->request_overrides = rd_json_get_bool(f, "request_overrides", false);
}

void rd_req_rng(const struct rd_req *req, uint64_t label, struct rd_rng *out)
{
    rd_rng_init(out, req->snap->failure.seed, req->seq, label);
}

void rd_req_simulated(struct rd_req *req, enum rd_failure type)
{
    /* A request has one outcome: a later stage's (an error injected after
     * a plain delay) replaces an earlier one, in the record and the header. */
    if (req->failure != RD_FAIL_NONE)
        rd_hdrs_remove(&req->add_hdrs, "X-Rubberduck-Failure");
    req->failure = type;
    /* Counted once per request and type, however many times a stage says so. */
    uint32_t bit = (uint32_t)1 << ((unsigned)type & 31u);
    if (req->snap->failstats && !(req->failures_seen & bit))
        rd_failstats_count(req->snap->failstats, req->env->index, (int)type);
    req->failures_seen |= bit;
    if (req->snap->failure.reveal)
        rd_hdrs_add_ref(&req->add_hdrs, "X-Rubberduck-Failure", rd_failure_name(type));
}

void rd_req_simulate_error(struct rd_req *req, enum rd_failure type, const struct rd_error_spec *e)
{
    rd_req_simulated(req, type);
    rd_req_debug(req, "simulated %s: %d", rd_failure_name(type), e->status);
    rd_req_fail_spec(req, e);
}

void rd_req_hang(struct rd_req *req)
{
    rd_req_simulated(req, RD_FAIL_HANG);
    rd_req_hold(req);
}

const char *rd_failure_message(int status)
{
    switch (status) {
    case 400: return "The request is invalid.";
    case 401: return "Invalid authentication credentials.";
    case 403: return "You are not allowed to make this request.";
    case 404: return "The requested resource was not found.";
    case 408: return "The request timed out.";
    case 409: return "The request conflicts with the current state of the resource.";
    case 413: return "The request is too large.";
    case 422: return "The request could not be processed.";
    case 429: return "Rate limit reached for requests. Please try again later.";
    case 500: return "The server had an error while processing your request.";
    case 502: return "Bad gateway.";
    case 503: return "The server is overloaded or not ready yet.";
    case 504: return "The server did not answer in time.";
    case 529: return "Overloaded";
    default: return rd_http_reason(status);
    }
}
