/* Tests for Google's dialect (src/providers/google.c, gemini.c, vertex.c and
 * the emulator's google*.c): route matching for every path form, the Vertex
 * host rule, the error builder for each code, usage from recorded bodies and
 * streams (cached, thoughts, no double counting, split at every byte through
 * the SSE scanner), the secret query redaction, and emulator determinism. */
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
#include "providers/emulator/google.h"
#include "providers/google.h"
#include "providers/provider.h"
#include "util/arena.h"
#include "util/buf.h"
#include "util/err.h"
#include "util/json.h"
#include "util/json_scan.h"

static const struct rd_provider *gemini(void)
{
    const struct rd_provider *p = rd_provider_find("gemini");
    assert_non_null(p);
    return p;
}

static const struct rd_provider *vertex(void)
{
    const struct rd_provider *p = rd_provider_find("vertex_ai");
    assert_non_null(p);
    return p;
}

/* The model the provider's hook reads for method + path (and body). */
static const struct rd_route *route_model(const struct rd_provider *p, const char *method, const char *path,
                                          const char *body, char *model, size_t cap)
{
    struct rd_route_match m;
    const struct rd_route *r = rd_provider_route(p, method, path, &m);
    model[0] = '\0';
    if (r == NULL)
        return NULL;
    struct rd_provider_req req = {
        .method = method, .path = path, .query = "", .body = body, .body_len = strlen(body), .match = &m};
    p->model(p, &req, model, cap);
    return r;
}

/* ---- routes ---- */

static void test_gemini_routes(void **state)
{
    (void)state;
    static const struct {
        const char *method, *path;
        enum rd_req_kind kind;
        bool stream;
        const char *model;
    } cases[] = {
        {"POST", "/v1beta/models/gemini-2.0-flash:generateContent", RD_REQ_CHAT, false, "gemini-2.0-flash"},
        {"POST", "/v1beta/models/gemini-2.5-pro:streamGenerateContent", RD_REQ_CHAT, true, "gemini-2.5-pro"},
        {"POST", "/v1beta/models/gemini-2.0-flash:countTokens", RD_REQ_TOKENS, false, "gemini-2.0-flash"},
        {"POST", "/v1beta/models/gemini-embedding-001:embedContent", RD_REQ_EMBEDDING, false, "gemini-embedding-001"},
        {"POST", "/v1beta/models/text-embedding-004:batchEmbedContents", RD_REQ_EMBEDDING, false, "text-embedding-004"},
        {"GET", "/v1beta/models", RD_REQ_MODELS, false, ""},
        {"GET", "/v1beta/models/gemini-1.5-pro", RD_REQ_MODELS, false, "gemini-1.5-pro"},
        {"POST", "/v1/models/gemini-2.0-flash:generateContent", RD_REQ_CHAT, false, "gemini-2.0-flash"},
        {"POST", "/v1/models/gemini-2.0-flash:streamGenerateContent", RD_REQ_CHAT, true, "gemini-2.0-flash"},
        {"GET", "/v1/models", RD_REQ_MODELS, false, ""},
        {"POST", "/v1beta/tunedModels/my-tune:generateContent", RD_REQ_CHAT, false, "my-tune"},
    };
    char model[128];
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        const struct rd_route *r = route_model(gemini(), cases[i].method, cases[i].path, "", model, sizeof model);
        if (r == NULL) {
            print_error("no route for %s %s\n", cases[i].method, cases[i].path);
            fail();
        }
        assert_int_equal(r->kind, cases[i].kind);
        assert_int_equal((r->flags & RD_ROUTE_STREAMABLE) != 0, cases[i].stream);
        /* generation and embeddings are cached; model lists and token counts are not */
        assert_int_equal((r->flags & RD_ROUTE_CACHEABLE) != 0, r->kind != RD_REQ_MODELS && r->kind != RD_REQ_TOKENS);
        assert_null(r->dialect);
        assert_string_equal(model, cases[i].model);
    }
    /* Other paths are forwarded, but are no route. */
    assert_null(route_model(gemini(), "POST", "/v1beta/models/x:unknownMethod", "", model, sizeof model));
    assert_null(route_model(gemini(), "GET", "/v1beta/models/x:generateContent/more", "", model, sizeof model));
    assert_null(route_model(gemini(), "POST", "/v1beta/models/:generateContent", "", model, sizeof model));
    assert_null(route_model(gemini(), "DELETE", "/v1beta/models/x", "", model, sizeof model));
}

static void test_vertex_routes(void **state)
{
    (void)state;
    static const char *const versions[] = {"/v1", "/v1beta1"};
    static const char *const publishers[] = {"google", "anthropic", "meta", "mistralai"};
    static const struct {
        const char *verb;
        enum rd_req_kind kind;
        bool stream;
    } verbs[] = {
        {"generateContent", RD_REQ_CHAT, false}, {"streamGenerateContent", RD_REQ_CHAT, true},
        {"rawPredict", RD_REQ_CHAT, false},      {"streamRawPredict", RD_REQ_CHAT, true},
        {"predict", RD_REQ_EMBEDDING, false},    {"countTokens", RD_REQ_TOKENS, false},
    };
    char path[256], model[128];
    for (size_t v = 0; v < 2; v++)
        for (size_t p = 0; p < 4; p++)
            for (size_t k = 0; k < sizeof verbs / sizeof verbs[0]; k++) {
                const char *m = strcmp(publishers[p], "anthropic") == 0 ? "claude-sonnet-4@20250514" : "some-model-001";
                snprintf(path, sizeof path, "%s/projects/my-proj/locations/us-east5/publishers/%s/models/%s:%s", versions[v],
                         publishers[p], m, verbs[k].verb);
                const struct rd_route *r = route_model(vertex(), "POST", path, "", model, sizeof model);
                if (r == NULL) {
                    print_error("no route for %s\n", path);
                    fail();
                }
                assert_int_equal(r->kind, verbs[k].kind);
                assert_int_equal((r->flags & RD_ROUTE_STREAMABLE) != 0, verbs[k].stream);
                assert_string_equal(model, m);
            }
    /* Claude's token counting names the model in the body. */
    const struct rd_route *r =
        route_model(vertex(), "POST", "/v1/projects/p/locations/us-east5/publishers/anthropic/models/count-tokens:rawPredict",
                    "{\"model\":\"claude-3-5-haiku@20241022\",\"messages\":[]}", model, sizeof model);
    assert_non_null(r);
    assert_int_equal(r->kind, RD_REQ_TOKENS);
    assert_string_equal(model, "claude-3-5-haiku@20241022");
    /* endpoints and the SDK's models.get / models.list paths */
    r = route_model(vertex(), "POST", "/v1/projects/p/locations/europe-west4/endpoints/1234567:streamGenerateContent", "",
                    model, sizeof model);
    assert_non_null(r);
    assert_string_equal(model, "1234567");
    r = route_model(vertex(), "GET", "/v1beta1/publishers/google/models/gemini-2.0-flash", "", model, sizeof model);
    assert_non_null(r);
    assert_int_equal(r->kind, RD_REQ_MODELS);
    assert_string_equal(model, "gemini-2.0-flash");
    assert_non_null(route_model(vertex(), "GET", "/v1beta1/publishers/google/models", "", model, sizeof model));
    /* malformed forms are no route */
    assert_null(route_model(vertex(), "POST", "/v1/projects/p/locations/l/publishers/google/models/m:nope", "", model,
                            sizeof model));
    assert_null(route_model(vertex(), "POST", "/v1/projects//locations/l/publishers/google/models/m:generateContent", "",
                            model, sizeof model));
    assert_null(route_model(vertex(), "POST", "/v2/projects/p/locations/l/publishers/google/models/m:generateContent", "",
                            model, sizeof model));
}

/* ---- Vertex host rule ---- */

static int vprepare(const char *base, bool is_default, const char *path, const char *query, struct rd_buf *url)
{
    struct rd_arena arena;
    struct rd_hdrs h;
    rd_arena_init(&arena);
    rd_hdrs_init(&h, &arena);
    rd_buf_init(url, 0);
    struct rd_provider_req r = {.method = "POST", .path = path, .query = query, .body = "", .body_len = 0};
    struct rd_upstream_prep up = {.base = base, .base_is_default = is_default, .url = url, .headers = &h, .arena = &arena};
    const struct rd_provider *p = vertex();
    int rc = p->prepare(p, &r, &up);
    rd_hdrs_free(&h);
    rd_arena_free(&arena);
    return rc;
}

static void test_vertex_host_rule(void **state)
{
    (void)state;
    const char *dflt = vertex()->default_upstream;
    static const struct {
        const char *path, *query, *want;
    } cases[] = {
        {"/v1/projects/p/locations/us-central1/publishers/google/models/m:generateContent", "",
         "https://us-central1-aiplatform.googleapis.com/v1/projects/p/locations/us-central1/publishers/google/models/"
         "m:generateContent"},
        {"/v1beta1/projects/p/locations/europe-west4/publishers/google/models/m:streamGenerateContent", "alt=sse",
         "https://europe-west4-aiplatform.googleapis.com/v1beta1/projects/p/locations/europe-west4/publishers/google/"
         "models/m:streamGenerateContent?alt=sse"},
        {"/v1/projects/p/locations/global/publishers/google/models/m:generateContent", "",
         "https://aiplatform.googleapis.com/v1/projects/p/locations/global/publishers/google/models/m:generateContent"},
        /* no location in the path: the global endpoint */
        {"/v1beta1/publishers/google/models/gemini-2.0-flash", "",
         "https://aiplatform.googleapis.com/v1beta1/publishers/google/models/gemini-2.0-flash"},
        /* hostile locations never make a host name */
        {"/v1/projects/p/locations/evil.com/x", "", "https://aiplatform.googleapis.com/v1/projects/p/locations/evil.com/x"},
        {"/v1/projects/p/locations/a@b/x", "", "https://aiplatform.googleapis.com/v1/projects/p/locations/a@b/x"},
        {"/v1/projects/p/locations/-x/y", "", "https://aiplatform.googleapis.com/v1/projects/p/locations/-x/y"},
        {"/v1/projects/p/locations/US-EAST1/y", "", "https://aiplatform.googleapis.com/v1/projects/p/locations/US-EAST1/y"},
        {"/v1/projects/p/locations", "", "https://aiplatform.googleapis.com/v1/projects/p/locations"},
    };
    struct rd_buf url;
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        assert_int_equal(vprepare(dflt, true, cases[i].path, cases[i].query, &url), 0);
        assert_string_equal(url.data, cases[i].want);
        rd_buf_free(&url);
    }
    /* a location of 64 characters is too long to be one */
    char path[200], loc[65];
    memset(loc, 'a', 64);
    loc[64] = '\0';
    snprintf(path, sizeof path, "/v1/projects/p/locations/%s/x", loc);
    const char *l;
    assert_int_equal(rd_vertex_location(path, &l), 0);
    loc[63] = '\0';
    snprintf(path, sizeof path, "/v1/projects/p/locations/%s/x", loc);
    assert_int_equal(rd_vertex_location(path, &l), 63);
    /* upstream_url set: it wins, path and query unchanged */
    assert_int_equal(vprepare("http://127.0.0.1:9000", false, cases[0].path, "alt=sse", &url), 0);
    assert_string_equal(url.data, "http://127.0.0.1:9000/v1/projects/p/locations/us-central1/publishers/google/models/"
                                  "m:generateContent?alt=sse");
    rd_buf_free(&url);
    /* Gemini never rewrites the host */
    assert_ptr_equal(gemini()->prepare, rd_provider_prepare_passthrough);
}

/* ---- errors ---- */

static void test_errors(void **state)
{
    (void)state;
    static const struct {
        int code;
        const char *status;
    } cases[] = {
        {400, "INVALID_ARGUMENT"},   {401, "UNAUTHENTICATED"}, {403, "PERMISSION_DENIED"}, {404, "NOT_FOUND"},
        {408, "DEADLINE_EXCEEDED"}, {409, "ABORTED"},          {429, "RESOURCE_EXHAUSTED"}, {499, "CANCELLED"},
        {500, "INTERNAL"},           {501, "NOT_IMPLEMENTED"}, {503, "UNAVAILABLE"},       {504, "DEADLINE_EXCEEDED"},
        {502, "UNKNOWN"},            {418, "UNKNOWN"},         {413, "UNKNOWN"},           {0, "UNKNOWN"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        for (int w = 0; w < 2; w++) {
            const struct rd_provider *p = w ? vertex() : gemini();
            struct rd_arena arena;
            struct rd_hdrs h;
            struct rd_buf body;
            rd_arena_init(&arena);
            rd_hdrs_init(&h, &arena);
            rd_buf_init(&body, 0);
            struct rd_error_spec e = {.status = cases[i].code, .message = "it \"broke\"", .request_id = "req_1",
                                      .retry_after_s = cases[i].code == 429 ? 7 : -1};
            rd_provider_error(p, &e, &h, &body);
            struct json_object *doc = NULL;
            struct rd_json_err jerr;
            assert_int_equal(rd_json_parse(body.data, body.len, 1 << 20, &doc, &jerr), 0);
            struct json_object *err = rd_json_get(doc, "error");
            assert_int_equal(rd_json_get_int(err, "code", -1), cases[i].code);
            assert_string_equal(rd_json_get_str(err, "status"), cases[i].status);
            assert_string_equal(rd_json_get_str(err, "message"), "it \"broke\"");
            assert_int_equal(json_object_object_length(doc), 1);
            assert_string_equal(rd_hdrs_get(&h, "content-type"), "application/json; charset=UTF-8");
            assert_string_equal(rd_hdrs_get(&h, "x-request-id"), "req_1");
            if (cases[i].code == 429) {
                assert_string_equal(rd_hdrs_get(&h, "retry-after"), "7");
                struct json_object *d = json_object_array_get_idx(rd_json_get(err, "details"), 0);
                assert_string_equal(rd_json_get_str(d, "@type"), "type.googleapis.com/google.rpc.RetryInfo");
                assert_string_equal(rd_json_get_str(d, "retryDelay"), "7s");
            } else {
                assert_null(rd_hdrs_get(&h, "retry-after"));
                assert_null(rd_json_get(err, "details"));
            }
            json_object_put(doc);
            rd_buf_free(&body);
            rd_hdrs_free(&h);
            rd_arena_free(&arena);
        }
    }
    /* the mid-stream form: one SSE data line with the error object */
    struct rd_buf b;
    rd_buf_init(&b, 0);
    struct rd_error_spec e = {.status = 500, .message = "boom", .request_id = NULL, .retry_after_s = -1};
    rd_google_stream_error(&e, &b);
    assert_string_equal(b.data, "data: {\"error\":{\"code\":500,\"message\":\"boom\",\"status\":\"INTERNAL\"}}\r\n\r\n");
    rd_buf_free(&b);
}

/* ---- usage ---- */

#define U(in, out, cached, cw, reas) ((struct rd_usage){in, out, cached, cw, reas})

static void assert_usage(struct rd_usage got, struct rd_usage want)
{
    if (memcmp(&got, &want, sizeof got) != 0) {
        print_error("usage in %lld out %lld cached %lld cw %lld reasoning %lld, wanted %lld %lld %lld %lld %lld\n",
                    (long long)got.input, (long long)got.output, (long long)got.cached, (long long)got.cache_write,
                    (long long)got.reasoning, (long long)want.input, (long long)want.output, (long long)want.cached,
                    (long long)want.cache_write, (long long)want.reasoning);
        fail();
    }
}

static struct rd_usage body_usage(const char *body)
{
    struct rd_usage u = U(-1, -1, -1, -1, -1);
    gemini()->body_usage(gemini(), body, strlen(body), &u);
    return u;
}

static void test_body_usage(void **state)
{
    (void)state;
    /* plain: totalTokenCount is not read (it would double count) */
    assert_usage(body_usage("{\"candidates\":[],\"usageMetadata\":{\"promptTokenCount\":10,\"candidatesTokenCount\":5,"
                            "\"totalTokenCount\":15}}"),
                 U(10, 5, 0, -1, 0));
    /* cached content is part of promptTokenCount: input stays 1000 */
    assert_usage(body_usage("{\"usageMetadata\":{\"promptTokenCount\":1000,\"cachedContentTokenCount\":800,"
                            "\"candidatesTokenCount\":20,\"totalTokenCount\":1020}}"),
                 U(1000, 20, 800, -1, 0));
    /* thoughts are outside candidatesTokenCount: added to output, and reasoning */
    assert_usage(body_usage("{\"usageMetadata\":{\"promptTokenCount\":12,\"candidatesTokenCount\":30,"
                            "\"thoughtsTokenCount\":200,\"totalTokenCount\":242}}"),
                 U(12, 230, 0, -1, 200));
    /* tool-use prompt tokens are input */
    assert_usage(body_usage("{\"usageMetadata\":{\"promptTokenCount\":12,\"toolUsePromptTokenCount\":40,"
                            "\"candidatesTokenCount\":3,\"totalTokenCount\":55}}"),
                 U(52, 3, 0, -1, 0));
    /* Vertex's extra fields are ignored; embedContent's usage is input only */
    assert_usage(body_usage("{\"usageMetadata\":{\"promptTokenCount\":4,\"candidatesTokenCount\":2,\"totalTokenCount\":"
                            "6,\"trafficType\":\"ON_DEMAND\",\"promptTokensDetails\":[{\"modality\":\"TEXT\","
                            "\"tokenCount\":4}]},\"createTime\":\"2025-01-01T00:00:00Z\"}"),
                 U(4, 2, 0, -1, 0));
    assert_usage(body_usage("{\"embedding\":{\"values\":[0.1]},\"usageMetadata\":{\"promptTokenCount\":9,"
                            "\"totalTokenCount\":9}}"),
                 U(9, 0, 0, -1, 0));
    /* the alt-less stream: a JSON array, cumulative usage, the last wins */
    assert_usage(body_usage("[{\"candidates\":[],\"usageMetadata\":{\"promptTokenCount\":8,\"candidatesTokenCount\":2}}"
                            "\n,\r\n{\"candidates\":[],\"usageMetadata\":{\"promptTokenCount\":8,\"candidatesTokenCount\""
                            ":9,\"thoughtsTokenCount\":1}}\n]"),
                 U(8, 10, 0, -1, 1));
    /* Vertex :predict embeddings: statistics.token_count summed */
    assert_usage(body_usage("{\"predictions\":[{\"embeddings\":{\"statistics\":{\"truncated\":false,\"token_count\":"
                            "3},\"values\":[1]}},{\"embeddings\":{\"statistics\":{\"token_count\":4.0}}}],"
                            "\"metadata\":{\"billableCharacterCount\":20}}"),
                 U(7, 0, -1, -1, -1));
    /* nothing reported, malformed, hostile: unchanged */
    assert_usage(body_usage("{\"totalTokens\":5}"), U(-1, -1, -1, -1, -1));
    assert_usage(body_usage("{\"usageMetadata\":{\"promptTokenCount\":\"ten\"}}"), U(-1, -1, -1, -1, -1));
    assert_usage(body_usage("{\"usageMetadata\":{\"promptTokenCount\":-3}}"), U(-1, -1, -1, -1, -1));
    assert_usage(body_usage("{\"usageMetadata\":{\"promptTokenCount\":1"), U(-1, -1, -1, -1, -1));
    assert_usage(body_usage("[{\"usageMetadata\":"), U(-1, -1, -1, -1, -1));
    assert_usage(body_usage(""), U(-1, -1, -1, -1, -1));
    /* cached above the input (promptTokenCount missing): cut to the input,
     * never more than it (found by fuzz/fuzz_google.c) */
    assert_usage(body_usage("{\"usageMetadata\":{\"candidatesTokenCount\":3,\"cachedContentTokenCount\":4}}"),
                 U(0, 3, 0, -1, 0));
    assert_usage(body_usage("{\"usageMetadata\":{\"promptTokenCount\":2,\"toolUsePromptTokenCount\":1,"
                            "\"cachedContentTokenCount\":9}}"),
                 U(3, 0, 3, -1, 0));
    /* huge counts saturate instead of overflowing */
    struct rd_usage big = body_usage("{\"usageMetadata\":{\"promptTokenCount\":9223372036854775807,"
                                     "\"toolUsePromptTokenCount\":5}}");
    assert_true(big.input == INT64_MAX);
}

/* A recorded Gemini stream (alt=sse, CRLF), cut into pieces of n bytes and fed
 * through the engine's SSE scanner to the provider's stream hook. */
static const char STREAM[] =
    "data: {\"candidates\":[{\"content\":{\"parts\":[{\"text\":\"Hel\"}],\"role\":\"model\"},\"index\":0}],"
    "\"usageMetadata\":{\"promptTokenCount\":6,\"totalTokenCount\":6},\"modelVersion\":\"gemini-2.5-flash\"}\r\n\r\n"
    "data: {\"candidates\":[{\"content\":{\"parts\":[{\"text\":\"lo, finishReason is not a key here\"}],\"role\":"
    "\"model\"},\"index\":0}],\"usageMetadata\":{\"promptTokenCount\":6,\"candidatesTokenCount\":4,"
    "\"totalTokenCount\":10}}\r\n\r\n"
    "data: {\"candidates\":[{\"content\":{\"parts\":[{\"text\":\"!\"}],\"role\":\"model\"},\"finishReason\":\"STOP\","
    "\"index\":0}],\"usageMetadata\":{\"promptTokenCount\":6,\"cachedContentTokenCount\":2,\"candidatesTokenCount\""
    ":5,\"thoughtsTokenCount\":7,\"totalTokenCount\":18}}\r\n\r\n";

struct feed {
    struct rd_usage u;
    int ended;    /* events that returned 1 */
    int events;
    int ended_at; /* index of the first ending event */
};

static int on_event(void *ud, const struct rd_sse_event *ev)
{
    struct feed *f = ud;
    struct rd_stream_event se = rd_stream_event_of_sse(ev);
    if (gemini()->stream_event(gemini(), &se, &f->u) == 1 && f->ended++ == 0)
        f->ended_at = f->events;
    f->events++;
    return 0;
}

static struct feed feed_stream(const char *s, size_t piece)
{
    struct feed f = {.u = U(-1, -1, -1, -1, -1), .ended_at = -1};
    struct rd_sse sse;
    rd_sse_init(&sse, 0);
    size_t len = strlen(s);
    for (size_t i = 0; i < len; i += piece)
        (void)rd_sse_feed(&sse, s + i, i + piece <= len ? piece : len - i, on_event, &f);
    rd_sse_free(&sse);
    return f;
}

static void test_stream_usage(void **state)
{
    (void)state;
    size_t len = strlen(STREAM);
    for (size_t piece = 1; piece <= len; piece = piece < 16 ? piece + 1 : piece * 2) {
        struct feed f = feed_stream(STREAM, piece);
        assert_int_equal(f.events, 3);
        assert_int_equal(f.ended, 1);
        assert_int_equal(f.ended_at, 2);
        assert_usage(f.u, U(6, 12, 2, -1, 7));
    }
    /* a stream cut before the finishReason chunk: usage so far, not ended */
    const char *cut = strstr(STREAM, "data: {\"candidates\":[{\"content\":{\"parts\":[{\"text\":\"!\"");
    char partial[sizeof STREAM];
    memcpy(partial, STREAM, (size_t)(cut - STREAM));
    partial[cut - STREAM] = '\0';
    struct feed f = feed_stream(partial, 7);
    assert_int_equal(f.ended, 0);
    assert_usage(f.u, U(6, 4, 0, -1, 0));
    /* a blocked prompt ends the stream without candidates; an error chunk does not */
    f = feed_stream("data: {\"promptFeedback\":{\"blockReason\":\"SAFETY\"},\"usageMetadata\":{\"promptTokenCount\":3}}"
                    "\r\n\r\n",
                    5);
    assert_int_equal(f.ended, 1);
    assert_usage(f.u, U(3, 0, 0, -1, 0));
    f = feed_stream("data: {\"error\":{\"code\":500,\"message\":\"finishReason\",\"status\":\"INTERNAL\"}}\r\n\r\n", 3);
    assert_int_equal(f.ended, 0);
    /* a finishReason that is not a string, or inside function args, is no end */
    f = feed_stream("data: {\"candidates\":[{\"finishReason\":null}]}\n\n", 4);
    assert_int_equal(f.ended, 0);
    f = feed_stream("data: {\"candidates\":[{\"content\":{\"parts\":[{\"functionCall\":{\"name\":\"f\",\"args\":"
                    "{\"finishReason\":\"x\"}}}]}}]}\n\n",
                    9);
    assert_int_equal(f.ended, 0);
}

/* ---- rd_json_scan_elements ---- */

static int count_elem(void *ud, size_t index, struct rd_json_span v)
{
    (void)v;
    size_t *n = ud;
    assert_int_equal(index, *n);
    ++*n;
    return 0;
}

static void test_scan_elements(void **state)
{
    (void)state;
    static const struct {
        const char *doc;
        int rc;
        size_t n;
    } cases[] = {
        {"[]", 0, 0},          {" [ ] ", 0, 0},         {"[1]", 0, 1},       {"[1, \"a]\", {\"b\":[2]}, [3,[4]], null]", 0, 5},
        {"[1,]", RD_EPROTO, 1}, {"[1 2]", RD_EPROTO, 1}, {"[", RD_EPROTO, 0}, {"{}", RD_EPROTO, 0},
        {"[{]", RD_EPROTO, 0},  {"", RD_EPROTO, 0},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        size_t n = 0;
        assert_int_equal(rd_json_scan_elements(cases[i].doc, strlen(cases[i].doc), count_elem, &n), cases[i].rc);
        assert_int_equal(n, cases[i].n);
    }
}

/* ---- secret query redaction ---- */

static void test_redact_query(void **state)
{
    (void)state;
    static const struct {
        const char *in, *want;
    } cases[] = {
        {"key=AIzaSECRET", "key=" RD_REDACTED},
        {"alt=sse&key=AIzaSECRET", "alt=sse&key=" RD_REDACTED},
        {"key=a&key=b&x=1", "key=" RD_REDACTED "&key=" RD_REDACTED "&x=1"},
        {"%6Bey=AIzaSECRET", "%6Bey=" RD_REDACTED},
        {"keys=1&akey=2&key", "keys=1&akey=2&key"},
        {"", ""},
        {"&&key=s&", "&&key=" RD_REDACTED "&"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        struct rd_buf b;
        rd_buf_init(&b, 0);
        assert_int_equal(rd_provider_redact_query(gemini(), cases[i].in, &b), 0);
        assert_string_equal(b.data ? b.data : "", cases[i].want);
        rd_buf_free(&b);
    }
    /* a provider without secret parameters copies the query */
    struct rd_buf b;
    rd_buf_init(&b, 0);
    assert_int_equal(rd_provider_redact_query(rd_provider_find("openai"), "key=x", &b), 0);
    assert_string_equal(b.data, "key=x");
    rd_buf_free(&b);
}

/* ---- emulator ---- */

static char *emulate(const struct rd_provider *p, const char *method, const char *path, const char *query,
                     const char *body, uint64_t seed, int *status, bool *stream)
{
    struct rd_route_match m;
    rd_provider_route(p, method, path, &m);
    struct rd_emu_request req = {.method = method, .path = path, .query = query, .body = body,
                                 .body_len = strlen(body), .seed = seed, .match = &m};
    struct rd_emu_reply out;
    assert_int_equal(p->emulate(p->emulator, &req, &out), 0);
    struct rd_buf b;
    rd_buf_init(&b, 0);
    for (size_t i = 0; i < out.n; i++)
        assert_int_equal(rd_buf_append(&b, out.chunks[i].data, out.chunks[i].len), 0);
    *status = out.status;
    if (stream)
        *stream = out.stream;
    rd_emu_reply_free(&out);
    size_t len;
    return rd_buf_steal(&b, &len);
}

static void test_emulator_determinism(void **state)
{
    (void)state;
    const char *path = "/v1beta/models/gemini-2.0-flash:generateContent";
    const char *body = "{\"contents\":[{\"role\":\"user\",\"parts\":[{\"text\":\"quack\"}]}]}";
    int st;
    char *a = emulate(gemini(), "POST", path, "", body, 0, &st, NULL);
    assert_int_equal(st, 200);
    char *b = emulate(gemini(), "POST", path, "", body, 0, &st, NULL);
    assert_string_equal(a, b);
    char *c = emulate(gemini(), "POST", path, "", body, 42, &st, NULL);
    assert_string_not_equal(a, c);
    /* the stream tells the same text and ends with the same usage */
    bool stream = false;
    char *s = emulate(gemini(), "POST", "/v1beta/models/gemini-2.0-flash:streamGenerateContent", "alt=sse", body, 0,
                      &st, &stream);
    assert_true(stream);
    struct feed f = feed_stream(s, 13);
    assert_int_equal(f.ended, 1);
    struct rd_usage plain = body_usage(a);
    assert_usage(f.u, plain);
    assert_true(plain.input > 0 && plain.output > 0);
    /* without alt=sse: a JSON array whose usage matches too */
    char *arr = emulate(gemini(), "POST", "/v1beta/models/gemini-2.0-flash:streamGenerateContent", "", body, 0, &st,
                        &stream);
    assert_true(stream);
    assert_int_equal(arr[0], '[');
    assert_usage(body_usage(arr), plain);
    struct json_object *doc = NULL;
    struct rd_json_err jerr;
    assert_int_equal(rd_json_parse(arr, strlen(arr), 1 << 20, &doc, &jerr), 0);
    assert_true(json_object_array_length(doc) >= 2);
    json_object_put(doc);
    /* Vertex answers the same request with its own fields */
    char *v = emulate(vertex(), "POST",
                      "/v1beta1/projects/p/locations/us-central1/publishers/google/models/gemini-2.0-flash:generateContent",
                      "", body, 0, &st, NULL);
    assert_int_equal(st, 200);
    assert_non_null(strstr(v, "\"createTime\""));
    assert_null(strstr(a, "\"createTime\""));
    free(a);
    free(b);
    free(c);
    free(s);
    free(arr);
    free(v);
}

static void test_emulator_errors(void **state)
{
    (void)state;
    static const struct {
        const char *method, *path, *body;
        int status;
        const char *needle;
    } cases[] = {
        {"POST", "/v1beta/models/m:generateContent", "{not json", 400, "\"INVALID_ARGUMENT\""},
        {"POST", "/v1beta/models/m:generateContent", "[1]", 400, "Invalid JSON payload"},
        {"POST", "/v1beta/models/m:generateContent", "{}", 400, "contents is not specified"},
        {"POST", "/v1beta/models/m:generateContent", "{\"contents\":[{\"role\":\"bot\",\"parts\":[{\"text\":\"x\"}]}]}",
         400, "valid role"},
        {"POST", "/v1beta/models/m:generateContent", "{\"contents\":[{\"parts\":[]}]}", 400, "must not be empty"},
        {"POST", "/v1beta/models/m:generateContent", "{\"contents\":[{\"parts\":7}]}", 400, "must not be empty"},
        {"POST", "/v1beta/models/m:generateContent", "{\"contents\":{\"parts\":[]}}", 400, "INVALID_ARGUMENT"},
        {"POST", "/v1beta/models/m:generateContent",
         "{\"contents\":[{\"parts\":[{\"text\":\"x\"}]}],\"generationConfig\":{\"maxOutputTokens\":\"5\"}}", 400,
         "max_output_tokens"},
        {"POST", "/v1beta/models/m:generateContent",
         "{\"contents\":[{\"parts\":[{\"text\":\"x\"}]}],\"generationConfig\":{\"candidateCount\":9}}", 400,
         "candidate_count"},
        {"POST", "/v1beta/models/m:generateContent", "{\"contents\":[{\"parts\":[{\"text\":\"x\"}]}],\"tools\":7}", 200,
         "\"STOP\""},
        {"POST", "/v1beta/models/text-embedding-004:embedContent",
         "{\"content\":{\"parts\":[{\"text\":\"x\"}]},\"outputDimensionality\":769}", 400, "output_dimensionality"},
        {"POST", "/v1beta/models/text-embedding-004:embedContent", "{\"content\":{}}", 400, "content"},
        {"POST", "/v1beta/models/text-embedding-004:batchEmbedContents", "{\"requests\":[]}", 400, "requests"},
        {"GET", "/v1beta/models/unknown-model", "", 404, "\"NOT_FOUND\""},
        {"GET", "/v1beta/models/gemini-2.0-flash", "", 200, "\"models/gemini-2.0-flash\""},
        {"POST", "/v1beta/nowhere", "{}", 404, "/v1beta/nowhere"},
        {"POST", "/v1beta/models/m:countTokens", "{\"contents\":[{\"parts\":[{\"text\":\"abcdefgh\"}]}]}", 200,
         "{\"totalTokens\":2,"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        int st;
        char *out = emulate(gemini(), cases[i].method, cases[i].path, "", cases[i].body, 0, &st, NULL);
        if (st != cases[i].status || strstr(out, cases[i].needle) == NULL) {
            print_error("case %zu: %d %s\n", i, st, out);
            fail();
        }
        free(out);
    }
    /* Vertex's unknown path, its :predict embeddings and an unknown publisher model */
    int st;
    char *out = emulate(vertex(), "POST", "/v1/projects/p/locations/l/publishers/google/models/text-embedding-005:predict",
                        "", "{\"instances\":[{\"content\":\"duck\"},{\"content\":\"goose\"}],\"parameters\":"
                            "{\"outputDimensionality\":4}}",
                        0, &st, NULL);
    assert_int_equal(st, 200);
    struct rd_usage u = body_usage(out);
    assert_true(u.input == 3); /* "duck" 1 token, "goose" 2 */
    free(out);
    out = emulate(vertex(), "GET", "/v1beta1/publishers/google/models/nope", "", "", 0, &st, NULL);
    assert_int_equal(st, 404);
    assert_non_null(strstr(out, "Publisher Model"));
    free(out);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_gemini_routes),     cmocka_unit_test(test_vertex_routes),
        cmocka_unit_test(test_vertex_host_rule),  cmocka_unit_test(test_errors),
        cmocka_unit_test(test_body_usage),        cmocka_unit_test(test_stream_usage),
        cmocka_unit_test(test_scan_elements),     cmocka_unit_test(test_redact_query),
        cmocka_unit_test(test_emulator_determinism), cmocka_unit_test(test_emulator_errors),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
