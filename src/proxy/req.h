/* The request object: one per request a proxy receives, owned by the worker
 * that accepted it, from the parsed request to the last byte relayed. Every
 * stage of the request path (today: classify, then the upstream relay in
 * forward.c; later the pipeline of the failure-simulation, cache and
 * observability issues) reads and writes what it knows here, so stages talk
 * only through the request.
 *
 * Lifecycle, changed only through rd_req_set_state() (which logs the
 * transition at trace level and arms the state's deadline on the one
 * embedded timer):
 *
 *   state      meaning                                   deadline (then)
 *   NEW        created, classified, stages run           none (synchronous)
 *   WAIT       a stage suspended it (delay, hang, ...)    set by the stage (rd_req_wait)
 *   UPSTREAM   the source runs, no response head yet      upstream_timeout_ms from upstream start
 *                                                         (504 in the provider's format)
 *   RELAY      head sent, body relayed                    the same transfer deadline (cut)
 *   DONE       answered; counters final                   none: released at once
 *
 * Memory: request-scoped data lives in req->arena; the request is released
 * in one place (req_release in req.c) after its source is finished or
 * aborted and its timer stopped, and goes back to the worker's pool (the
 * timer handle stays initialised there and is closed with the pool).
 * Threading: the worker loop's thread only. */
#ifndef RD_PROXY_REQ_H
#define RD_PROXY_REQ_H

#include <stdbool.h>
#include <stdint.h>
#include <uv.h>

#include "http/server.h"
#include "http/sse.h"
#include "providers/provider.h"
#include "proxy/snapshot.h"
#include "upstream/source.h"
#include "upstream/upstream.h"
#include "util/arena.h"
#include "util/buf.h"
#include "util/deadline.h"
#include "util/eventstream.h"

struct rd_key_memo;

enum rd_req_state { RD_REQ_NEW, RD_REQ_WAIT, RD_REQ_UPSTREAM, RD_REQ_RELAY, RD_REQ_DONE };

/* A simulated outcome, set by the stage that produced it (its name is the
 * failure type of logs and of the X-Rubberduck-Failure header). */
enum rd_failure {
    RD_FAIL_NONE,
    RD_FAIL_IP_BLOCKED,
    RD_FAIL_RATE_LIMITED,
    RD_FAIL_SCENARIO,
    RD_FAIL_TIMEOUT,
    RD_FAIL_HANG,
    RD_FAIL_ERROR_INJECTION,
    RD_FAIL_STREAM_CUT,
    RD_FAIL_STREAM_STALL,
    RD_FAIL_STREAM_ERROR,
    RD_FAIL_STREAM_MALFORMED,
    RD_FAIL_DELAYED,
    RD_FAIL_STREAM_DUPLICATE,
};

/* Stream faults a scenario or request override may ask for. */
enum rd_stream_fault {
    RD_SFAULT_NONE,
    RD_SFAULT_CUT,       /* connection closed after N events, without the end */
    RD_SFAULT_STALL,     /* nothing for stall_ms after N events */
    RD_SFAULT_ERROR,     /* the provider's mid-stream error after N events */
    RD_SFAULT_MALFORMED, /* one malformed event after N events */
    RD_SFAULT_DUPLICATE, /* event N sent twice */
};

/* An outcome decided for this request ahead of the stages that produce it:
 * the scenario stage and X-Rubberduck-Fault overrides fill it, the timeout,
 * error_injection and stream_faults stages carry it out (instead of their
 * own draws when set). */
struct rd_fault_plan {
    bool set;
    int status;        /* > 0: answer the provider's native error with this status */
    uint64_t delay_ms; /* > 0: wait this long first */
    bool hang;         /* never answer */
    enum rd_stream_fault stream_fault;
    uint32_t after_events;
    uint64_t stall_ms;
    /* With status: the error's message (NULL: the default text for the
     * status, rd_failure_message) and Retry-After (-1: none). Whoever sets
     * the plan sets both; message is borrowed from the snapshot. */
    const char *message;
    int32_t retry_after_s;
};

/* Cache outcome, filled by the cache stage (stages/cache.c). */
enum rd_req_cache { RD_CACHE_NONE, RD_CACHE_BYPASS, RD_CACHE_MISS, RD_CACHE_HIT };

/* How the response body is decoded as it is relayed. */
enum rd_req_decode {
    RD_DECODE_NONE,   /* not looked at (other content, or encoded) */
    RD_DECODE_SSE,    /* text/event-stream through the SSE scanner */
    RD_DECODE_BODY,   /* a JSON body, kept (up to a cap) for usage */
    RD_DECODE_EVENTSTREAM, /* application/vnd.amazon.eventstream, frame by frame */
};

/* Per-worker environment the requests of that worker share. */
struct rd_req_env {
    uv_loop_t *loop;
    struct rd_upstream_ctx *up;
    uint32_t id_prefix; /* random per worker, so ids differ across workers and restarts */
    uint32_t seq;
    struct rd_req *pool; /* released requests, ready for reuse */
    size_t npool;
    size_t live; /* requests not released */
    /* Called with every request just before it is released (state DONE,
     * everything final): the seam for the request log and metrics of the
     * observability issue, and for tests. May be NULL. */
    void (*observe)(struct rd_req *req, void *ud);
    void *observe_ud;
    unsigned index; /* the worker's index: its slot in per-worker counters (proxy/usage.h) */
    struct rd_key_memo *key_memo; /* the cache stage's (cache/memo.h); NULL until first used */
};

struct rd_req {
    /* Kept while the request waits in its worker's pool (emptied, storage
     * retained): the timer, the arena and the buffers. */
    uv_timer_t timer;             /* the state's deadline */
    struct rd_deadline deadline;  /* lazy, on timer (util/deadline.h) */
    struct rd_req_env *env;
    struct rd_arena arena;
    struct rd_hdrs up_hdrs;   /* to the upstream */
    struct rd_hdrs resp_hdrs; /* to the client, during on_head only */
    /* Headers stages add to every response of this request (the
     * source's, or an error): X-RateLimit-*, X-Rubberduck-Failure, ...
     * Strings in the arena. */
    struct rd_hdrs add_hdrs;
    struct rd_buf url;
    struct rd_buf body; /* RD_DECODE_BODY: the response body (up to 1 MiB), for rd_req_usage */
    struct rd_sse sse;  /* RD_DECODE_SSE */
    bool sse_ready;     /* sse initialised */

    /* Everything from here on is zeroed when the request is pooled. */
    enum rd_req_state state;
    struct rd_req *next_free;
    struct rd_http_exch *x;      /* borrowed until the exchange ends, then NULL */
    struct rd_proxy_snap *snap;  /* one reference, for the request's lifetime */
    const struct rd_provider *provider;
    /* Whose usage, stream and error hooks apply: the route's dialect
     * (struct rd_route.dialect) or the provider. Never NULL once handled. */
    const struct rd_provider *dialect;
    uint64_t id;
    char id_text[24]; /* "req_" + 16 hex digits, rendered on first use */
    /* The proxy's request number under its current configuration, from 1
     * (0 when no stage needs it: snap->pipeline.active false). */
    uint64_t seq;

    const char *method; /* static (the parser's) */
    const char *path;   /* copy in the arena: valid after the exchange ended */
    char client_ip[64];

    /* classification */
    struct rd_route_match match; /* match.route NULL: no known route */
    enum rd_req_kind kind;
    bool cacheable;  /* the route may be cached (consulted by the cache stage) */
    bool streamable;
    char model[128]; /* "" when unknown */

    /* timestamps: monotonic microseconds (0: not reached); wall clock at receipt */
    uint64_t t_received, t_upstream, t_first_byte, t_done;
    int64_t wall_ms;

    /* outcome */
    int status_sent;     /* status of the response sent to the client (0: none) */
    int status_upstream; /* status the source answered (0: none) */
    uint64_t bytes_in;   /* request body bytes */
    uint64_t bytes_out;  /* response body bytes relayed */
    int err;             /* source error (RD_E*) or 0 */
    /* A simulated outcome was sent with Retry-After: retry_after_ms from the
     * moment it was sent (noted in the proxy's retry audit). */
    bool retry_advertised;
    uint64_t retry_after_ms;

    /* what later stages attach */
    enum rd_req_cache cache;
    enum rd_failure failure; /* the simulated outcome, RD_FAIL_NONE for none */
    uint32_t failures_seen;  /* bit (1 << type) of every outcome simulated: each counted once (failstats.h) */
    struct rd_fault_plan plan; /* decided by scenario / overrides, carried out by later stages */
    struct rd_usage usage; /* from the body or the stream events */
    /* observability (src/obs/): trace context (obs/trace.h), what the
     * request log records beyond the above */
    char trace_id[33];        /* W3C trace id, 32 lower-case hex; "" until rd_trace_begin */
    char span_id[17];         /* this request's span (process_llm_request) */
    char parent_span_id[17];  /* the incoming traceparent's; "" for a new trace */
    uint8_t trace_flags;      /* W3C trace-flags (bit 0: sampled) */
    uint64_t t_cache_start, t_cache_end; /* cache lookup (monotonic us; 0: none) */
    uint64_t delay_applied_ms;           /* a stage's delay before answering (response_delay, ...) */
    char upstream_request_id[96];        /* the source's request-id header (provider's request_id_header) */
    uint8_t prompt_hash[32];             /* SHA-256 of the canonical request (the cache key material) */
    bool prompt_hash_set;
    /* The body's canonical form (arena), kept by the first key computed
     * for this request that canonicalized it, so that a second one (the
     * request log's prompt hash after a credential-scoped cache key) only
     * hashes. NULL: none yet. */
    const char *canon_body;
    size_t canon_body_len;
    int8_t cost_state;                   /* 0: not computed, 1: cost_usd known, -1: unknown (rd_req_cost) */
    double cost_usd;

    void (*wait_fn)(struct rd_req *req); /* WAIT: called when the wait is over */
    uint8_t stage_next;                  /* the pipeline stage rd_pipeline_resume runs */
    /* Each stage's request-scoped data by enum rd_stage_id (in the arena),
     * NULL until the stage sets it: what its on_done hook settles later. */
    void *stage_data[RD_STAGE_COUNT];

    /* relay */
    struct rd_source src;
    enum rd_req_decode decode;
    struct rd_es_decoder es; /* RD_DECODE_EVENTSTREAM; its storage is freed on release */
    bool counted;            /* accounted (req.c rd_req_answered) */
    bool body_complete;      /* body holds a whole 2xx JSON body */
    bool usage_read;         /* rd_req_usage looked at body */
    int64_t content_length;  /* announced by the source, -1 if none */
    bool head_sent;
    bool stream;             /* the response is an event stream */
    bool stream_ended;       /* the provider's end-of-stream event was seen */
    bool encoded;            /* the response has a Content-Encoding: not decoded */
    uint64_t dec_off;        /* source body bytes fed to the decoder so far (event offsets) */
    /* Set when response-side stages shape this stream (proxy/shape.h);
     * NULL for every other response. Owned; freed on release. */
    struct rd_shape *shape;
};

void rd_req_env_init(struct rd_req_env *env, uv_loop_t *loop, struct rd_upstream_ctx *up);
/* Closes the pooled requests' timers; call on the worker's loop before it
 * stops. Requests still live must have been aborted (the listeners' force
 * stop does that). */
void rd_req_env_close(struct rd_req_env *env);

/* The entry point of the proxy layer for a complete request on exchange x
 * (worker.c calls it): creates the request, classifies it and runs it to
 * its source. snap is borrowed (the request takes its own reference). */
void rd_req_handle(struct rd_req_env *env, struct rd_http_exch *x, struct rd_proxy_snap *snap);

/* An error the HTTP server answers itself (400, 408, 413, 431, ...) also
 * goes through here, so that every request a proxy received is seen: a
 * request object is made, counted and released, and the provider's native
 * error response is rendered into hdrs/body. */
void rd_req_server_error(struct rd_req_env *env, struct rd_proxy_snap *snap, const struct rd_http_error *e,
                         struct rd_hdrs *hdrs, struct rd_buf *body, const char **content_type);

/* The one setter of req->state; arms the state's deadline (see the table). */
void rd_req_set_state(struct rd_req *req, enum rd_req_state s);
/* Suspends req in WAIT until ms have passed, then calls fn(req); ms is
 * added to req->delay_applied_ms (a stage delaying the answer). */
void rd_req_wait(struct rd_req *req, uint64_t ms, void (*fn)(struct rd_req *req));
/* Suspends req in WAIT with no deadline: only the client's disconnect (or a
 * forced stop, which aborts the exchange) ends it. */
void rd_req_hold(struct rd_req *req);
/* The token usage of the response: from the stream events as they passed,
 * or read from the kept body on the first call (bodies are not parsed on the
 * relay path unless someone asks). Fields are -1 when not reported. */
const struct rd_usage *rd_req_usage(struct rd_req *req);
/* The request's cost in USD from its usage and the price table into *usd
 * (computed once, then remembered); false when unknown (no price for the
 * model, or no tokens reported). A cache hit costs what the cached answer
 * cost upstream. */
bool rd_req_cost(struct rd_req *req, double *usd);
/* What provider hooks see of req (while its exchange runs). */
void rd_req_provider_view(const struct rd_req *req, struct rd_provider_req *out);
/* "req_<16 hex>": the id sent in error responses and written in log lines. */
const char *rd_req_id(struct rd_req *req);
const char *rd_req_state_name(enum rd_req_state s);
/* Request-scoped process log lines: the proxy's name and the request id
 * as the line's proxy= and req= fields (util/log.h). */
static inline const char *rd_req_proxy_name(const struct rd_req *req)
{
    return req->snap ? req->snap->name : NULL;
}
#define rd_req_trace(req, ...) rd_trace_req(rd_req_proxy_name(req), rd_req_id(req), __VA_ARGS__)
#define rd_req_debug(req, ...) rd_debug_req(rd_req_proxy_name(req), rd_req_id(req), __VA_ARGS__)
#define rd_req_info(req, ...) rd_info_req(rd_req_proxy_name(req), rd_req_id(req), __VA_ARGS__)
#define rd_req_warn(req, ...) rd_warn_req(rd_req_proxy_name(req), rd_req_id(req), __VA_ARGS__)
/* Monotonic microseconds (the clock of the timestamps). */
uint64_t rd_req_now_us(void);

/* Ends the request with the provider's native error (status, message safe
 * for the client): sent as the response if no head was sent yet, otherwise
 * the client connection is cut. Releases req. */
void rd_req_fail(struct rd_req *req, int status, const char *message);
/* The same with every field of the error (Retry-After, ...); the request id
 * is the request's own when e->request_id is NULL. */
void rd_req_fail_spec(struct rd_req *req, const struct rd_error_spec *e);
/* "ip_blocked", "rate_limited", ...; "" for RD_FAIL_NONE. */
const char *rd_failure_name(enum rd_failure f);
/* Ends the request whose response is complete: finishes the exchange and
 * releases req. */
void rd_req_finish(struct rd_req *req);
/* The whole answer is relayed but its last bytes are not yet written (a
 * Content-Length body): the request is counted now (usage, the stages'
 * on_done, log, roll-ups, metrics, trace; t_done is now). It stays in
 * RELAY with its deadline until the source ends; rd_req_finish or an
 * abort then ends it, without counting it again. */
void rd_req_answered(struct rd_req *req);

#endif
