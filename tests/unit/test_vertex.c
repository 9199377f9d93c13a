/* Tests for Claude on Vertex AI (src/providers/vertex.c, the routes that
 * name Anthropic as their dialect): route matching and the dialect, the
 * model from the path (or the body, for count-tokens) on hostile paths, the
 * usage, stream and error hooks the engine picks through the dialect, and
 * the emulator answering those routes with Anthropic's Messages API. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "http/headers.h"
#include "http/sse.h"
#include "providers/emulator/emulator.h"
#include "providers/google.h"
#include "providers/provider.h"
#include "util/arena.h"
#include "util/buf.h"
#include "util/json.h"

#define NO_USAGE {-1, -1, -1, -1, -1}
#define BASE "/v1/projects/duck-project/locations/us-east5/publishers/anthropic/models/"

static const struct rd_provider *vertex(void)
{
    const struct rd_provider *p = rd_provider_find("vertex_ai");
    assert_non_null(p);
    return p;
}

/* The hooks the engine uses for method + path: the route's dialect, or the
 * provider's (proxy/req.c, classify). */
static const struct rd_provider *dialect_of(const char *method, const char *path)
{
    struct rd_route_match m;
    const struct rd_route *r = rd_provider_route(vertex(), method, path, &m);
    return r && r->dialect ? r->dialect : vertex();
}

static const struct rd_route *route_model(const char *path, const char *body, char *model, size_t cap)
{
    struct rd_route_match m;
    const struct rd_route *r = rd_provider_route(vertex(), "POST", path, &m);
    model[0] = '\0';
    if (r == NULL)
        return NULL;
    struct rd_provider_req req = {
        .method = "POST", .path = path, .query = "", .body = body, .body_len = strlen(body), .match = &m};
    vertex()->model(vertex(), &req, model, cap);
    return r;
}

/* ---- routes ---- */

static void test_claude_routes_speak_anthropic(void **state)
{
    (void)state;
    static const char *const versions[] = {"/v1", "/v1beta1"};
    static const struct {
        const char *tail; /* after .../publishers/ */
        enum rd_req_kind kind;
        bool stream, anthropic;
        const char *model;
    } cases[] = {
        {"anthropic/models/claude-sonnet-4@20250514:rawPredict", RD_REQ_CHAT, false, true, "claude-sonnet-4@20250514"},
        {"anthropic/models/claude-3-5-sonnet-v2@20241022:streamRawPredict", RD_REQ_CHAT, true, true,
         "claude-3-5-sonnet-v2@20241022"},
        {"anthropic/models/count-tokens:rawPredict", RD_REQ_TOKENS, false, true, "claude-3-haiku@20240307"},
        /* other publishers' rawPredict, and generateContent under anthropic, are not Claude's Messages API */
        {"meta/models/llama-3.3-70b-instruct-maas:rawPredict", RD_REQ_CHAT, false, false,
         "llama-3.3-70b-instruct-maas"},
        {"mistralai/models/mistral-large@2407:streamRawPredict", RD_REQ_CHAT, true, false, "mistral-large@2407"},
        {"google/models/gemini-2.0-flash:generateContent", RD_REQ_CHAT, false, false, "gemini-2.0-flash"},
        {"anthropic/models/claude-sonnet-4@20250514:generateContent", RD_REQ_CHAT, false, false,
         "claude-sonnet-4@20250514"},
    };
    const char *body = "{\"model\":\"claude-3-haiku@20240307\",\"messages\":[]}";
    char path[256], model[128];
    for (size_t v = 0; v < 2; v++)
        for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
            snprintf(path, sizeof path, "%s/projects/p/locations/us-east5/publishers/%s", versions[v], cases[i].tail);
            const struct rd_route *r = route_model(path, body, model, sizeof model);
            if (r == NULL) {
                print_error("no route for %s\n", path);
                fail();
            }
            assert_int_equal(r->kind, cases[i].kind);
            assert_int_equal((r->flags & RD_ROUTE_STREAMABLE) != 0, cases[i].stream);
            assert_int_equal((r->flags & RD_ROUTE_CACHEABLE) != 0, r->kind != RD_REQ_MODELS && r->kind != RD_REQ_TOKENS);
            if (cases[i].anthropic)
                assert_ptr_equal(r->dialect, &rd_provider_anthropic);
            else
                assert_null(r->dialect);
            assert_string_equal(model, cases[i].model);
        }
    /* hostile paths: no route, so no dialect and no model */
    static const char *const none[] = {
        BASE ":rawPredict",
        BASE "a/b:rawPredict",
        "/v1/projects/p/locations/l/publishers/anthropic/models/claude:rawPredict/x",
        "/v1/projects//locations/l/publishers/anthropic/models/claude:rawPredict",
        "/v2/projects/p/locations/l/publishers/anthropic/models/claude:rawPredict",
        "/v1/projects/p/locations/l/publishers/anthropic/models/claude:rawpredict",
    };
    for (size_t i = 0; i < sizeof none / sizeof none[0]; i++) {
        if (route_model(none[i], body, model, sizeof model) != NULL) {
            print_error("%s matched\n", none[i]);
            fail();
        }
        assert_string_equal(model, "");
        assert_ptr_equal(dialect_of("POST", none[i]), vertex());
    }
    /* the model capture is the bytes of the path, never past its segment */
    route_model(BASE "cl%40ude\x01:rawPredict", "", model, sizeof model);
    assert_string_equal(model, "cl%40ude\x01");
    /* count-tokens with a body that names no model (or not as a string) has none */
    assert_non_null(route_model(BASE "count-tokens:rawPredict", "{\"model\":7}", model, sizeof model));
    assert_string_equal(model, "");
    assert_non_null(route_model(BASE "count-tokens:rawPredict", "{not json", model, sizeof model));
    assert_string_equal(model, "");
}

/* ---- usage and stream through the dialect ---- */

/* A Message as Claude on Vertex answers rawPredict (Anthropic's body; the
 * model is Anthropic's id), with prompt caching. */
static const char MESSAGE[] =
    "{\"id\":\"msg_vrtx_01Hb5ycRyJBFYDkgAtWm3mYs\",\"type\":\"message\",\"role\":\"assistant\",\"model\":\"claude-"
    "sonnet-4-20250514\",\"content\":[{\"type\":\"text\",\"text\":\"Quack.\"}],\"stop_reason\":\"end_turn\","
    "\"stop_sequence\":null,\"usage\":{\"input_tokens\":21,\"cache_creation_input_tokens\":1024,"
    "\"cache_read_input_tokens\":2048,\"output_tokens\":9}}";

static void test_body_usage_via_dialect(void **state)
{
    (void)state;
    const struct rd_provider *d = dialect_of("POST", BASE "claude-sonnet-4@20250514:rawPredict");
    assert_ptr_equal(d, &rd_provider_anthropic);
    struct rd_usage u = NO_USAGE;
    d->body_usage(d, MESSAGE, sizeof MESSAGE - 1, &u);
    /* Anthropic's input_tokens excludes the cache counts: added once */
    assert_int_equal(u.input, 21 + 1024 + 2048);
    assert_int_equal(u.cached, 2048);
    assert_int_equal(u.cache_write, 1024);
    assert_int_equal(u.output, 9);
    /* Google's hook, which a Gemini route of the same proxy uses, sees nothing in it */
    struct rd_usage g = NO_USAGE;
    vertex()->body_usage(vertex(), MESSAGE, sizeof MESSAGE - 1, &g);
    assert_int_equal(g.input, -1);
    assert_int_equal(g.output, -1);
    /* count-tokens answers no usage: counting consumes nothing */
    d = dialect_of("POST", BASE "count-tokens:rawPredict");
    u = (struct rd_usage)NO_USAGE;
    d->body_usage(d, "{\"input_tokens\":14}", 19, &u);
    assert_int_equal(u.input, -1);
}

/* streamRawPredict as Vertex relays it: Anthropic's SSE with event lines. */
static const char STREAM[] =
    "event: message_start\n"
    "data: {\"type\":\"message_start\",\"message\":{\"id\":\"msg_vrtx_1\",\"type\":\"message\",\"role\":\"assistant\","
    "\"model\":\"claude-3-5-sonnet-v2-20241022\",\"content\":[],\"stop_reason\":null,\"stop_sequence\":null,"
    "\"usage\":{\"input_tokens\":11,\"cache_read_input_tokens\":5,\"output_tokens\":1}}}\n\n"
    "event: ping\n"
    "data: {\"type\": \"ping\"}\n\n"
    "event: content_block_start\n"
    "data: {\"type\":\"content_block_start\",\"index\":0,\"content_block\":{\"type\":\"text\",\"text\":\"\"}}\n\n"
    "event: content_block_delta\n"
    "data: {\"type\":\"content_block_delta\",\"index\":0,\"delta\":{\"type\":\"text_delta\",\"text\":\"Hi\"}}\n\n"
    "event: content_block_stop\n"
    "data: {\"type\":\"content_block_stop\",\"index\":0}\n\n"
    "event: message_delta\n"
    "data: {\"type\":\"message_delta\",\"delta\":{\"stop_reason\":\"end_turn\",\"stop_sequence\":null},"
    "\"usage\":{\"output_tokens\":6}}\n\n"
    "event: message_stop\n"
    "data: {\"type\":\"message_stop\"}\n\n";

struct feed {
    const struct rd_provider *p;
    struct rd_usage u;
    int events, ended;
};

static int on_event(void *ud, const struct rd_sse_event *ev)
{
    struct feed *f = ud;
    struct rd_stream_event se = rd_stream_event_of_sse(ev);
    f->ended += f->p->stream_event(f->p, &se, &f->u);
    f->events++;
    return 0;
}

static void test_stream_usage_via_dialect(void **state)
{
    (void)state;
    const struct rd_provider *d = dialect_of("POST", BASE "claude-3-5-sonnet-v2@20241022:streamRawPredict");
    assert_ptr_equal(d, &rd_provider_anthropic);
    size_t n = sizeof STREAM - 1;
    for (size_t at = 0; at <= n; at++) {
        struct feed f = {.p = d, .u = NO_USAGE};
        struct rd_sse sse;
        rd_sse_init(&sse, 0);
        char *a = malloc(at ? at : 1), *b = malloc(n - at ? n - at : 1); /* exact sizes: overreads are caught */
        memcpy(a, STREAM, at);
        memcpy(b, STREAM + at, n - at);
        assert_int_equal(rd_sse_feed(&sse, a, at, on_event, &f), 0);
        assert_int_equal(rd_sse_feed(&sse, b, n - at, on_event, &f), 0);
        free(a);
        free(b);
        rd_sse_free(&sse);
        assert_int_equal(f.events, 7);
        assert_int_equal(f.ended, 1); /* message_stop */
        assert_int_equal(f.u.input, 16);
        assert_int_equal(f.u.cached, 5);
        assert_int_equal(f.u.output, 6);
    }
}

/* ---- errors ---- */

static void test_errors_are_anthropic(void **state)
{
    (void)state;
    const struct rd_provider *d = dialect_of("POST", BASE "claude-sonnet-4@20250514:streamRawPredict");
    static const struct {
        int status;
        const char *type;
    } cases[] = {{400, "invalid_request_error"}, {401, "authentication_error"}, {404, "not_found_error"},
                 {429, "rate_limit_error"},      {502, "api_error"},            {529, "overloaded_error"}};
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        struct rd_arena a;
        rd_arena_init(&a);
        struct rd_hdrs h;
        rd_hdrs_init(&h, &a);
        struct rd_buf b;
        rd_buf_init(&b, 0);
        struct rd_error_spec e = {
            .status = cases[i].status, .message = "m", .request_id = "req_1", .retry_after_s = 3};
        rd_provider_error(d, &e, &h, &b);
        struct json_object *doc = NULL;
        struct rd_json_err jerr;
        assert_int_equal(rd_json_parse(b.data, b.len, 1 << 16, &doc, &jerr), 0);
        assert_string_equal(rd_json_get_str(doc, "type"), "error");
        assert_string_equal(rd_json_get_str(rd_json_get(doc, "error"), "type"), cases[i].type);
        assert_null(rd_json_get(rd_json_get(doc, "error"), "status")); /* not Google's shape */
        assert_string_equal(rd_hdrs_get(&h, "request-id"), "req_1");
        assert_string_equal(rd_hdrs_get(&h, "retry-after"), "3");
        json_object_put(doc);
        rd_buf_free(&b);
        rd_hdrs_free(&h);
        rd_arena_free(&a);
    }
}

/* ---- emulator ---- */

struct reply {
    int status;
    bool stream;
    char *ctype;
    char *body;
    size_t nchunks;
};

static struct reply emulate(const char *path, const char *body)
{
    struct rd_route_match m;
    rd_provider_route(vertex(), "POST", path, &m);
    struct rd_emu_request req = {
        .method = "POST", .path = path, .query = "", .body = body, .body_len = strlen(body), .match = &m};
    struct rd_emu_reply out;
    assert_int_equal(vertex()->emulate(vertex()->emulator, &req, &out), 0);
    struct rd_buf b;
    rd_buf_init(&b, 0);
    for (size_t i = 0; i < out.n; i++)
        assert_int_equal(rd_buf_append(&b, out.chunks[i].data, out.chunks[i].len), 0);
    struct reply r = {.status = out.status, .stream = out.stream, .nchunks = out.n};
    r.ctype = strdup(out.content_type ? out.content_type : "");
    size_t len;
    r.body = rd_buf_steal(&b, &len);
    if (r.body == NULL)
        r.body = strdup("");
    rd_emu_reply_free(&out);
    return r;
}

static void reply_free(struct reply *r)
{
    free(r->ctype);
    free(r->body);
}

#define PROMPT "\"messages\":[{\"role\":\"user\",\"content\":\"Say quack\"}]"
#define VBODY "{\"anthropic_version\":\"vertex-2023-10-16\",\"max_tokens\":64," PROMPT

static void test_emulator_answers_messages(void **state)
{
    (void)state;
    struct reply r = emulate(BASE "claude-sonnet-4@20250514:rawPredict", VBODY "}");
    assert_int_equal(r.status, 200);
    assert_false(r.stream);
    struct json_object *doc = NULL;
    struct rd_json_err jerr;
    assert_int_equal(rd_json_parse(r.body, strlen(r.body), 1 << 20, &doc, &jerr), 0);
    assert_string_equal(rd_json_get_str(doc, "type"), "message");
    assert_string_equal(rd_json_get_str(doc, "model"), "claude-sonnet-4@20250514"); /* from the path */
    struct rd_usage u = NO_USAGE;
    rd_provider_anthropic.body_usage(&rd_provider_anthropic, r.body, strlen(r.body), &u);
    assert_true(u.input > 0 && u.output > 0);
    int64_t input = u.input;
    json_object_put(doc);
    /* deterministic, and the same on /v1beta1 */
    struct reply again = emulate("/v1beta1/projects/duck-project/locations/us-east5/publishers/anthropic/models/"
                                 "claude-sonnet-4@20250514:rawPredict",
                                 VBODY "}");
    assert_string_equal(again.body, r.body);
    reply_free(&again);
    reply_free(&r);

    /* streamRawPredict with "stream": true: Anthropic's SSE, event by event */
    r = emulate(BASE "claude-sonnet-4@20250514:streamRawPredict", VBODY ",\"stream\":true}");
    assert_int_equal(r.status, 200);
    assert_true(r.stream);
    assert_true(r.nchunks >= 7);
    assert_non_null(strstr(r.ctype, "text/event-stream"));
    static const char *const order[] = {"event: message_start\n", "event: content_block_start\n",
                                        "event: content_block_delta\n", "event: content_block_stop\n",
                                        "event: message_delta\n", "event: message_stop\n"};
    const char *at = r.body;
    for (size_t i = 0; i < sizeof order / sizeof order[0]; i++) {
        const char *next = strstr(at, order[i]);
        if (next == NULL) {
            print_error("%s missing or out of order in %s\n", order[i], r.body);
            fail();
        }
        at = next;
    }
    assert_non_null(strstr(r.body, "\"model\":\"claude-sonnet-4@20250514\""));
    struct feed f = {.p = &rd_provider_anthropic, .u = NO_USAGE};
    struct rd_sse sse;
    rd_sse_init(&sse, 0);
    assert_int_equal(rd_sse_feed(&sse, r.body, strlen(r.body), on_event, &f), 0);
    rd_sse_free(&sse);
    assert_int_equal(f.ended, 1);
    assert_int_equal(f.u.input, input); /* the same prompt, the same count */
    assert_true(f.u.output > 0);
    reply_free(&r);

    /* count-tokens: the model in the body, the input_tokens messages would count */
    r = emulate(BASE "count-tokens:rawPredict",
                "{\"anthropic_version\":\"vertex-2023-10-16\",\"model\":\"claude-sonnet-4@20250514\"," PROMPT "}");
    assert_int_equal(r.status, 200);
    char want[64];
    snprintf(want, sizeof want, "{\"input_tokens\":%lld}", (long long)input);
    assert_string_equal(r.body, want);
    reply_free(&r);
}

static void test_emulator_errors_are_anthropic(void **state)
{
    (void)state;
    static const struct {
        const char *path, *body;
        int status;
        const char *needle;
    } cases[] = {
        {BASE "claude-sonnet-4@20250514:rawPredict", "{not json", 400, "not valid JSON"},
        {BASE "claude-sonnet-4@20250514:rawPredict", "[1]", 400, "valid dictionary"},
        {BASE "claude-sonnet-4@20250514:rawPredict", "{\"anthropic_version\":\"vertex-2023-10-16\",\"max_tokens\":5}",
         400, "messages"},
        {BASE "claude-sonnet-4@20250514:rawPredict", VBODY ",\"max_tokens\":\"x\"}", 400, "max_tokens"},
        {BASE "claude-sonnet-4@20250514:streamRawPredict", VBODY ",\"stream\":\"yes\"}", 400, "stream"},
        {BASE "count-tokens:rawPredict", "{" PROMPT "}", 400, "model: Field required"},
        {BASE "count-tokens:rawPredict", "", 400, "not valid JSON"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        struct reply r = emulate(cases[i].path, cases[i].body);
        if (r.status != cases[i].status || strstr(r.body, "\"type\":\"error\"") == NULL ||
            strstr(r.body, "\"invalid_request_error\"") == NULL || strstr(r.body, cases[i].needle) == NULL) {
            print_error("case %zu: %d %s\n", i, r.status, r.body);
            fail();
        }
        assert_false(r.stream); /* an error is never streamed */
        reply_free(&r);
    }
    /* a hostile model in the path is echoed printable, and still answered */
    struct reply r = emulate(BASE "claude\x7f\x01\"x:rawPredict", VBODY "}");
    assert_int_equal(r.status, 200);
    struct json_object *doc = NULL;
    struct rd_json_err jerr;
    assert_int_equal(rd_json_parse(r.body, strlen(r.body), 1 << 20, &doc, &jerr), 0);
    assert_string_equal(rd_json_get_str(doc, "model"), "claude??\"x");
    json_object_put(doc);
    reply_free(&r);
    /* the Google routes of the same proxy keep Google's dialect */
    r = emulate("/v1/projects/p/locations/l/publishers/google/models/gemini-2.0-flash:generateContent", "{}");
    assert_int_equal(r.status, 400);
    assert_non_null(strstr(r.body, "\"INVALID_ARGUMENT\""));
    reply_free(&r);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_claude_routes_speak_anthropic),
        cmocka_unit_test(test_body_usage_via_dialect),
        cmocka_unit_test(test_stream_usage_via_dialect),
        cmocka_unit_test(test_errors_are_anthropic),
        cmocka_unit_test(test_emulator_answers_messages),
        cmocka_unit_test(test_emulator_errors_are_anthropic),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
