/* The request object's lifecycle: pool, classification, the one state
 * setter with its deadlines, and the single place requests are released.
 * The relay itself (sources, head, body) is forward.c. */
#include "proxy/req.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "cache/memo.h"
#include "obs/obs.h"
#include "providers/pricing.h"
#include "proxy/forward.h"
#include "proxy/pipeline.h"
#include "proxy/shape.h"
#include "util/err.h"
#include "util/log.h"
#include "util/time.h"
#include "util/mem.h"

#define POOL_MAX 1024      /* released requests kept per worker for reuse */
#define ARENA_KEEP (64u * 1024u) /* an arena (or body buffer) that grew past this is freed, not pooled */

static void on_timer(uv_timer_t *t);
static void on_timer_closed(uv_handle_t *h);

uint64_t rd_req_now_us(void)
{
    return uv_hrtime() / 1000u;
}

const char *rd_req_state_name(enum rd_req_state s)
{
    static const char *const names[] = {"new", "wait", "upstream", "relay", "done"};
    return names[s];
}

void rd_req_env_init(struct rd_req_env *env, uv_loop_t *loop, struct rd_upstream_ctx *up)
{
    memset(env, 0, sizeof *env);
    env->loop = loop;
    env->up = up;
    /* Not a secret: only keeps ids of different workers and runs apart. */
    env->id_prefix = (uint32_t)(uv_hrtime() ^ ((uint64_t)(uintptr_t)env >> 4)) * 2654435761u;
}

static void req_destroy(struct rd_req *req)
{
    rd_hdrs_free(&req->up_hdrs);
    rd_hdrs_free(&req->resp_hdrs);
    rd_hdrs_free(&req->add_hdrs);
    rd_buf_free(&req->url);
    rd_buf_free(&req->body);
    rd_sse_free(&req->sse);
    rd_es_decoder_free(&req->es);
    rd_arena_free(&req->arena);
    uv_close((uv_handle_t *)&req->timer, on_timer_closed);
}

static void on_timer_closed(uv_handle_t *h)
{
    free(h->data);
}

void rd_req_env_close(struct rd_req_env *env)
{
    while (env->pool) {
        struct rd_req *req = env->pool;
        env->pool = req->next_free;
        req_destroy(req);
    }
    env->npool = 0;
    rd_key_memo_free(env->key_memo);
    env->key_memo = NULL;
}

static struct rd_req *req_get(struct rd_req_env *env)
{
    struct rd_req *req = env->pool;
    if (req) {
        env->pool = req->next_free;
        env->npool--;
    } else {
        req = rd_calloc(1, sizeof *req);
        uv_timer_init(env->loop, &req->timer);
        /* A pooled request's timer may still be armed (deadlines are lazy):
         * it must not keep the loop alive. */
        uv_unref((uv_handle_t *)&req->timer);
        req->timer.data = req;
        rd_arena_init(&req->arena);
        rd_hdrs_init(&req->up_hdrs, &req->arena);
        rd_hdrs_init(&req->resp_hdrs, &req->arena);
        rd_hdrs_init(&req->add_hdrs, &req->arena);
        rd_buf_init(&req->url, 0);
        rd_buf_init(&req->body, 0);
        req->env = env;
    }
    env->live++;
    req->next_free = NULL;
    req->state = RD_REQ_NEW;
    req->id = ((uint64_t)env->id_prefix << 32) | ++env->seq;
    req->t_received = rd_req_now_us();
    req->wall_ms = rd_time_wall_ms();
    return req;
}

static void log_done(struct rd_req *req)
{
    if (!rd_log_enabled(RD_LOG_DEBUG))
        return;
    char tokens[64] = "";
    const struct rd_usage *u = rd_req_usage(req);
    if (u->input >= 0 || u->output >= 0)
        snprintf(tokens, sizeof tokens, " tokens %lld/%lld", (long long)u->input, (long long)u->output);
    rd_req_debug(req, "%s %s model=%s -> %d (upstream %d) %llu bytes in %.3f ms%s%s", req->method, req->path,
                 req->model[0] ? req->model : "-", req->status_sent, req->status_upstream,
                 (unsigned long long)req->bytes_out, (double)(req->t_done - req->t_received) / 1000.0, tokens,
                 req->stream && !req->stream_ended ? " (stream not ended)" : "");
}

/* The request is counted where it counts: the usage totals, the stages'
 * on_done (a rate limit's token charge, the cache's error window), the
 * request log, the roll-ups, the metrics and the trace. It runs before the
 * answer's end is handed to the connection: a client that has its answer and
 * asks at once (another request, the summary, /metrics) finds it counted. */
static void req_account(struct rd_req *req)
{
    struct rd_req_env *env = req->env;
    /* A cache hit cost nothing upstream: the totals are what was billed. */
    if (req->snap->usage && req->cache != RD_CACHE_HIT)
        rd_proxy_usage_add(req->snap->usage, env->index, req->provider, req->model, rd_req_usage(req));
    rd_pipeline_done(req);
    rd_obs_done(req);
    if (env->observe)
        env->observe(req, env->observe_ud);
}

/* Its debug line and its accounting, once, with t_done the time it was
 * counted: early when the answer is whole before its last bytes are
 * written (forward.c), else when the request ends (req_end). Called early,
 * the state stays RELAY, its deadline armed, until the source ends: an
 * upstream that sends the whole body and then holds its end is still cut
 * when the transfer's time is up (then counted as it was answered). */
void rd_req_answered(struct rd_req *req)
{
    if (req->counted)
        return;
    req->counted = true;
    if (req->t_done == 0)
        req->t_done = rd_req_now_us();
    log_done(req);
    req_account(req);
}

/* Every way a request ends: DONE, counted (if it was not yet), and the
 * exchange taken from it, for the caller to end (finish, abort, respond). */
static struct rd_http_exch *req_end(struct rd_req *req)
{
    struct rd_http_exch *x = req->x;
    rd_req_set_state(req, RD_REQ_DONE);
    rd_req_answered(req);
    req->x = NULL;
    return x;
}

/* The one place a request is let go, after req_end: everything it holds is
 * released, its deadline cleared, and it goes back to the pool (or is
 * destroyed). */
static void req_release(struct rd_req *req)
{
    struct rd_req_env *env = req->env;
    req->deadline.at = 0; /* the timer may stay armed; it finds nothing to do */
    rd_shape_release(req);
    rd_proxy_snap_unref(req->snap);
    rd_hdrs_clear(&req->up_hdrs);
    rd_hdrs_clear(&req->resp_hdrs);
    rd_hdrs_clear(&req->add_hdrs);
    rd_buf_reset(&req->url);
    if (req->body.cap > ARENA_KEEP)
        rd_buf_free(&req->body);
    else
        rd_buf_reset(&req->body);
    if (req->sse_ready)
        rd_sse_reset(&req->sse);
    rd_es_decoder_free(&req->es); /* zeroed with the rest below */
    bool big = req->arena.total > ARENA_KEEP;
    rd_arena_reset(&req->arena);
    env->live--;
    if (big || env->npool >= POOL_MAX) {
        req_destroy(req);
        return;
    }
    size_t keep_from = offsetof(struct rd_req, state);
    memset((char *)req + keep_from, 0, sizeof *req - keep_from);
    req->next_free = env->pool;
    env->pool = req;
    env->npool++;
}

const struct rd_usage *rd_req_usage(struct rd_req *req)
{
    if (req->body_complete && !req->usage_read && req->dialect->body_usage)
        req->dialect->body_usage(req->dialect, req->body.data, req->body.len, &req->usage);
    req->usage_read = true;
    return &req->usage;
}

bool rd_req_cost(struct rd_req *req, double *usd)
{
    if (req->cost_state == 0) {
        const struct rd_usage *u = rd_req_usage(req);
        const struct rd_price *p = NULL;
        if (req->model[0] && (u->input >= 0 || u->output >= 0))
            p = rd_pricing_lookup(req->provider->name, req->model);
        req->cost_state = rd_pricing_cost(p, u, &req->cost_usd) ? 1 : -1;
    }
    if (req->cost_state > 0)
        *usd = req->cost_usd;
    return req->cost_state > 0;
}

const char *rd_failure_name(enum rd_failure f)
{
    static const char *const names[] = {
        [RD_FAIL_NONE] = "",
        [RD_FAIL_IP_BLOCKED] = "ip_blocked",
        [RD_FAIL_RATE_LIMITED] = "rate_limited",
        [RD_FAIL_SCENARIO] = "scenario",
        [RD_FAIL_TIMEOUT] = "timeout",
        [RD_FAIL_HANG] = "hang",
        [RD_FAIL_ERROR_INJECTION] = "error_injection",
        [RD_FAIL_STREAM_CUT] = "stream_cut",
        [RD_FAIL_STREAM_STALL] = "stream_stall",
        [RD_FAIL_STREAM_ERROR] = "stream_error",
        [RD_FAIL_STREAM_MALFORMED] = "stream_malformed",
        [RD_FAIL_DELAYED] = "delayed",
        [RD_FAIL_STREAM_DUPLICATE] = "stream_duplicate",
    };
    return (unsigned)f < sizeof names / sizeof names[0] && names[f] ? names[f] : "";
}

const char *rd_req_id(struct rd_req *req)
{
    /* Rendered by hand: the request log asks for it on every request, and
     * snprintf costs about a thousand instructions for these 20 bytes. */
    if (req->id_text[0] == '\0') {
        static const char hex[] = "0123456789abcdef";
        memcpy(req->id_text, "req_", 4);
        for (int i = 0; i < 16; i++)
            req->id_text[4 + i] = hex[(req->id >> (60 - 4 * i)) & 15];
        req->id_text[20] = '\0';
    }
    return req->id_text;
}

/* Deadlines are lazy, like the connection's (util/deadline.h): a request
 * normally costs no timer-heap operation. */
static void set_deadline(struct rd_req *req, uint64_t ms)
{
    rd_deadline_set(&req->deadline, &req->timer, on_timer, ms);
}

void rd_req_set_state(struct rd_req *req, enum rd_req_state s)
{
    if (req->state != s)
        rd_req_trace(req, "%s -> %s", rd_req_state_name(req->state), rd_req_state_name(s));
    enum rd_req_state from = req->state;
    req->state = s;
    switch (s) {
    case RD_REQ_NEW: break;
    case RD_REQ_WAIT: break; /* rd_req_wait arms it */
    case RD_REQ_UPSTREAM: set_deadline(req, req->snap->limits.upstream_timeout_ms); break;
    case RD_REQ_RELAY:
        /* The transfer deadline runs on from UPSTREAM: one deadline for the
         * whole transfer, as the upstream timeout is documented. */
        if (from != RD_REQ_UPSTREAM)
            set_deadline(req, req->snap->limits.upstream_timeout_ms);
        break;
    case RD_REQ_DONE:
        req->deadline.at = 0;
        if (req->t_done == 0) /* else counted already (rd_req_answered) */
            req->t_done = rd_req_now_us();
        break;
    }
}

void rd_req_wait(struct rd_req *req, uint64_t ms, void (*fn)(struct rd_req *req))
{
    req->wait_fn = fn;
    /* Every wait is a stage delaying the answer (response_delay, timeout
     * and scenario delays): what the request log calls the delay applied. */
    req->delay_applied_ms += ms;
    rd_req_set_state(req, RD_REQ_WAIT);
    set_deadline(req, ms ? ms : 1);
}

void rd_req_hold(struct rd_req *req)
{
    req->wait_fn = NULL;
    rd_req_set_state(req, RD_REQ_WAIT);
    req->deadline.at = 0; /* an armed timer finds nothing to do */
}

static void on_timer(uv_timer_t *t)
{
    struct rd_req *req = t->data;
    if (!rd_deadline_expired(&req->deadline, &req->timer, on_timer))
        return;
    switch (req->state) {
    case RD_REQ_WAIT: {
        void (*fn)(struct rd_req *) = req->wait_fn;
        req->wait_fn = NULL;
        if (fn)
            fn(req);
        break;
    }
    case RD_REQ_UPSTREAM:
    case RD_REQ_RELAY:
        rd_source_abort(&req->src);
        req->err = RD_ETIMEDOUT;
        rd_req_warn(req, "%s: upstream timed out after %llu ms (%s)", req->path,
                    (unsigned long long)req->snap->limits.upstream_timeout_ms,
                    req->head_sent ? "response cut" : "504 sent");
        rd_req_fail(req, 504, "The upstream server did not answer in time.");
        break;
    case RD_REQ_NEW:
    case RD_REQ_DONE: break;
    }
}

/* ---- client side ---- */

static void on_drain(void *ud)
{
    struct rd_req *req = ud;
    if (req->shape)
        rd_shape_drain(req); /* it resumes the source when nothing waits */
    else
        rd_source_resume(&req->src);
}

static void on_gone(void *ud)
{
    struct rd_req *req = ud;
    rd_source_abort(&req->src);
    req->err = RD_EABORTED;
    rd_http_abort(req_end(req));
    req_release(req);
}

void rd_req_finish(struct rd_req *req)
{
    /* May start the next pipelined request (with another request object). */
    rd_http_finish(req_end(req));
    req_release(req);
}

void rd_req_fail(struct rd_req *req, int status, const char *message)
{
    struct rd_error_spec e = {.status = status, .message = message, .retry_after_s = -1};
    rd_req_fail_spec(req, &e);
}

/* The retry audit (proxy/retry_audit.h): a simulated outcome whose
 * response carries Retry-After (from the error spec, a stage's added
 * headers or a configured rate-limit response) tells this client when to
 * come back. Only integer seconds are read (an HTTP-date is not audited). */
static void note_retry_after(struct rd_req *req)
{
    if (req->failure == RD_FAIL_NONE || req->snap->failstats == NULL || req->x == NULL)
        return;
    const char *v = rd_hdrs_get(&req->resp_hdrs, "retry-after");
    if (v == NULL)
        return;
    char *end = NULL;
    long long s = strtoll(v, &end, 10);
    if (end == v || *end != '\0' || s < 0 || s > 86400LL * 365)
        return;
    req->retry_advertised = true;
    req->retry_after_ms = (uint64_t)s * 1000u;
    uint64_t key = rd_failstats_client_key(req->client_ip, &req->x->req->headers);
    rd_retry_audit_note(rd_failstats_audit(req->snap->failstats), key, rd_req_now_us() / 1000u, req->retry_after_ms);
}

void rd_req_fail_spec(struct rd_req *req, const struct rd_error_spec *spec)
{
    struct rd_http_exch *x = req->x;
    rd_source_abort(&req->src);
    if (req->head_sent) {
        rd_http_abort(req_end(req));
        req_release(req);
        return;
    }
    struct rd_buf body;
    rd_buf_init(&body, 0);
    rd_hdrs_clear(&req->resp_hdrs);
    struct rd_error_spec e = *spec;
    if (e.request_id == NULL)
        e.request_id = rd_req_id(req);
    rd_provider_error(req->dialect, &e, &req->resp_hdrs, &body);
    /* What the stages add replaces the native header of the same name: a
     * configured rate-limit response may pin Retry-After or Content-Type.
     * Names in add_hdrs are NUL-terminated (arena copies or literals). */
    for (size_t i = 0; i < req->add_hdrs.n; i++)
        rd_hdrs_remove(&req->resp_hdrs, req->add_hdrs.v[i].name);
    for (size_t i = 0; i < req->add_hdrs.n; i++) {
        const struct rd_hdr *h = &req->add_hdrs.v[i];
        rd_hdrs_add_refn(&req->resp_hdrs, h->name, h->name_len, h->value, h->value_len);
    }
    rd_pipeline_head(req, e.status, &req->resp_hdrs);
    note_retry_after(req);
    int status = e.status;
    req->status_sent = status;
    req->bytes_out = body.len;
    x = req_end(req);
    rd_http_respond(x, status, &req->resp_hdrs, body.data, body.len);
    rd_buf_free(&body);
    req_release(req);
}

/* ---- entry points ---- */

void rd_req_provider_view(const struct rd_req *req, struct rd_provider_req *out)
{
    const struct rd_http_request *hr = req->x->req;
    *out = (struct rd_provider_req){
        .method = hr->method,
        .path = hr->path,
        .query = hr->query,
        .headers = &hr->headers,
        .body = hr->body.data,
        .body_len = hr->body.len,
        .match = &req->match,
        .config = req->snap->config,
    };
}

static void classify(struct rd_req *req)
{
    const struct rd_http_request *hr = req->x->req;
    const struct rd_provider *p = req->provider;
    const struct rd_route *r = rd_provider_route(p, hr->method, hr->path, &req->match);
    req->kind = r ? r->kind : RD_REQ_OTHER;
    req->dialect = r && r->dialect ? r->dialect : p;
    req->cacheable = r && (r->flags & RD_ROUTE_CACHEABLE);
    req->streamable = r && (r->flags & RD_ROUTE_STREAMABLE);
    /* Only known routes are cache candidates; everything else bypasses. */
    req->cache = req->cacheable ? RD_CACHE_NONE : RD_CACHE_BYPASS;
    if (r && p->model) {
        struct rd_provider_req pr;
        rd_req_provider_view(req, &pr);
        p->model(p, &pr, req->model, sizeof req->model);
    }
}

void rd_req_handle(struct rd_req_env *env, struct rd_http_exch *x, struct rd_proxy_snap *snap)
{
    struct rd_req *req = req_get(env);
    req->x = x;
    req->snap = rd_proxy_snap_ref(snap);
    req->provider = req->dialect = snap->provider;
    req->bytes_in = x->req->body.len;
    req->method = x->req->method;
    req->path = rd_arena_strndup(&req->arena, x->req->path, strlen(x->req->path));
    memcpy(req->client_ip, x->client_ip, sizeof req->client_ip);
    req->usage = (struct rd_usage){-1, -1, -1, -1, -1};
    req->content_length = -1;
    x->user = req;
    rd_http_set_callbacks(x, on_drain, on_gone, req);
    classify(req);
    rd_obs_begin(req);
    /* The retry audit settles this client's advertised retry, if it has
     * one: a relaxed load when nobody has one. */
    if (snap->failstats && rd_retry_audit_pending(rd_failstats_audit(snap->failstats)))
        (void)rd_retry_audit_arrive(rd_failstats_audit(snap->failstats),
                                    rd_failstats_client_key(req->client_ip, &x->req->headers),
                                    rd_req_now_us() / 1000u);
    if (snap->pipeline.active)
        req->seq = atomic_fetch_add_explicit(&snap->req_seq, 1, memory_order_relaxed) + 1;
    rd_pipeline_start(req);
}

void rd_req_server_error(struct rd_req_env *env, struct rd_proxy_snap *snap, const struct rd_http_error *e,
                         struct rd_hdrs *hdrs, struct rd_buf *body, const char **content_type)
{
    struct rd_req *req = req_get(env);
    req->snap = rd_proxy_snap_ref(snap);
    req->provider = req->dialect = snap->provider;
    req->status_sent = e->status;
    req->method = e->req && e->req->method ? e->req->method : "";
    req->path = e->req && e->req->path ? rd_arena_strndup(&req->arena, e->req->path, strlen(e->req->path)) : "";
    snprintf(req->client_ip, sizeof req->client_ip, "%s", e->client_ip ? e->client_ip : "");
    req->usage = (struct rd_usage){-1, -1, -1, -1, -1};
    rd_obs_begin(req);
    struct rd_error_spec spec = {.status = e->status, .message = e->message, .request_id = rd_req_id(req),
                                 .retry_after_s = -1};
    /* A route of another dialect (Claude on Vertex) answers in that
     * dialect's format even when the server refuses the request before it
     * is handled (413 for a body too large, 408, ...), as far as the method
     * and path were read. */
    if (e->req && e->req->method && e->req->path) {
        const struct rd_route *r = rd_provider_route(req->provider, e->req->method, e->req->path, &req->match);
        if (r && r->dialect)
            req->dialect = r->dialect;
    }
    /* The server adds Content-Type itself: render into a scratch list and
     * copy the others (the id string must outlive this request: hdrs' arena). */
    rd_provider_error(req->dialect, &spec, &req->resp_hdrs, body);
    for (size_t i = 0; i < req->resp_hdrs.n; i++) {
        const struct rd_hdr *h = &req->resp_hdrs.v[i];
        if (rd_hdr_name_eq(h->name, h->name_len, "content-type"))
            continue;
        rd_hdrs_add(hdrs, h->name, h->name_len, h->value, h->value_len);
    }
    *content_type = "application/json";
    req->bytes_out = body->len;
    rd_req_set_state(req, RD_REQ_DONE);
    rd_req_debug(req, "%s %s -> %d (%s)", e->req && e->req->method ? e->req->method : "-",
                 e->req && e->req->path ? e->req->path : "-", e->status, e->message);
    req_account(req); /* the server sends the answer when this returns */
    req_release(req);
}
