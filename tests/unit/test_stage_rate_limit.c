/* Tests for the rate_limit stage (src/proxy/stages/rate_limit.c) through the
 * request object: requests on a fake exchange, answered by the emulator, go
 * through the real pipeline of a snapshot built from a configuration
 * document. What is checked is what a client sees (status, headers, body)
 * and the windows behind it (keys, tokens charged after the response,
 * windows kept across an unchanged configuration). The limiter's arithmetic
 * itself is tests/unit/test_ratelimit.c's, with an injected clock; these
 * requests run within milliseconds of each other, far from any window edge. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>
#include <uv.h>

#include "http/server.h"
#include "proxy/pipeline.h"
#include "proxy/req.h"
#include "proxy/snapshot.h"
#include "upstream/upstream.h"
#include "util/err.h"
#include "util/json.h"

/* ---- fake exchange (records the response) ---- */

struct fake {
    struct rd_http_exch x;
    struct rd_http_request req;
    int status;
    struct rd_buf out;
    struct rd_arena harena;
    struct rd_hdrs resp_hdrs;
};

static struct fake *fake_of(struct rd_http_exch *x)
{
    return (struct fake *)((char *)x - offsetof(struct fake, x));
}

static int f_begin(struct rd_http_exch *x, int status, const struct rd_hdrs *hdrs, int64_t content_length)
{
    (void)content_length;
    struct fake *f = fake_of(x);
    f->status = status;
    for (size_t i = 0; hdrs && i < hdrs->n; i++)
        rd_hdrs_add(&f->resp_hdrs, hdrs->v[i].name, hdrs->v[i].name_len, hdrs->v[i].value, hdrs->v[i].value_len);
    return 0;
}

static int f_write(struct rd_http_exch *x, const char *p, size_t n)
{
    return rd_buf_append(&fake_of(x)->out, p, n);
}

static void f_finish(struct rd_http_exch *x)
{
    (void)x;
}

static void f_abort(struct rd_http_exch *x)
{
    (void)x;
}

static size_t f_pending(const struct rd_http_exch *x)
{
    (void)x;
    return 0;
}

static const struct rd_http_exch_ops fake_ops = {
    .begin = f_begin, .write = f_write, .finish = f_finish, .abort = f_abort, .pending = f_pending};

/* hdr: "Name: value" or NULL. */
static void fake_init(struct fake *f, const char *path, const char *body, const char *ip, const char *hdr)
{
    memset(f, 0, sizeof *f);
    f->x.ops = &fake_ops;
    f->x.req = &f->req;
    snprintf(f->x.client_ip, sizeof f->x.client_ip, "%s", ip);
    rd_arena_init(&f->req.arena);
    rd_hdrs_init(&f->req.headers, &f->req.arena);
    rd_hdrs_add(&f->req.headers, "Content-Type", 12, "application/json", 16);
    if (hdr) {
        const char *colon = strchr(hdr, ':');
        rd_hdrs_add(&f->req.headers, hdr, (size_t)(colon - hdr), colon + 2, strlen(colon + 2));
    }
    f->req.method = "POST";
    f->req.path = path;
    f->req.query = "";
    f->req.target = path;
    f->req.version_major = 1;
    f->req.version_minor = 1;
    f->req.keep_alive = true;
    f->req.content_length = -1;
    rd_buf_init(&f->req.body, 0);
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

/* ---- fixture: one loop, the emulator as source ---- */

struct fx {
    uv_loop_t loop;
    struct rd_upstream_ctx *up;
    struct rd_req_env env;
    int seen;
    struct rd_usage usage; /* of the last request released */
};

static void observe(struct rd_req *req, void *ud)
{
    struct fx *fx = ud;
    fx->seen++;
    fx->usage = *rd_req_usage(req);
}

static struct rd_proxy_snap *snap_for(const char *provider, const char *config)
{
    struct rd_proxy_rec rec = {
        .id = 1,
        .name = (char *)"t",
        .provider = (char *)provider,
        .port = 1,
        .bind = (char *)"127.0.0.1",
        .upstream_url = (char *)"emulator",
        .config_json = (char *)config,
    };
    const char *why = NULL;
    struct rd_proxy_snap *s = rd_proxy_snap_new(&rec, 10000, &why);
    if (s == NULL)
        fail_msg("snapshot: %s", why);
    return s;
}

static void fx_init(struct fx *fx)
{
    memset(fx, 0, sizeof *fx);
    uv_loop_init(&fx->loop);
    fx->up = rd_upstream_ctx_new(&fx->loop);
    rd_req_env_init(&fx->env, &fx->loop, fx->up);
    fx->env.observe = observe;
    fx->env.observe_ud = fx;
}

static void fx_free(struct fx *fx)
{
    assert_int_equal(fx->env.live, 0);
    rd_req_env_close(&fx->env);
    rd_upstream_ctx_free(fx->up);
    uv_run(&fx->loop, UV_RUN_DEFAULT);
    assert_int_equal(uv_loop_close(&fx->loop), 0);
}

#define CHAT "/v1/chat/completions"
#define BODY "{\"model\":\"gpt-4o-mini\",\"messages\":[{\"role\":\"user\",\"content\":\"hi\"}]}"

/* One request to its end; the response stays in *f (fake_free it). */
static void send_req(struct fx *fx, struct rd_proxy_snap *snap, struct fake *f, const char *path, const char *body,
                     const char *ip, const char *hdr)
{
    fake_init(f, path, body, ip, hdr);
    int want = fx->seen + 1;
    rd_req_handle(&fx->env, &f->x, snap);
    while (fx->seen < want)
        uv_run(&fx->loop, UV_RUN_ONCE);
}

/* The status of one request; its response is dropped. */
static int status_of(struct fx *fx, struct rd_proxy_snap *snap, const char *ip, const char *hdr)
{
    struct fake f;
    send_req(fx, snap, &f, CHAT, BODY, ip, hdr);
    int status = f.status;
    fake_free(&f);
    return status;
}

static long hdr_long(const struct fake *f, const char *name)
{
    const char *v = rd_hdrs_get(&f->resp_hdrs, name);
    if (v == NULL)
        fail_msg("no %s header", name);
    return strtol(v, NULL, 10);
}

/* ---- tests ---- */

/* Exactly the ceiling is admitted, each response counts down
 * X-RateLimit-Remaining, and the next gets OpenAI's native 429 with an
 * exact Retry-After. */
static void test_ceiling_then_native_429(void **state)
{
    (void)state;
    struct fx fx;
    fx_init(&fx);
    struct rd_proxy_snap *snap = snap_for("openai", "{\"rate_limiting\":{\"requests_per_minute\":2,\"burst_allowance\":1}}");
    for (long i = 0; i < 3; i++) {
        struct fake f;
        send_req(&fx, snap, &f, CHAT, BODY, "127.0.0.1", NULL);
        assert_int_equal(f.status, 200);
        assert_int_equal(hdr_long(&f, "X-RateLimit-Limit"), 3);
        assert_int_equal(hdr_long(&f, "X-RateLimit-Remaining"), 2 - i);
        assert_int_equal(hdr_long(&f, "X-RateLimit-Reset"), 60);
        assert_null(rd_hdrs_get(&f.resp_hdrs, "Retry-After"));
        assert_null(rd_hdrs_get(&f.resp_hdrs, "X-RateLimit-Limit-Tokens"));
        fake_free(&f);
    }
    struct fake f;
    send_req(&fx, snap, &f, CHAT, BODY, "127.0.0.1", NULL);
    assert_int_equal(f.status, 429);
    assert_int_equal(hdr_long(&f, "Retry-After"), 60);
    assert_int_equal(hdr_long(&f, "X-RateLimit-Remaining"), 0);
    assert_string_equal(rd_hdrs_get(&f.resp_hdrs, "X-Rubberduck-Failure"), "rate_limited");
    assert_string_equal(rd_hdrs_get(&f.resp_hdrs, "Content-Type"), "application/json");
    struct json_object *body = NULL;
    assert_int_equal(rd_json_parse(f.out.data, f.out.len, 65536, &body, NULL), 0);
    struct json_object *err = rd_json_get(body, "error");
    assert_non_null(err);
    assert_string_equal(rd_json_get_str(err, "code"), "rate_limit_exceeded");
    assert_non_null(strstr(rd_json_get_str(err, "message"), "limit 3 (2 per minute plus a burst of 1)"));
    json_object_put(body);
    fake_free(&f);
    rd_proxy_snap_unref(snap);
    fx_free(&fx);
}

/* Anthropic's proxy refuses in Anthropic's shape. */
static void test_anthropic_native_429(void **state)
{
    (void)state;
    struct fx fx;
    fx_init(&fx);
    struct rd_proxy_snap *snap = snap_for("anthropic", "{\"rate_limiting\":{\"requests_per_minute\":1}}");
    static const char body[] =
        "{\"model\":\"claude-sonnet-4-5\",\"max_tokens\":16,\"messages\":[{\"role\":\"user\",\"content\":\"hi\"}]}";
    struct fake f;
    send_req(&fx, snap, &f, "/v1/messages", body, "127.0.0.1", NULL);
    assert_int_equal(f.status, 200);
    fake_free(&f);
    send_req(&fx, snap, &f, "/v1/messages", body, "127.0.0.1", NULL);
    assert_int_equal(f.status, 429);
    assert_non_null(strstr(f.out.data, "{\"type\":\"error\",\"error\":{\"type\":\"rate_limit_error\""));
    assert_non_null(rd_hdrs_get(&f.resp_hdrs, "request-id"));
    assert_int_equal(hdr_long(&f, "Retry-After"), 60);
    fake_free(&f);
    rd_proxy_snap_unref(snap);
    fx_free(&fx);
}

/* The configured status, headers and body: a configured header replaces the
 * computed one of the same name (here a pinned Retry-After and
 * X-RateLimit-Remaining), the body is sent as is with application/json. */
static void test_configured_response(void **state)
{
    (void)state;
    struct fx fx;
    fx_init(&fx);
    struct rd_proxy_snap *snap = snap_for(
        "openai", "{\"rate_limiting\":{\"requests_per_minute\":1,\"rate_limit_response\":{\"status_code\":503,"
                  "\"headers\":{\"Retry-After\":\"7\",\"X-RateLimit-Remaining\":\"none\",\"X-Why\":\"test\"},"
                  "\"body\":{\"slow\":[\"down\"]}}}}");
    assert_int_equal(status_of(&fx, snap, "127.0.0.1", NULL), 200);
    struct fake f;
    send_req(&fx, snap, &f, CHAT, BODY, "127.0.0.1", NULL);
    assert_int_equal(f.status, 503);
    assert_int_equal(rd_hdrs_count(&f.resp_hdrs, "Retry-After"), 1);
    assert_string_equal(rd_hdrs_get(&f.resp_hdrs, "Retry-After"), "7");
    assert_int_equal(rd_hdrs_count(&f.resp_hdrs, "X-RateLimit-Remaining"), 1);
    assert_string_equal(rd_hdrs_get(&f.resp_hdrs, "X-RateLimit-Remaining"), "none");
    assert_string_equal(rd_hdrs_get(&f.resp_hdrs, "X-Why"), "test");
    assert_int_equal(hdr_long(&f, "X-RateLimit-Limit"), 1);
    assert_int_equal(rd_hdrs_count(&f.resp_hdrs, "Content-Type"), 1);
    assert_string_equal(rd_hdrs_get(&f.resp_hdrs, "Content-Type"), "application/json");
    assert_non_null(rd_hdrs_get(&f.resp_hdrs, "x-request-id")); /* the native headers stay */
    assert_int_equal(f.out.len, strlen("{\"slow\":[\"down\"]}"));
    assert_memory_equal(f.out.data, "{\"slow\":[\"down\"]}", f.out.len);
    fake_free(&f);
    rd_proxy_snap_unref(snap);

    /* a string body is sent as it is, unquoted */
    snap = snap_for("openai", "{\"rate_limiting\":{\"requests_per_minute\":1,\"rate_limit_response\":{\"body\":\"no\"}}}");
    assert_int_equal(status_of(&fx, snap, "127.0.0.1", NULL), 200);
    send_req(&fx, snap, &f, CHAT, BODY, "127.0.0.1", NULL);
    assert_int_equal(f.status, 429);
    assert_int_equal(f.out.len, 2);
    assert_memory_equal(f.out.data, "no", 2);
    assert_int_equal(hdr_long(&f, "Retry-After"), 60);
    fake_free(&f);
    rd_proxy_snap_unref(snap);
    fx_free(&fx);
}

/* key "ip": one window per client address; key "header:x-api-key": one per
 * value, and one for requests without it; key "proxy": one for all. */
static void test_keys(void **state)
{
    (void)state;
    struct fx fx;
    fx_init(&fx);
    struct rd_proxy_snap *snap = snap_for("openai", "{\"rate_limiting\":{\"requests_per_minute\":1,\"key\":\"ip\"}}");
    assert_int_equal(status_of(&fx, snap, "127.0.0.1", NULL), 200);
    assert_int_equal(status_of(&fx, snap, "127.0.0.1", NULL), 429);
    assert_int_equal(status_of(&fx, snap, "127.0.0.2", NULL), 200);
    assert_int_equal(status_of(&fx, snap, "::1", NULL), 200);
    assert_int_equal(status_of(&fx, snap, "127.0.0.2", NULL), 429);
    rd_proxy_snap_unref(snap);

    snap = snap_for("openai", "{\"rate_limiting\":{\"requests_per_minute\":1,\"key\":\"header:X-Api-Key\"}}");
    assert_int_equal(status_of(&fx, snap, "127.0.0.1", "x-api-key: alpha"), 200);
    assert_int_equal(status_of(&fx, snap, "127.0.0.2", "X-API-KEY: alpha"), 429); /* same value, other address */
    assert_int_equal(status_of(&fx, snap, "127.0.0.1", "x-api-key: beta"), 200);
    assert_int_equal(status_of(&fx, snap, "127.0.0.1", NULL), 200);
    assert_int_equal(status_of(&fx, snap, "127.0.0.2", NULL), 429); /* the "missing" key */
    assert_int_equal(status_of(&fx, snap, "127.0.0.1", "x-api-key: "), 200); /* empty is a value */
    rd_proxy_snap_unref(snap);

    snap = snap_for("openai", "{\"rate_limiting\":{\"requests_per_minute\":1,\"key\":\"proxy\"}}");
    assert_int_equal(status_of(&fx, snap, "127.0.0.1", "x-api-key: alpha"), 200);
    assert_int_equal(status_of(&fx, snap, "127.0.0.2", "x-api-key: beta"), 429);
    rd_proxy_snap_unref(snap);
    fx_free(&fx);
}

/* tokens_per_minute: max_tokens (the dialect's field) is reserved on
 * admission, the usage charged when the request ends; a request whose
 * max_tokens can never fit is refused without Retry-After. */
static void test_tokens(void **state)
{
    (void)state;
    struct fx fx;
    fx_init(&fx);
    struct rd_proxy_snap *snap = snap_for(
        "openai", "{\"rate_limiting\":{\"requests_per_minute\":100,\"tokens_per_minute\":100,\"key\":\"proxy\"}}");
    char body[256];
#define WITH_CAP(field, n)                                                                                             \
    (snprintf(body, sizeof body,                                                                                       \
              "{\"model\":\"gpt-4o-mini\",\"" field "\":%ld,\"messages\":[{\"role\":\"user\",\"content\":\"hi\"}]}",       \
              (long)(n)),                                                                                              \
     body)
    struct fake f;
    send_req(&fx, snap, &f, CHAT, WITH_CAP("max_completion_tokens", 60), "127.0.0.1", NULL);
    assert_int_equal(f.status, 200);
    assert_int_equal(hdr_long(&f, "X-RateLimit-Limit-Tokens"), 100);
    assert_int_equal(hdr_long(&f, "X-RateLimit-Remaining-Tokens"), 40); /* 60 reserved */
    fake_free(&f);
    /* the emulator's answer reports its usage: that, not the 60 reserved,
     * is what the request cost */
    long used = (long)(fx.usage.input + fx.usage.output);
    assert_true(used > 5 && used < 90);
    long left = 100 - used; /* plus at most a token or two refilled since */
    send_req(&fx, snap, &f, CHAT, WITH_CAP("max_tokens", left + 5), "127.0.0.1", NULL);
    assert_int_equal(f.status, 429);
    /* 5 tokens (less what refilled) at 100 per minute: 3 s, rounded up */
    long ra = hdr_long(&f, "Retry-After");
    assert_true(ra >= 2 && ra <= 3);
    assert_non_null(strstr(f.out.data, "Rate limit reached for tokens per minute"));
    assert_string_equal(rd_hdrs_get(&f.resp_hdrs, "X-Rubberduck-Failure"), "rate_limited");
    /* the refused request gave its request slot back: 100 - 1 */
    assert_int_equal(hdr_long(&f, "X-RateLimit-Remaining"), 99);
    fake_free(&f);
    send_req(&fx, snap, &f, CHAT, WITH_CAP("max_output_tokens", left - 1), "127.0.0.1", NULL);
    assert_int_equal(f.status, 200);
    fake_free(&f);
    /* a cap above the whole bucket can never be admitted: no Retry-After */
    send_req(&fx, snap, &f, CHAT, WITH_CAP("max_tokens", 101), "127.0.0.1", NULL);
    assert_int_equal(f.status, 429);
    assert_null(rd_hdrs_get(&f.resp_hdrs, "Retry-After"));
    assert_non_null(strstr(f.out.data, "Request too large"));
    fake_free(&f);
    rd_proxy_snap_unref(snap);

    /* without a cap a request reserves 1 token; Anthropic's field is max_tokens */
    snap = snap_for("anthropic", "{\"rate_limiting\":{\"requests_per_minute\":10,\"tokens_per_minute\":1000}}");
    send_req(&fx, snap, &f, "/v1/messages", "{\"model\":\"claude-sonnet-4-5\",\"messages\":[]}", "127.0.0.1", NULL);
    assert_int_equal(hdr_long(&f, "X-RateLimit-Remaining-Tokens"), 999);
    fake_free(&f);
    send_req(&fx, snap, &f, "/v1/messages", WITH_CAP("max_tokens", 1000), "127.0.0.2", NULL);
    assert_int_equal(f.status, 200);
    assert_int_equal(hdr_long(&f, "X-RateLimit-Remaining-Tokens"), 0);
    fake_free(&f);
    send_req(&fx, snap, &f, "/v1/messages", WITH_CAP("max_tokens", 1000), "127.0.0.2", NULL);
    assert_int_equal(f.status, 429);
    assert_non_null(strstr(f.out.data, "\"rate_limit_error\""));
    fake_free(&f);
#undef WITH_CAP
    rd_proxy_snap_unref(snap);
    fx_free(&fx);
}

/* A new configuration with the same limiter settings keeps the windows
 * (rd_proxy_rt_swap -> inherit); one that changes them starts afresh. */
static void test_windows_survive_unchanged_config(void **state)
{
    (void)state;
    struct fx fx;
    fx_init(&fx);
    struct rd_proxy_rt *rt = rd_proxy_rt_new(snap_for("openai", "{\"rate_limiting\":{\"requests_per_minute\":1}}"));
    struct rd_proxy_snap *s = rd_proxy_rt_acquire(rt);
    assert_int_equal(status_of(&fx, s, "127.0.0.1", NULL), 200);
    assert_int_equal(status_of(&fx, s, "127.0.0.1", NULL), 429);
    rd_proxy_snap_unref(s);
    /* other blocks and the response change: same windows */
    rd_proxy_rt_swap(rt, snap_for("openai", "{\"emulator\":{\"seed\":7},\"rate_limiting\":{\"requests_per_minute\":1,"
                                            "\"key\":\"proxy\",\"rate_limit_response\":{\"status_code\":503}}}"));
    s = rd_proxy_rt_acquire(rt);
    assert_int_equal(status_of(&fx, s, "127.0.0.1", NULL), 503);
    rd_proxy_snap_unref(s);
    /* the limits change: fresh windows */
    rd_proxy_rt_swap(rt, snap_for("openai", "{\"rate_limiting\":{\"requests_per_minute\":2}}"));
    s = rd_proxy_rt_acquire(rt);
    assert_int_equal(status_of(&fx, s, "127.0.0.1", NULL), 200);
    assert_int_equal(status_of(&fx, s, "127.0.0.1", NULL), 200);
    assert_int_equal(status_of(&fx, s, "127.0.0.1", NULL), 429);
    rd_proxy_snap_unref(s);
    /* removed, then back: fresh too (nothing to inherit from) */
    rd_proxy_rt_swap(rt, snap_for("openai", "{}"));
    s = rd_proxy_rt_acquire(rt);
    struct fake f;
    send_req(&fx, s, &f, CHAT, BODY, "127.0.0.1", NULL);
    assert_int_equal(f.status, 200);
    assert_null(rd_hdrs_get(&f.resp_hdrs, "X-RateLimit-Limit")); /* not a limited proxy any more */
    fake_free(&f);
    rd_proxy_snap_unref(s);
    rd_proxy_rt_swap(rt, snap_for("openai", "{\"rate_limiting\":{\"requests_per_minute\":2}}"));
    s = rd_proxy_rt_acquire(rt);
    assert_int_equal(status_of(&fx, s, "127.0.0.1", NULL), 200);
    rd_proxy_snap_unref(s);
    rd_proxy_rt_unref(rt);
    fx_free(&fx);
}

/* enabled: false (or no block) compiles to nothing: not in the run list. */
static void test_disabled(void **state)
{
    (void)state;
    struct rd_proxy_snap *s = snap_for("openai", "{\"rate_limiting\":{\"enabled\":false,\"requests_per_minute\":1}}");
    assert_null(s->pipeline.state[RD_STAGE_RATE_LIMIT]);
    assert_false(s->pipeline.active);
    rd_proxy_snap_unref(s);
    s = snap_for("openai", "{\"rate_limiting\":{\"requests_per_minute\":1}}");
    assert_non_null(s->pipeline.state[RD_STAGE_RATE_LIMIT]);
    assert_string_equal(s->pipeline.run[0].stage->name, "rate_limit");
    rd_proxy_snap_unref(s);
    /* middleware_pipeline without rate_limiting drops it */
    s = snap_for("openai",
                 "{\"rate_limiting\":{\"requests_per_minute\":1},\"middleware_pipeline\":[\"provider_forwarding\"]}");
    assert_null(s->pipeline.state[RD_STAGE_RATE_LIMIT]);
    rd_proxy_snap_unref(s);
}

int main(int argc, char **argv)
{
    if (argc > 1)
        cmocka_set_test_filter(argv[1]);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_ceiling_then_native_429),
        cmocka_unit_test(test_anthropic_native_429),
        cmocka_unit_test(test_configured_response),
        cmocka_unit_test(test_keys),
        cmocka_unit_test(test_tokens),
        cmocka_unit_test(test_windows_survive_unchanged_config),
        cmocka_unit_test(test_disabled),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
