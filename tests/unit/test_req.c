/* Tests for src/proxy/req.c and forward.c, the request object and the
 * upstream relay, through the seams they expose: a fake exchange (an
 * rd_http_exch_ops implementation recording what the proxy sends, with a
 * settable amount of pending output), the emulator as source (no network),
 * a loopback socket that accepts and never answers (deadlines), and the
 * environment's observe hook, which sees every request as it is released. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>
#include <uv.h>

#include "http/server.h"
#include "proxy/failure.h"
#include "proxy/req.h"
#include "proxy/snapshot.h"
#include "upstream/upstream.h"
#include "util/err.h"
#include "util/json.h"
#include "util/mem.h"

/* ---- fake exchange ---- */

struct fake {
    struct rd_http_exch x;
    struct rd_http_request req;
    int status;
    int64_t content_length;
    struct rd_buf out;
    struct rd_arena harena;
    struct rd_hdrs resp_hdrs; /* copy of the response head */
    size_t pending;           /* what rd_http_pending reports */
    int begins, writes, finishes, aborts;
};

static struct fake *fake_of(struct rd_http_exch *x)
{
    return (struct fake *)((char *)x - offsetof(struct fake, x));
}

static int f_begin(struct rd_http_exch *x, int status, const struct rd_hdrs *hdrs, int64_t content_length)
{
    struct fake *f = fake_of(x);
    f->begins++;
    f->status = status;
    f->content_length = content_length;
    for (size_t i = 0; hdrs && i < hdrs->n; i++)
        rd_hdrs_add(&f->resp_hdrs, hdrs->v[i].name, hdrs->v[i].name_len, hdrs->v[i].value, hdrs->v[i].value_len);
    return 0;
}

static int f_write(struct rd_http_exch *x, const char *p, size_t n)
{
    struct fake *f = fake_of(x);
    f->writes++;
    return rd_buf_append(&f->out, p, n);
}

static void f_finish(struct rd_http_exch *x)
{
    fake_of(x)->finishes++;
}

static void f_abort(struct rd_http_exch *x)
{
    fake_of(x)->aborts++;
}

static size_t f_pending(const struct rd_http_exch *x)
{
    return ((const struct fake *)((const char *)x - offsetof(struct fake, x)))->pending;
}

static const struct rd_http_exch_ops fake_ops = {
    .begin = f_begin, .write = f_write, .finish = f_finish, .abort = f_abort, .pending = f_pending};

static void fake_init(struct fake *f, const char *method, const char *path, const char *body)
{
    memset(f, 0, sizeof *f);
    f->x.ops = &fake_ops;
    f->x.req = &f->req;
    snprintf(f->x.client_ip, sizeof f->x.client_ip, "127.0.0.1");
    rd_arena_init(&f->req.arena);
    rd_hdrs_init(&f->req.headers, &f->req.arena);
    rd_hdrs_add(&f->req.headers, "Content-Type", 12, "application/json", 16);
    rd_hdrs_add(&f->req.headers, "Accept-Encoding", 15, "gzip, br", 8);
    f->req.method = method;
    f->req.path = path;
    f->req.query = "";
    f->req.target = path;
    f->req.version_major = 1;
    f->req.version_minor = 1;
    f->req.keep_alive = true;
    f->req.content_length = -1;
    rd_buf_init(&f->req.body, 0);
    if (body)
        (void)rd_buf_appends(&f->req.body, body);
    rd_buf_init(&f->out, 0);
    rd_arena_init(&f->harena);
    rd_hdrs_init(&f->resp_hdrs, &f->harena);
}

static void fake_free(struct fake *f)
{
    rd_hdrs_free(&f->req.headers);
    rd_arena_free(&f->req.arena);
    rd_buf_free(&f->req.body);
    rd_buf_free(&f->out);
    rd_hdrs_free(&f->resp_hdrs);
    rd_arena_free(&f->harena);
}

/* ---- fixture ---- */

struct seen {
    int n;
    enum rd_req_state state;
    int status_sent, status_upstream, err;
    enum rd_req_kind kind;
    bool cacheable, stream, stream_ended;
    char model[128];
    struct rd_usage usage;
    uint64_t bytes_out;
    bool timestamps_ordered;
    char id[24];
    char path[128];
    /* The exchange at the time the request was counted: it is counted
     * before its end is handed to the connection (req.c req_account). */
    bool had_exch;
    int begins_then, ends_then;
    size_t out_then; /* body bytes the exchange had been given */
};

struct fx {
    uv_loop_t loop;
    struct rd_upstream_ctx *up;
    struct rd_req_env env;
    struct rd_proxy_snap *snap;
    struct seen seen;
    uv_timer_t watchdog;
};

static void observe(struct rd_req *req, void *ud)
{
    struct fx *fx = ud;
    struct seen *s = &fx->seen;
    s->n++;
    s->state = req->state;
    s->status_sent = req->status_sent;
    s->status_upstream = req->status_upstream;
    s->err = req->err;
    s->kind = req->kind;
    s->cacheable = req->cacheable;
    s->stream = req->stream;
    s->stream_ended = req->stream_ended;
    memcpy(s->model, req->model, sizeof s->model);
    s->usage = *rd_req_usage(req);
    s->bytes_out = req->bytes_out;
    s->timestamps_ordered = req->t_received <= req->t_done &&
                            (req->t_upstream == 0 || (req->t_received <= req->t_upstream &&
                                                      (req->t_first_byte == 0 || req->t_upstream <= req->t_first_byte)));
    snprintf(s->id, sizeof s->id, "%s", req->id_text);
    snprintf(s->path, sizeof s->path, "%s", req->path);
    s->had_exch = req->x != NULL;
    if (req->x && req->x->ops == &fake_ops) {
        const struct fake *f = fake_of(req->x);
        s->begins_then = f->begins;
        s->ends_then = f->finishes + f->aborts;
        s->out_then = f->out.len;
    }
}

static struct rd_proxy_snap *snap_for(const char *provider, const char *upstream, const char *config)
{
    struct rd_proxy_rec rec = {
        .id = 1,
        .name = (char *)"t",
        .provider = (char *)provider,
        .port = 1,
        .bind = (char *)"127.0.0.1",
        .upstream_url = (char *)upstream,
        .config_json = (char *)(config ? config : "{}"),
    };
    const char *why = NULL;
    struct rd_proxy_snap *s = rd_proxy_snap_new(&rec, 10000, &why);
    assert_non_null(s);
    return s;
}

static void on_watchdog(uv_timer_t *t)
{
    (void)t;
    fail_msg("watchdog: the request did not end");
}

static void fx_init(struct fx *fx, struct rd_proxy_snap *snap)
{
    memset(fx, 0, sizeof *fx);
    uv_loop_init(&fx->loop);
    fx->up = rd_upstream_ctx_new(&fx->loop);
    rd_req_env_init(&fx->env, &fx->loop, fx->up);
    fx->env.observe = observe;
    fx->env.observe_ud = fx;
    fx->snap = snap;
    uv_timer_init(&fx->loop, &fx->watchdog);
    uv_timer_start(&fx->watchdog, on_watchdog, 10000, 0);
    uv_unref((uv_handle_t *)&fx->watchdog);
}

/* Runs the loop until the request has been observed. */
static void run_until_seen(struct fx *fx, int n)
{
    while (fx->seen.n < n)
        uv_run(&fx->loop, UV_RUN_ONCE);
}

static void fx_free(struct fx *fx)
{
    assert_int_equal(fx->env.live, 0);
    rd_req_env_close(&fx->env);
    rd_upstream_ctx_free(fx->up);
    uv_close((uv_handle_t *)&fx->watchdog, NULL);
    uv_run(&fx->loop, UV_RUN_DEFAULT);
    assert_int_equal(uv_loop_close(&fx->loop), 0);
    rd_proxy_snap_unref(fx->snap);
}

/* ---- tests ---- */

static void test_emulated_chat(void **state)
{
    (void)state;
    struct fx fx;
    fx_init(&fx, snap_for("openai", "emulator", NULL));
    struct fake f;
    fake_init(&f, "POST", "/v1/chat/completions",
              "{\"messages\":[{\"role\":\"user\",\"content\":\"hi\"}],\"model\":\"gpt-4o-mini\",\"temperature\":0}");
    rd_req_handle(&fx.env, &f.x, fx.snap);
    run_until_seen(&fx, 1);
    assert_int_equal(f.begins, 1);
    assert_int_equal(f.finishes, 1);
    assert_int_equal(f.aborts, 0);
    assert_int_equal(f.status, 200);
    assert_non_null(strstr(f.out.data, "\"chat.completion\""));
    /* counted as its last bytes went out: still RELAY (req.h rd_req_answered) */
    assert_int_equal(fx.seen.state, RD_REQ_RELAY);
    assert_int_equal(fx.seen.kind, RD_REQ_CHAT);
    assert_true(fx.seen.cacheable);
    assert_string_equal(fx.seen.model, "gpt-4o-mini");
    assert_false(fx.seen.stream);
    assert_true(fx.seen.usage.input > 0);
    assert_true(fx.seen.usage.output > 0);
    assert_int_equal(fx.seen.bytes_out, f.out.len);
    assert_true(fx.seen.timestamps_ordered);
    assert_string_equal(fx.seen.path, "/v1/chat/completions");
    /* counted with the answer written but its end not yet handed over */
    assert_true(fx.seen.had_exch);
    assert_int_equal(fx.seen.begins_then, 1);
    assert_int_equal(fx.seen.ends_then, 0);
    /* a Content-Length body: counted before its last bytes were written */
    assert_true(f.content_length > 0);
    assert_true(fx.seen.out_then < f.out.len);
    fake_free(&f);
    fx_free(&fx);
}

static void test_emulated_stream_with_usage(void **state)
{
    (void)state;
    struct fx fx;
    fx_init(&fx, snap_for("openai", "emulator", NULL));
    struct fake f;
    fake_init(&f, "POST", "/v1/chat/completions",
              "{\"model\":\"gpt-4o\",\"stream\":true,\"stream_options\":{\"include_usage\":true},"
              "\"messages\":[{\"role\":\"user\",\"content\":\"Tell me a story\"}]}");
    rd_req_handle(&fx.env, &f.x, fx.snap);
    run_until_seen(&fx, 1);
    assert_int_equal(f.status, 200);
    assert_true(f.writes > 2); /* event by event */
    assert_true(fx.seen.stream);
    assert_true(fx.seen.stream_ended); /* [DONE] seen */
    assert_true(fx.seen.usage.input > 0 && fx.seen.usage.output > 0);
    assert_string_equal(fx.seen.model, "gpt-4o");
    fake_free(&f);
    fx_free(&fx);
}

/* Output above the high mark pauses the source; the drain callback resumes
 * it and the body is complete, in order. */
static void test_backpressure_pauses_source(void **state)
{
    (void)state;
    struct fx fx;
    fx_init(&fx, snap_for("openai", "emulator", NULL));
    struct fake f;
    fake_init(&f, "POST", "/v1/chat/completions",
              "{\"model\":\"gpt-4o\",\"stream\":true,\"messages\":[{\"role\":\"user\",\"content\":\"Tell me a long story\"}]}");
    rd_req_handle(&fx.env, &f.x, fx.snap);
    f.pending = RD_HTTP_OUT_HIGH + 1;
    /* Let the emulator offer chunks: all are refused while the client is slow. */
    for (int i = 0; i < 20; i++)
        uv_run(&fx.loop, UV_RUN_NOWAIT);
    int writes_paused = f.writes;
    for (int i = 0; i < 20; i++)
        uv_run(&fx.loop, UV_RUN_NOWAIT);
    assert_int_equal(f.writes, writes_paused);
    assert_int_equal(fx.seen.n, 0);
    f.pending = 0;
    f.x.on_drain(f.x.cb_ud);
    run_until_seen(&fx, 1);
    assert_true(f.writes > writes_paused);
    assert_int_equal(f.finishes, 1);
    assert_true(fx.seen.stream_ended);
    fake_free(&f);
    fx_free(&fx);
}

/* The client going away mid-stream aborts the source and releases the
 * request at once. */
static void test_client_gone_mid_stream(void **state)
{
    (void)state;
    struct fx fx;
    fx_init(&fx, snap_for("openai", "emulator", "{\"emulator\":{\"tokens_per_second\":50}}"));
    struct fake f;
    fake_init(&f, "POST", "/v1/chat/completions",
              "{\"model\":\"gpt-4o\",\"stream\":true,\"messages\":[{\"role\":\"user\",\"content\":\"Tell me a long story\"}]}");
    rd_req_handle(&fx.env, &f.x, fx.snap);
    while (f.writes < 2)
        uv_run(&fx.loop, UV_RUN_ONCE);
    f.x.gone = true;
    f.x.on_gone(f.x.cb_ud);
    assert_int_equal(fx.seen.n, 1);
    assert_int_equal(fx.seen.err, RD_EABORTED);
    assert_int_equal(f.aborts, 1);
    assert_int_equal(f.finishes, 0);
    assert_false(fx.seen.stream_ended);
    assert_true(fx.seen.had_exch);
    assert_int_equal(fx.seen.ends_then, 0);
    fake_free(&f);
    fx_free(&fx);
}

/* An upstream that accepts and never answers: the UPSTREAM deadline
 * (limits.upstream_timeout_ms) answers 504 in the provider's format, with
 * the request id. */
static void test_upstream_deadline(void **state)
{
    (void)state;
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in sa = {.sin_family = AF_INET};
    sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    assert_int_equal(bind(fd, (struct sockaddr *)&sa, sizeof sa), 0);
    assert_int_equal(listen(fd, 8), 0);
    socklen_t len = sizeof sa;
    assert_int_equal(getsockname(fd, (struct sockaddr *)&sa, &len), 0);
    char url[64];
    snprintf(url, sizeof url, "http://127.0.0.1:%d", ntohs(sa.sin_port));
    struct fx fx;
    fx_init(&fx, snap_for("openai", url, "{\"limits\":{\"upstream_timeout_ms\":200}}"));
    struct fake f;
    fake_init(&f, "POST", "/v1/chat/completions", "{\"model\":\"gpt-4o\"}");
    uint64_t t0 = uv_now(&fx.loop);
    rd_req_handle(&fx.env, &f.x, fx.snap);
    run_until_seen(&fx, 1);
    uv_update_time(&fx.loop);
    assert_true(uv_now(&fx.loop) - t0 >= 190);
    assert_int_equal(f.status, 504);
    assert_int_equal(fx.seen.err, RD_ETIMEDOUT);
    /* the error answer is counted before it is sent */
    assert_true(fx.seen.had_exch);
    assert_int_equal(fx.seen.begins_then, 0);
    assert_int_equal(fx.seen.ends_then, 0);
    assert_non_null(strstr(f.out.data, "\"gateway_timeout\""));
    const char *id = rd_hdrs_get(&f.resp_hdrs, "x-request-id");
    assert_non_null(id);
    assert_string_equal(id, fx.seen.id);
    assert_int_equal(strncmp(id, "req_", 4), 0);
    fake_free(&f);
    fx_free(&fx);
    close(fd);
}

/* A closed port: 502 with a generic message (no host, no port). */
static void test_upstream_refused_generic_502(void **state)
{
    (void)state;
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in sa = {.sin_family = AF_INET};
    sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    assert_int_equal(bind(fd, (struct sockaddr *)&sa, sizeof sa), 0);
    socklen_t len = sizeof sa;
    assert_int_equal(getsockname(fd, (struct sockaddr *)&sa, &len), 0);
    char url[64], port[16];
    snprintf(port, sizeof port, "%d", ntohs(sa.sin_port));
    snprintf(url, sizeof url, "http://127.0.0.1:%s", port);
    close(fd); /* nobody listens there now */
    struct fx fx;
    fx_init(&fx, snap_for("openai", url, NULL));
    struct fake f;
    fake_init(&f, "GET", "/v1/models", NULL);
    rd_req_handle(&fx.env, &f.x, fx.snap);
    run_until_seen(&fx, 1);
    assert_int_equal(f.status, 502);
    assert_null(strstr(f.out.data, port));
    assert_null(strstr(f.out.data, "127.0.0.1"));
    assert_non_null(strstr(f.out.data, "\"bad_gateway\""));
    assert_int_equal(fx.seen.kind, RD_REQ_MODELS);
    fake_free(&f);
    fx_free(&fx);
}

/* Errors the HTTP server answers itself pass through the request object. */
static void test_server_error_is_a_request(void **state)
{
    (void)state;
    struct fx fx;
    fx_init(&fx, snap_for("deepseek", "emulator", NULL));
    struct rd_arena a;
    rd_arena_init(&a);
    struct rd_hdrs hdrs;
    rd_hdrs_init(&hdrs, &a);
    struct rd_buf body;
    rd_buf_init(&body, 0);
    const char *ctype = NULL;
    struct rd_http_error e = {.status = 431, .message = "request headers too large", .client_ip = "10.0.0.1"};
    rd_req_server_error(&fx.env, fx.snap, &e, &hdrs, &body, &ctype);
    assert_int_equal(fx.seen.n, 1);
    assert_int_equal(fx.seen.status_sent, 431);
    assert_string_equal(ctype, "application/json");
    assert_non_null(strstr(body.data, "\"headers_too_large\""));
    assert_string_equal(rd_hdrs_get(&hdrs, "x-request-id"), fx.seen.id);
    assert_null(rd_hdrs_get(&hdrs, "content-type")); /* the server writes its own */
    rd_hdrs_free(&hdrs);
    rd_arena_free(&a);
    rd_buf_free(&body);
    fx_free(&fx);
}

/* Claude on Vertex: the engine takes usage, the end of the stream and the
 * error format from the route's dialect (Anthropic's), the model from the
 * path, while the proxy stays vertex_ai. */
#define CLAUDE_PATH "/v1/projects/duck/locations/us-east5/publishers/anthropic/models/claude-sonnet-4@20250514"

static void test_vertex_claude_speaks_anthropic(void **state)
{
    (void)state;
    struct fx fx;
    fx_init(&fx, snap_for("vertex_ai", "emulator", NULL));
    struct fake f;
    fake_init(&f, "POST", CLAUDE_PATH ":streamRawPredict",
              "{\"anthropic_version\":\"vertex-2023-10-16\",\"max_tokens\":32,\"stream\":true,"
              "\"messages\":[{\"role\":\"user\",\"content\":\"quack\"}]}");
    rd_req_handle(&fx.env, &f.x, fx.snap);
    run_until_seen(&fx, 1);
    assert_int_equal(f.status, 200);
    assert_true(f.writes > 2);
    assert_non_null(strstr(f.out.data, "event: message_stop"));
    assert_true(fx.seen.stream);
    assert_true(fx.seen.stream_ended); /* Anthropic's message_stop, not Google's finishReason */
    assert_true(fx.seen.usage.input > 0 && fx.seen.usage.output > 0);
    assert_string_equal(fx.seen.model, "claude-sonnet-4@20250514");
    assert_string_equal(rd_hdrs_get(&f.resp_hdrs, "request-id"), fx.seen.id);
    fake_free(&f);

    /* non-streamed: usage read from the Anthropic body */
    fake_init(&f, "POST", CLAUDE_PATH ":rawPredict",
              "{\"anthropic_version\":\"vertex-2023-10-16\",\"max_tokens\":32,"
              "\"messages\":[{\"role\":\"user\",\"content\":\"quack\"}]}");
    rd_req_handle(&fx.env, &f.x, fx.snap);
    run_until_seen(&fx, 2);
    assert_int_equal(f.status, 200);
    assert_false(fx.seen.stream);
    assert_true(fx.seen.usage.input > 0 && fx.seen.usage.output > 0);
    fake_free(&f);

    /* an error the server answers itself, on a Claude route: Anthropic's shape */
    struct rd_arena a;
    rd_arena_init(&a);
    struct rd_hdrs hdrs;
    rd_hdrs_init(&hdrs, &a);
    struct rd_buf body;
    rd_buf_init(&body, 0);
    const char *ctype = NULL;
    struct rd_http_request hr = {.method = "POST", .path = CLAUDE_PATH ":rawPredict"};
    struct rd_http_error e = {.status = 413, .message = "request body too large", .client_ip = "10.0.0.1", .req = &hr};
    rd_req_server_error(&fx.env, fx.snap, &e, &hdrs, &body, &ctype);
    assert_int_equal(fx.seen.n, 3);
    assert_non_null(strstr(body.data, "\"type\":\"error\""));
    assert_non_null(strstr(body.data, "\"request_too_large\""));
    assert_string_equal(rd_hdrs_get(&hdrs, "request-id"), fx.seen.id);
    /* the same error on a Gemini route of the proxy is Google's */
    rd_buf_reset(&body);
    hr.path = "/v1/projects/duck/locations/us-east5/publishers/google/models/gemini-2.0-flash:generateContent";
    rd_req_server_error(&fx.env, fx.snap, &e, &hdrs, &body, &ctype);
    assert_non_null(strstr(body.data, "\"status\":\"UNKNOWN\""));
    assert_null(strstr(body.data, "\"type\":\"error\""));
    rd_hdrs_free(&hdrs);
    rd_arena_free(&a);
    rd_buf_free(&body);
    fx_free(&fx);
}

/* An upstream that cannot be reached, on a Claude route: Anthropic's 502. */
static void test_vertex_claude_upstream_error(void **state)
{
    (void)state;
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in sa = {.sin_family = AF_INET};
    sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    assert_int_equal(bind(fd, (struct sockaddr *)&sa, sizeof sa), 0);
    socklen_t len = sizeof sa;
    assert_int_equal(getsockname(fd, (struct sockaddr *)&sa, &len), 0);
    char url[64];
    snprintf(url, sizeof url, "http://127.0.0.1:%d", ntohs(sa.sin_port));
    close(fd);
    struct fx fx;
    fx_init(&fx, snap_for("vertex_ai", url, NULL));
    struct fake f;
    fake_init(&f, "POST", CLAUDE_PATH ":rawPredict", "{}");
    rd_req_handle(&fx.env, &f.x, fx.snap);
    run_until_seen(&fx, 1);
    assert_int_equal(f.status, 502);
    assert_non_null(strstr(f.out.data, "{\"type\":\"error\",\"error\":{\"type\":\"api_error\""));
    assert_string_equal(rd_hdrs_get(&f.resp_hdrs, "request-id"), fx.seen.id);
    fake_free(&f);
    fx_free(&fx);
}

/* Pooled request objects come back clean: a second request on a reused
 * object sees nothing of the first. */
static void test_pool_reuse_is_clean(void **state)
{
    (void)state;
    struct fx fx;
    fx_init(&fx, snap_for("openai", "emulator", NULL));
    struct fake f1, f2;
    fake_init(&f1, "POST", "/v1/chat/completions",
              "{\"model\":\"gpt-4o\",\"stream\":true,\"stream_options\":{\"include_usage\":true},\"messages\":[{\"role\":\"user\",\"content\":\"a\"}]}");
    rd_req_handle(&fx.env, &f1.x, fx.snap);
    run_until_seen(&fx, 1);
    assert_int_equal(fx.env.npool, 1);
    fake_init(&f2, "GET", "/v1/models", NULL);
    rd_req_handle(&fx.env, &f2.x, fx.snap);
    assert_int_equal(fx.env.npool, 0);
    run_until_seen(&fx, 2);
    assert_int_equal(fx.seen.kind, RD_REQ_MODELS);
    assert_string_equal(fx.seen.model, "");
    assert_false(fx.seen.stream);
    assert_false(fx.seen.stream_ended);
    assert_int_equal(fx.seen.usage.input, -1);
    assert_int_equal(f2.status, 200);
    fake_free(&f1);
    fake_free(&f2);
    fx_free(&fx);
}

/* ---- the retry audit's hooks (rd_req_fail_spec notes, rd_req_handle settles) ---- */

/* A stand-in for a failure stage: answers 429 with the Retry-After of
 * test_retry_after_s (-1: none in the spec, but one among the added
 * headers when test_added_header), or lets the request through. */
static int test_retry_after_s = -1;
static bool test_added_header, test_let_through;

static enum rd_stage_rc limit_run(struct rd_req *req, const void *state)
{
    (void)state;
    if (test_let_through)
        return RD_STAGE_NEXT;
    if (test_added_header)
        rd_hdrs_add_ref(&req->add_hdrs, "Retry-After", "3");
    struct rd_error_spec e = {.status = 429, .message = "slow down", .retry_after_s = test_retry_after_s};
    rd_req_simulate_error(req, RD_FAIL_RATE_LIMITED, &e);
    return RD_STAGE_DONE;
}

static const struct rd_stage limit_stage = {.name = "test_limit", .run = limit_run};

static struct json_object *audit_of(struct rd_failstats *fs)
{
    struct json_object *j = rd_failstats_json(fs, 1);
    struct json_object *a = json_object_get(json_object_object_get(j, "retry_audit"));
    json_object_put(j);
    return a;
}

static int64_t audit_n(struct rd_failstats *fs, const char *what)
{
    struct json_object *a = audit_of(fs);
    int64_t n = json_object_get_int64(json_object_object_get(a, what));
    json_object_put(a);
    return n;
}

static void one_request(struct fx *fx, const char *auth)
{
    struct fake f;
    fake_init(&f, "POST", "/v1/chat/completions", "{\"model\":\"gpt-4o-mini\",\"messages\":[{\"role\":\"user\",\"content\":\"hi\"}]}");
    if (auth)
        rd_hdrs_add_ref(&f.req.headers, "Authorization", auth);
    int n = fx->seen.n;
    rd_req_handle(&fx->env, &f.x, fx->snap);
    run_until_seen(fx, n + 1);
    fake_free(&f);
}

static void test_retry_audit_hooks(void **state)
{
    (void)state;
    struct fx fx;
    struct rd_proxy_snap *snap = snap_for("openai", "emulator", NULL);
    struct rd_failstats *fs = rd_failstats_new(1, 0);
    snap->failstats = rd_failstats_ref(fs);
    /* The test's stage runs before the upstream one (the last). */
    snap->pipeline.run[1] = snap->pipeline.run[snap->pipeline.n - 1];
    snap->pipeline.run[0] = (struct rd_pipeline_step){&limit_stage, NULL};
    snap->pipeline.n = 2;
    fx_init(&fx, snap);

    test_retry_after_s = 2;
    one_request(&fx, "Bearer sk-a"); /* 429, Retry-After: 2 */
    assert_int_equal(fx.seen.status_sent, 429);
    assert_int_equal(audit_n(fs, "advertised"), 1);
    one_request(&fx, "Bearer sk-b"); /* another client: its own advertisement, no retry */
    assert_int_equal(audit_n(fs, "advertised"), 2);
    assert_int_equal(audit_n(fs, "retries_total"), 0);
    one_request(&fx, "Bearer sk-a"); /* sk-a back at once: early, and told again */
    assert_int_equal(audit_n(fs, "retries_total"), 1);
    assert_int_equal(audit_n(fs, "early_retries"), 1);
    assert_true(audit_n(fs, "earliest_retry_ms_before") > 1000);

    test_let_through = true; /* a plain answer advertises nothing */
    one_request(&fx, "Bearer sk-b");
    assert_int_equal(fx.seen.status_sent, 200);
    assert_int_equal(audit_n(fs, "early_retries"), 2);
    one_request(&fx, "Bearer sk-b"); /* settled: no retry any more */
    assert_int_equal(audit_n(fs, "retries_total"), 2);

    test_let_through = false;
    test_retry_after_s = 0; /* Retry-After: 0: coming back at once honours it */
    one_request(&fx, NULL);
    test_let_through = true;
    one_request(&fx, NULL);
    assert_int_equal(audit_n(fs, "honoured"), 1);

    /* Retry-After from the stage's added headers (a configured rate-limit
     * response) counts as well; no Retry-After at all notes nothing. */
    test_let_through = false;
    test_retry_after_s = -1;
    test_added_header = true;
    one_request(&fx, "Bearer sk-c");
    assert_int_equal(audit_n(fs, "advertised"), 5);
    test_added_header = false;
    one_request(&fx, "Bearer sk-d");
    assert_int_equal(audit_n(fs, "advertised"), 5);
    test_let_through = true;
    one_request(&fx, "Bearer sk-c");
    assert_int_equal(audit_n(fs, "early_retries"), 3);

    struct json_object *j = rd_failstats_json(fs, 1);
    assert_int_equal(json_object_get_int64(json_object_object_get(json_object_object_get(j, "failures"), "rate_limited")), 6);
    json_object_put(j);
    test_let_through = false;
    fx_free(&fx);
    rd_failstats_unref(fs);
}

/* ---- shaped streams (the event seam, proxy/shape.h) ---- */

#define STORY "{\"model\":\"gpt-4o\",\"stream\":true,\"messages\":[{\"role\":\"user\",\"content\":\"Tell me a story\"}]}"

/* SSE events in out: blank-line terminated blocks. */
static int count_events(const struct rd_buf *out)
{
    int n = 0;
    for (size_t i = 0; i + 1 < out->len; i++)
        if (out->data[i] == '\n' && out->data[i + 1] == '\n')
            n++;
    return n;
}

/* The i-th event (0-based) of out into ev (NUL-terminated). */
static void nth_event(const struct rd_buf *out, int i, char *ev, size_t cap)
{
    size_t start = 0;
    for (int k = 0; k < i; k++) {
        const char *e = memmem(out->data + start, out->len - start, "\n\n", 2);
        assert_non_null(e);
        start = (size_t)(e - out->data) + 2;
    }
    const char *e = memmem(out->data + start, out->len - start, "\n\n", 2);
    assert_non_null(e);
    size_t n = (size_t)(e - out->data) + 2 - start;
    assert_true(n < cap);
    memcpy(ev, out->data + start, n);
    ev[n] = '\0';
}

/* The unshaped stream of STORY: the reference the faults are measured on. */
static int baseline_events(void)
{
    struct fx fx;
    fx_init(&fx, snap_for("openai", "emulator", NULL));
    struct fake f;
    fake_init(&f, "POST", "/v1/chat/completions", STORY);
    rd_req_handle(&fx.env, &f.x, fx.snap);
    run_until_seen(&fx, 1);
    int n = count_events(&f.out);
    assert_true(n > 4);
    fake_free(&f);
    fx_free(&fx);
    return n;
}

static void run_story(struct fx *fx, struct fake *f, const char *provider, const char *path, const char *body,
                      const char *config)
{
    fx_init(fx, snap_for(provider, "emulator", config));
    fake_init(f, "POST", path, body);
    rd_req_handle(&fx->env, &f->x, fx->snap);
    run_until_seen(fx, 1);
}

static void test_shaped_cut(void **state)
{
    (void)state;
    struct fx fx;
    struct fake f;
    run_story(&fx, &f, "openai", "/v1/chat/completions", STORY,
              "{\"stream_faults\":{\"cut_rate\":1,\"cut_after_events\":3}}");
    assert_int_equal(f.status, 200);
    assert_int_equal(f.content_length, -1);
    assert_string_equal(rd_hdrs_get(&f.resp_hdrs, "X-Rubberduck-Failure"), "stream_cut");
    assert_int_equal(count_events(&f.out), 3);
    assert_null(memmem(f.out.data, f.out.len, "[DONE]", 6));
    assert_int_equal(f.aborts, 1); /* the connection is cut, the response never ends */
    assert_int_equal(f.finishes, 0);
    assert_false(fx.seen.stream_ended);
    assert_int_equal(fx.seen.bytes_out, f.out.len);
    fake_free(&f);
    fx_free(&fx);
}

/* A cut after more events than the stream has still cuts its end. */
static void test_shaped_cut_short_stream(void **state)
{
    (void)state;
    int n = baseline_events();
    struct fx fx;
    struct fake f;
    run_story(&fx, &f, "openai", "/v1/chat/completions", STORY,
              "{\"stream_faults\":{\"cut_rate\":1,\"cut_after_events\":100000}}");
    assert_int_equal(count_events(&f.out), n - 1);
    assert_null(memmem(f.out.data, f.out.len, "[DONE]", 6));
    assert_int_equal(f.aborts, 1);
    fake_free(&f);
    fx_free(&fx);
}

static void test_shaped_error_anthropic(void **state)
{
    (void)state;
    struct fx fx;
    struct fake f;
    run_story(&fx, &f, "anthropic", "/v1/messages",
              "{\"model\":\"claude-3-5-sonnet-latest\",\"max_tokens\":50,\"stream\":true,"
              "\"messages\":[{\"role\":\"user\",\"content\":\"Tell me a story\"}]}",
              "{\"stream_faults\":{\"error_rate\":1,\"error_after_events\":2,\"error_status\":529}}");
    assert_string_equal(rd_hdrs_get(&f.resp_hdrs, "X-Rubberduck-Failure"), "stream_error");
    assert_int_equal(count_events(&f.out), 3);
    char ev[1024];
    nth_event(&f.out, 2, ev, sizeof ev);
    assert_true(strncmp(ev, "event: error\ndata: {\"type\":\"error\",", 35) == 0);
    assert_non_null(strstr(ev, "\"overloaded_error\""));
    assert_int_equal(f.finishes, 1); /* the error, then a proper end */
    assert_int_equal(f.aborts, 0);
    assert_null(memmem(f.out.data, f.out.len, "message_stop", 12));
    fake_free(&f);
    fx_free(&fx);
}

static void test_shaped_duplicate_and_malformed(void **state)
{
    (void)state;
    int n = baseline_events();
    struct fx fx;
    struct fake f;
    run_story(&fx, &f, "openai", "/v1/chat/completions", STORY,
              "{\"stream_faults\":{\"duplicate_rate\":1,\"duplicate_after_events\":2}}");
    assert_string_equal(rd_hdrs_get(&f.resp_hdrs, "X-Rubberduck-Failure"), "stream_duplicate");
    assert_int_equal(count_events(&f.out), n + 1);
    char a[4096], b[4096], c[4096];
    nth_event(&f.out, 2, a, sizeof a);
    nth_event(&f.out, 3, b, sizeof b);
    nth_event(&f.out, 1, c, sizeof c);
    assert_string_equal(a, b);
    assert_string_not_equal(a, c);
    assert_int_equal(f.finishes, 1);
    fake_free(&f);
    fx_free(&fx);

    run_story(&fx, &f, "openai", "/v1/chat/completions", STORY,
              "{\"stream_faults\":{\"malformed_rate\":1,\"malformed_after_events\":1}}");
    assert_string_equal(rd_hdrs_get(&f.resp_hdrs, "X-Rubberduck-Failure"), "stream_malformed");
    assert_int_equal(count_events(&f.out), n);
    nth_event(&f.out, 1, a, sizeof a);
    assert_true(strncmp(a, "data: {", 7) == 0);
    struct json_object *o = NULL;
    assert_int_not_equal(rd_json_parse(a + 6, strlen(a) - 8, 65536, &o, NULL), 0); /* broken JSON */
    nth_event(&f.out, 2, b, sizeof b);
    assert_int_equal(rd_json_parse(b + 6, strlen(b) - 8, 65536, &o, NULL), 0); /* the rest intact */
    json_object_put(o);
    assert_true(memmem(f.out.data, f.out.len, "[DONE]", 6) != NULL);
    fake_free(&f);
    fx_free(&fx);
}

/* A stall holds the stream with the source paused: nothing more is
 * written until stall_ms passed. */
static void test_shaped_stall(void **state)
{
    (void)state;
    struct fx fx;
    struct fake f;
    fx_init(&fx, snap_for("openai", "emulator", "{\"stream_faults\":{\"stall_rate\":1,\"stall_after_events\":2,"
                                                "\"stall_ms\":200}}"));
    fake_init(&f, "POST", "/v1/chat/completions", STORY);
    uint64_t t0 = uv_now(&fx.loop);
    rd_req_handle(&fx.env, &f.x, fx.snap);
    while (count_events(&f.out) < 2)
        uv_run(&fx.loop, UV_RUN_ONCE);
    for (int i = 0; i < 20; i++)
        uv_run(&fx.loop, UV_RUN_NOWAIT);
    assert_int_equal(count_events(&f.out), 2);
    run_until_seen(&fx, 1);
    uv_update_time(&fx.loop);
    assert_true(uv_now(&fx.loop) - t0 >= 200);
    assert_string_equal(rd_hdrs_get(&f.resp_hdrs, "X-Rubberduck-Failure"), "stream_stall");
    assert_true(memmem(f.out.data, f.out.len, "[DONE]", 6) != NULL);
    assert_int_equal(f.finishes, 1);
    fake_free(&f);
    fx_free(&fx);
}

/* The client goes away while an event waits: everything is freed at once
 * (the loop closes with no handle left: fx_free). */
static void test_shaped_gone_during_stall(void **state)
{
    (void)state;
    struct fx fx;
    struct fake f;
    fx_init(&fx, snap_for("openai", "emulator", "{\"stream_faults\":{\"stall_rate\":1,\"stall_after_events\":1,"
                                                "\"stall_ms\":60000}}"));
    fake_init(&f, "POST", "/v1/chat/completions", STORY);
    rd_req_handle(&fx.env, &f.x, fx.snap);
    while (count_events(&f.out) < 1)
        uv_run(&fx.loop, UV_RUN_ONCE);
    for (int i = 0; i < 10; i++)
        uv_run(&fx.loop, UV_RUN_NOWAIT);
    assert_int_equal(fx.seen.n, 0);
    f.x.gone = true;
    f.x.on_gone(f.x.cb_ud);
    assert_int_equal(fx.seen.n, 1);
    assert_int_equal(fx.seen.err, RD_EABORTED);
    assert_int_equal(f.aborts, 1);
    fake_free(&f);
    fx_free(&fx);
}

/* stream_timing: the first event ttft_ms after the head, then the rate;
 * a slow client holds the shaped stream too (backpressure). */
static void test_shaped_timing_and_backpressure(void **state)
{
    (void)state;
    int n = baseline_events();
    struct fx fx;
    struct fake f;
    fx_init(&fx, snap_for("openai", "emulator", "{\"stream_timing\":{\"ttft_ms\":100,\"tokens_per_second\":100}}"));
    fake_init(&f, "POST", "/v1/chat/completions", STORY);
    uint64_t t0 = uv_now(&fx.loop);
    rd_req_handle(&fx.env, &f.x, fx.snap);
    while (f.begins == 0)
        uv_run(&fx.loop, UV_RUN_ONCE);
    uv_run(&fx.loop, UV_RUN_NOWAIT);
    assert_int_equal(count_events(&f.out), 0); /* ttft */
    while (count_events(&f.out) < 2)
        uv_run(&fx.loop, UV_RUN_ONCE);
    f.pending = RD_HTTP_OUT_HIGH + 1;
    int held = count_events(&f.out);
    uint64_t t1 = uv_now(&fx.loop);
    while (uv_now(&fx.loop) - t1 < 100)
        uv_run(&fx.loop, UV_RUN_ONCE);
    assert_true(count_events(&f.out) <= held + 1); /* at most the event already released */
    f.pending = 0;
    f.x.on_drain(f.x.cb_ud);
    run_until_seen(&fx, 1);
    assert_int_equal(count_events(&f.out), n);
    uv_update_time(&fx.loop);
    /* 100 ms to the first, then n - 1 more at 10 ms, plus the 100 ms held */
    assert_true(uv_now(&fx.loop) - t0 >= 100 + (uint64_t)(n - 1) * 10);
    assert_int_equal(f.finishes, 1);
    fake_free(&f);
    fx_free(&fx);
}

int main(int argc, char **argv)
{
    if (argc > 1)
        cmocka_set_test_filter(argv[1]);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_emulated_chat),
        cmocka_unit_test(test_emulated_stream_with_usage),
        cmocka_unit_test(test_backpressure_pauses_source),
        cmocka_unit_test(test_client_gone_mid_stream),
        cmocka_unit_test(test_upstream_deadline),
        cmocka_unit_test(test_upstream_refused_generic_502),
        cmocka_unit_test(test_server_error_is_a_request),
        cmocka_unit_test(test_pool_reuse_is_clean),
        cmocka_unit_test(test_retry_audit_hooks),
        cmocka_unit_test(test_vertex_claude_speaks_anthropic),
        cmocka_unit_test(test_vertex_claude_upstream_error),
        cmocka_unit_test(test_shaped_cut),
        cmocka_unit_test(test_shaped_cut_short_stream),
        cmocka_unit_test(test_shaped_error_anthropic),
        cmocka_unit_test(test_shaped_duplicate_and_malformed),
        cmocka_unit_test(test_shaped_stall),
        cmocka_unit_test(test_shaped_gone_during_stall),
        cmocka_unit_test(test_shaped_timing_and_backpressure),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
