/* Tests for the bedrock provider (src/providers/bedrock*.c: routes, the
 * modelId decode, prepare with a Bearer key and with SigV4 at a fixed time,
 * the error builders, usage from bodies and event-stream events) and its
 * emulator dialect (src/providers/emulator/bedrock*.c), whose frames are
 * decoded with util/eventstream and fed to the provider's own stream hook. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>
#include <openssl/hmac.h>

#include "http/headers.h"
#include "providers/bedrock.h"
#include "providers/provider.h"
#include "util/arena.h"
#include "util/buf.h"
#include "util/err.h"
#include "util/eventstream.h"
#include "util/hash.h"
#include "util/json.h"

#define NO_USAGE                                                                                                       \
    {                                                                                                                  \
        -1, -1, -1, -1, -1                                                                                             \
    }
#define MODEL_PATH "/model/anthropic.claude-3-haiku-20240307-v1%3A0/converse"

static const struct rd_provider *bedrock(void)
{
    const struct rd_provider *p = rd_provider_find("bedrock");
    assert_non_null(p);
    assert_ptr_equal(p, &rd_provider_bedrock);
    return p;
}

static void assert_usage_r(const struct rd_usage *u, int64_t in, int64_t out, int64_t cached, int64_t cache_write)
{
    if (u->input != in || u->output != out || u->cached != cached || u->cache_write != cache_write) {
        print_error("usage in %lld out %lld cached %lld write %lld, wanted %lld %lld %lld %lld\n", (long long)u->input,
                    (long long)u->output, (long long)u->cached, (long long)u->cache_write, (long long)in,
                    (long long)out, (long long)cached, (long long)cache_write);
        fail();
    }
}

static struct json_object *parse(const char *s, size_t n)
{
    struct json_object *o = NULL;
    if (rd_json_parse(s, n, 1u << 26, &o, NULL) != 0) {
        print_error("not JSON: %.*s\n", (int)n, s);
        fail();
    }
    return o;
}

/* ---- routes and model ---- */

static const char *route_model(const char *method, const char *path, char *out, size_t cap)
{
    const struct rd_provider *p = bedrock();
    struct rd_route_match m;
    const struct rd_route *r = rd_provider_route(p, method, path, &m);
    if (r == NULL)
        return NULL;
    struct rd_provider_req req = {.method = method, .path = path, .query = "", .body = "", .match = &m};
    p->model(p, &req, out, cap);
    return r->pattern;
}

static void test_routes_and_model(void **state)
{
    (void)state;
    char model[128];
    static const struct {
        const char *path, *pattern, *model;
    } cases[] = {
        {MODEL_PATH, RD_BEDROCK_CONVERSE, "anthropic.claude-3-haiku-20240307-v1:0"},
        {"/model/us.amazon.nova-pro-v1%3a0/converse-stream", RD_BEDROCK_CONVERSE_STREAM, "us.amazon.nova-pro-v1:0"},
        {"/model/meta.llama3-8b-instruct-v1%3A0/invoke", RD_BEDROCK_INVOKE, "meta.llama3-8b-instruct-v1:0"},
        {"/model/anthropic.claude-v2/invoke-with-response-stream", RD_BEDROCK_INVOKE_STREAM, "anthropic.claude-v2"},
        /* an inference profile ARN: its id */
        {"/model/arn%3Aaws%3Abedrock%3Aus-east-1%3A123456789012%3Ainference-profile%2Fus.anthropic.claude-3-5-haiku-20241022-v1%3A0/converse",
         RD_BEDROCK_CONVERSE, "us.anthropic.claude-3-5-haiku-20241022-v1:0"},
        /* hostile escapes give no model, never a control character */
        {"/model/bad%00id/converse", RD_BEDROCK_CONVERSE, ""},
        {"/model/bad%0Aid/converse", RD_BEDROCK_CONVERSE, ""},
        {"/model/bad%zzid/converse", RD_BEDROCK_CONVERSE, ""},
        {"/model/bad%4/converse", RD_BEDROCK_CONVERSE, ""},
        {"/model/trailing%/converse", RD_BEDROCK_CONVERSE, ""},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        const char *pat = route_model("POST", cases[i].path, model, sizeof model);
        assert_non_null(pat);
        assert_string_equal(pat, cases[i].pattern);
        assert_string_equal(model, cases[i].model);
    }
    assert_null(route_model("GET", MODEL_PATH, model, sizeof model));
    assert_null(route_model("POST", "/model//converse", model, sizeof model));
    assert_null(route_model("POST", "/model/a/b/converse", model, sizeof model));
    assert_null(route_model("POST", "/foundation-models", model, sizeof model));
    /* a model that does not fit is no model, not a truncated one */
    char small[8];
    assert_int_equal(rd_bedrock_model_decode("anthropic.claude", 16, small, sizeof small), 0);
    assert_string_equal(small, "");
    const struct rd_provider *p = bedrock();
    assert_int_equal(p->framing, RD_FRAMING_EVENTSTREAM);
    assert_string_equal(p->request_id_header, "x-amzn-RequestId");
}

static void test_scope_region(void **state)
{
    (void)state;
    char r[RD_BEDROCK_REGION_MAX + 1];
    const char *good = "AWS4-HMAC-SHA256 Credential=AKID/20260101/us-west-2/bedrock/aws4_request, "
                       "SignedHeaders=host;x-amz-date, Signature=abc";
    assert_int_equal(rd_bedrock_scope_region(good, r, sizeof r), 9);
    assert_string_equal(r, "us-west-2");
    static const char *const bad[] = {
        "Bearer abc",
        "AWS4-HMAC-SHA256 Credential=AKID/20260101",
        "AWS4-HMAC-SHA256 Credential=AKID/20260101/US-WEST-2/bedrock/aws4_request",
        "AWS4-HMAC-SHA256 Credential=AKID/20260101/evil.com#/bedrock/aws4_request",
        "AWS4-HMAC-SHA256 Credential=AKID/20260101//bedrock/aws4_request",
        "AWS4-HMAC-SHA256 Credential=AKID/20260101/aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa/bedrock/aws4_request",
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        assert_int_equal(rd_bedrock_scope_region(bad[i], r, sizeof r), 0);
        assert_string_equal(r, "");
    }
}

/* ---- prepare ---- */

struct prep {
    struct rd_arena arena;
    struct rd_hdrs h;
    struct rd_buf url;
    struct json_object *config;
    struct rd_upstream_prep up;
    int rc;
};

#define FIXED_MS 1767323045000LL /* 2026-01-02T03:04:05Z */

static void clear_env(void)
{
    unsetenv("AWS_ACCESS_KEY_ID");
    unsetenv("AWS_SECRET_ACCESS_KEY");
    unsetenv("AWS_SESSION_TOKEN");
    unsetenv("AWS_REGION");
    unsetenv("AWS_DEFAULT_REGION");
}

/* Runs prepare for a converse request with the client headers given as
 * name, value pairs (NULL-terminated) and the configuration document. */
static void run_prepare(struct prep *s, const char *base, bool is_default, const char *config, const char *body,
                        const char *const *hdrs)
{
    rd_arena_init(&s->arena);
    rd_hdrs_init(&s->h, &s->arena);
    rd_buf_init(&s->url, 0);
    s->config = config ? parse(config, strlen(config)) : NULL;
    for (size_t i = 0; hdrs && hdrs[i]; i += 2)
        rd_hdrs_add_ref(&s->h, hdrs[i], hdrs[i + 1]);
    struct rd_route_match m;
    rd_provider_route(bedrock(), "POST", MODEL_PATH, &m);
    struct rd_provider_req r = {.method = "POST", .path = MODEL_PATH, .query = "", .headers = &s->h, .body = body,
                                .body_len = strlen(body), .match = &m, .config = s->config};
    s->up = (struct rd_upstream_prep){.base = base, .base_is_default = is_default, .url = &s->url, .headers = &s->h,
                                      .arena = &s->arena, .now_ms = FIXED_MS};
    const struct rd_provider *p = bedrock();
    s->rc = p->prepare(p, &r, &s->up);
}

static void prep_free(struct prep *s)
{
    json_object_put(s->config);
    rd_buf_free(&s->url);
    rd_hdrs_free(&s->h);
    rd_arena_free(&s->arena);
}

static void test_prepare_bearer(void **state)
{
    (void)state;
    clear_env();
    static const char *const hdrs[] = {"Authorization", "Bearer ABSK-key", "Content-Type", "application/json", NULL};
    struct prep s;
    run_prepare(&s, "https://bedrock-runtime.{region}.amazonaws.com", true, "{\"aws\":{\"region\":\"eu-west-1\"}}",
                "{}", hdrs);
    assert_int_equal(s.rc, 0);
    assert_string_equal(s.url.data, "https://bedrock-runtime.eu-west-1.amazonaws.com" MODEL_PATH);
    assert_string_equal(rd_hdrs_get(&s.h, "authorization"), "Bearer ABSK-key");
    assert_null(rd_hdrs_find(&s.h, "x-amz-date"));
    prep_free(&s);
    /* No region for the default host: says so. */
    run_prepare(&s, "https://bedrock-runtime.{region}.amazonaws.com", true, NULL, "{}", hdrs);
    assert_int_equal(s.rc, RD_EINVAL);
    assert_non_null(strstr(s.up.fail_message, "No AWS region"));
    prep_free(&s);
    /* A configured upstream needs none. */
    run_prepare(&s, "http://127.0.0.1:9000", false, NULL, "{}", hdrs);
    assert_int_equal(s.rc, 0);
    assert_string_equal(s.url.data, "http://127.0.0.1:9000" MODEL_PATH);
    prep_free(&s);
}

static void hmac(const void *key, size_t kn, const char *data, uint8_t out[32])
{
    unsigned int len = 32;
    assert_non_null(HMAC(EVP_sha256(), key, (int)kn, (const unsigned char *)data, strlen(data), out, &len));
}

/* The signature computed here from a canonical request written out by hand
 * (the double-encoded path, the sorted lower-case headers), independently of
 * util/sigv4's canonicalisation. */
static void expected_signature(const char *creq, const char *secret, const char *region, char hex[65])
{
    uint8_t d[32], k[32];
    char dh[65];
    rd_sha256(creq, strlen(creq), d);
    rd_hex(d, 32, dh);
    char sts[512];
    snprintf(sts, sizeof sts, "AWS4-HMAC-SHA256\n20260102T030405Z\n20260102/%s/bedrock/aws4_request\n%s", region, dh);
    char k0[128];
    snprintf(k0, sizeof k0, "AWS4%s", secret);
    hmac(k0, strlen(k0), "20260102", k);
    hmac(k, 32, region, k);
    hmac(k, 32, "bedrock", k);
    hmac(k, 32, "aws4_request", k);
    hmac(k, 32, sts, d);
    rd_hex(d, 32, hex);
}

static void test_prepare_sigv4(void **state)
{
    (void)state;
    clear_env();
    /* What the SDK sent, signed for the proxy's host. */
    static const char *const hdrs[] = {
        "Content-Type", "application/json",
        "Authorization", "AWS4-HMAC-SHA256 Credential=CLIENTKEY/20260102/us-west-2/bedrock/aws4_request, "
                         "SignedHeaders=host;x-amz-date, Signature=00",
        "X-Amz-Date", "20200101T000000Z",
        "x-amz-security-token", "client-token",
        "X-Amz-User-Agent", "aws-sdk-js/3",
        "User-Agent", "not signed",
        NULL,
    };
    const char *config = "{\"aws\":{\"access_key_id\":\"AKIDEXAMPLE\",\"secret_access_key\":\"s3cr3t/Key+\","
                         "\"session_token\":\"TOKEN\",\"region\":\"eu-west-1\"}}";
    const char *body = "{\"messages\":[]}";
    struct prep s;
    run_prepare(&s, "https://bedrock-runtime.{region}.amazonaws.com", true, config, body, hdrs);
    assert_int_equal(s.rc, 0);
    assert_string_equal(s.url.data, "https://bedrock-runtime.eu-west-1.amazonaws.com" MODEL_PATH);
    assert_int_equal(rd_hdrs_count(&s.h, "authorization"), 1);
    assert_int_equal(rd_hdrs_count(&s.h, "x-amz-date"), 1);
    assert_int_equal(rd_hdrs_count(&s.h, "x-amz-security-token"), 1);
    assert_null(rd_hdrs_find(&s.h, "x-amz-content-sha256")); /* the client sent none */
    assert_string_equal(rd_hdrs_get(&s.h, "x-amz-date"), "20260102T030405Z");
    assert_string_equal(rd_hdrs_get(&s.h, "x-amz-security-token"), "TOKEN");
    uint8_t d[32];
    char bh[65], sig[65];
    rd_sha256(body, strlen(body), d);
    rd_hex(d, 32, bh);
    char creq[1024];
    snprintf(creq, sizeof creq,
             "POST\n/model/anthropic.claude-3-haiku-20240307-v1%%253A0/converse\n\n"
             "content-type:application/json\nhost:bedrock-runtime.eu-west-1.amazonaws.com\n"
             "x-amz-date:20260102T030405Z\nx-amz-security-token:TOKEN\nx-amz-user-agent:aws-sdk-js/3\n\n"
             "content-type;host;x-amz-date;x-amz-security-token;x-amz-user-agent\n%s",
             bh);
    expected_signature(creq, "s3cr3t/Key+", "eu-west-1", sig);
    char want[512];
    snprintf(want, sizeof want,
             "AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/20260102/eu-west-1/bedrock/aws4_request, "
             "SignedHeaders=content-type;host;x-amz-date;x-amz-security-token;x-amz-user-agent, Signature=%s",
             sig);
    assert_string_equal(rd_hdrs_get(&s.h, "authorization"), want);
    prep_free(&s);

    /* Environment credentials, the region of the client's scope, a test
     * upstream's host with its port, a client x-amz-content-sha256 kept
     * (recomputed). */
    setenv("AWS_ACCESS_KEY_ID", "AKIDENV", 1);
    setenv("AWS_SECRET_ACCESS_KEY", "envsecret", 1);
    static const char *const hdrs2[] = {
        "Authorization", "AWS4-HMAC-SHA256 Credential=CLIENTKEY/20260102/ap-south-1/bedrock/aws4_request, x",
        "X-Amz-Content-Sha256", "UNSIGNED-PAYLOAD",
        NULL,
    };
    run_prepare(&s, "http://127.0.0.1:8123", false, NULL, body, hdrs2);
    assert_int_equal(s.rc, 0);
    assert_string_equal(rd_hdrs_get(&s.h, "x-amz-content-sha256"), bh);
    assert_null(rd_hdrs_find(&s.h, "x-amz-security-token"));
    snprintf(creq, sizeof creq,
             "POST\n/model/anthropic.claude-3-haiku-20240307-v1%%253A0/converse\n\n"
             "host:127.0.0.1:8123\nx-amz-content-sha256:%s\nx-amz-date:20260102T030405Z\n\n"
             "host;x-amz-content-sha256;x-amz-date\n%s",
             bh, bh);
    expected_signature(creq, "envsecret", "ap-south-1", sig);
    snprintf(want, sizeof want,
             "AWS4-HMAC-SHA256 Credential=AKIDENV/20260102/ap-south-1/bedrock/aws4_request, "
             "SignedHeaders=host;x-amz-content-sha256;x-amz-date, Signature=%s",
             sig);
    assert_string_equal(rd_hdrs_get(&s.h, "authorization"), want);
    prep_free(&s);

    /* A default port is not part of the signed host. */
    run_prepare(&s, "https://bedrock.example:443", false, "{\"aws\":{\"region\":\"us-east-1\"}}", body, NULL);
    assert_int_equal(s.rc, 0);
    assert_non_null(strstr(rd_hdrs_get(&s.h, "authorization"), "Credential=AKIDENV/20260102/us-east-1/"));
    prep_free(&s);
    clear_env();
}

static void test_prepare_no_credentials(void **state)
{
    (void)state;
    clear_env();
    struct prep s;
    run_prepare(&s, "http://127.0.0.1:8123", false, "{\"aws\":{\"region\":\"us-east-1\"}}", "{}", NULL);
    assert_int_equal(s.rc, RD_EINVAL);
    assert_non_null(strstr(s.up.fail_message, "No AWS credentials"));
    prep_free(&s);
    run_prepare(&s, "http://127.0.0.1:8123", false, "{\"aws\":{\"access_key_id\":\"AKID\",\"region\":\"us-east-1\"}}",
                "{}", NULL);
    assert_int_equal(s.rc, RD_EINVAL);
    assert_non_null(strstr(s.up.fail_message, "both access_key_id and secret_access_key"));
    prep_free(&s);
    /* Credentials but no region anywhere. */
    run_prepare(&s, "http://127.0.0.1:8123", false, "{\"aws\":{\"access_key_id\":\"A\",\"secret_access_key\":\"B\"}}",
                "{}", NULL);
    assert_int_equal(s.rc, RD_EINVAL);
    assert_non_null(strstr(s.up.fail_message, "No AWS region"));
    /* The messages name no secret. */
    assert_null(strstr(s.up.fail_message, "B\""));
    prep_free(&s);
    setenv("AWS_REGION", "sa-east-1", 1);
    run_prepare(&s, "https://bedrock-runtime.{region}.amazonaws.com", true,
                "{\"aws\":{\"access_key_id\":\"A\",\"secret_access_key\":\"B\"}}", "{}", NULL);
    assert_int_equal(s.rc, 0);
    assert_string_equal(s.url.data, "https://bedrock-runtime.sa-east-1.amazonaws.com" MODEL_PATH);
    prep_free(&s);
    clear_env();
}

/* ---- errors ---- */

static void test_errors(void **state)
{
    (void)state;
    static const struct {
        int status;
        const char *type;
    } cases[] = {
        {400, "ValidationException"},         {403, "AccessDeniedException"},
        {404, "ResourceNotFoundException"},   {408, "ModelTimeoutException"},
        {413, "ValidationException"},         {429, "ThrottlingException"},
        {500, "InternalServerException"},     {502, "InternalServerException"},
        {503, "ServiceUnavailableException"}, {504, "ModelTimeoutException"},
        {599, "InternalServerException"},
    };
    const struct rd_provider *p = bedrock();
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        struct rd_arena arena;
        struct rd_hdrs h;
        struct rd_buf body;
        rd_arena_init(&arena);
        rd_hdrs_init(&h, &arena);
        rd_buf_init(&body, 0);
        struct rd_error_spec e = {.status = cases[i].status, .message = "Too \"many\"", .request_id = "req_1",
                                  .retry_after_s = cases[i].status == 429 ? 3 : -1};
        rd_provider_error(p, &e, &h, &body);
        assert_string_equal(rd_hdrs_get(&h, "x-amzn-ErrorType"), cases[i].type);
        assert_string_equal(rd_hdrs_get(&h, "x-amzn-RequestId"), "req_1");
        assert_string_equal(rd_hdrs_get(&h, "content-type"), "application/json");
        if (cases[i].status == 429)
            assert_string_equal(rd_hdrs_get(&h, "retry-after"), "3");
        else
            assert_null(rd_hdrs_get(&h, "retry-after"));
        struct json_object *o = parse(body.data, body.len);
        assert_string_equal(rd_json_get_str(o, "message"), "Too \"many\"");
        json_object_put(o);
        rd_buf_free(&body);
        rd_hdrs_free(&h);
        rd_arena_free(&arena);
    }
    /* In a stream: one exception frame the SDK maps to its typed error. */
    struct rd_buf f;
    rd_buf_init(&f, 0);
    struct rd_error_spec e = {.status = 429, .message = "slow down", .retry_after_s = -1};
    assert_int_equal(rd_bedrock_stream_error(&e, &f), 0);
    struct rd_es_msg m;
    assert_int_equal(rd_es_decode((const uint8_t *)f.data, f.len, 0, &m), (int)f.len);
    const char *v;
    size_t n;
    assert_true(rd_es_header_string(&m, ":message-type", &v, &n));
    assert_memory_equal(v, "exception", 9);
    assert_true(rd_es_header_string(&m, ":exception-type", &v, &n));
    assert_int_equal(n, 19);
    assert_memory_equal(v, "throttlingException", 19);
    assert_int_equal(m.payload_len, strlen("{\"message\":\"slow down\"}"));
    assert_memory_equal(m.payload, "{\"message\":\"slow down\"}", m.payload_len);
    rd_buf_free(&f);
}

/* ---- base64 and usage ---- */

static void test_base64(void **state)
{
    (void)state;
    static const struct {
        const char *in, *out;
        int rc;
    } cases[] = {
        {"", "", 0},         {"Zg==", "f", 0},     {"Zm8=", "fo", 0},   {"Zm9v", "foo", 0},
        {"Zm9vYg", "foob", 0}, {"Zm9vYmE=", "fooba", 0}, {"+/+/", "\xfb\xff\xbf", 0},
        {"Zm9v!", "", RD_EPROTO}, {"Z", "", RD_EPROTO}, {"Zm9vY", "", RD_EPROTO}, {"Zm 9v", "", RD_EPROTO},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        struct rd_buf b;
        rd_buf_init(&b, 0);
        assert_int_equal(rd_bedrock_base64_decode(cases[i].in, strlen(cases[i].in), &b), cases[i].rc);
        if (cases[i].rc == 0) {
            assert_int_equal(b.len, strlen(cases[i].out));
            if (b.len)
                assert_memory_equal(b.data, cases[i].out, b.len);
        }
        rd_buf_free(&b);
    }
    /* out's cap */
    struct rd_buf b;
    rd_buf_init(&b, 2);
    assert_int_equal(rd_bedrock_base64_decode("Zm9v", 4, &b), RD_ETOOBIG);
    rd_buf_free(&b);
}

static void body_usage(const char *body, struct rd_usage *u)
{
    *u = (struct rd_usage)NO_USAGE;
    bedrock()->body_usage(bedrock(), body, strlen(body), u);
}

static void test_body_usage(void **state)
{
    (void)state;
    struct rd_usage u;
    body_usage("{\"output\":{\"message\":{\"role\":\"assistant\",\"content\":[{\"text\":\"hi\"}]}},\"stopReason\":"
               "\"end_turn\",\"usage\":{\"inputTokens\":11,\"outputTokens\":3,\"totalTokens\":1250,"
               "\"cacheReadInputTokens\":1200,\"cacheWriteInputTokens\":36},\"metrics\":{\"latencyMs\":4}}",
               &u);
    assert_usage_r(&u, 1247, 3, 1200, 36);
    body_usage("{\"usage\":{\"inputTokens\":5,\"outputTokens\":7,\"totalTokens\":12}}", &u);
    assert_usage_r(&u, 5, 7, -1, -1);
    /* Claude's Message through invoke: Anthropic's usage rule */
    body_usage("{\"id\":\"msg_1\",\"type\":\"message\",\"content\":[],\"usage\":{\"input_tokens\":10,"
               "\"cache_read_input_tokens\":100,\"cache_creation_input_tokens\":20,\"output_tokens\":4}}",
               &u);
    assert_usage_r(&u, 130, 4, 100, 20);
    /* Llama */
    body_usage("{\"generation\":\"hi\",\"prompt_token_count\":17,\"generation_token_count\":9,\"stop_reason\":\"stop\"}",
               &u);
    assert_usage_r(&u, 17, 9, -1, -1);
    /* hostile: negative, fractional, not an object, not JSON */
    static const char *const bad[] = {
        "{\"usage\":{\"inputTokens\":-1,\"outputTokens\":3}}", "{\"usage\":{\"inputTokens\":1.5}}",
        "{\"usage\":[1,2]}", "{\"usage\":{\"inputTokens\":9223372036854775807,\"cacheReadInputTokens\":9}}",
        "{\"prompt_token_count\":\"x\"}", "not json", "",
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        body_usage(bad[i], &u);
        assert_usage_r(&u, -1, -1, -1, -1);
    }
}

static int event(const char *name, const char *data, struct rd_usage *u)
{
    struct rd_stream_event ev = {.type = RD_STREAM_MSG_EVENT, .name = name, .name_len = strlen(name), .data = data,
                                 .data_len = strlen(data)};
    return bedrock()->stream_event(bedrock(), &ev, u);
}

/* {"bytes":"<base64 of json>"} */
static char *chunk(const char *json)
{
    static const char T[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    size_t n = strlen(json);
    char *out = malloc(16 + 4 * (n / 3 + 1) + 4);
    assert_non_null(out);
    memcpy(out, "{\"bytes\":\"", 10);
    size_t w = 10;
    for (size_t i = 0; i < n; i += 3) {
        uint32_t v = (uint32_t)(unsigned char)json[i] << 16;
        if (i + 1 < n)
            v |= (uint32_t)(unsigned char)json[i + 1] << 8;
        if (i + 2 < n)
            v |= (unsigned char)json[i + 2];
        out[w++] = T[(v >> 18) & 63];
        out[w++] = T[(v >> 12) & 63];
        out[w++] = i + 1 < n ? T[(v >> 6) & 63] : '=';
        out[w++] = i + 2 < n ? T[v & 63] : '=';
    }
    memcpy(out + w, "\"}", 3);
    return out;
}

static void test_stream_usage(void **state)
{
    (void)state;
    struct rd_usage u = NO_USAGE;
    /* converse-stream */
    assert_int_equal(event("messageStart", "{\"role\":\"assistant\"}", &u), 0);
    assert_int_equal(event("contentBlockDelta", "{\"contentBlockIndex\":0,\"delta\":{\"text\":\"x\"}}", &u), 0);
    assert_int_equal(event("messageStop", "{\"stopReason\":\"end_turn\"}", &u), 0);
    assert_usage_r(&u, -1, -1, -1, -1);
    assert_int_equal(event("metadata",
                           "{\"usage\":{\"inputTokens\":20,\"outputTokens\":5,\"totalTokens\":35,"
                           "\"cacheReadInputTokens\":10},\"metrics\":{\"latencyMs\":1}}",
                           &u),
                     1);
    assert_usage_r(&u, 30, 5, 10, -1);
    /* an exception is not an end */
    struct rd_stream_event ex = {.type = RD_STREAM_MSG_EXCEPTION, .name = "throttlingException", .name_len = 19,
                                 .data = "{\"message\":\"x\"}", .data_len = 15};
    assert_int_equal(bedrock()->stream_event(bedrock(), &ex, &u), 0);

    /* invoke stream, Claude: Anthropic's events in base64 */
    u = (struct rd_usage)NO_USAGE;
    char *c1 = chunk("{\"type\":\"message_start\",\"message\":{\"usage\":{\"input_tokens\":12,"
                     "\"cache_read_input_tokens\":3,\"output_tokens\":1}}}");
    char *c2 = chunk("{\"type\":\"message_delta\",\"delta\":{\"stop_reason\":\"end_turn\"},\"usage\":{\"output_tokens\":9}}");
    char *c3 = chunk("{\"type\":\"message_stop\",\"amazon-bedrock-invocationMetrics\":{\"inputTokenCount\":12,"
                     "\"outputTokenCount\":9,\"invocationLatency\":300,\"firstByteLatency\":200}}");
    assert_int_equal(event("chunk", c1, &u), 0);
    assert_int_equal(event("chunk", c2, &u), 0);
    assert_usage_r(&u, 15, 9, 3, -1);
    assert_int_equal(event("chunk", c3, &u), 1);
    assert_usage_r(&u, 15, 9, 3, -1); /* the model's detailed counts win */
    free(c1);
    free(c2);
    free(c3);
    /* another model: only the metrics give usage; they end the stream */
    u = (struct rd_usage)NO_USAGE;
    char *l1 = chunk("{\"generation\":\"hi\",\"stop_reason\":null}");
    char *l2 = chunk("{\"generation\":\"\",\"stop_reason\":\"stop\",\"amazon-bedrock-invocationMetrics\":"
                     "{\"inputTokenCount\":40,\"outputTokenCount\":2}}");
    assert_int_equal(event("chunk", l1, &u), 0);
    assert_int_equal(event("chunk", l2, &u), 1);
    assert_usage_r(&u, 40, 2, -1, -1);
    free(l1);
    free(l2);
    /* an escaped '/' in the base64 string is the same character */
    u = (struct rd_usage)NO_USAGE;
    /* base64 of {"type":"message_stop","k":"a?"}, its '/' written "\/" */
    assert_int_equal(event("chunk", "{\"bytes\":\"eyJ0eXBlIjoibWVzc2FnZV9zdG9wIiwiayI6ImE\\/In0=\"}", &u), 1);
    assert_int_equal(event("chunk", "{\"bytes\":\"eyJ0eXBlIjoibWVzc2FnZV9zdG9wIiwiayI6ImE\\In0=\"}", &u), 0);
    /* hostile chunks change nothing */
    static const char *const bad[] = {"{\"bytes\":\"!!!!\"}", "{\"bytes\":42}", "{}", "not json", "{\"bytes\":\"\"}"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        u = (struct rd_usage)NO_USAGE;
        assert_int_equal(event("chunk", bad[i], &u), 0);
        assert_usage_r(&u, -1, -1, -1, -1);
    }
}

/* ---- emulator ---- */

struct reply {
    int status;
    bool stream;
    char *ctype, *error_type;
    struct rd_buf body;
};

static void emulate(const char *path, const char *body, struct reply *r)
{
    const struct rd_provider *p = bedrock();
    struct rd_route_match m;
    rd_provider_route(p, "POST", path, &m);
    struct rd_emu_request req = {.method = "POST", .path = path, .query = "", .body = body, .body_len = strlen(body),
                                 .match = &m};
    struct rd_emu_reply out;
    assert_int_equal(p->emulate(p->emulator, &req, &out), 0);
    rd_buf_init(&r->body, 0);
    for (size_t i = 0; i < out.n; i++)
        assert_int_equal(rd_buf_append(&r->body, out.chunks[i].data, out.chunks[i].len), 0);
    r->status = out.status;
    r->stream = out.stream;
    r->ctype = strdup(out.content_type);
    r->error_type = NULL;
    for (size_t i = 0; i < out.nheaders; i++)
        if (strcmp(out.headers[i].name, "x-amzn-ErrorType") == 0)
            r->error_type = strdup(out.headers[i].value);
    rd_emu_reply_free(&out);
}

static void reply_free(struct reply *r)
{
    free(r->ctype);
    free(r->error_type);
    rd_buf_free(&r->body);
}

struct frames {
    char names[64][32];
    size_t n;
    struct rd_usage usage;
    int ended;
    struct rd_buf text; /* converse text deltas */
};

static int on_frame(void *ud, const struct rd_es_msg *m)
{
    struct frames *f = ud;
    const char *name, *mt;
    size_t nl, ml;
    assert_true(rd_es_header_string(m, ":event-type", &name, &nl));
    assert_true(rd_es_header_string(m, ":message-type", &mt, &ml));
    assert_int_equal(ml, 5);
    assert_true(rd_es_header_string(m, ":content-type", &mt, &ml));
    assert_memory_equal(mt, "application/json", 16);
    if (f->n < 64)
        snprintf(f->names[f->n++], 32, "%.*s", (int)nl, name);
    struct rd_stream_event ev = {.type = RD_STREAM_MSG_EVENT, .name = name, .name_len = nl,
                                 .data = (const char *)m->payload, .data_len = m->payload_len};
    assert_int_equal(f->ended, 0); /* nothing after the end */
    f->ended = bedrock()->stream_event(bedrock(), &ev, &f->usage);
    if (nl == 17 && memcmp(name, "contentBlockDelta", 17) == 0) {
        struct json_object *o = parse((const char *)m->payload, m->payload_len);
        const char *t = rd_json_get_str(rd_json_get(o, "delta"), "text");
        if (t)
            assert_int_equal(rd_buf_appends(&f->text, t), 0);
        json_object_put(o);
    }
    return 0;
}

/* Decodes a stream one byte at a time (frames split everywhere). */
static void decode_frames(const struct rd_buf *b, struct frames *f)
{
    memset(f, 0, sizeof *f);
    f->usage = (struct rd_usage)NO_USAGE;
    rd_buf_init(&f->text, 0);
    struct rd_es_decoder d;
    rd_es_decoder_init(&d, 0);
    for (size_t i = 0; i < b->len; i++)
        assert_int_equal(rd_es_decoder_feed(&d, b->data + i, 1, on_frame, f), 0);
    assert_true(rd_es_decoder_at_boundary(&d));
    rd_es_decoder_free(&d);
}

#define CONVERSE_BODY "{\"messages\":[{\"role\":\"user\",\"content\":[{\"text\":\"Hello there, duck\"}]}]}"

static void test_emulator_converse(void **state)
{
    (void)state;
    struct reply plain, st;
    emulate(MODEL_PATH, CONVERSE_BODY, &plain);
    assert_int_equal(plain.status, 200);
    assert_false(plain.stream);
    assert_string_equal(plain.ctype, "application/json");
    struct json_object *o = parse(plain.body.data, plain.body.len);
    const char *text =
        rd_json_get_str(json_object_array_get_idx(rd_json_get(rd_json_get(rd_json_get(o, "output"), "message"), "content"), 0),
                        "text");
    assert_non_null(text);
    assert_non_null(strstr(text, "Hello there, duck"));
    assert_string_equal(rd_json_get_str(o, "stopReason"), "end_turn");
    struct rd_usage pu = NO_USAGE;
    bedrock()->body_usage(bedrock(), plain.body.data, plain.body.len, &pu);
    assert_true(pu.input > 0 && pu.output > 0);

    emulate("/model/anthropic.claude-3-haiku-20240307-v1%3A0/converse-stream", CONVERSE_BODY, &st);
    assert_int_equal(st.status, 200);
    assert_true(st.stream);
    assert_string_equal(st.ctype, "application/vnd.amazon.eventstream");
    struct frames f;
    decode_frames(&st.body, &f);
    assert_true(f.n >= 6);
    assert_string_equal(f.names[0], "messageStart");
    assert_string_equal(f.names[1], "contentBlockDelta");
    assert_string_equal(f.names[f.n - 3], "contentBlockStop");
    assert_string_equal(f.names[f.n - 2], "messageStop");
    assert_string_equal(f.names[f.n - 1], "metadata");
    assert_int_equal(f.ended, 1);
    assert_usage_r(&f.usage, pu.input, pu.output, 0, 0);
    assert_int_equal(f.text.len, strlen(text));
    assert_memory_equal(f.text.data, text, f.text.len);
    rd_buf_free(&f.text);
    json_object_put(o);
    reply_free(&plain);
    reply_free(&st);

    /* tool use, forced: contentBlockStart carries the tool */
    const char *tool_body =
        "{\"messages\":[{\"role\":\"user\",\"content\":[{\"text\":\"weather in Oslo\"}]}],\"toolConfig\":{\"tools\":"
        "[{\"toolSpec\":{\"name\":\"get_weather\",\"inputSchema\":{\"json\":{\"type\":\"object\",\"properties\":"
        "{\"city\":{\"type\":\"string\"}},\"required\":[\"city\"]}}}}],\"toolChoice\":{\"tool\":{\"name\":\"get_weather\"}}}}";
    emulate(MODEL_PATH, tool_body, &plain);
    o = parse(plain.body.data, plain.body.len);
    assert_string_equal(rd_json_get_str(o, "stopReason"), "tool_use");
    struct json_object *tu =
        rd_json_get(json_object_array_get_idx(rd_json_get(rd_json_get(rd_json_get(o, "output"), "message"), "content"), 0),
                    "toolUse");
    assert_string_equal(rd_json_get_str(tu, "name"), "get_weather");
    assert_non_null(rd_json_get_str(rd_json_get(tu, "input"), "city"));
    assert_int_equal(strncmp(rd_json_get_str(tu, "toolUseId"), "tooluse_", 8), 0);
    json_object_put(o);
    reply_free(&plain);
    emulate("/model/x/converse-stream", tool_body, &st);
    decode_frames(&st.body, &f);
    assert_string_equal(f.names[1], "contentBlockStart");
    assert_int_equal(f.ended, 1);
    rd_buf_free(&f.text);
    reply_free(&st);
}

#define INVOKE_BODY                                                                                                    \
    "{\"anthropic_version\":\"bedrock-2023-05-31\",\"max_tokens\":200,\"messages\":[{\"role\":\"user\",\"content\":" \
    "\"invoke me\"}]}"

static void test_emulator_invoke(void **state)
{
    (void)state;
    struct reply plain, st;
    emulate("/model/anthropic.claude-3-haiku-20240307-v1%3A0/invoke", INVOKE_BODY, &plain);
    assert_int_equal(plain.status, 200);
    struct json_object *o = parse(plain.body.data, plain.body.len);
    assert_string_equal(rd_json_get_str(o, "type"), "message");
    assert_string_equal(rd_json_get_str(o, "model"), "anthropic.claude-3-haiku-20240307-v1:0");
    struct rd_usage pu = NO_USAGE;
    bedrock()->body_usage(bedrock(), plain.body.data, plain.body.len, &pu);
    assert_true(pu.input > 0 && pu.output > 0);
    json_object_put(o);
    emulate("/model/anthropic.claude-3-haiku-20240307-v1%3A0/invoke-with-response-stream", INVOKE_BODY, &st);
    assert_int_equal(st.status, 200);
    assert_string_equal(st.ctype, "application/vnd.amazon.eventstream");
    struct frames f;
    decode_frames(&st.body, &f);
    for (size_t i = 0; i < f.n; i++)
        assert_string_equal(f.names[i], "chunk");
    assert_true(f.n >= 6);
    assert_int_equal(f.ended, 1);
    assert_usage_r(&f.usage, pu.input, pu.output, 0, 0);
    rd_buf_free(&f.text);
    reply_free(&plain);
    reply_free(&st);
    /* an inference profile of Claude is Claude */
    emulate("/model/us.anthropic.claude-3-haiku-20240307-v1%3A0/invoke", INVOKE_BODY, &plain);
    assert_int_equal(plain.status, 200);
    reply_free(&plain);
}

static void test_emulator_errors(void **state)
{
    (void)state;
    static const struct {
        const char *path, *body;
        int status;
        const char *type, *msg;
    } cases[] = {
        {"/model/amazon.nova-pro-v1%3A0/invoke", "{}", 400, "ValidationException", "Converse"},
        {MODEL_PATH, "{not json", 400, "ValidationException", "Malformed input request"},
        {MODEL_PATH, "[1]", 400, "ValidationException", "Malformed input request"},
        {MODEL_PATH, "{\"inferenceConfig\":{\"maxTokens\":5}}", 400, "ValidationException", "messages"},
        {"/model/anthropic.claude-v2/invoke", "{\"messages\":[{\"role\":\"user\",\"content\":\"x\"}]}", 400,
         "ValidationException", "max_tokens"},
        {"/model/bad%00/converse", CONVERSE_BODY, 400, "ValidationException", "model identifier"},
        {"/foundation-models", "{}", 404, "UnknownOperationException", "Not Found"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        struct reply r;
        emulate(cases[i].path, cases[i].body, &r);
        assert_int_equal(r.status, cases[i].status);
        assert_false(r.stream);
        assert_non_null(r.error_type);
        assert_string_equal(r.error_type, cases[i].type);
        struct json_object *o = parse(r.body.data, r.body.len);
        const char *msg = rd_json_get_str(o, "message");
        assert_non_null(msg);
        if (strstr(msg, cases[i].msg) == NULL) {
            print_error("case %zu: message %s lacks %s\n", i, msg, cases[i].msg);
            fail();
        }
        json_object_put(o);
        reply_free(&r);
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_routes_and_model),   cmocka_unit_test(test_scope_region),
        cmocka_unit_test(test_prepare_bearer),     cmocka_unit_test(test_prepare_sigv4),
        cmocka_unit_test(test_prepare_no_credentials), cmocka_unit_test(test_errors),
        cmocka_unit_test(test_base64),             cmocka_unit_test(test_body_usage),
        cmocka_unit_test(test_stream_usage),       cmocka_unit_test(test_emulator_converse),
        cmocka_unit_test(test_emulator_invoke),    cmocka_unit_test(test_emulator_errors),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
