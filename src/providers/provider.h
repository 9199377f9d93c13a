/* What differs between LLM providers, as data (struct rd_provider), so the
 * engine (sockets, streaming, timeouts, later caching and logging) is written
 * once. One provider per file in src/providers/; adding one is a new file plus
 * an entry in the registry (provider.c). See docs/adding-a-provider.md. */
#ifndef RD_PROVIDERS_PROVIDER_H
#define RD_PROVIDERS_PROVIDER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "providers/emulator/emulator.h"
#include "http/headers.h"
#include "http/sse.h"
#include "util/buf.h"

struct json_object;

/* Kinds of request a route carries, for caching TTLs and usage extraction. */
enum rd_req_kind {
    RD_REQ_OTHER,
    RD_REQ_CHAT,
    RD_REQ_COMPLETION,
    RD_REQ_EMBEDDING,
    RD_REQ_RESPONSES,
    RD_REQ_MODELS,
    RD_REQ_TOKENS, /* token counting (count_tokens, countTokens) */
};

/* Generation and embeddings: deterministic given the body, billed, so the
 * cache looks them up (docs/caching.md). Model lists and token counting
 * are not (they answer by query, cost nothing and change upstream). */
#define RD_ROUTE_CACHEABLE 0x1
#define RD_ROUTE_STREAMABLE 0x2 /* may answer as a stream ("stream": true) */

/* Where a route's model comes from. */
#define RD_MODEL_IN_BODY 0 /* the body's model_field */
/* 1..RD_ROUTE_MAX_CAPS: the text the n-th '*' of the pattern matched (a
 * model or deployment in the path, e.g. /v1/models/ asterisk). */

struct rd_route {
    const char *method;  /* "POST", "GET" */
    /* Path pattern: '*' matches a non-empty run of characters other than
     * '/', so "/v1beta/models/ *:generateContent" (without the space) tells
     * generateContent from streamGenerateContent. */
    const char *pattern;
    enum rd_req_kind kind;
    unsigned flags;
    unsigned model_from; /* RD_MODEL_IN_BODY or the capture number */
    /* NULL: the provider's own dialect. Otherwise the provider whose usage,
     * stream and error hooks this route speaks (Claude on Vertex AI speaks
     * Anthropic's): the engine then calls those hooks of this provider. */
    const struct rd_provider *dialect;
};

#define RD_ROUTE_MAX_CAPS 4

/* A matched route and the text of each '*' (pointers into the path). */
struct rd_route_match {
    const struct rd_route *route; /* NULL: no route matched */
    struct {
        const char *p;
        size_t n;
    } cap[RD_ROUTE_MAX_CAPS];
    unsigned ncap;
};

/* What provider hooks see of a request; everything borrowed for the call. */
struct rd_provider_req {
    const char *method;
    const char *path;
    const char *query; /* "" when absent */
    const struct rd_hdrs *headers;
    const char *body;
    size_t body_len;
    const struct rd_route_match *match;
    const struct json_object *config; /* the proxy's configuration document (deployment maps, keys) */
};

/* The upstream request as the request rewrite/sign hook may change it, just
 * before it is sent. */
struct rd_upstream_prep {
    const char *base;        /* upstream base URL, no trailing slash */
    bool base_is_default;    /* base is the provider's default_upstream (no upstream_url configured) */
    struct rd_buf *url;      /* empty on entry: the hook appends base + target */
    struct rd_hdrs *headers; /* end-to-end headers to send (strings borrowed or in arena) */
    struct rd_arena *arena;  /* request-scoped storage for what the hook adds */
    int64_t now_ms;          /* wall clock, epoch milliseconds (signatures); a parameter so tests fix it */
    /* Set by a failing hook: what the client is told (static, safe to show:
     * "no AWS credentials are configured"); NULL: a generic message. */
    const char *fail_message;
};

/* An error to answer in the provider's native format. */
struct rd_error_spec {
    int status;
    const char *message;    /* safe for the client: never internal details */
    const char *request_id; /* sent in the provider's request-id header; NULL for none */
    int retry_after_s;      /* >= 0: Retry-After (429, 503, ...) */
    /* Non-NULL: sent as the body instead of the native one, with
     * Content-Type application/json (a configured rate-limit response);
     * the native headers (request id, Retry-After, ...) stay. */
    const char *body;
    size_t body_len;
};

/* Token usage of one response, normalised across providers (-1: not
 * reported). input counts every input token, including those read from and
 * written to the provider's prompt cache: cached and cache_write are parts
 * of input, never added to it (OpenAI's prompt_tokens already includes its
 * cached tokens; Anthropic's input_tokens excludes cache_read_input_tokens
 * and cache_creation_input_tokens, so its hooks add them). output includes
 * reasoning tokens; reasoning is the part of output spent thinking. */
struct rd_usage {
    int64_t input, output, cached, cache_write, reasoning;
};

/* One event of a streamed response, as the stream decoder split it. */
enum rd_stream_msg {
    RD_STREAM_MSG_EVENT,     /* SSE event; event-stream ":message-type: event" */
    RD_STREAM_MSG_EXCEPTION, /* event-stream ":message-type: exception" or "error" */
};
struct rd_stream_event {
    enum rd_stream_msg type;
    const char *name; /* SSE "event:" value or event-stream ":event-type" / ":exception-type"; "" when absent */
    size_t name_len;
    const char *data; /* SSE data lines joined with LF; event-stream payload */
    size_t data_len;
};

/* The stream event of one SSE event (borrowed from ev). */
static inline struct rd_stream_event rd_stream_event_of_sse(const struct rd_sse_event *ev)
{
    return (struct rd_stream_event){.type = RD_STREAM_MSG_EVENT,
                                    .name = ev->event,
                                    .name_len = ev->event_len,
                                    .data = ev->data,
                                    .data_len = ev->data_len};
}

/* How a provider frames streamed responses. */
enum rd_framing {
    RD_FRAMING_SSE,         /* text/event-stream */
    RD_FRAMING_EVENTSTREAM, /* application/vnd.amazon.eventstream (binary frames) */
};

/* How a provider shapes its error bodies. */
enum rd_error_style {
    RD_ERRSTYLE_OPENAI,    /* {"error":{"message","type","param","code"}} */
    RD_ERRSTYLE_ANTHROPIC, /* {"type":"error","error":{"type","message"},"request_id"} */
    RD_ERRSTYLE_BEDROCK,   /* {"message"} with the x-amzn-ErrorType header */
};

/* The names and formats of a provider's request rate-limit headers, which
 * its 429s carry (and, for some providers, every response): data, so one
 * renderer (rd_provider_ratelimit_headers) serves every provider. */
enum rd_reset_style {
    RD_RESET_DURATION, /* Go-style duration until the reset: "1s", "6m0s" (OpenAI) */
    RD_RESET_RFC3339,  /* the reset's wall-clock time: "2026-12-02T18:00:00Z" (Anthropic) */
};
struct rd_ratelimit_names {
    const char *limit;     /* "x-ratelimit-limit-requests" */
    const char *remaining; /* "x-ratelimit-remaining-requests" */
    const char *reset;     /* "x-ratelimit-reset-requests" */
    enum rd_reset_style reset_style;
};
/* OpenAI's names (also Azure OpenAI's, DeepSeek's and Groq's). */
extern const struct rd_ratelimit_names rd_ratelimit_names_openai;

struct rd_provider {
    const char *name;             /* "openai" */
    const char *display_name;     /* "OpenAI" */
    const char *default_upstream; /* "https://api.openai.com" (no trailing slash); NULL: none */
    /* true: a proxy needs an upstream_url (or the emulator) to be created
     * (azure_openai, openai_compatible); default_upstream is then NULL or
     * only a template. */
    bool upstream_required;
    const char *dialect_name; /* wire dialect: "openai", "anthropic", "bedrock", "google" */
    /* What to give the provider's SDK as its base URL, after the proxy's
     * "http://host:port" ("/v1" for the OpenAI SDK, "" for Anthropic's). */
    const char *sdk_base_path;
    /* Query parameters that carry credentials (Gemini's "key"):
     * NULL-terminated; their values are never stored or logged. */
    const char *const *secret_query_params;
    const char *const *auth_headers; /* NULL-terminated; never stored or logged */
    const char *model_field;      /* JSON body field naming the model */
    /* Where a request body gives its output-token cap (max_tokens or the
     * dialect's equivalent): NULL-terminated dotted paths of object keys
     * ("generationConfig.maxOutputTokens"), tried in order; read by
     * rd_provider_max_tokens for the rate limiter's tokens_per_minute. */
    const char *const *max_tokens_fields;
    /* The response cache's key (cache/key.h, docs/caching.md "Keys"), all
     * NULL-terminated, NULL for none. Body paths are dotted object keys
     * ("metadata.user_id", '*' for any key at a level; cache/canon.h):
     *  - cache_ignore_fields: fields that never change the answer (stream,
     *    tracking ids), dropped from the key;
     *  - cache_round_fields: sampling numbers rounded to 2 decimals
     *    (temperature, top_p), so 0.7 and 0.701 share an entry;
     *  - cache_query_params: the query parameters that change the answer
     *    (Azure's api-version, Google's alt); the rest are not in the key.
     * A field missing from these lists stays in the key: a miss is cheaper
     * than a wrong answer. */
    const char *const *cache_ignore_fields;
    const char *const *cache_round_fields;
    const char *const *cache_query_params;
    const char *request_id_header; /* header carrying the request id in responses ("x-request-id") */
    const struct rd_route *routes; /* shared by the forwarder and the emulator */
    size_t nroutes;
    enum rd_error_style error_style;
    /* The provider's request rate-limit headers; NULL: it sends none
     * (Bedrock, Google: Retry-After or the body's RetryInfo only). */
    const struct rd_ratelimit_names *ratelimit_headers;
    enum rd_framing framing;
    const struct rd_emu_dialect *emulator; /* dialect data for the emulate function */
    int (*emulate)(const struct rd_emu_dialect *d, const struct rd_emu_request *req, struct rd_emu_reply *out);

    /* ---- hooks the engine calls (docs/adding-a-provider.md) ---- */

    /* The model of request r into out (NUL-terminated, at most cap - 1
     * bytes); returns its length, 0 when unknown. Pure. */
    size_t (*model)(const struct rd_provider *p, const struct rd_provider_req *r, char *out, size_t cap);
    /* Rewrites and signs the upstream request just before it is sent: fills
     * up->url (base, path, query) and may change up->headers (Azure's
     * api-key, Vertex's path, SigV4's signature over the body). Returns 0,
     * or a negative code: the request then fails with a 502 whose message
     * is up->fail_message when the hook set one. */
    int (*prepare)(const struct rd_provider *p, const struct rd_provider_req *r, struct rd_upstream_prep *up);
    /* The native error response for e: appends its headers (content type,
     * request id, Retry-After, ...; strings static or in hdrs->arena) and
     * its body. */
    void (*error)(const struct rd_provider *p, const struct rd_error_spec *e, struct rd_hdrs *hdrs,
                  struct rd_buf *body);
    /* Sees each event of a streamed response (framing decoded by the
     * engine, events split across reads reassembled): updates usage.
     * Returns 1 if the event properly ends the stream ("[DONE]"), else 0. */
    int (*stream_event)(const struct rd_provider *p, const struct rd_stream_event *ev, struct rd_usage *usage);
    /* Usage from a complete non-streamed response body. */
    void (*body_usage)(const struct rd_provider *p, const char *body, size_t len, struct rd_usage *usage);
    /* The provider's mid-stream error, as its stream carries it when it
     * fails after the head (stream faults): appended to out; returns 0 or
     * a negative code. NULL: rd_provider_stream_error_sse, the error hook's
     * body as one SSE event named stream_error_event ("error" for
     * Anthropic's "event: error"; NULL: a data-only event, OpenAI's error
     * chunk and Google's error object). Bedrock's is an event-stream
     * exception frame. */
    int (*stream_error)(const struct rd_provider *p, const struct rd_error_spec *e, struct rd_buf *out);
    const char *stream_error_event;
};

/* Registry lookups. */
const struct rd_provider *rd_provider_find(const char *name);
/* All providers in display order; *n receives the count. */
const struct rd_provider *const *rd_provider_all(size_t *n);

/* Matches method + path against p's routes: fills m (m->route NULL when
 * none matches) and returns m->route. */
const struct rd_route *rd_provider_route(const struct rd_provider *p, const char *method, const char *path,
                                         struct rd_route_match *m);
/* True if path matches pattern (see struct rd_route), filling m's captures
 * when m is not NULL. Pure. */
bool rd_route_pattern_match(const char *pattern, const char *path, struct rd_route_match *m);

/* Renders the provider's native error for an error Rubberduck itself
 * produces (413 from a limit, 502/504 from the upstream, ...), through its
 * error hook. */
void rd_provider_error(const struct rd_provider *p, const struct rd_error_spec *e, struct rd_hdrs *hdrs,
                       struct rd_buf *body);

/* The mid-stream error of p for e (its stream_error hook, or the SSE
 * default below), appended to out. Returns 0 or a negative code (out's
 * cap, an encoding error). */
int rd_provider_stream_error(const struct rd_provider *p, const struct rd_error_spec *e, struct rd_buf *out);
/* "event: <stream_error_event>\n" (when set) "data: <error body>\n\n",
 * the body from p's error hook on one line (JSON has no raw newlines). */
int rd_provider_stream_error_sse(const struct rd_provider *p, const struct rd_error_spec *e, struct rd_buf *out);

/* What a secret query value is replaced with. */
#define RD_REDACTED "REDACTED"

/* Appends query (without '?') to out with the value of every parameter
 * named in p->secret_query_params (names percent-decoded before they are
 * compared) replaced by RD_REDACTED: for anything that writes a query to a
 * log or a record. Returns 0 or RD_ETOOBIG (out's cap). Pure. */
int rd_provider_redact_query(const struct rd_provider *p, const char *query, struct rd_buf *out);

/* ---- implementations shared by providers (hooks are data too) ---- */

/* The request body's output-token cap: the first of p->max_tokens_fields
 * holding a non-negative JSON integer (clamped to INT64_MAX), or -1 when
 * none does (absent, not an integer, malformed body). Pure. */
int64_t rd_provider_max_tokens(const struct rd_provider *p, const char *body, size_t len);
/* max_tokens_fields of the OpenAI dialect (chat and legacy completions,
 * the newer max_completion_tokens, the responses API's max_output_tokens). */
extern const char *const rd_provider_max_tokens_openai[];

/* cache_ignore_fields of the OpenAI dialect (OpenAI, Azure OpenAI,
 * DeepSeek, the OpenAI-compatible presets): stream, the tracking ids user
 * and safety_identifier, store, stream_options.include_obfuscation. */
extern const char *const rd_provider_cache_ignore_openai[];
/* cache_round_fields of bodies with top-level temperature and top_p (the
 * OpenAI dialect, Anthropic's). */
extern const char *const rd_provider_cache_round_top[];

/* True if the query parameter name p[0..n), percent-decoded ('+' as a
 * space, as an upstream decodes it), is want. Pure. */
bool rd_provider_query_name_is(const char *p, size_t n, const char *want);

/* Model from the route's capture or the body's model_field. */
size_t rd_provider_model_default(const struct rd_provider *p, const struct rd_provider_req *r, char *out, size_t cap);
/* base + path + ("?" query): the request goes where it was sent. */
int rd_provider_prepare_passthrough(const struct rd_provider *p, const struct rd_provider_req *r,
                                    struct rd_upstream_prep *up);
/* The headers every native error carries: content_type, the request id
 * in id_header (none when either is NULL) and Retry-After when set. */
void rd_provider_error_headers(const char *content_type, const char *id_header, const struct rd_error_spec *e,
                               struct rd_hdrs *hdrs);
/* Appends p's rate-limit headers (none when p->ratelimit_headers is NULL):
 * limit and remaining requests, and the reset reset_s seconds after now_ms
 * (wall clock, epoch milliseconds) in the provider's format. Strings are
 * copied into hdrs->arena. */
void rd_provider_ratelimit_headers(const struct rd_provider *p, uint64_t limit, uint64_t remaining, uint64_t reset_s,
                                   int64_t now_ms, struct rd_hdrs *hdrs);
/* OpenAI's error shape with the provider's request-id header. */
void rd_provider_error_openai(const struct rd_provider *p, const struct rd_error_spec *e, struct rd_hdrs *hdrs,
                              struct rd_buf *body);
/* OpenAI-style streams: "[DONE]" ends them; "usage" objects (chat
 * completions, responses API) carry the tokens. */
int rd_provider_stream_event_openai(const struct rd_provider *p, const struct rd_stream_event *ev,
                                    struct rd_usage *usage);
void rd_provider_body_usage_openai(const struct rd_provider *p, const char *body, size_t len,
                                   struct rd_usage *usage);

/* Anthropic (providers/anthropic.c). Claude on Vertex AI and on Bedrock
 * speaks this dialect, so their routes point .dialect at the provider and
 * the engine calls these hooks for them. */
extern const struct rd_provider rd_provider_anthropic;
/* {"type":"error","error":{"type","message"},"request_id"} with Anthropic's
 * error type for the status (529 overloaded_error, ...), the request-id
 * header and Retry-After when set. */
void rd_provider_error_anthropic(const struct rd_provider *p, const struct rd_error_spec *e, struct rd_hdrs *hdrs,
                                 struct rd_buf *body);
/* Anthropic streams: message_start gives the input side (input_tokens plus
 * the cache reads and writes, normalised as struct rd_usage says) and the
 * first output count, message_delta the final cumulative counts
 * (output_tokens_details.thinking_tokens, when present, is the reasoning);
 * message_stop ends the stream properly (an "error" event does not). */
int rd_provider_stream_event_anthropic(const struct rd_provider *p, const struct rd_stream_event *ev,
                                       struct rd_usage *usage);
/* The "usage" object of a Message body, normalised the same way. */
void rd_provider_body_usage_anthropic(const struct rd_provider *p, const char *body, size_t len,
                                      struct rd_usage *usage);

#endif
