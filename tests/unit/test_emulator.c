/* Unit tests for the OpenAI-compatible emulator (providers/emulator): the
 * dialect's answers (shape, determinism, limits, errors) and the libuv
 * runner (order, pacing, backpressure, abort). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>
#include <math.h>
#include <openssl/evp.h>
#include <uv.h>

#include "providers/emulator/dialects.h"
#include "providers/emulator/emulator.h"
#include "providers/emulator/text.h"
#include "providers/provider.h"
#include "util/err.h"
#include "util/json.h"

/* ---- helpers ------------------------------------------------------------ */

/* Answers req as the engine does: matched against the real provider's route
 * table, then emulated in that provider's dialect. */
static void emulate(const char *provider, struct rd_emu_request *req, struct rd_emu_reply *out)
{
    const struct rd_provider *p = rd_provider_find(provider);
    assert_non_null(p);
    struct rd_route_match m;
    rd_provider_route(p, req->method, req->path, &m);
    req->match = &m;
    assert_int_equal(p->emulate(p->emulator, req, out), 0);
    req->match = NULL; /* m goes out of scope */
}

static void call(const char *provider, const char *method, const char *path, const char *body, struct rd_emu_reply *out)
{
    struct rd_emu_request req = {
        .method = method, .path = path, .query = "", .body = body, .body_len = body ? strlen(body) : 0};
    emulate(provider, &req, out);
}

static void post(const char *path, const char *body, struct rd_emu_reply *out)
{
    call("openai", "POST", path, body, out);
}

static struct json_object *parse(const char *s, size_t n)
{
    struct json_object *o = NULL;
    struct rd_json_err err;
    assert_int_equal(rd_json_parse(s, n, 1u << 26, &o, &err), 0);
    return o;
}

/* The whole body of a plain reply, parsed. */
static struct json_object *body_json(const struct rd_emu_reply *r)
{
    assert_false(r->stream);
    assert_int_equal(r->n, 1);
    assert_string_equal(r->content_type, "application/json");
    return parse(r->chunks[0].data, r->chunks[0].len);
}

/* The JSON of an SSE chunk "[event: x\n]data: {...}\n\n"; NULL for [DONE]. */
static struct json_object *sse_json(const struct rd_emu_chunk *c, const char **event, size_t *event_len)
{
    const char *p = c->data;
    assert_true(c->len >= 8);
    assert_memory_equal(c->data + c->len - 2, "\n\n", 2);
    if (event)
        *event = NULL;
    if (strncmp(p, "event: ", 7) == 0) {
        const char *nl = strchr(p, '\n');
        assert_non_null(nl);
        if (event) {
            *event = p + 7;
            *event_len = (size_t)(nl - p - 7);
        }
        p = nl + 1;
    }
    assert_memory_equal(p, "data: ", 6);
    p += 6;
    size_t n = (size_t)(c->data + c->len - 2 - p);
    if (n == 6 && memcmp(p, "[DONE]", 6) == 0)
        return NULL;
    return parse(p, n);
}

static const char *path_str(struct json_object *o, const char *a, const char *b)
{
    struct json_object *v = rd_json_get(o, a);
    return b ? rd_json_get_str(v, b) : json_object_get_string(v);
}

static struct json_object *choice0(struct json_object *root)
{
    struct json_object *choices = rd_json_get(root, "choices");
    assert_non_null(choices);
    return json_object_array_get_idx(choices, 0);
}

static void expect_error(const struct rd_emu_reply *r, int status, const char *exact_body)
{
    assert_int_equal(r->status, status);
    assert_int_equal(r->n, 1);
    assert_string_equal(r->chunks[0].data, exact_body);
}

/* ---- chat --------------------------------------------------------------- */

static const char CHAT_HELLO[] = "{\"model\":\"gpt-4o\",\"messages\":[{\"role\":\"system\",\"content\":\"Be brief.\"},"
                                 "{\"role\":\"user\",\"content\":\"Hello\"}]}";

static void test_chat_deterministic(void **state)
{
    (void)state;
    struct rd_emu_reply a, b, c;
    post("/v1/chat/completions", CHAT_HELLO, &a);
    post("/v1/chat/completions", CHAT_HELLO, &b);
    post("/v1/chat/completions",
         "{\"model\":\"gpt-4o\",\"messages\":[{\"role\":\"system\",\"content\":\"Be brief.\"},"
         "{\"role\":\"user\",\"content\":\"Hello!\"}]}",
         &c);
    assert_int_equal(a.n, b.n);
    assert_int_equal(a.chunks[0].len, b.chunks[0].len);
    assert_memory_equal(a.chunks[0].data, b.chunks[0].data, a.chunks[0].len);

    struct json_object *ja = body_json(&a), *jc = body_json(&c);
    const char *ta = path_str(choice0(ja), "message", "content");
    const char *tc = path_str(choice0(jc), "message", "content");
    assert_string_not_equal(ta, tc);
    assert_string_not_equal(rd_json_get_str(ja, "id"), rd_json_get_str(jc, "id"));
    json_object_put(ja);
    json_object_put(jc);
    rd_emu_reply_free(&a);
    rd_emu_reply_free(&b);
    rd_emu_reply_free(&c);
}

/* emulator.seed changes the answer, and the same seed gives it again. */
static void test_chat_seed(void **state)
{
    (void)state;
    struct rd_emu_reply r[3];
    const uint64_t seeds[3] = {0, 42, 42};
    for (int i = 0; i < 3; i++) {
        struct rd_emu_request req = {.method = "POST", .path = "/v1/chat/completions", .query = "",
                                     .body = CHAT_HELLO, .body_len = strlen(CHAT_HELLO), .seed = seeds[i]};
        emulate("openai", &req, &r[i]);
    }
    struct json_object *j0 = body_json(&r[0]), *j1 = body_json(&r[1]), *j2 = body_json(&r[2]);
    assert_string_not_equal(path_str(choice0(j0), "message", "content"), path_str(choice0(j1), "message", "content"));
    assert_string_equal(path_str(choice0(j1), "message", "content"), path_str(choice0(j2), "message", "content"));
    json_object_put(j0);
    json_object_put(j1);
    json_object_put(j2);
    for (int i = 0; i < 3; i++)
        rd_emu_reply_free(&r[i]);
}

/* DeepSeek answers with and without /v1; OpenAI only with it. Both come
 * from the provider's route table, model capture included. */
static void test_deepseek_without_v1(void **state)
{
    (void)state;
    struct rd_emu_reply a, b;
    const char *body = "{\"model\":\"deepseek-chat\",\"messages\":[{\"role\":\"user\",\"content\":\"hi\"}]}";
    call("deepseek", "POST", "/chat/completions", body, &a);
    call("openai", "POST", "/chat/completions", body, &b);
    assert_int_equal(a.status, 200);
    assert_int_equal(b.status, 404);
    rd_emu_reply_free(&a);
    rd_emu_reply_free(&b);

    call("deepseek", "GET", "/models/deepseek-chat", NULL, &a);
    struct json_object *j = body_json(&a);
    assert_int_equal(a.status, 200);
    assert_string_equal(rd_json_get_str(j, "id"), "deepseek-chat");
    assert_string_equal(rd_json_get_str(j, "owned_by"), "deepseek");
    json_object_put(j);
    rd_emu_reply_free(&a);
    call("deepseek", "GET", "/models/x", NULL, &a);
    expect_error(&a, 404,
                 "{\"error\":{\"message\":\"The model `x` does not exist or you do not have access to it.\","
                 "\"type\":\"invalid_request_error\",\"param\":null,\"code\":\"model_not_found\"}}");
    rd_emu_reply_free(&a);
    call("deepseek", "GET", "/models", NULL, &a);
    j = body_json(&a);
    assert_int_equal(json_object_array_length(rd_json_get(j, "data")), 2);
    json_object_put(j);
    rd_emu_reply_free(&a);
    /* No embeddings without /v1 either: the same 404 as any unknown path. */
    call("deepseek", "POST", "/embeddings", "{\"model\":\"x\",\"input\":\"x\"}", &a);
    expect_error(&a, 404,
                 "{\"error\":{\"message\":\"Invalid URL (POST /embeddings)\",\"type\":"
                 "\"invalid_request_error\",\"param\":null,\"code\":null}}");
    rd_emu_reply_free(&a);
}

static void test_chat_shape_and_usage(void **state)
{
    (void)state;
    struct rd_emu_reply r;
    post("/v1/chat/completions", CHAT_HELLO, &r);
    assert_int_equal(r.status, 200);
    struct json_object *j = body_json(&r);
    assert_memory_equal(rd_json_get_str(j, "id"), "chatcmpl-", 9);
    assert_string_equal(rd_json_get_str(j, "object"), "chat.completion");
    assert_true(rd_json_is_int(rd_json_get(j, "created")));
    assert_string_equal(rd_json_get_str(j, "model"), "gpt-4o");
    assert_string_equal(rd_json_get_str(j, "system_fingerprint"), "fp_rubberduck");
    assert_string_equal(rd_json_get_str(j, "service_tier"), "default");
    struct json_object *ch = choice0(j), *msg = rd_json_get(ch, "message");
    assert_int_equal(rd_json_get_int(ch, "index", -1), 0);
    assert_string_equal(rd_json_get_str(msg, "role"), "assistant");
    const char *content = rd_json_get_str(msg, "content");
    assert_memory_equal(content, "You said: \"Hello\".", 18);
    assert_true(json_object_object_get_ex(msg, "refusal", NULL) && rd_json_get(msg, "refusal") == NULL);
    assert_int_equal(json_object_array_length(rd_json_get(msg, "annotations")), 0);
    assert_true(json_object_object_get_ex(ch, "logprobs", NULL) && rd_json_get(ch, "logprobs") == NULL);
    assert_string_equal(rd_json_get_str(ch, "finish_reason"), "stop");

    struct json_object *u = rd_json_get(j, "usage");
    int64_t p = rd_json_get_int(u, "prompt_tokens", -1), c = rd_json_get_int(u, "completion_tokens", -1);
    /* 3 + (3 + ceil(9/4)) + (3 + ceil(5/4)) = 3 + 6 + 5 */
    assert_int_equal(p, 14);
    /* Echo pieces ("You" " said:" " \"Hello\".") plus 20..60 filler tokens. */
    assert_in_range(c, 3 + RD_EMU_FILLER_MIN, 3 + RD_EMU_FILLER_MAX);
    assert_int_equal(rd_json_get_int(u, "total_tokens", -1), p + c);
    assert_int_equal(rd_json_get_int(rd_json_get(u, "prompt_tokens_details"), "cached_tokens", -1), 0);
    assert_int_equal(rd_json_get_int(rd_json_get(u, "completion_tokens_details"), "reasoning_tokens", -1), 0);
    /* The plain body is tagged with its tokens so the runner can pace it. */
    assert_int_equal(r.chunks[0].tokens, (uint32_t)c);
    json_object_put(j);
    rd_emu_reply_free(&r);
}

/* A streamed request and the same plain one share their ids and text. */
static void test_chat_stream_matches_plain_ids(void **state)
{
    (void)state;
    struct rd_emu_reply s, p;
    post("/v1/chat/completions", "{\"model\":\"m\",\"messages\":[{\"role\":\"user\",\"content\":\"x\"}]}", &p);
    post("/v1/chat/completions",
         "{\"model\":\"m\",\"messages\":[{\"role\":\"user\",\"content\":\"x\"}],\"stream\":true}", &s);
    struct json_object *pj = body_json(&p), *sj = sse_json(&s.chunks[0], NULL, NULL);
    assert_string_equal(rd_json_get_str(pj, "id"), rd_json_get_str(sj, "id"));
    assert_int_equal(rd_json_get_int(pj, "created", 0), rd_json_get_int(sj, "created", 1));
    json_object_put(pj);
    json_object_put(sj);
    rd_emu_reply_free(&s);
    rd_emu_reply_free(&p);
}

static void test_chat_content_parts_and_n(void **state)
{
    (void)state;
    struct rd_emu_reply r;
    post("/v1/chat/completions",
         "{\"model\":\"m\",\"n\":3,\"messages\":[{\"role\":\"user\",\"content\":[{\"type\":\"text\",\"text\":\"ab\"},"
         "{\"type\":\"image_url\",\"image_url\":{\"url\":\"x\"}},{\"type\":\"text\",\"text\":\"cd\"}]}]}",
         &r);
    struct json_object *j = body_json(&r);
    struct json_object *choices = rd_json_get(j, "choices");
    assert_int_equal(json_object_array_length(choices), 3);
    for (size_t i = 0; i < 3; i++) {
        struct json_object *ch = json_object_array_get_idx(choices, i);
        assert_int_equal(rd_json_get_int(ch, "index", -1), (int64_t)i);
        assert_memory_equal(path_str(ch, "message", "content"), "You said: \"ab\ncd\".", 18);
    }
    /* Different seeds per choice: the filler differs. */
    assert_string_not_equal(path_str(json_object_array_get_idx(choices, 0), "message", "content"),
                            path_str(json_object_array_get_idx(choices, 1), "message", "content"));
    struct json_object *u = rd_json_get(j, "usage");
    /* 3 + 3 + ceil(5/4) + 85 for the image */
    assert_int_equal(rd_json_get_int(u, "prompt_tokens", -1), 3 + 3 + 2 + 85);
    json_object_put(j);
    rd_emu_reply_free(&r);
}

static void test_chat_max_tokens(void **state)
{
    (void)state;
    static const char *const bodies[] = {
        "{\"model\":\"m\",\"max_tokens\":5,\"messages\":[{\"role\":\"user\",\"content\":\"hi\"}]}",
        "{\"model\":\"m\",\"max_completion_tokens\":5,\"messages\":[{\"role\":\"user\",\"content\":\"hi\"}]}",
    };
    for (size_t i = 0; i < 2; i++) {
        struct rd_emu_reply r;
        post("/v1/chat/completions", bodies[i], &r);
        struct json_object *j = body_json(&r);
        assert_string_equal(rd_json_get_str(choice0(j), "finish_reason"), "length");
        assert_int_equal(rd_json_get_int(rd_json_get(j, "usage"), "completion_tokens", -1), 5);
        json_object_put(j);
        rd_emu_reply_free(&r);
    }
    struct rd_emu_reply r;
    post("/v1/chat/completions", "{\"model\":\"m\",\"max_tokens\":0,\"messages\":[{\"role\":\"user\",\"content\":\"x\"}]}",
         &r);
    expect_error(&r, 400,
                 "{\"error\":{\"message\":\"Invalid 'max_tokens': integer below minimum value. Expected a value >= 1, "
                 "but got 0 instead.\",\"type\":\"invalid_request_error\",\"param\":\"max_tokens\",\"code\":"
                 "\"integer_below_min_value\"}}");
    rd_emu_reply_free(&r);
}

/* Streams the same request as a plain one and checks the SSE sequence. */
static void check_chat_stream(bool include_usage)
{
    char body[256];
    snprintf(body, sizeof body,
             "{\"model\":\"m\",\"stream\":true,%s\"messages\":[{\"role\":\"user\",\"content\":\"Stream me\"}]}",
             include_usage ? "\"stream_options\":{\"include_usage\":true}," : "");
    struct rd_emu_reply s, p;
    post("/v1/chat/completions", body, &s);
    post("/v1/chat/completions", "{\"model\":\"m\",\"messages\":[{\"role\":\"user\",\"content\":\"Stream me\"}]}", &p);
    assert_true(s.stream);
    assert_string_equal(s.content_type, "text/event-stream; charset=utf-8");
    struct json_object *pj = body_json(&p);
    const char *want = path_str(choice0(pj), "message", "content");
    int64_t want_tokens = rd_json_get_int(rd_json_get(pj, "usage"), "completion_tokens", -1);

    char text[2048] = "";
    size_t pieces = 0, i = 0;
    struct json_object *first = sse_json(&s.chunks[i++], NULL, NULL);
    struct json_object *delta = rd_json_get(choice0(first), "delta");
    assert_string_equal(rd_json_get_str(delta, "role"), "assistant");
    assert_string_equal(rd_json_get_str(delta, "content"), "");
    assert_string_equal(rd_json_get_str(first, "object"), "chat.completion.chunk");
    json_object_put(first);
    for (;; i++) {
        struct json_object *c = sse_json(&s.chunks[i], NULL, NULL);
        assert_int_equal(json_object_object_get_ex(c, "usage", NULL), include_usage);
        const char *fin = rd_json_get_str(choice0(c), "finish_reason");
        if (fin) {
            assert_string_equal(fin, "stop");
            assert_int_equal(json_object_object_length(rd_json_get(choice0(c), "delta")), 0);
            json_object_put(c);
            break;
        }
        assert_int_equal(s.chunks[i].tokens, 1);
        strncat(text, path_str(choice0(c), "delta", "content"), sizeof text - strlen(text) - 1);
        pieces++;
        json_object_put(c);
    }
    assert_string_equal(text, want);
    assert_int_equal(pieces, want_tokens);
    i++;
    if (include_usage) {
        struct json_object *u = sse_json(&s.chunks[i++], NULL, NULL);
        assert_int_equal(json_object_array_length(rd_json_get(u, "choices")), 0);
        assert_int_equal(rd_json_get_int(rd_json_get(u, "usage"), "completion_tokens", -1), want_tokens);
        json_object_put(u);
    }
    assert_null(sse_json(&s.chunks[i], NULL, NULL));
    assert_int_equal(i + 1, s.n);
    json_object_put(pj);
    rd_emu_reply_free(&s);
    rd_emu_reply_free(&p);
}

static void test_chat_stream(void **state)
{
    (void)state;
    check_chat_stream(false);
    check_chat_stream(true);
}

static void test_completions(void **state)
{
    (void)state;
    struct rd_emu_reply r;
    post("/v1/completions", "{\"model\":\"gpt-3.5-turbo-instruct\",\"prompt\":[\"one\",\"two\"],\"max_tokens\":100}", &r);
    struct json_object *j = body_json(&r);
    assert_string_equal(rd_json_get_str(j, "object"), "text_completion");
    assert_memory_equal(rd_json_get_str(j, "id"), "cmpl-", 5);
    struct json_object *choices = rd_json_get(j, "choices");
    assert_int_equal(json_object_array_length(choices), 2);
    assert_memory_equal(rd_json_get_str(json_object_array_get_idx(choices, 1), "text"), "You said: \"two\".", 16);
    assert_string_equal(rd_json_get_str(json_object_array_get_idx(choices, 1), "finish_reason"), "stop");
    struct json_object *u = rd_json_get(j, "usage");
    assert_int_equal(rd_json_get_int(u, "prompt_tokens", -1), 2);
    assert_int_equal(rd_json_get_int(u, "total_tokens", -1), 2 + rd_json_get_int(u, "completion_tokens", -1));
    json_object_put(j);
    rd_emu_reply_free(&r);

    /* The legacy API's default max_tokens is 16. */
    post("/v1/completions", "{\"model\":\"m\",\"prompt\":\"x\",\"stream\":true}", &r);
    assert_true(r.stream);
    size_t deltas = 0;
    for (size_t i = 0; i + 1 < r.n; i++) {
        struct json_object *c = sse_json(&r.chunks[i], NULL, NULL);
        const char *fin = rd_json_get_str(choice0(c), "finish_reason");
        if (fin)
            assert_string_equal(fin, "length");
        else
            deltas++;
        json_object_put(c);
    }
    assert_int_equal(deltas, 16);
    assert_null(sse_json(&r.chunks[r.n - 1], NULL, NULL));
    rd_emu_reply_free(&r);
}

/* ---- embeddings --------------------------------------------------------- */

static void decode_b64_floats(const char *s, float *out, size_t dims)
{
    size_t n = strlen(s);
    unsigned char *raw = malloc(n);
    int len = EVP_DecodeBlock(raw, (const unsigned char *)s, (int)n);
    assert_true(len >= (int)(dims * 4));
    for (size_t k = 0; k < dims; k++) {
        uint32_t u = (uint32_t)raw[4 * k] | (uint32_t)raw[4 * k + 1] << 8 | (uint32_t)raw[4 * k + 2] << 16 |
                     (uint32_t)raw[4 * k + 3] << 24;
        memcpy(&out[k], &u, 4);
    }
    free(raw);
}

static void test_embeddings(void **state)
{
    (void)state;
    struct rd_emu_reply f, b;
    post("/v1/embeddings", "{\"model\":\"text-embedding-3-small\",\"input\":[\"alpha\",\"beta\",[1,2,3]],"
                           "\"dimensions\":256,\"encoding_format\":\"float\"}", &f);
    post("/v1/embeddings", "{\"model\":\"text-embedding-3-small\",\"input\":[\"alpha\",\"beta\",[1,2,3]],"
                           "\"dimensions\":256,\"encoding_format\":\"base64\"}", &b);
    struct json_object *jf = body_json(&f), *jb = body_json(&b);
    assert_string_equal(rd_json_get_str(jf, "object"), "list");
    assert_int_equal(rd_json_get_int(rd_json_get(jf, "usage"), "prompt_tokens", -1), 2 + 1 + 3);
    float dec[256];
    for (size_t i = 0; i < 3; i++) {
        struct json_object *ef = json_object_array_get_idx(rd_json_get(jf, "data"), i);
        struct json_object *eb = json_object_array_get_idx(rd_json_get(jb, "data"), i);
        assert_string_equal(rd_json_get_str(ef, "object"), "embedding");
        assert_int_equal(rd_json_get_int(ef, "index", -1), (int64_t)i);
        struct json_object *arr = rd_json_get(ef, "embedding");
        assert_int_equal(json_object_array_length(arr), 256);
        decode_b64_floats(rd_json_get_str(eb, "embedding"), dec, 256);
        double sum = 0;
        for (size_t k = 0; k < 256; k++) {
            float v = (float)json_object_get_double(json_object_array_get_idx(arr, k));
            assert_true(v == dec[k]);
            sum += (double)v * v;
        }
        assert_true(fabs(sum - 1.0) < 1e-5);
    }
    /* Different inputs, different vectors. */
    assert_string_not_equal(rd_json_get_str(json_object_array_get_idx(rd_json_get(jb, "data"), 0), "embedding"),
                            rd_json_get_str(json_object_array_get_idx(rd_json_get(jb, "data"), 1), "embedding"));
    json_object_put(jf);
    json_object_put(jb);
    rd_emu_reply_free(&f);
    rd_emu_reply_free(&b);
}

static void test_embeddings_dimensions(void **state)
{
    (void)state;
    static const struct {
        const char *body;
        size_t dims;
    } cases[] = {
        {"{\"model\":\"text-embedding-3-small\",\"input\":\"x\",\"encoding_format\":\"float\"}", 1536},
        {"{\"model\":\"text-embedding-3-large\",\"input\":\"x\",\"encoding_format\":\"float\"}", 3072},
        {"{\"model\":\"text-embedding-3-large\",\"input\":\"x\",\"encoding_format\":\"float\",\"dimensions\":7}", 7},
    };
    for (size_t i = 0; i < 3; i++) {
        struct rd_emu_reply r;
        post("/v1/embeddings", cases[i].body, &r);
        struct json_object *j = body_json(&r);
        struct json_object *e = json_object_array_get_idx(rd_json_get(j, "data"), 0);
        assert_int_equal(json_object_array_length(rd_json_get(e, "embedding")), cases[i].dims);
        json_object_put(j);
        rd_emu_reply_free(&r);
    }
    struct rd_emu_reply r;
    post("/v1/embeddings", "{\"model\":\"text-embedding-3-large\",\"input\":\"x\",\"dimensions\":9000}", &r);
    assert_int_equal(r.status, 400);
    assert_non_null(strstr(r.chunks[0].data, "\"param\":\"dimensions\""));
    rd_emu_reply_free(&r);
    post("/v1/embeddings", "{\"model\":\"text-embedding-3-small\"}", &r);
    expect_error(&r, 400,
                 "{\"error\":{\"message\":\"Missing required parameter: 'input'.\",\"type\":\"invalid_request_error\","
                 "\"param\":\"input\",\"code\":\"missing_required_parameter\"}}");
    rd_emu_reply_free(&r);
    call("deepseek", "POST", "/v1/embeddings", "{\"model\":\"x\",\"input\":\"x\"}", &r);
    assert_int_equal(r.status, 404);
    rd_emu_reply_free(&r);
}

/* ---- models, errors ----------------------------------------------------- */

static void test_models(void **state)
{
    (void)state;
    struct rd_emu_reply r;
    call("deepseek", "GET", "/v1/models", NULL, &r);
    struct json_object *j = body_json(&r);
    struct json_object *data = rd_json_get(j, "data");
    assert_string_equal(rd_json_get_str(j, "object"), "list");
    assert_int_equal(json_object_array_length(data), 2);
    assert_string_equal(rd_json_get_str(json_object_array_get_idx(data, 1), "id"), "deepseek-reasoner");
    assert_string_equal(rd_json_get_str(json_object_array_get_idx(data, 1), "owned_by"), "deepseek");
    json_object_put(j);
    rd_emu_reply_free(&r);

    call("openai", "GET", "/v1/models/gpt-4.1-mini", NULL, &r);
    j = body_json(&r);
    assert_string_equal(rd_json_get_str(j, "id"), "gpt-4.1-mini");
    assert_string_equal(rd_json_get_str(j, "object"), "model");
    json_object_put(j);
    rd_emu_reply_free(&r);

    call("openai", "GET", "/v1/models/nope", NULL, &r);
    expect_error(&r, 404,
                 "{\"error\":{\"message\":\"The model `nope` does not exist or you do not have access to it.\","
                 "\"type\":\"invalid_request_error\",\"param\":null,\"code\":\"model_not_found\"}}");
    rd_emu_reply_free(&r);
}

static void test_errors(void **state)
{
    (void)state;
    struct rd_emu_reply r;
    post("/v1/chat/completions", "{\"model\": \"gpt-4o\", \"messages\": [", &r);
    expect_error(&r, 400,
                 "{\"error\":{\"message\":\"We could not parse the JSON body of your request. (HINT: This likely "
                 "means you aren't using your HTTP library correctly. The OpenAI API expects a JSON payload, but what "
                 "was sent was not valid JSON. If you have trouble figuring out how to fix this, please contact us "
                 "through our help center at help.openai.com.)\",\"type\":\"invalid_request_error\",\"param\":null,"
                 "\"code\":null}}");
    rd_emu_reply_free(&r);
    post("/v1/foo", "{}", &r);
    expect_error(&r, 404, "{\"error\":{\"message\":\"Invalid URL (POST /v1/foo)\",\"type\":\"invalid_request_error\","
                          "\"param\":null,\"code\":null}}");
    rd_emu_reply_free(&r);
    call("openai", "GET", "/v1/chat/completions", NULL, &r);
    expect_error(&r, 404, "{\"error\":{\"message\":\"Invalid URL (GET /v1/chat/completions)\",\"type\":"
                          "\"invalid_request_error\",\"param\":null,\"code\":null}}");
    rd_emu_reply_free(&r);
    call("openai", "DELETE", "/v1/models/gpt-4o", NULL, &r);
    expect_error(&r, 404,
                 "{\"error\":{\"message\":\"Invalid URL (DELETE /v1/models/gpt-4o)\",\"type\":"
                 "\"invalid_request_error\",\"param\":null,\"code\":null}}");
    rd_emu_reply_free(&r);
    /* Without a route match (a caller that did not route) nothing is known. */
    struct rd_emu_request req = {.method = "GET", .path = "/v1/models", .query = ""};
    assert_int_equal(rd_emu_openai(&rd_emu_dialect_openai, &req, &r), 0);
    expect_error(&r, 404,
                 "{\"error\":{\"message\":\"Invalid URL (GET /v1/models)\",\"type\":"
                 "\"invalid_request_error\",\"param\":null,\"code\":null}}");
    rd_emu_reply_free(&r);
    post("/v1/chat/completions", "{\"model\":\"gpt-4o\"}", &r);
    expect_error(&r, 400, "{\"error\":{\"message\":\"Missing required parameter: 'messages'.\",\"type\":"
                          "\"invalid_request_error\",\"param\":\"messages\",\"code\":\"missing_required_parameter\"}}");
    rd_emu_reply_free(&r);
    post("/v1/chat/completions", "{\"messages\":[{\"role\":\"user\",\"content\":\"x\"}]}", &r);
    assert_int_equal(r.status, 400);
    assert_non_null(strstr(r.chunks[0].data, "\"param\":\"model\""));
    rd_emu_reply_free(&r);
    post("/v1/chat/completions", "{\"model\":\"m\",\"n\":129,\"messages\":[{\"role\":\"user\",\"content\":\"x\"}]}", &r);
    assert_int_equal(r.status, 400);
    assert_non_null(strstr(r.chunks[0].data, "\"code\":\"integer_above_max_value\""));
    rd_emu_reply_free(&r);
    post("/v1/chat/completions", "{\"model\":\"m\",\"messages\":[{\"role\":\"robot\",\"content\":\"x\"}]}", &r);
    assert_int_equal(r.status, 400);
    assert_non_null(strstr(r.chunks[0].data, "\"param\":\"messages[0].role\""));
    rd_emu_reply_free(&r);
}

/* ---- responses ---------------------------------------------------------- */

static void test_responses(void **state)
{
    (void)state;
    struct rd_emu_reply r;
    post("/v1/responses",
         "{\"model\":\"gpt-4.1\",\"instructions\":\"Be nice.\",\"input\":[{\"role\":\"user\",\"content\":"
         "[{\"type\":\"input_text\",\"text\":\"Joke please\"}]}]}",
         &r);
    struct json_object *j = body_json(&r);
    assert_memory_equal(rd_json_get_str(j, "id"), "resp_", 5);
    assert_string_equal(rd_json_get_str(j, "object"), "response");
    assert_string_equal(rd_json_get_str(j, "status"), "completed");
    assert_string_equal(rd_json_get_str(j, "instructions"), "Be nice.");
    assert_true(json_object_object_get_ex(j, "error", NULL) && rd_json_get(j, "error") == NULL);
    struct json_object *msg = json_object_array_get_idx(rd_json_get(j, "output"), 0);
    assert_string_equal(rd_json_get_str(msg, "type"), "message");
    assert_string_equal(rd_json_get_str(msg, "role"), "assistant");
    assert_memory_equal(rd_json_get_str(msg, "id"), "msg_", 4);
    struct json_object *part = json_object_array_get_idx(rd_json_get(msg, "content"), 0);
    assert_string_equal(rd_json_get_str(part, "type"), "output_text");
    assert_memory_equal(rd_json_get_str(part, "text"), "You said: \"Joke please\".", 24);
    struct json_object *u = rd_json_get(j, "usage");
    /* 3 + (3 + ceil(11/4)) + instructions (3 + ceil(8/4)) */
    assert_int_equal(rd_json_get_int(u, "input_tokens", -1), 3 + 6 + 5);
    assert_int_equal(rd_json_get_int(u, "total_tokens", -1),
                     rd_json_get_int(u, "input_tokens", -1) + rd_json_get_int(u, "output_tokens", -1));
    json_object_put(j);
    rd_emu_reply_free(&r);

    post("/v1/responses", "{\"model\":\"m\"}", &r);
    expect_error(&r, 400, "{\"error\":{\"message\":\"Missing required parameter: 'input'.\",\"type\":"
                          "\"invalid_request_error\",\"param\":\"input\",\"code\":\"missing_required_parameter\"}}");
    rd_emu_reply_free(&r);
    call("deepseek", "POST", "/v1/responses", "{\"model\":\"m\",\"input\":\"x\"}", &r);
    assert_int_equal(r.status, 404);
    rd_emu_reply_free(&r);
}

static void test_responses_stream(void **state)
{
    (void)state;
    static const char *const order[] = {
        "response.created",           "response.in_progress",      "response.output_item.added",
        "response.content_part.added", "response.output_text.delta", "response.output_text.done",
        "response.content_part.done", "response.output_item.done", "response.completed",
    };
    struct rd_emu_reply r;
    post("/v1/responses", "{\"model\":\"m\",\"input\":\"Stream it\",\"stream\":true}", &r);
    assert_true(r.stream);
    size_t stage = 0;
    char text[2048] = "";
    for (size_t i = 0; i < r.n; i++) {
        const char *ev = NULL;
        size_t evl = 0;
        struct json_object *e = sse_json(&r.chunks[i], &ev, &evl);
        assert_non_null(e);
        const char *type = rd_json_get_str(e, "type");
        assert_int_equal(evl, strlen(type));
        assert_memory_equal(ev, type, evl);
        assert_int_equal(rd_json_get_int(e, "sequence_number", -1), (int64_t)i);
        if (strcmp(type, order[stage]) != 0) {
            /* Deltas repeat; anything else must be the next stage. */
            stage++;
            assert_true(stage < 9);
            assert_string_equal(type, order[stage]);
        }
        if (strcmp(type, "response.output_text.delta") == 0) {
            assert_int_equal(r.chunks[i].tokens, 1);
            strncat(text, rd_json_get_str(e, "delta"), sizeof text - strlen(text) - 1);
        }
        if (strcmp(type, "response.output_text.done") == 0)
            assert_string_equal(rd_json_get_str(e, "text"), text);
        if (strcmp(type, "response.completed") == 0) {
            struct json_object *resp = rd_json_get(e, "response");
            assert_string_equal(rd_json_get_str(resp, "status"), "completed");
            assert_true(rd_json_get_int(rd_json_get(resp, "usage"), "output_tokens", -1) > 0);
        }
        json_object_put(e);
    }
    assert_int_equal(stage, 8);
    rd_emu_reply_free(&r);
}

/* ---- text --------------------------------------------------------------- */

static void test_text_utf8_echo_cap(void **state)
{
    (void)state;
    char echo[600];
    for (size_t i = 0; i < 300; i++)
        memcpy(echo + 2 * i, "\xc3\xa9", 2); /* 300 x U+00E9 */
    uint8_t seed[RD_SHA256_LEN] = {1};
    struct rd_emu_text t;
    rd_emu_text_generate(seed, echo, sizeof echo, 0, &t);
    const char *q = strchr(t.s, '"');
    const char *end = strchr(q + 1, '"');
    assert_int_equal(end - q - 1, 400); /* exactly 200 code points */
    size_t total = 0;
    for (size_t i = 0; i < t.n; i++) {
        const char *p;
        size_t len = rd_emu_text_piece(&t, i, &p);
        assert_true(len > 0);
        assert_true(((unsigned char)p[0] & 0xC0) != 0x80); /* never starts inside a character */
        total += len;
    }
    assert_int_equal(total, t.len);
    assert_false(t.truncated);
    rd_emu_text_free(&t);
    assert_int_equal(rd_emu_tokens_estimate(0), 0);
    assert_int_equal(rd_emu_tokens_estimate(4), 1);
    assert_int_equal(rd_emu_tokens_estimate(5), 2);
}

/* ---- runner ------------------------------------------------------------- */

struct sink {
    uv_loop_t *loop;
    struct rd_emu_run *run;
    bool in_start;
    int heads, status, done, done_err, fired_in_start;
    char clen[32], ctype[64];
    char data[4096];
    size_t len, calls;
    int pause_at;     /* on_data call index that answers PAUSE, -1 none */
    int abort_at;     /* on_data call index that aborts, -1 none */
    const char *offers[64];
    uv_timer_t resume_timer;
    uint64_t t_done;
    int head_rc;            /* what on_head answers */
    bool abort_in_head;
    uv_check_t *iter_check; /* counts loop iterations when set */
    unsigned iter;
    unsigned iter_at[64]; /* iteration of each on_data call */
};

static int s_head(void *ud, int status, const struct rd_hdrs *h)
{
    struct sink *s = ud;
    s->fired_in_start |= s->in_start;
    s->heads++;
    s->status = status;
    const char *v = rd_hdrs_get(h, "Content-Length");
    snprintf(s->clen, sizeof s->clen, "%s", v ? v : "");
    v = rd_hdrs_get(h, "Content-Type");
    snprintf(s->ctype, sizeof s->ctype, "%s", v ? v : "");
    if (s->abort_in_head)
        rd_emu_run_abort(s->run);
    return s->head_rc;
}

static void s_resume(uv_timer_t *t)
{
    struct sink *s = t->data;
    rd_emu_run_resume(s->run);
}

static int s_data(void *ud, const char *p, size_t n)
{
    struct sink *s = ud;
    s->fired_in_start |= s->in_start;
    size_t call_i = s->calls++;
    if (call_i < 64) {
        s->offers[call_i] = p;
        s->iter_at[call_i] = s->iter;
    }
    if ((int)call_i == s->abort_at) {
        rd_emu_run_abort(s->run);
        return 0;
    }
    if ((int)call_i == s->pause_at) {
        uv_timer_start(&s->resume_timer, s_resume, 5, 0);
        return RD_SOURCE_PAUSE;
    }
    assert_true(s->len + n < sizeof s->data);
    memcpy(s->data + s->len, p, n);
    s->len += n;
    return 0;
}

static void s_done(void *ud, int err, const char *detail)
{
    (void)detail;
    struct sink *s = ud;
    s->done++;
    s->done_err = err;
    s->t_done = uv_now(s->loop);
    if (s->iter_check)
        uv_check_stop(s->iter_check);
}

static void s_iter(uv_check_t *c)
{
    struct sink *s = c->data;
    s->iter++;
}

static const struct rd_source_cbs CBS = {s_head, s_data, s_done};

static void make_stream(struct rd_emu_reply *r, size_t n)
{
    memset(r, 0, sizeof *r);
    r->status = 200;
    r->stream = true;
    r->content_type = strdup("text/event-stream");
    for (size_t i = 0; i < n; i++) {
        char c[8];
        snprintf(c, sizeof c, "%c", (char)('a' + i % 26));
        rd_emu_reply_add(r, c, 1, 1);
    }
}

static void run_sink(struct sink *s, struct rd_emu_reply *reply, double tps)
{
    uv_loop_t *loop = s->loop;
    uv_timer_init(loop, &s->resume_timer);
    s->resume_timer.data = s;
    s->in_start = true;
    s->run = rd_emu_run_start(loop, reply, tps, &CBS, s);
    s->in_start = false;
    assert_int_equal(reply->n, 0); /* ownership taken */
    uv_run(loop, UV_RUN_DEFAULT);
    uv_close((uv_handle_t *)&s->resume_timer, NULL);
    uv_run(loop, UV_RUN_DEFAULT);
    assert_int_equal(s->fired_in_start, 0);
}

static void test_run_plain(void **state)
{
    (void)state;
    uv_loop_t loop;
    uv_loop_init(&loop);
    struct sink s = {.loop = &loop, .pause_at = -1, .abort_at = -1};
    struct rd_emu_reply r;
    post("/v1/chat/completions", CHAT_HELLO, &r);
    char *copy = strndup(r.chunks[0].data, r.chunks[0].len);
    run_sink(&s, &r, 0);
    assert_int_equal(s.heads, 1);
    assert_int_equal(s.status, 200);
    assert_string_equal(s.ctype, "application/json");
    assert_int_equal(strtoul(s.clen, NULL, 10), strlen(copy));
    assert_int_equal(s.len, strlen(copy));
    assert_memory_equal(s.data, copy, s.len);
    assert_int_equal(s.done, 1);
    assert_int_equal(s.done_err, 0);
    free(copy);
    assert_int_equal(uv_loop_close(&loop), 0);
}

static void test_run_stream_paced(void **state)
{
    (void)state;
    uv_loop_t loop;
    uv_loop_init(&loop);
    struct sink s = {.loop = &loop, .pause_at = -1, .abort_at = -1};
    struct rd_emu_reply r;
    make_stream(&r, 20);
    uv_update_time(&loop);
    uint64_t t0 = uv_now(&loop);
    run_sink(&s, &r, 200.0);
    assert_int_equal(s.len, 20);
    assert_memory_equal(s.data, "abcdefghijklmnopqrst", 20);
    assert_int_equal(s.calls, 20);
    assert_string_equal(s.ctype, "text/event-stream");
    assert_string_equal(s.clen, ""); /* streams carry no Content-Length */
    assert_int_equal(s.done, 1);
    /* 20 tokens at 200 tokens/s is 100 ms; only a lower bound is checked. */
    assert_true(s.t_done - t0 >= 90);
    assert_int_equal(uv_loop_close(&loop), 0);
}

static void test_run_stream_one_per_iteration(void **state)
{
    (void)state;
    uv_loop_t loop;
    uv_loop_init(&loop);
    uv_check_t check;
    struct sink s = {.loop = &loop, .pause_at = -1, .abort_at = -1, .iter_check = &check};
    uv_check_init(&loop, &check);
    check.data = &s;
    uv_check_start(&check, s_iter);
    struct rd_emu_reply r;
    make_stream(&r, 8);
    run_sink(&s, &r, 0);
    assert_int_equal(s.calls, 8);
    /* Unpaced streams still hand out one chunk per loop iteration. */
    for (size_t i = 1; i < 8; i++)
        assert_true(s.iter_at[i] > s.iter_at[i - 1]);
    uv_close((uv_handle_t *)&check, NULL);
    uv_run(&loop, UV_RUN_DEFAULT);
    assert_int_equal(uv_loop_close(&loop), 0);
}

static void test_run_plain_paced(void **state)
{
    (void)state;
    uv_loop_t loop;
    uv_loop_init(&loop);
    struct sink s = {.loop = &loop, .pause_at = -1, .abort_at = -1};
    struct rd_emu_reply r = {.status = 201, .content_type = strdup("application/json")};
    rd_emu_reply_add(&r, "{\"a\":", 5, 10);
    rd_emu_reply_add(&r, "1}", 2, 10);
    uv_update_time(&loop);
    uint64_t t0 = uv_now(&loop);
    run_sink(&s, &r, 200.0);
    /* A plain answer arrives whole after its generation time (20 tokens at
     * 200/s = 100 ms), with the summed Content-Length. */
    assert_int_equal(s.status, 201);
    assert_string_equal(s.clen, "7");
    assert_int_equal(s.len, 7);
    assert_memory_equal(s.data, "{\"a\":1}", 7);
    assert_true(s.t_done - t0 >= 90);
    assert_int_equal(s.done, 1);
    assert_int_equal(uv_loop_close(&loop), 0);
}

static void test_run_pause_resume(void **state)
{
    (void)state;
    uv_loop_t loop;
    uv_loop_init(&loop);
    struct sink s = {.loop = &loop, .pause_at = 2, .abort_at = -1};
    struct rd_emu_reply r;
    make_stream(&r, 6);
    run_sink(&s, &r, 0);
    /* The refused chunk is offered again after resume, so 7 offers. */
    assert_int_equal(s.calls, 7);
    assert_ptr_equal(s.offers[2], s.offers[3]);
    assert_int_equal(s.len, 6);
    assert_memory_equal(s.data, "abcdef", 6);
    assert_int_equal(s.done, 1);
    assert_int_equal(s.done_err, 0);
    assert_int_equal(uv_loop_close(&loop), 0);
}

static void test_run_abort(void **state)
{
    (void)state;
    uv_loop_t loop;
    uv_loop_init(&loop);
    /* Abort from inside on_data: nothing more fires, and ASan checks that the
     * run and the remaining chunks were freed. */
    struct sink s = {.loop = &loop, .pause_at = -1, .abort_at = 3};
    struct rd_emu_reply r;
    make_stream(&r, 10);
    run_sink(&s, &r, 0);
    assert_int_equal(s.calls, 4);
    assert_int_equal(s.len, 3);
    assert_int_equal(s.done, 0);

    /* Abort right after start: no callback at all. */
    struct sink s2 = {.loop = &loop, .pause_at = -1, .abort_at = -1};
    make_stream(&r, 3);
    s2.run = rd_emu_run_start(&loop, &r, 0, &CBS, &s2);
    rd_emu_run_abort(s2.run);
    uv_run(&loop, UV_RUN_DEFAULT);
    assert_int_equal(s2.heads, 0);
    assert_int_equal(s2.calls, 0);
    assert_int_equal(s2.done, 0);

    /* on_head refusing the response ends it with RD_EABORTED, no body. */
    struct sink s3 = {.loop = &loop, .pause_at = -1, .abort_at = -1, .head_rc = -1};
    make_stream(&r, 3);
    run_sink(&s3, &r, 0);
    assert_int_equal(s3.heads, 1);
    assert_int_equal(s3.calls, 0);
    assert_int_equal(s3.done, 1);
    assert_int_equal(s3.done_err, RD_EABORTED);

    /* Abort from inside on_head: nothing else fires. */
    struct sink s4 = {.loop = &loop, .pause_at = -1, .abort_at = -1, .abort_in_head = true};
    make_stream(&r, 3);
    run_sink(&s4, &r, 0);
    assert_int_equal(s4.heads, 1);
    assert_int_equal(s4.calls + (size_t)s4.done, 0);
    assert_int_equal(uv_loop_close(&loop), 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_chat_deterministic),
        cmocka_unit_test(test_chat_seed),
        cmocka_unit_test(test_deepseek_without_v1),
        cmocka_unit_test(test_chat_shape_and_usage),
        cmocka_unit_test(test_chat_stream_matches_plain_ids),
        cmocka_unit_test(test_chat_content_parts_and_n),
        cmocka_unit_test(test_chat_max_tokens),
        cmocka_unit_test(test_chat_stream),
        cmocka_unit_test(test_completions),
        cmocka_unit_test(test_embeddings),
        cmocka_unit_test(test_embeddings_dimensions),
        cmocka_unit_test(test_models),
        cmocka_unit_test(test_errors),
        cmocka_unit_test(test_responses),
        cmocka_unit_test(test_responses_stream),
        cmocka_unit_test(test_text_utf8_echo_cap),
        cmocka_unit_test(test_run_plain),
        cmocka_unit_test(test_run_stream_paced),
        cmocka_unit_test(test_run_stream_one_per_iteration),
        cmocka_unit_test(test_run_plain_paced),
        cmocka_unit_test(test_run_pause_resume),
        cmocka_unit_test(test_run_abort),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
