/* The request pipeline: one table of named stages (pipeline.c) between the
 * classified request and its source. Each stage is a file under
 * src/proxy/stages/ and talks to the others only through the request.
 *
 *   ip_filter -> rate_limit -> scenario -> timeout -> error_injection
 *     -> cache -> upstream                       (request side, in order)
 *   stream_faults, stream_timing, response_delay, record
 *                                                (response side, hooks)
 *
 * A stage compiles its configuration block once, into the proxy's snapshot
 * (struct rd_pipeline): the request path parses nothing, and a stage whose
 * block is absent or disabled compiles to nothing and is not in the run list,
 * so it costs nothing. A proxy's middleware_pipeline (the product
 * description's names) reorders or drops stages; see docs/architecture.md,
 * "Request pipeline", for the mapping.
 *
 * Running: rd_pipeline_start() calls each request-side stage in turn:
 *   NEXT     go on with the next stage
 *   DONE     the stage answered, or handed the request to its source (the
 *            upstream stage): the pipeline does not touch req again (it may
 *            be released already)
 *   SUSPEND  the stage will call rd_pipeline_resume(req) later (a timer, a
 *            coalesced cache miss), or never (a hang: the client's
 *            disconnect releases the request); req stays alive until then
 *   ERROR    the stage could not run: the client gets the provider's 500
 * Threading: compile on any thread (the snapshot is built on the control
 * thread); run on the request's worker loop. */
#ifndef RD_PROXY_PIPELINE_H
#define RD_PROXY_PIPELINE_H

#include <json-c/json.h>
#include <stdbool.h>
#include <stddef.h>

#include "providers/provider.h"
#include "proxy/config.h"

struct rd_req;

enum rd_stage_rc { RD_STAGE_NEXT, RD_STAGE_DONE, RD_STAGE_SUSPEND, RD_STAGE_ERROR };

/* The stages, in their default order. */
enum rd_stage_id {
    RD_STAGE_IP_FILTER,
    RD_STAGE_RATE_LIMIT,
    RD_STAGE_SCENARIO,
    RD_STAGE_TIMEOUT,
    RD_STAGE_ERROR_INJECTION,
    RD_STAGE_CACHE,
    RD_STAGE_UPSTREAM,
    RD_STAGE_STREAM_FAULTS,
    RD_STAGE_STREAM_TIMING,
    RD_STAGE_RESPONSE_DELAY,
    RD_STAGE_RECORD,
    RD_STAGE_COUNT
};

/* What compile gets: the validated document and the proxy's provider. */
struct rd_stage_env {
    struct json_object *doc; /* borrowed; outlives the compiled state (the snapshot owns it) */
    const struct rd_provider *provider;
};

/* ---- the event seam: response-side stages and a relayed stream ----
 *
 * A streamed response (an SSE or AWS event-stream body, 2xx, not
 * content-encoded) is offered to every configured stage with on_stream,
 * once, as its head goes out. A stage that returns true sees each event
 * of the stream (on_event) in the provider's framing (one SSE event, one
 * event-stream frame), however the bytes arrived, before its bytes leave
 * the proxy, and says what happens to it. The relay then holds at most
 * one read of the source beyond the event being decided: while an event
 * waits (a timer, a slow client) the source is paused. When no stage
 * wants the stream, the relay is the plain zero-copy one (proxy/shape.h). */

/* What becomes of one event; the strongest asked for wins
 * (CUT > ERROR > MALFORM > DUPLICATE > PASS). */
enum rd_event_act {
    RD_EVENT_PASS,      /* relayed as it came */
    RD_EVENT_DUPLICATE, /* relayed twice */
    RD_EVENT_MALFORM,   /* replaced by a copy whose JSON is cut short (framing intact) */
    RD_EVENT_ERROR,     /* replaced, with the rest of the stream, by the provider's
                         * mid-stream error; then the response ends */
    RD_EVENT_CUT,       /* dropped with the rest; the connection is closed */
};

struct rd_event_verdict {
    enum rd_event_act act; /* PASS on entry */
    uint64_t at_ms;        /* loop time (uv_now) before which it does not leave; 0 on entry; the latest wins */
    int error_status;      /* RD_EVENT_ERROR: the status whose error is sent (0: 500) */
    const char *error_message; /* RD_EVENT_ERROR: its message (static; NULL: a generic one) */
};

/* One event as on_event sees it (everything borrowed for the call). */
struct rd_stream_view {
    const struct rd_stream_event *ev;
    uint64_t index;   /* events of this stream decided before it (0: the first) */
    bool last;        /* the provider's end-of-stream event ("[DONE]", message_stop, ...) */
    uint64_t now_ms;  /* loop time now */
    uint64_t head_ms; /* loop time the head went out */
    uint64_t prev_ms; /* loop time the previous event went out (head_ms for the first) */
    /* Eight bytes of per-stream state for this stage, 0 at the first event. */
    uint64_t *scratch;
};

struct rd_stage {
    const char *name; /* "ip_filter": in logs, tests and middleware_pipeline */
    /* Compiles the stage's configuration into *state: NULL when the stage
     * has nothing to do for this proxy (it is then left out of the run
     * list). Returns 0, or RD_EINVAL with err filled for what the schema
     * (config.c) cannot say. NULL compile: the stage always runs with a
     * NULL state. */
    int (*compile)(const struct rd_stage_env *env, void **state, struct rd_config_err *err);
    void (*release)(void *state); /* frees a compiled state; NULL when compile allocates nothing */
    /* Request side: NULL for a response-only stage. */
    enum rd_stage_rc (*run)(struct rd_req *req, const void *state);
    /* Response side (each NULL when the stage has none), called for every
     * configured stage, in stage-table order:
     * on_head: just before a response head goes out (the source's, or a
     * native error's): may add headers to hdrs (strings in the request's
     * arena or static); status is the one being sent. */
    void (*on_head)(struct rd_req *req, const void *state, int status, struct rd_hdrs *hdrs);
    /* on_done: the request is over (answered, failed or abandoned by the
     * client), everything on it final, just before it is released: for
     * what a stage settles afterwards (tokens charged to a rate limit).
     * Called for every request released, also those the HTTP server
     * answered itself (400, 413, ...) before any stage ran. */
    void (*on_done)(struct rd_req *req, const void *state);
    /* A new configuration of the same proxy replaces one whose compiled
     * state of this stage was prev (both non-NULL): called on the control
     * thread before the new snapshot is published, so the stage may carry
     * over what must outlive a configuration change (the rate limit keeps
     * its windows while its limits are unchanged). NULL: nothing carried. */
    void (*inherit)(void *state, const void *prev);
    /* on_stream: a streamed response's head (status 2xx) is about to go
     * out, after every on_head: may add or replace headers in hdrs as
     * on_head; returns true to see the stream's events. on_event: one
     * event, before it leaves (see "the event seam" above): fills out. */
    bool (*on_stream)(struct rd_req *req, const void *state, struct rd_hdrs *hdrs);
    void (*on_event)(struct rd_req *req, const void *state, const struct rd_stream_view *v,
                     struct rd_event_verdict *out);
};

/* A proxy's compiled pipeline (in its snapshot; immutable once built). */
struct rd_pipeline {
    size_t n; /* request-side stages to run */
    struct rd_pipeline_step {
        const struct rd_stage *stage;
        void *state;
    } run[RD_STAGE_COUNT];
    /* Every stage's compiled state by id (NULL: not configured or dropped),
     * for the response-side hooks and for stages that read another's. */
    void *state[RD_STAGE_COUNT];
    bool enabled[RD_STAGE_COUNT]; /* kept by middleware_pipeline (all by default) */
    /* Configured stages with response-side hooks, in table order. */
    size_t nhead, ndone, nstream;
    struct rd_pipeline_step head[RD_STAGE_COUNT], done[RD_STAGE_COUNT], stream[RD_STAGE_COUNT];
    /* Some configured stage besides the upstream: requests then take a
     * sequence number (struct rd_req.seq) for nth matching and seeded draws. */
    bool active;
};

/* The stage table, indexed by enum rd_stage_id. */
const struct rd_stage *rd_stage_get(enum rd_stage_id id);

/* Compiles doc (already accepted by rd_config_validate) for provider p
 * (NULL when not known yet: the API checks a document before the proxy's
 * other fields are applied). Returns 0, or RD_EINVAL with err naming the
 * field. On error nothing is left allocated. */
int rd_pipeline_compile(struct json_object *doc, const struct rd_provider *p, struct rd_pipeline *out,
                        struct rd_config_err *err);
void rd_pipeline_free(struct rd_pipeline *pl);
/* Compiles and frees: the API's check before it stores a document. */
int rd_pipeline_check(struct json_object *doc, const struct rd_provider *p, struct rd_config_err *err);

/* Lets each stage of pl carry state over from prev, the pipeline of the
 * configuration pl replaces for the same proxy (struct rd_stage.inherit).
 * pl must not be in use by requests yet. */
void rd_pipeline_inherit(struct rd_pipeline *pl, const struct rd_pipeline *prev);

/* Runs req's request-side stages from the first. */
void rd_pipeline_start(struct rd_req *req);
/* Continues after a stage that returned SUSPEND, with the stage after it. */
void rd_pipeline_resume(struct rd_req *req);
/* The response-side hooks (see struct rd_stage); cheap when none. */
void rd_pipeline_head(struct rd_req *req, int status, struct rd_hdrs *hdrs);
void rd_pipeline_done(struct rd_req *req);
/* True if the proxy's requests go to the request log (the record stage is
 * configured: not left out of middleware_pipeline, not "logging":
 * {"enabled": false}). */
static inline bool rd_pipeline_logs(const struct rd_pipeline *pl)
{
    return pl->state[RD_STAGE_RECORD] != NULL;
}
/* True if some configured stage has stream hooks (a streamed response is
 * then offered to them). */
static inline bool rd_pipeline_shapes(const struct rd_pipeline *pl)
{
    return pl->nstream > 0;
}
/* Offers a streamed response to the stages with stream hooks; returns the
 * mask (bit i: pl->stream[i]) of those that want its events, 0: none. */
uint32_t rd_pipeline_stream(struct rd_req *req, struct rd_hdrs *hdrs);
/* Asks the stages of mask about one event; out starts as PASS now. */
void rd_pipeline_event(struct rd_req *req, uint32_t mask, const struct rd_stream_view *v,
                       struct rd_event_verdict *out);

#endif
