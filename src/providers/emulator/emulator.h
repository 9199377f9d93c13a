/* The built-in emulator: answers requests in a provider's dialect without
 * network, deterministically (same request, same answer), so Rubberduck works
 * offline and tests have a stable upstream.
 *
 * A dialect is a pure function from a request to a complete reply (a list of
 * body chunks, each tagged with the number of tokens it represents). The
 * runner (run.c) plays a reply through the source callbacks, pacing chunks at
 * a tokens-per-second rate, with backpressure. */
#ifndef RD_PROVIDERS_EMULATOR_H
#define RD_PROVIDERS_EMULATOR_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <uv.h>

#include "http/headers.h"
#include "upstream/source.h"

struct rd_route_match; /* providers/provider.h, which includes this header */
struct json_object;

struct rd_emu_request {
    const char *method; /* "POST" ... */
    const char *path;   /* "/v1/chat/completions" */
    const char *query;  /* "" when absent */
    const struct rd_hdrs *headers;
    const char *body; /* may contain NULs; not NUL-terminated necessarily */
    size_t body_len;
    uint64_t seed; /* the proxy's emulator.seed: a different seed, different (but stable) answers */
    /* The route of the provider's table (struct rd_provider.routes) that
     * method and path matched, as rd_provider_route filled it: the emulator
     * answers by the same table the forwarder uses. NULL, or match->route
     * NULL: no known route (the dialect's 404). Borrowed. */
    const struct rd_route_match *match;
    /* The request's model as the engine classified it (req->model: a
     * deployment mapped through the proxy's deployments block, for Azure);
     * NULL or "" when unknown. Reported by dialects with model_from_request. */
    const char *model;
    /* The proxy's configuration document (its deployments block tells
     * which Azure deployments exist); NULL: none. Borrowed. */
    const struct json_object *config;
};

struct rd_emu_chunk {
    char *data; /* owned */
    size_t len;
    uint32_t tokens; /* output tokens this chunk carries; pacing waits tokens/tps before it */
};

#define RD_EMU_REPLY_MAX_HEADERS 4

struct rd_emu_reply {
    int status;
    /* Extra response headers (Bedrock's x-amzn-ErrorType), owned. */
    struct {
        char *name, *value;
    } headers[RD_EMU_REPLY_MAX_HEADERS];
    size_t nheaders;
    char *content_type; /* owned, e.g. "application/json" or "text/event-stream" */
    bool stream;        /* true: SSE, sent chunked as the chunks come; false: one body with Content-Length */
    struct rd_emu_chunk *chunks; /* owned array */
    size_t n;
    size_t cap;
};

/* Per-provider data for an OpenAI-compatible dialect (openai, deepseek):
 * the difference between providers is this struct, not code. */
struct rd_emu_dialect {
    const char *owned_by;       /* "openai", "deepseek" */
    const char *const *models;  /* NULL-terminated ids served by GET /v1/models */
    const char *default_model;  /* used when a request names none */
    bool has_embeddings;        /* false: RD_REQ_EMBEDDING routes answer 404 */
    bool has_responses;         /* false: RD_REQ_RESPONSES routes answer 404 */
    /* true: answers name the request's model (rd_emu_request.model: Azure's
     * deployment) instead of the body's "model", which may be absent. */
    bool model_from_request;
    /* true: a route whose model is a path capture names a deployment, which
     * exists only if it is a key of the configuration's deployments block or
     * one of models (a deployment named after its model); any other answers
     * 404 with deployment_not_found_body. */
    bool deployments_checked;
    const char *deployment_not_found_body; /* JSON; with deployments_checked */
    /* The 404 body for a path (or method) the provider's table does not
     * have; NULL: OpenAI's {"error":{"message":"Invalid URL (POST /x)",...}}. */
    const char *unknown_route_body;
    /* true: GET .../models answers a bare JSON array of model objects
     * (Together AI) instead of {"object":"list","data":[...]}. */
    bool models_bare_array;
};

/* Builds the answer of an OpenAI-compatible API for req into *out (which the
 * caller frees with rd_emu_reply_free). Dispatches on req->match's route kind
 * (chat, completion, embedding, responses, models; GET /v1/models/{id} takes
 * the id from the route's model capture). Always produces a reply: no route,
 * a route kind the dialect lacks, or a wrong method get the dialect's 404
 * body, malformed JSON its 400 body, exactly like the real API. Returns 0.
 * Pure and thread-safe. */
int rd_emu_openai(const struct rd_emu_dialect *d, const struct rd_emu_request *req, struct rd_emu_reply *out);

/* Appends a chunk (copies data). */
void rd_emu_reply_add(struct rd_emu_reply *r, const char *data, size_t len, uint32_t tokens);
void rd_emu_reply_free(struct rd_emu_reply *r); /* NULL-safe; leaves *r empty */
/* Replaces out with a 200 non-streamed reply of content_type whose one chunk
 * is obj serialised (obj consumed), tagged with tokens for pacing. */
void rd_emu_reply_json(struct rd_emu_reply *out, struct json_object *obj, const char *content_type, uint32_t tokens);
/* Adds a response header (copies both); more than RD_EMU_REPLY_MAX_HEADERS
 * is a dialect bug and aborts. */
void rd_emu_reply_header(struct rd_emu_reply *r, const char *name, const char *value);

/* The emulator as a source (upstream/source.h). Its context is a struct
 * rd_emu_setup (borrowed for the request's lifetime); the source request's
 * arg is the const struct rd_route_match * the engine matched (borrowed for
 * the start call; NULL: no known route). start builds the reply from the
 * request's method, path, query, headers, body and route match, and plays it. */
struct rd_emu_setup {
    const struct rd_emu_dialect *dialect;
    int (*emulate)(const struct rd_emu_dialect *d, const struct rd_emu_request *req, struct rd_emu_reply *out);
    uint64_t seed;
    double tokens_per_second;
    const struct json_object *config; /* the proxy's configuration document (borrowed); NULL: none */
};
extern const struct rd_source_ops rd_emu_source_ops;

/* Runner. Plays reply (ownership taken) through cbs on loop. With
 * tokens_per_second <= 0 chunks are emitted without pacing (still one per
 * loop iteration for streams, so the client sees them one by one).
 * Returns a handle for resume/abort; never NULL. Callbacks never fire from
 * inside this call. */
struct rd_emu_run;
struct rd_emu_run *rd_emu_run_start(uv_loop_t *loop, struct rd_emu_reply *reply, double tokens_per_second,
                                    const struct rd_source_cbs *cbs, void *ud);
/* Resumes after on_data returned RD_SOURCE_PAUSE. */
void rd_emu_run_resume(struct rd_emu_run *r);
/* Stops: no callback fires after this returns; memory is released once the
 * timer is closed. */
void rd_emu_run_abort(struct rd_emu_run *r);

#endif
