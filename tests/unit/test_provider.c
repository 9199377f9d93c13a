/* Tests for src/providers/provider.c: route matching, the model a request is
 * accounted to, the upstream URL, the native error a client's SDK parses and
 * the token usage read from responses and streams, through the real openai
 * and deepseek providers (and small local route tables where a pattern is
 * what is under test). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "http/headers.h"
#include "providers/provider.h"
#include "util/arena.h"
#include "util/buf.h"
#include "util/err.h"
#include "util/json.h"

static const struct rd_provider *openai(void)
{
    const struct rd_provider *p = rd_provider_find("openai");
    assert_non_null(p);
    return p;
}

static const struct rd_provider *deepseek(void)
{
    const struct rd_provider *p = rd_provider_find("deepseek");
    assert_non_null(p);
    return p;
}

static void assert_cap(const struct rd_route_match *m, unsigned i, const char *want)
{
    assert_true(i < m->ncap);
    if (m->cap[i].n != strlen(want) || memcmp(m->cap[i].p, want, m->cap[i].n) != 0) {
        print_error("capture %u: got \"%.*s\", wanted \"%s\"\n", i, (int)m->cap[i].n, m->cap[i].p, want);
        fail();
    }
}

/* ---- routes ---- */

static void test_registry(void **state)
{
    (void)state;
    assert_string_equal(openai()->name, "openai");
    assert_string_equal(deepseek()->name, "deepseek");
    assert_null(rd_provider_find("nope"));
    assert_null(rd_provider_find(""));
    size_t n = 0;
    const struct rd_provider *const *all = rd_provider_all(&n);
    assert_true(n >= 2);
    for (size_t i = 0; i < n; i++)
        assert_ptr_equal(rd_provider_find(all[i]->name), all[i]);
}

static void test_pattern_star(void **state)
{
    (void)state;
    struct rd_route_match m;
    memset(&m, 0, sizeof m);
    assert_true(rd_route_pattern_match("/v1/models/*", "/v1/models/gpt-4o", &m));
    assert_int_equal(m.ncap, 1);
    assert_cap(&m, 0, "gpt-4o");
    /* fine-tuned model ids contain ':' and '.', not '/' */
    assert_true(rd_route_pattern_match("/v1/models/*", "/v1/models/ft:gpt-4o-mini:acme.org:x:9z", &m));
    assert_cap(&m, 0, "ft:gpt-4o-mini:acme.org:x:9z");
    /* '*' never crosses a '/' and never matches nothing */
    assert_false(rd_route_pattern_match("/v1/models/*", "/v1/models/a/b", &m));
    assert_false(rd_route_pattern_match("/v1/models/*", "/v1/models/", &m));
    assert_false(rd_route_pattern_match("/v1/models/*", "/v1/models", &m));
    assert_false(rd_route_pattern_match("/v1/models/*", "/v1/models//", &m));
    assert_false(rd_route_pattern_match("/v1/*/completions", "/v1/completions", &m));
    assert_false(rd_route_pattern_match("/v1/*/completions", "/v1//completions", &m));
    assert_false(rd_route_pattern_match("/v1/*/completions", "/v1/a/b/completions", &m));
    /* literals match exactly, no prefix, no trailing slash */
    assert_true(rd_route_pattern_match("/v1/models", "/v1/models", NULL));
    assert_false(rd_route_pattern_match("/v1/models", "/v1/models/", NULL));
    assert_false(rd_route_pattern_match("/v1/models", "/v1/modelsX", NULL));
    assert_false(rd_route_pattern_match("/v1/models", "/v1/model", NULL));
    assert_false(rd_route_pattern_match("/v1/models", "/V1/models", NULL));
    assert_false(rd_route_pattern_match("/v1/models", "", NULL));
    /* m may be NULL */
    assert_true(rd_route_pattern_match("/v1/models/*", "/v1/models/x", NULL));
}

static void test_pattern_literal_after_star(void **state)
{
    (void)state;
    static const char gen[] = "/v1beta/models/*:generateContent";
    static const char stream[] = "/v1beta/models/*:streamGenerateContent";
    struct rd_route_match m;
    memset(&m, 0, sizeof m);
    assert_true(rd_route_pattern_match(gen, "/v1beta/models/gemini-1.5-pro:generateContent", &m));
    assert_int_equal(m.ncap, 1);
    assert_cap(&m, 0, "gemini-1.5-pro");
    assert_false(rd_route_pattern_match(gen, "/v1beta/models/gemini-1.5-pro:streamGenerateContent", &m));
    assert_true(rd_route_pattern_match(stream, "/v1beta/models/gemini-1.5-pro:streamGenerateContent", &m));
    assert_cap(&m, 0, "gemini-1.5-pro");
    assert_false(rd_route_pattern_match(stream, "/v1beta/models/gemini-1.5-pro:generateContent", &m));
    /* the literal must end the segment: neither a suffix nor a missing model */
    assert_false(rd_route_pattern_match(gen, "/v1beta/models/g:generateContentX", &m));
    assert_false(rd_route_pattern_match(gen, "/v1beta/models/g:generateContent/x", &m));
    assert_false(rd_route_pattern_match(gen, "/v1beta/models/:generateContent", &m));
    assert_false(rd_route_pattern_match(gen, "/v1beta/models/gemini", &m));
    /* the run ends where the rest of the pattern matches to the segment's end */
    assert_true(rd_route_pattern_match(gen, "/v1beta/models/a:generateContent:generateContent", &m));
    assert_cap(&m, 0, "a:generateContent");
    assert_true(rd_route_pattern_match(gen, "/v1beta/models/tunedModels:foo:generateContent", &m));
    assert_cap(&m, 0, "tunedModels:foo");
}

static void test_pattern_several_captures(void **state)
{
    (void)state;
    struct rd_route_match m;
    memset(&m, 0, sizeof m);
    /* Azure deployment and Vertex publisher paths */
    assert_true(rd_route_pattern_match("/openai/deployments/*/chat/completions",
                                       "/openai/deployments/my-gpt4o/chat/completions", &m));
    assert_int_equal(m.ncap, 1);
    assert_cap(&m, 0, "my-gpt4o");
    assert_true(rd_route_pattern_match("/v1/projects/*/locations/*/publishers/anthropic/models/*:rawPredict",
                                       "/v1/projects/p-1/locations/us-east5/publishers/anthropic/models/"
                                       "claude-3-5-sonnet@20240620:rawPredict",
                                       &m));
    assert_int_equal(m.ncap, 3);
    assert_cap(&m, 0, "p-1");
    assert_cap(&m, 1, "us-east5");
    assert_cap(&m, 2, "claude-3-5-sonnet@20240620");
    /* two in one segment */
    assert_true(rd_route_pattern_match("/x/*-*", "/x/a-b-c", &m));
    assert_int_equal(m.ncap, 2);
    assert_cap(&m, 0, "a");
    assert_cap(&m, 1, "b-c");
    /* more stars than RD_ROUTE_MAX_CAPS: matches, keeps the first ones */
    assert_true(rd_route_pattern_match("/*/*/*/*/*", "/a/b/c/d/e", &m));
    assert_int_equal(m.ncap, RD_ROUTE_MAX_CAPS);
    assert_cap(&m, 0, "a");
    assert_cap(&m, 3, "d");
    assert_false(rd_route_pattern_match("/*/*/*/*/*", "/a/b/c/d", &m));
}

static void test_route_local_table(void **state)
{
    (void)state;
    /* A Gemini-like table: both orders must route each path to its own
     * route, with the model from the capture. */
    static const struct rd_route gen_first[] = {
        {"POST", "/v1beta/models/*:generateContent", RD_REQ_CHAT, RD_ROUTE_CACHEABLE, 1, NULL},
        {"POST", "/v1beta/models/*:streamGenerateContent", RD_REQ_CHAT, RD_ROUTE_STREAMABLE, 1, NULL},
        {"GET", "/v1beta/models/*", RD_REQ_MODELS, RD_ROUTE_CACHEABLE, 1, NULL},
    };
    static const struct rd_route stream_first[] = {
        {"POST", "/v1beta/models/*:streamGenerateContent", RD_REQ_CHAT, RD_ROUTE_STREAMABLE, 1, NULL},
        {"POST", "/v1beta/models/*:generateContent", RD_REQ_CHAT, RD_ROUTE_CACHEABLE, 1, NULL},
        {"GET", "/v1beta/models/*", RD_REQ_MODELS, RD_ROUTE_CACHEABLE, 1, NULL},
    };
    const struct rd_route *tables[] = {gen_first, stream_first};
    for (size_t t = 0; t < 2; t++) {
        struct rd_provider p = *openai();
        p.routes = tables[t];
        p.nroutes = 3;
        struct rd_route_match m;
        const struct rd_route *r = rd_provider_route(&p, "POST", "/v1beta/models/gemini-2.0-flash:generateContent", &m);
        assert_non_null(r);
        assert_ptr_equal(m.route, r);
        assert_int_equal(r->flags, RD_ROUTE_CACHEABLE);
        assert_cap(&m, 0, "gemini-2.0-flash");
        r = rd_provider_route(&p, "POST", "/v1beta/models/gemini-2.0-flash:streamGenerateContent", &m);
        assert_non_null(r);
        assert_int_equal(r->flags, RD_ROUTE_STREAMABLE);
        assert_cap(&m, 0, "gemini-2.0-flash");
        /* the method is part of the route */
        r = rd_provider_route(&p, "GET", "/v1beta/models/gemini-2.0-flash", &m);
        assert_non_null(r);
        assert_int_equal(r->kind, RD_REQ_MODELS);
        assert_null(rd_provider_route(&p, "POST", "/v1beta/models/gemini-2.0-flash", &m));
        assert_null(m.route);
        assert_int_equal(m.ncap, 0);
        assert_null(rd_provider_route(&p, "POST", "/v1beta/models/a/b:generateContent", &m));
        assert_null(rd_provider_route(&p, "POST", "/v1beta/models/:generateContent", &m));
        assert_null(rd_provider_route(&p, "post", "/v1beta/models/g:generateContent", &m));
    }
}

static void test_route_real_providers(void **state)
{
    (void)state;
    struct rd_route_match m;
    const struct rd_route *r = rd_provider_route(openai(), "POST", "/v1/chat/completions", &m);
    assert_non_null(r);
    assert_int_equal(r->kind, RD_REQ_CHAT);
    assert_true(r->flags & RD_ROUTE_CACHEABLE);
    assert_true(r->flags & RD_ROUTE_STREAMABLE);
    assert_int_equal(m.ncap, 0);
    r = rd_provider_route(openai(), "POST", "/v1/responses", &m);
    assert_non_null(r);
    assert_int_equal(r->kind, RD_REQ_RESPONSES);
    r = rd_provider_route(openai(), "POST", "/v1/embeddings", &m);
    assert_non_null(r);
    assert_int_equal(r->kind, RD_REQ_EMBEDDING);
    assert_false(r->flags & RD_ROUTE_STREAMABLE);
    r = rd_provider_route(openai(), "GET", "/v1/models/gpt-4o-mini", &m);
    assert_non_null(r);
    assert_int_equal(r->kind, RD_REQ_MODELS);
    assert_cap(&m, 0, "gpt-4o-mini");
    r = rd_provider_route(openai(), "GET", "/v1/models", &m);
    assert_non_null(r);
    assert_int_equal(m.ncap, 0);
    /* unknown, wrong method, sub-paths */
    assert_null(rd_provider_route(openai(), "GET", "/v1/chat/completions", &m));
    assert_null(rd_provider_route(openai(), "POST", "/v1/chat/completions/x", &m));
    assert_null(rd_provider_route(openai(), "POST", "/v1/chat", &m));
    assert_null(rd_provider_route(openai(), "GET", "/v1/models/a/b", &m));
    /* OpenAI has no un-prefixed routes; DeepSeek serves both */
    assert_null(rd_provider_route(openai(), "POST", "/chat/completions", &m));
    r = rd_provider_route(deepseek(), "POST", "/chat/completions", &m);
    assert_non_null(r);
    assert_int_equal(r->kind, RD_REQ_CHAT);
    assert_non_null(rd_provider_route(deepseek(), "POST", "/v1/chat/completions", &m));
    r = rd_provider_route(deepseek(), "GET", "/models/deepseek-chat", &m);
    assert_non_null(r);
    assert_cap(&m, 0, "deepseek-chat");
}

/* ---- model ---- */

static size_t model_of(const struct rd_provider *p, const char *method, const char *path, const char *body, char *out,
                       size_t cap)
{
    struct rd_route_match m;
    rd_provider_route(p, method, path, &m);
    size_t len = body ? strlen(body) : 0;
    char *b = malloc(len ? len : 1); /* exact size: no NUL after the body */
    assert_non_null(b);
    memcpy(b, body ? body : "", len);
    struct rd_provider_req r = {
        .method = method,
        .path = path,
        .query = "",
        .body = b,
        .body_len = len,
        .match = &m,
    };
    size_t n = p->model(p, &r, out, cap);
    free(b);
    if (cap > 0) {
        assert_int_equal(strlen(out), n);
        assert_true(n < cap);
    }
    return n;
}

static void test_model_default(void **state)
{
    (void)state;
    char out[64];
    const struct rd_provider *p = openai();
    assert_ptr_equal(p->model, rd_provider_model_default);
    static const char chat[] = "{\"messages\":[{\"role\":\"user\",\"content\":\"\\\"model\\\":\\\"x\\\"\","
                               "\"model\":\"inner\"}],\"model\":\"gpt-4o-mini\",\"stream\":true}";
    assert_int_equal(model_of(p, "POST", "/v1/chat/completions", chat, out, sizeof out), 11);
    assert_string_equal(out, "gpt-4o-mini");
    /* escaped model names are decoded */
    assert_int_equal(model_of(p, "POST", "/v1/chat/completions", "{\"model\":\"gpt\\u002d4o\"}", out, sizeof out), 6);
    assert_string_equal(out, "gpt-4o");
    /* from the path capture when the route says so (body ignored) */
    assert_int_equal(model_of(p, "GET", "/v1/models/gpt-4o", "{\"model\":\"other\"}", out, sizeof out), 6);
    assert_string_equal(out, "gpt-4o");
    assert_int_equal(model_of(deepseek(), "GET", "/models/deepseek-reasoner", NULL, out, sizeof out), 17);
    assert_string_equal(out, "deepseek-reasoner");
    /* truncated to the cap */
    assert_int_equal(model_of(p, "POST", "/v1/chat/completions", chat, out, 5), 4);
    assert_string_equal(out, "gpt-");
    assert_int_equal(model_of(p, "GET", "/v1/models/gpt-4o", NULL, out, 4), 3);
    assert_string_equal(out, "gpt");
    assert_int_equal(model_of(p, "POST", "/v1/chat/completions", chat, out, 0), 0);
    /* unknown: 0 and an empty string */
    const char *unknown[] = {NULL,
                             "",
                             "{}",
                             "{\"model\":42}",
                             "{\"model\":null}",
                             "{\"model\":[\"gpt-4o\"]}",
                             "{\"messages\":[{\"model\":\"gpt-4o\"}]}",
                             "[{\"model\":\"gpt-4o\"}]",
                             "{\"model\":\"gpt-4o",
                             "{\"model\":\"bad\\q\"}",
                             "not json"};
    for (size_t i = 0; i < sizeof unknown / sizeof unknown[0]; i++) {
        memset(out, 'x', sizeof out);
        assert_int_equal(model_of(p, "POST", "/v1/chat/completions", unknown[i], out, sizeof out), 0);
        assert_string_equal(out, "");
    }
    /* no matched route: from the body */
    struct rd_route_match none = {0};
    struct rd_provider_req r = {
        .method = "POST", .path = "/v1/x", .query = "", .body = "{\"model\":\"m\"}", .body_len = 13, .match = &none};
    assert_int_equal(rd_provider_model_default(p, &r, out, sizeof out), 1);
    assert_string_equal(out, "m");
    r.match = NULL;
    assert_int_equal(rd_provider_model_default(p, &r, out, sizeof out), 1);
}

static void test_model_from_missing_capture(void **state)
{
    (void)state;
    /* a route naming a capture its pattern does not have: unknown, not a
     * read of a stale capture */
    static const struct rd_route routes[] = {
        {"GET", "/v1/models/*", RD_REQ_MODELS, 0, 2, NULL},
    };
    struct rd_provider p = *openai();
    p.routes = routes;
    p.nroutes = 1;
    char out[32];
    assert_int_equal(model_of(&p, "GET", "/v1/models/gpt-4o", "{\"model\":\"body\"}", out, sizeof out), 0);
    assert_string_equal(out, "");
}

/* ---- upstream URL ---- */

static int prepare(const char *base, const char *path, const char *query, size_t max, struct rd_buf *url)
{
    struct rd_arena arena;
    struct rd_hdrs h;
    rd_arena_init(&arena);
    rd_hdrs_init(&h, &arena);
    rd_buf_init(url, max);
    struct rd_provider_req r = {.method = "POST", .path = path, .query = query, .body = "", .body_len = 0};
    struct rd_upstream_prep up = {.base = base, .url = url, .headers = &h, .arena = &arena};
    const struct rd_provider *p = openai();
    assert_ptr_equal(p->prepare, rd_provider_prepare_passthrough);
    int rc = p->prepare(p, &r, &up);
    assert_int_equal(h.n, 0); /* passthrough adds no header */
    rd_hdrs_free(&h);
    rd_arena_free(&arena);
    return rc;
}

static void test_prepare_passthrough(void **state)
{
    (void)state;
    struct rd_buf url;
    assert_int_equal(prepare("https://api.openai.com", "/v1/chat/completions", "", 0, &url), 0);
    assert_string_equal(url.data, "https://api.openai.com/v1/chat/completions");
    rd_buf_free(&url);
    assert_int_equal(prepare("http://127.0.0.1:9000", "/v1/models", "limit=2&after=m%2F1", 0, &url), 0);
    assert_string_equal(url.data, "http://127.0.0.1:9000/v1/models?limit=2&after=m%2F1");
    rd_buf_free(&url);
    /* a base with a path prefix (DeepSeek's /v1 or a gateway) */
    assert_int_equal(prepare("https://gw.example/openai", "/v1/embeddings", "", 0, &url), 0);
    assert_string_equal(url.data, "https://gw.example/openai/v1/embeddings");
    rd_buf_free(&url);
    /* a path without its slash gets one */
    assert_int_equal(prepare("https://api.deepseek.com", "chat/completions", "", 0, &url), 0);
    assert_string_equal(url.data, "https://api.deepseek.com/chat/completions");
    rd_buf_free(&url);
    /* over the URL buffer's cap: an error, not a truncated URL */
    assert_int_equal(prepare("https://api.openai.com", "/v1/chat/completions", "a=1", 30, &url), RD_ETOOBIG);
    rd_buf_free(&url);
}

/* ---- errors ---- */

struct err_out {
    struct rd_arena arena;
    struct rd_hdrs h;
    struct rd_buf body;
    struct json_object *doc;
    struct json_object *err;
};

static void render_error(const struct rd_provider *p, int status, const char *msg, const char *rid, int retry,
                         struct err_out *o)
{
    rd_arena_init(&o->arena);
    rd_hdrs_init(&o->h, &o->arena);
    rd_buf_init(&o->body, 0);
    struct rd_error_spec e = {.status = status, .message = msg, .request_id = rid, .retry_after_s = retry};
    rd_provider_error(p, &e, &o->h, &o->body);
    struct rd_json_err je;
    o->doc = NULL;
    assert_int_equal(rd_json_parse(o->body.data, o->body.len, 1u << 20, &o->doc, &je), 0);
    o->err = rd_json_get(o->doc, "error");
    assert_non_null(o->err);
    assert_true(json_object_is_type(o->err, json_type_object));
}

static void err_free(struct err_out *o)
{
    json_object_put(o->doc);
    rd_buf_free(&o->body);
    rd_hdrs_free(&o->h);
    rd_arena_free(&o->arena);
}

static void test_error_openai_body(void **state)
{
    (void)state;
    static const struct {
        int status;
        const char *type, *code; /* code NULL: JSON null */
    } cases[] = {
        {400, "invalid_request_error", NULL},
        {401, "invalid_request_error", "invalid_api_key"},
        {403, "invalid_request_error", "forbidden"},
        {404, "invalid_request_error", NULL},
        {413, "invalid_request_error", "request_too_large"},
        {429, "requests", "rate_limit_exceeded"},
        {431, "invalid_request_error", "headers_too_large"},
        {502, "server_error", "bad_gateway"},
        {503, "server_error", "service_unavailable"},
        {504, "server_error", "gateway_timeout"},
        {500, "server_error", NULL},
        {599, "server_error", NULL},
        {418, "invalid_request_error", NULL},
    };
    assert_ptr_equal(openai()->error, rd_provider_error_openai);
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        struct err_out o;
        render_error(openai(), cases[i].status, "Something went wrong.", NULL, -1, &o);
        assert_string_equal(rd_json_get_str(o.err, "message"), "Something went wrong.");
        assert_string_equal(rd_json_get_str(o.err, "type"), cases[i].type);
        /* the SDKs read all four fields: param and code are present, null when unset */
        struct json_object *v = NULL;
        assert_true(json_object_object_get_ex(o.err, "param", &v));
        assert_null(v);
        assert_true(json_object_object_get_ex(o.err, "code", &v));
        if (cases[i].code)
            assert_string_equal(json_object_get_string(v), cases[i].code);
        else
            assert_null(v);
        err_free(&o);
    }
    /* the message is escaped, not spliced */
    struct err_out o;
    static const char msg[] = "bad \"model\"\n\\ \xc3\xa9 </script>";
    render_error(openai(), 400, msg, NULL, -1, &o);
    assert_string_equal(rd_json_get_str(o.err, "message"), msg);
    err_free(&o);
}

static void test_error_openai_headers(void **state)
{
    (void)state;
    const struct rd_provider *provs[] = {openai(), deepseek()};
    for (size_t i = 0; i < 2; i++) {
        struct err_out o;
        render_error(provs[i], 429, "Rate limit reached", "req_abc123", 7, &o);
        assert_string_equal(rd_hdrs_get(&o.h, "content-type"), "application/json");
        assert_string_equal(rd_hdrs_get(&o.h, provs[i]->request_id_header), "req_abc123");
        assert_string_equal(rd_hdrs_get(&o.h, "retry-after"), "7");
        assert_int_equal(rd_hdrs_count(&o.h, "content-type"), 1);
        err_free(&o);
        /* no request id, no Retry-After */
        render_error(provs[i], 502, "Upstream failed", NULL, -1, &o);
        assert_string_equal(rd_hdrs_get(&o.h, "Content-Type"), "application/json");
        assert_null(rd_hdrs_get(&o.h, provs[i]->request_id_header));
        assert_null(rd_hdrs_get(&o.h, "Retry-After"));
        assert_int_equal(o.h.n, 1);
        err_free(&o);
        /* Retry-After: 0 is a value */
        render_error(provs[i], 503, "Try again", "r", 0, &o);
        assert_string_equal(rd_hdrs_get(&o.h, "Retry-After"), "0");
        err_free(&o);
    }
}

/* Rate-limit headers are provider data: OpenAI's x-ratelimit-* (also
 * Azure's, DeepSeek's, Groq's) with a Go-style duration, Anthropic's
 * anthropic-ratelimit-* with an RFC 3339 time, none for Bedrock and Google. */
static void test_ratelimit_headers(void **state)
{
    (void)state;
    static const struct {
        uint64_t reset_s;
        const char *text;
    } durations[] = {{0, "0s"}, {1, "1s"}, {59, "59s"}, {60, "1m0s"}, {360, "6m0s"}, {3723, "1h2m3s"}};
    const char *oai[] = {"openai", "azure_openai", "deepseek", "groq"};
    for (size_t k = 0; k < sizeof oai / sizeof oai[0]; k++) {
        const struct rd_provider *p = rd_provider_find(oai[k]);
        assert_non_null(p);
        for (size_t i = 0; i < sizeof durations / sizeof durations[0]; i++) {
            struct rd_arena a;
            rd_arena_init(&a);
            struct rd_hdrs h;
            rd_hdrs_init(&h, &a);
            rd_provider_ratelimit_headers(p, 120, 0, durations[i].reset_s, 0, &h);
            assert_int_equal(h.n, 3);
            assert_string_equal(rd_hdrs_get(&h, "x-ratelimit-limit-requests"), "120");
            assert_string_equal(rd_hdrs_get(&h, "x-ratelimit-remaining-requests"), "0");
            assert_string_equal(rd_hdrs_get(&h, "x-ratelimit-reset-requests"), durations[i].text);
            rd_hdrs_free(&h);
            rd_arena_free(&a);
        }
    }
    struct rd_arena a;
    rd_arena_init(&a);
    struct rd_hdrs h;
    rd_hdrs_init(&h, &a);
    /* 2026-12-02T18:00:00.750Z plus 30 s, in whole seconds */
    rd_provider_ratelimit_headers(rd_provider_find("anthropic"), 60, 5, 30, INT64_C(1796234400750), &h);
    assert_int_equal(h.n, 3);
    assert_string_equal(rd_hdrs_get(&h, "anthropic-ratelimit-requests-limit"), "60");
    assert_string_equal(rd_hdrs_get(&h, "anthropic-ratelimit-requests-remaining"), "5");
    assert_string_equal(rd_hdrs_get(&h, "anthropic-ratelimit-requests-reset"), "2026-12-02T18:00:30Z");
    rd_hdrs_clear(&h);
    const char *none[] = {"bedrock", "gemini", "vertex_ai"};
    for (size_t k = 0; k < sizeof none / sizeof none[0]; k++) {
        assert_non_null(rd_provider_find(none[k]));
        rd_provider_ratelimit_headers(rd_provider_find(none[k]), 60, 0, 1, 0, &h);
        assert_int_equal(h.n, 0);
    }
    rd_provider_ratelimit_headers(NULL, 60, 0, 1, 0, &h);
    assert_int_equal(h.n, 0);
    rd_hdrs_free(&h);
    rd_arena_free(&a);
}

/* ---- usage ---- */

#define NO_USAGE {-1, -1, -1, -1, -1}

static int event(const struct rd_provider *p, const char *name, const char *data, struct rd_usage *u)
{
    size_t n = strlen(data);
    char *d = malloc(n ? n : 1); /* exact size */
    assert_non_null(d);
    memcpy(d, data, n);
    struct rd_stream_event ev = {.name = name, .name_len = strlen(name), .data = d, .data_len = n};
    int rc = p->stream_event(p, &ev, u);
    free(d);
    return rc;
}

static void assert_usage(const struct rd_usage *u, int64_t in, int64_t out, int64_t cached, int64_t reasoning)
{
    if (u->input != in || u->output != out || u->cached != cached || u->reasoning != reasoning) {
        print_error("usage in %lld out %lld cached %lld reasoning %lld, wanted %lld %lld %lld %lld\n",
                    (long long)u->input, (long long)u->output, (long long)u->cached, (long long)u->reasoning,
                    (long long)in, (long long)out, (long long)cached, (long long)reasoning);
        fail();
    }
}

static void test_stream_chat_usage(void **state)
{
    (void)state;
    const struct rd_provider *p = openai();
    assert_ptr_equal(p->stream_event, rd_provider_stream_event_openai);
    struct rd_usage u = NO_USAGE;
    assert_int_equal(event(p, "",
                           "{\"id\":\"chatcmpl-1\",\"object\":\"chat.completion.chunk\",\"choices\":[{\"index\":0,"
                           "\"delta\":{\"role\":\"assistant\",\"content\":\"\"}}],\"usage\":null}",
                           &u),
                     0);
    assert_usage(&u, -1, -1, -1, -1);
    /* usage inside a choice or a content string is not the response's */
    assert_int_equal(event(p, "",
                           "{\"choices\":[{\"delta\":{\"content\":\"usage\"},\"usage\":{\"prompt_tokens\":99}}],"
                           "\"x\":\"\\\"usage\\\":{\\\"prompt_tokens\\\":98}\"}",
                           &u),
                     0);
    assert_usage(&u, -1, -1, -1, -1);
    /* the final chunk (stream_options.include_usage) */
    assert_int_equal(event(p, "",
                           "{\"id\":\"chatcmpl-1\",\"object\":\"chat.completion.chunk\",\"choices\":[],\"usage\":{"
                           "\"prompt_tokens\":1200,\"completion_tokens\":300,\"total_tokens\":1500,"
                           "\"prompt_tokens_details\":{\"cached_tokens\":1024,\"audio_tokens\":0},"
                           "\"completion_tokens_details\":{\"reasoning_tokens\":256,\"audio_tokens\":0}}}",
                           &u),
                     0);
    assert_usage(&u, 1200, 300, 1024, 256);
    /* a later "usage":null leaves it */
    assert_int_equal(event(p, "", "{\"choices\":[],\"usage\":null}", &u), 0);
    assert_usage(&u, 1200, 300, 1024, 256);
    /* [DONE] ends the stream and changes nothing */
    assert_int_equal(event(p, "", "[DONE]", &u), 1);
    assert_usage(&u, 1200, 300, 1024, 256);
    /* "[DONE]" is only the whole data */
    assert_int_equal(event(p, "", "[DONE] ", &u), 0);
    assert_int_equal(event(p, "", "\"[DONE]\"", &u), 0);
    assert_int_equal(event(p, "", "", &u), 0);
}

static void test_stream_usage_partial_and_malformed(void **state)
{
    (void)state;
    const struct rd_provider *p = openai();
    /* only the reported fields change */
    struct rd_usage u = NO_USAGE;
    assert_int_equal(event(p, "", "{\"usage\":{\"prompt_tokens\":5,\"completion_tokens\":2}}", &u), 0);
    assert_usage(&u, 5, 2, -1, -1);
    /* malformed or truncated usage: unchanged, no crash */
    const char *bad[] = {"{\"usage\":{\"prompt_tokens\":7,\"completion_tokens\":",
                         "{\"usage\":{\"prompt_tokens\":7",
                         "{\"usage\":",
                         "{\"usage\"",
                         "{\"usage\":[1,2]}",
                         "{\"usage\":\"many\"}",
                         "[\"usage\"]"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        struct rd_usage w = NO_USAGE;
        assert_int_equal(event(p, "", bad[i], &w), 0);
        assert_usage(&w, -1, -1, -1, -1);
    }
}

static void test_usage_parsed_strictly(void **state)
{
    (void)state;
    /* STYLE.md: JSON is parsed strictly (rd_json_parse). A usage object that
     * is not JSON (here a trailing comma, which json-c's lenient default
     * accepts) is not counted, in streams and in bodies alike. */
    static const char bad[] = "{\"usage\":{\"prompt_tokens\":7,\"completion_tokens\":3,}}";
    struct rd_usage u = NO_USAGE;
    assert_int_equal(event(openai(), "", bad, &u), 0);
    assert_usage(&u, -1, -1, -1, -1);
    struct rd_usage b = NO_USAGE;
    openai()->body_usage(openai(), bad, sizeof bad - 1, &b);
    assert_usage(&b, -1, -1, -1, -1);
}

static void test_stream_responses_api(void **state)
{
    (void)state;
    const struct rd_provider *p = openai();
    struct rd_usage u = NO_USAGE;
    assert_int_equal(event(p, "response.created",
                           "{\"type\":\"response.created\",\"sequence_number\":0,\"response\":{\"id\":\"resp_1\","
                           "\"object\":\"response\",\"status\":\"in_progress\",\"usage\":null}}",
                           &u),
                     0);
    assert_usage(&u, -1, -1, -1, -1);
    assert_int_equal(event(p, "response.output_text.delta",
                           "{\"type\":\"response.output_text.delta\",\"sequence_number\":3,\"delta\":\"usage\"}", &u),
                     0);
    assert_int_equal(event(p, "response.completed",
                           "{\"type\":\"response.completed\",\"sequence_number\":9,\"response\":{\"id\":\"resp_1\","
                           "\"status\":\"completed\",\"output\":[{\"type\":\"message\",\"content\":[{\"type\":"
                           "\"output_text\",\"text\":\"Hi\"}]}],\"usage\":{\"input_tokens\":328,"
                           "\"input_tokens_details\":{\"cached_tokens\":128},\"output_tokens\":52,"
                           "\"output_tokens_details\":{\"reasoning_tokens\":32},\"total_tokens\":380}}}",
                           &u),
                     1);
    assert_usage(&u, 328, 52, 128, 32);
    /* the name decides, not a prefix of it */
    struct rd_usage w = NO_USAGE;
    assert_int_equal(event(p, "response.completed.x", "{}", &w), 0);
    assert_int_equal(event(p, "response.complete", "{}", &w), 0);
}

static void test_stream_deepseek_usage(void **state)
{
    (void)state;
    const struct rd_provider *p = deepseek();
    struct rd_usage u = NO_USAGE;
    assert_int_equal(event(p, "",
                           "{\"id\":\"x\",\"object\":\"chat.completion.chunk\",\"model\":\"deepseek-reasoner\","
                           "\"choices\":[{\"index\":0,\"delta\":{\"content\":\"\"},\"finish_reason\":\"stop\"}],"
                           "\"usage\":{\"prompt_tokens\":40,\"completion_tokens\":90,\"total_tokens\":130,"
                           "\"prompt_tokens_details\":{\"cached_tokens\":32},"
                           "\"completion_tokens_details\":{\"reasoning_tokens\":70},"
                           "\"prompt_cache_hit_tokens\":32,\"prompt_cache_miss_tokens\":8}}",
                           &u),
                     0);
    assert_usage(&u, 40, 90, 32, 70);
    /* prompt_cache_hit_tokens alone (older DeepSeek responses) */
    struct rd_usage w = NO_USAGE;
    event(p, "", "{\"usage\":{\"prompt_tokens\":10,\"completion_tokens\":1,\"prompt_cache_hit_tokens\":6}}", &w);
    assert_usage(&w, 10, 1, 6, -1);
    assert_int_equal(event(p, "", "[DONE]", &w), 1);
}

static void body_usage(const struct rd_provider *p, const char *body, struct rd_usage *u)
{
    size_t n = strlen(body);
    char *b = malloc(n ? n : 1);
    assert_non_null(b);
    memcpy(b, body, n);
    p->body_usage(p, b, n, u);
    free(b);
}

static void test_body_usage(void **state)
{
    (void)state;
    const struct rd_provider *p = openai();
    assert_ptr_equal(p->body_usage, rd_provider_body_usage_openai);
    struct rd_usage u = NO_USAGE;
    body_usage(p,
               "{\"id\":\"chatcmpl-1\",\"object\":\"chat.completion\",\"model\":\"gpt-4o\",\"choices\":[{\"index\":0,"
               "\"message\":{\"role\":\"assistant\",\"content\":\"{\\\"usage\\\":{\\\"prompt_tokens\\\":1}}\"},"
               "\"finish_reason\":\"stop\"}],\"usage\":{\"prompt_tokens\":19,\"completion_tokens\":10,"
               "\"total_tokens\":29,\"prompt_tokens_details\":{\"cached_tokens\":0},"
               "\"completion_tokens_details\":{\"reasoning_tokens\":0}}}",
               &u);
    assert_usage(&u, 19, 10, 0, 0);
    /* responses API: usage at the top level of a non-streamed response */
    struct rd_usage r = NO_USAGE;
    body_usage(p,
               "{\"id\":\"resp_1\",\"object\":\"response\",\"output\":[],\"usage\":{\"input_tokens\":36,"
               "\"input_tokens_details\":{\"cached_tokens\":4},\"output_tokens\":87,"
               "\"output_tokens_details\":{\"reasoning_tokens\":0},\"total_tokens\":123}}",
               &r);
    assert_usage(&r, 36, 87, 4, 0);
    /* embeddings: input only */
    struct rd_usage e = NO_USAGE;
    body_usage(p,
               "{\"object\":\"list\",\"data\":[{\"object\":\"embedding\",\"index\":0,\"embedding\":[0.1,-0.2]}],"
               "\"model\":\"text-embedding-3-small\",\"usage\":{\"prompt_tokens\":8,\"total_tokens\":8}}",
               &e);
    assert_usage(&e, 8, -1, -1, -1);
    /* no usage, null usage, an error body, garbage: unchanged */
    const char *none[] = {"{\"object\":\"list\",\"data\":[]}", "{\"usage\":null}",
                          "{\"error\":{\"message\":\"usage\",\"type\":\"invalid_request_error\"}}", "\"usage\"",
                          "{\"usage\":{\"prompt_tokens\":1"};
    for (size_t i = 0; i < sizeof none / sizeof none[0]; i++) {
        struct rd_usage w = NO_USAGE;
        body_usage(p, none[i], &w);
        assert_usage(&w, -1, -1, -1, -1);
    }
}

/* max_tokens as each dialect names it (max_tokens_fields data), first
 * field present wins; anything but a non-negative integer is absent. */
static void test_max_tokens(void **state)
{
    (void)state;
    static const struct {
        const char *provider, *body;
        int64_t want;
    } cases[] = {
        {"openai", "{\"model\":\"m\",\"max_tokens\":128}", 128},
        {"openai", "{\"max_completion_tokens\":64,\"max_tokens\":128}", 64},
        {"openai", "{\"max_tokens\":128,\"max_completion_tokens\":64}", 64},
        {"openai", "{\"input\":\"x\",\"max_output_tokens\":9}", 9},
        {"openai", "{\"model\":\"m\"}", -1},
        {"openai", "{\"max_tokens\":null}", -1},
        {"openai", "{\"max_tokens\":-5}", -1},
        {"openai", "{\"max_tokens\":1.5}", -1},
        {"openai", "{\"max_tokens\":1e3}", -1},
        {"openai", "{\"max_tokens\":\"12\"}", -1},
        {"openai", "{\"max_tokens\":007}", -1},
        {"openai", "{\"max_tokens\":0}", 0},
        {"openai", "{\"max_tokens\":99999999999999999999999}", INT64_MAX},
        {"openai", "{\"messages\":[{\"max_tokens\":5}]}", -1}, /* only the top level */
        {"openai", "{\"max_tokens\":", -1},
        {"openai", "not json", -1},
        {"groq", "{\"max_tokens\":7}", 7},
        {"azure_openai", "{\"max_completion_tokens\":7}", 7},
        {"deepseek", "{\"max_tokens\":7}", 7},
        {"anthropic", "{\"model\":\"c\",\"max_tokens\":1024,\"messages\":[]}", 1024},
        {"anthropic", "{\"prompt\":\"x\",\"max_tokens_to_sample\":300}", 300},
        {"gemini", "{\"contents\":[],\"generationConfig\":{\"temperature\":0,\"maxOutputTokens\":256}}", 256},
        {"gemini", "{\"maxOutputTokens\":256}", -1},
        {"vertex_ai", "{\"generationConfig\":{\"maxOutputTokens\":32}}", 32},
        {"bedrock", "{\"messages\":[],\"inferenceConfig\":{\"maxTokens\":512}}", 512},
        {"bedrock", "{\"anthropic_version\":\"bedrock-2023-05-31\",\"max_tokens\":200}", 200},
        {"bedrock", "{\"inputText\":\"x\",\"textGenerationConfig\":{\"maxTokenCount\":50}}", 50},
        {"bedrock", "{\"prompt\":\"x\",\"max_gen_len\":77}", 77},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        const struct rd_provider *p = rd_provider_find(cases[i].provider);
        assert_non_null(p);
        int64_t got = rd_provider_max_tokens(p, cases[i].body, strlen(cases[i].body));
        if (got != cases[i].want)
            fail_msg("case %zu (%s %s): got %lld, want %lld", i, cases[i].provider, cases[i].body, (long long)got,
                     (long long)cases[i].want);
    }
    assert_int_equal(rd_provider_max_tokens(rd_provider_find("openai"), NULL, 0), -1);
    /* every provider names where its dialect puts the cap */
    size_t n = 0;
    const struct rd_provider *const *all = rd_provider_all(&n);
    for (size_t i = 0; i < n; i++)
        assert_non_null(all[i]->max_tokens_fields);
}

int main(int argc, char **argv)
{
    if (argc > 1)
        cmocka_set_test_filter(argv[1]);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_registry),
        cmocka_unit_test(test_max_tokens),
        cmocka_unit_test(test_pattern_star),
        cmocka_unit_test(test_pattern_literal_after_star),
        cmocka_unit_test(test_pattern_several_captures),
        cmocka_unit_test(test_route_local_table),
        cmocka_unit_test(test_route_real_providers),
        cmocka_unit_test(test_model_default),
        cmocka_unit_test(test_model_from_missing_capture),
        cmocka_unit_test(test_prepare_passthrough),
        cmocka_unit_test(test_error_openai_body),
        cmocka_unit_test(test_error_openai_headers),
        cmocka_unit_test(test_ratelimit_headers),
        cmocka_unit_test(test_stream_chat_usage),
        cmocka_unit_test(test_stream_usage_partial_and_malformed),
        cmocka_unit_test(test_usage_parsed_strictly),
        cmocka_unit_test(test_stream_responses_api),
        cmocka_unit_test(test_stream_deepseek_usage),
        cmocka_unit_test(test_body_usage),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
