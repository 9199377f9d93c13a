/* See pipeline.h. The stage table, middleware_pipeline and the run loop. */
#include "proxy/pipeline.h"

#include <stdio.h>
#include <string.h>

#include "proxy/req.h"
#include "proxy/stages/stages.h"
#include "util/err.h"
#include "util/json.h"
#include "util/log.h"

/* Indexed by enum rd_stage_id. */
static const struct rd_stage *const table[RD_STAGE_COUNT] = {
    [RD_STAGE_SCENARIO] = &rd_stage_scenario,
    [RD_STAGE_TIMEOUT] = &rd_stage_timeout,
    [RD_STAGE_ERROR_INJECTION] = &rd_stage_error_injection,
    [RD_STAGE_IP_FILTER] = &rd_stage_ip_filter,
    [RD_STAGE_RATE_LIMIT] = &rd_stage_rate_limit,
    [RD_STAGE_CACHE] = &rd_stage_cache,
    [RD_STAGE_UPSTREAM] = &rd_stage_upstream,
    [RD_STAGE_RESPONSE_DELAY] = &rd_stage_response_delay,
    [RD_STAGE_STREAM_FAULTS] = &rd_stage_stream_faults,
    [RD_STAGE_STREAM_TIMING] = &rd_stage_stream_timing,
    [RD_STAGE_RECORD] = &rd_stage_record,
};

const struct rd_stage *rd_stage_get(enum rd_stage_id id)
{
    return (unsigned)id < RD_STAGE_COUNT ? table[id] : NULL;
}

/* The product description's middleware names and what each stands for. A
 * name keeps its stages in their default order; the list orders the names.
 * request_validation stands for no stage yet (the roadmap's request
 * validation): it is accepted so the description's list works as is. */
#define MAX_PER_NAME 4
static const struct {
    const char *name;
    enum rd_stage_id stages[MAX_PER_NAME];
    size_t n;
} names[] = {
    {"authentication", {RD_STAGE_IP_FILTER}, 1},
    {"ip_filter", {RD_STAGE_IP_FILTER}, 1},
    {"rate_limiting", {RD_STAGE_RATE_LIMIT}, 1},
    {"request_validation", {RD_STAGE_COUNT}, 0},
    {"caching", {RD_STAGE_CACHE}, 1},
    {"failure_simulation", {RD_STAGE_SCENARIO, RD_STAGE_TIMEOUT, RD_STAGE_ERROR_INJECTION, RD_STAGE_STREAM_FAULTS}, 4},
    {"provider_forwarding", {RD_STAGE_UPSTREAM}, 1},
    {"response_processing", {RD_STAGE_STREAM_TIMING, RD_STAGE_RESPONSE_DELAY}, 2},
    {"logging", {RD_STAGE_RECORD}, 1},
};

static bool request_side(enum rd_stage_id id)
{
    return id <= RD_STAGE_UPSTREAM;
}

static int fail(struct rd_config_err *err, const char *field, const char *msg)
{
    snprintf(err->field, sizeof err->field, "%s", field);
    snprintf(err->message, sizeof err->message, "%s", msg);
    return RD_EINVAL;
}

/* The order of the request-side stages and which stages are kept, from
 * middleware_pipeline (absent: every stage, default order). */
static int plan(struct json_object *doc, enum rd_stage_id order[RD_STAGE_COUNT], size_t *norder,
                bool enabled[RD_STAGE_COUNT], struct rd_config_err *err)
{
    struct json_object *list = rd_json_get(doc, "middleware_pipeline");
    *norder = 0;
    if (list == NULL) {
        for (int id = 0; id < RD_STAGE_COUNT; id++) {
            enabled[id] = true;
            if (request_side((enum rd_stage_id)id))
                order[(*norder)++] = (enum rd_stage_id)id;
        }
        return 0;
    }
    memset(enabled, 0, RD_STAGE_COUNT * sizeof enabled[0]);
    bool forwarded = false;
    size_t len = json_object_array_length(list);
    for (size_t i = 0; i < len; i++) {
        const char *name = json_object_get_string(json_object_array_get_idx(list, i));
        size_t k = 0;
        while (k < sizeof names / sizeof names[0] && strcmp(names[k].name, name) != 0)
            k++;
        if (k == sizeof names / sizeof names[0]) /* the schema lets only known names through */
            return fail(err, "middleware_pipeline", "unknown middleware name");
        for (size_t s = 0; s < names[k].n; s++) {
            enum rd_stage_id id = names[k].stages[s];
            if (enabled[id])
                continue; /* "authentication" and "ip_filter" both */
            if (request_side(id) && forwarded) {
                char msg[160];
                snprintf(msg, sizeof msg, "\"%s\" must come before \"provider_forwarding\": it acts on the request",
                         name);
                char field[64];
                snprintf(field, sizeof field, "middleware_pipeline[%zu]", i);
                return fail(err, field, msg);
            }
            enabled[id] = true;
            if (request_side(id))
                order[(*norder)++] = id;
            if (id == RD_STAGE_UPSTREAM)
                forwarded = true;
        }
    }
    if (!forwarded)
        return fail(err, "middleware_pipeline",
                    "the pipeline must include \"provider_forwarding\": without it no request gets an answer");
    return 0;
}

void rd_pipeline_free(struct rd_pipeline *pl)
{
    for (int id = 0; id < RD_STAGE_COUNT; id++) {
        const struct rd_stage *st = table[id];
        if (st && st->release && pl->state[id])
            st->release(pl->state[id]);
        pl->state[id] = NULL;
    }
    pl->n = 0;
}

int rd_pipeline_compile(struct json_object *doc, const struct rd_provider *p, struct rd_pipeline *out,
                        struct rd_config_err *err)
{
    memset(out, 0, sizeof *out);
    memset(err, 0, sizeof *err);
    enum rd_stage_id order[RD_STAGE_COUNT];
    size_t norder = 0;
    int rc = plan(doc, order, &norder, out->enabled, err);
    if (rc != 0)
        return rc;
    const struct rd_stage_env env = {.doc = doc, .provider = p};
    bool configured[RD_STAGE_COUNT] = {false};
    for (int id = 0; id < RD_STAGE_COUNT; id++) {
        const struct rd_stage *st = table[id];
        if (st == NULL || !out->enabled[id])
            continue;
        if (st->compile == NULL) {
            configured[id] = true;
            continue;
        }
        rc = st->compile(&env, &out->state[id], err);
        if (rc != 0) {
            rd_pipeline_free(out);
            return rc;
        }
        configured[id] = out->state[id] != NULL;
    }
    for (size_t i = 0; i < norder; i++) {
        enum rd_stage_id id = order[i];
        if (configured[id] && table[id]->run)
            out->run[out->n++] = (struct rd_pipeline_step){table[id], out->state[id]};
    }
    for (int id = 0; id < RD_STAGE_COUNT; id++) {
        if (!configured[id])
            continue;
        const struct rd_pipeline_step step = {table[id], out->state[id]};
        if (table[id]->on_head)
            out->head[out->nhead++] = step;
        if (table[id]->on_done)
            out->done[out->ndone++] = step;
        if (table[id]->on_stream && table[id]->on_event)
            out->stream[out->nstream++] = step;
        /* None of these draws or counts. */
        if (id != RD_STAGE_UPSTREAM && id != RD_STAGE_CACHE && id != RD_STAGE_RECORD)
            out->active = true;
    }
    return 0;
}

int rd_pipeline_check(struct json_object *doc, const struct rd_provider *p, struct rd_config_err *err)
{
    struct rd_pipeline pl;
    int rc = rd_pipeline_compile(doc, p, &pl, err);
    if (rc == 0)
        rd_pipeline_free(&pl);
    return rc;
}

void rd_pipeline_inherit(struct rd_pipeline *pl, const struct rd_pipeline *prev)
{
    for (int id = 0; id < RD_STAGE_COUNT; id++)
        if (table[id] && table[id]->inherit && pl->state[id] && prev->state[id])
            table[id]->inherit(pl->state[id], prev->state[id]);
}

static void run_from(struct rd_req *req, size_t i)
{
    const struct rd_pipeline *pl = &req->snap->pipeline;
    for (; i < pl->n; i++) {
        const struct rd_pipeline_step *step = &pl->run[i];
        req->stage_next = (uint8_t)(i + 1);
        switch (step->stage->run(req, step->state)) {
        case RD_STAGE_NEXT: continue;
        case RD_STAGE_DONE:
        case RD_STAGE_SUSPEND: return;
        case RD_STAGE_ERROR:
            rd_req_warn(req, "stage %s failed", step->stage->name);
            rd_req_fail(req, 500, "The server had an error while processing your request.");
            return;
        }
    }
    /* Unreachable: compile puts the upstream stage, which always answers,
     * in every run list. */
    rd_req_fail(req, 500, "The server had an error while processing your request.");
}

void rd_pipeline_start(struct rd_req *req)
{
    run_from(req, 0);
}

void rd_pipeline_resume(struct rd_req *req)
{
    run_from(req, req->stage_next);
}

void rd_pipeline_head(struct rd_req *req, int status, struct rd_hdrs *hdrs)
{
    const struct rd_pipeline *pl = &req->snap->pipeline;
    for (size_t i = 0; i < pl->nhead; i++)
        pl->head[i].stage->on_head(req, pl->head[i].state, status, hdrs);
}

void rd_pipeline_done(struct rd_req *req)
{
    const struct rd_pipeline *pl = &req->snap->pipeline;
    for (size_t i = 0; i < pl->ndone; i++)
        pl->done[i].stage->on_done(req, pl->done[i].state);
}

uint32_t rd_pipeline_stream(struct rd_req *req, struct rd_hdrs *hdrs)
{
    const struct rd_pipeline *pl = &req->snap->pipeline;
    uint32_t mask = 0;
    for (size_t i = 0; i < pl->nstream; i++)
        if (pl->stream[i].stage->on_stream(req, pl->stream[i].state, hdrs))
            mask |= 1u << i;
    return mask;
}

void rd_pipeline_event(struct rd_req *req, uint32_t mask, const struct rd_stream_view *v,
                       struct rd_event_verdict *out)
{
    const struct rd_pipeline *pl = &req->snap->pipeline;
    for (size_t i = 0; i < pl->nstream; i++) {
        if (!(mask & (1u << i)))
            continue;
        struct rd_event_verdict mine = {.act = RD_EVENT_PASS};
        struct rd_stream_view sv = *v;
        sv.scratch = &v->scratch[i];
        pl->stream[i].stage->on_event(req, pl->stream[i].state, &sv, &mine);
        if (mine.act > out->act) {
            out->act = mine.act;
            out->error_status = mine.error_status;
            out->error_message = mine.error_message;
        }
        if (mine.at_ms > out->at_ms)
            out->at_ms = mine.at_ms;
    }
}
