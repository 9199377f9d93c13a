/* Tests for the anthropic provider (src/providers/anthropic.c: routes,
 * error builder, usage from bodies and streams) and its emulator dialect
 * (src/providers/emulator/anthropic*.c: messages plain and streamed, tool
 * use, count_tokens, models, legacy completions, errors), through the real
 * provider as the engine uses it. */
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
#include "providers/emulator/anthropic.h"
#include "providers/provider.h"
#include "util/arena.h"
#include "util/buf.h"
#include "util/json.h"

#define NO_USAGE                                                                                                       \
    {                                                                                                                  \
        -1, -1, -1, -1, -1                                                                                             \
    }

static const struct rd_provider *anthropic(void)
{
    const struct rd_provider *p = rd_provider_find("anthropic");
    assert_non_null(p);
    assert_ptr_equal(p, &rd_provider_anthropic);
    return p;
}

static struct json_object *parse(const char *s, size_t n)
{
    struct json_object *o = NULL;
    struct rd_json_err err;
    if (rd_json_parse(s, n, 1u << 26, &o, &err) != 0) {
        print_error("not JSON (%s at %zu): %.*s\n", err.msg, err.pos, (int)n, s);
        fail();
    }
    return o;
}

static void assert_usage_r(const struct rd_usage *u, int64_t in, int64_t out, int64_t cached, int64_t cache_write,
                           int64_t reasoning)
{
    if (u->input != in || u->output != out || u->cached != cached || u->cache_write != cache_write ||
        u->reasoning != reasoning) {
        print_error("usage in %lld out %lld cached %lld write %lld reasoning %lld, wanted %lld %lld %lld %lld %lld\n",
                    (long long)u->input, (long long)u->output, (long long)u->cached, (long long)u->cache_write,
                    (long long)u->reasoning, (long long)in, (long long)out, (long long)cached, (long long)cache_write,
                    (long long)reasoning);
        fail();
    }
}

static void assert_usage(const struct rd_usage *u, int64_t in, int64_t out, int64_t cached, int64_t cache_write)
{
    assert_usage_r(u, in, out, cached, cache_write, -1);
}

/* ---- provider data ------------------------------------------------------ */

static void test_provider_data(void **state)
{
    (void)state;
    const struct rd_provider *p = anthropic();
    assert_string_equal(p->default_upstream, "https://api.anthropic.com");
    assert_string_equal(p->dialect_name, "anthropic");
    assert_string_equal(p->sdk_base_path, "");
    assert_string_equal(p->request_id_header, "request-id");
    assert_int_equal(p->error_style, RD_ERRSTYLE_ANTHROPIC);
    assert_false(p->upstream_required);
    bool xkey = false, bearer = false;
    for (size_t i = 0; p->auth_headers[i]; i++) {
        xkey |= strcmp(p->auth_headers[i], "x-api-key") == 0;
        bearer |= strcmp(p->auth_headers[i], "authorization") == 0;
    }
    assert_true(xkey && bearer);

    static const struct {
        const char *method, *path;
        enum rd_req_kind kind;
        unsigned flags;
    } cases[] = {
        {"POST", "/v1/messages", RD_REQ_CHAT, RD_ROUTE_CACHEABLE | RD_ROUTE_STREAMABLE},
        {"POST", "/v1/messages/count_tokens", RD_REQ_TOKENS, 0},
        {"GET", "/v1/models", RD_REQ_MODELS, 0},
        {"GET", "/v1/models/claude-opus-4-5", RD_REQ_MODELS, 0},
        {"POST", "/v1/complete", RD_REQ_COMPLETION, RD_ROUTE_CACHEABLE | RD_ROUTE_STREAMABLE},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        struct rd_route_match m;
        const struct rd_route *r = rd_provider_route(p, cases[i].method, cases[i].path, &m);
        assert_non_null(r);
        assert_int_equal(r->kind, cases[i].kind);
        assert_int_equal(r->flags, cases[i].flags);
    }
    struct rd_route_match m;
    assert_null(rd_provider_route(p, "GET", "/v1/messages", &m));
    assert_null(rd_provider_route(p, "POST", "/v1/messages/batches", &m));

    /* the model: from the body, or the path of /v1/models/{id} */
    char model[64];
    const char body[] = "{\"max_tokens\":5,\"model\":\"claude-haiku-4-5\",\"messages\":[]}";
    rd_provider_route(p, "POST", "/v1/messages", &m);
    struct rd_provider_req pr = {
        .method = "POST", .path = "/v1/messages", .query = "", .body = body, .body_len = sizeof body - 1, .match = &m};
    assert_int_equal(p->model(p, &pr, model, sizeof model), 16);
    assert_string_equal(model, "claude-haiku-4-5");
    rd_provider_route(p, "GET", "/v1/models/claude-3-haiku-20240307", &m);
    pr = (struct rd_provider_req){
        .method = "GET", .path = "/v1/models/claude-3-haiku-20240307", .query = "", .match = &m};
    p->model(p, &pr, model, sizeof model);
    assert_string_equal(model, "claude-3-haiku-20240307");
}

/* ---- errors ------------------------------------------------------------- */

static void test_error_builder(void **state)
{
    (void)state;
    static const struct {
        int status;
        const char *type;
    } cases[] = {
        {400, "invalid_request_error"},
        {401, "authentication_error"},
        {402, "billing_error"},
        {403, "permission_error"},
        {404, "not_found_error"},
        {408, "timeout_error"},
        {413, "request_too_large"},
        {422, "invalid_request_error"},
        {429, "rate_limit_error"},
        {431, "request_too_large"},
        {500, "api_error"},
        {502, "api_error"},
        {503, "overloaded_error"},
        {504, "timeout_error"},
        {529, "overloaded_error"},
        {599, "api_error"},
        {418, "invalid_request_error"},
    };
    const struct rd_provider *p = anthropic();
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        struct rd_arena arena;
        struct rd_hdrs h;
        struct rd_buf body;
        rd_arena_init(&arena);
        rd_hdrs_init(&h, &arena);
        rd_buf_init(&body, 0);
        struct rd_error_spec e = {.status = cases[i].status,
                                  .message = "Overloaded \"now\"",
                                  .request_id = "req_1",
                                  .retry_after_s = cases[i].status == 429 ? 12 : -1};
        rd_provider_error(p, &e, &h, &body);
        struct json_object *doc = parse(body.data, body.len);
        assert_string_equal(rd_json_get_str(doc, "type"), "error");
        struct json_object *err = rd_json_get(doc, "error");
        assert_string_equal(rd_json_get_str(err, "type"), cases[i].type);
        assert_string_equal(rd_json_get_str(err, "message"), "Overloaded \"now\"");
        assert_string_equal(rd_json_get_str(doc, "request_id"), "req_1");
        assert_string_equal(rd_hdrs_get(&h, "content-type"), "application/json");
        assert_string_equal(rd_hdrs_get(&h, "request-id"), "req_1");
        if (cases[i].status == 429)
            assert_string_equal(rd_hdrs_get(&h, "retry-after"), "12");
        else
            assert_null(rd_hdrs_get(&h, "retry-after"));
        json_object_put(doc);
        rd_buf_free(&body);
        rd_hdrs_free(&h);
        rd_arena_free(&arena);
    }
    /* without a request id: neither header nor body field */
    struct rd_arena arena;
    struct rd_hdrs h;
    struct rd_buf body;
    rd_arena_init(&arena);
    rd_hdrs_init(&h, &arena);
    rd_buf_init(&body, 0);
    struct rd_error_spec e = {.status = 502, .message = "x", .request_id = NULL, .retry_after_s = 0};
    rd_provider_error_anthropic(p, &e, &h, &body);
    struct json_object *doc = parse(body.data, body.len);
    assert_null(rd_json_get(doc, "request_id"));
    assert_null(rd_hdrs_get(&h, "request-id"));
    assert_string_equal(rd_hdrs_get(&h, "retry-after"), "0");
    json_object_put(doc);
    rd_buf_free(&body);
    rd_hdrs_free(&h);
    rd_arena_free(&arena);
}

/* ---- usage -------------------------------------------------------------- */

/* A recorded Message body (the API's shape, with prompt caching). */
static const char MESSAGE_BODY[] =
    "{\"id\":\"msg_01XFDUDYJgAACzvnptvVoYEL\",\"type\":\"message\",\"role\":\"assistant\",\"model\":\"claude-sonnet-"
    "4-5-20250929\",\"content\":[{\"type\":\"text\",\"text\":\"usage: {\\\"input_tokens\\\": 1}\"}],\"stop_reason\":"
    "\"end_turn\",\"stop_sequence\":null,\"usage\":{\"input_tokens\":12,\"cache_creation_input_tokens\":2048,"
    "\"cache_read_input_tokens\":4096,\"cache_creation\":{\"ephemeral_5m_input_tokens\":2048,\"ephemeral_1h_input_"
    "tokens\":0},\"output_tokens\":57,\"service_tier\":\"standard\"}}";

static void test_body_usage(void **state)
{
    (void)state;
    const struct rd_provider *p = anthropic();
    struct rd_usage u = NO_USAGE;
    p->body_usage(p, MESSAGE_BODY, sizeof MESSAGE_BODY - 1, &u);
    /* input_tokens excludes both cache counts: they are added, once */
    assert_usage(&u, 12 + 2048 + 4096, 57, 4096, 2048);

    /* without cache fields */
    u = (struct rd_usage)NO_USAGE;
    const char plain[] = "{\"type\":\"message\",\"usage\":{\"input_tokens\":25,\"output_tokens\":3}}";
    p->body_usage(p, plain, sizeof plain - 1, &u);
    assert_usage(&u, 25, 3, -1, -1);

    /* current API versions split out the thinking part of the output */
    u = (struct rd_usage)NO_USAGE;
    const char thinking[] = "{\"usage\":{\"input_tokens\":40,\"output_tokens\":900,\"output_tokens_details\":{"
                            "\"thinking_tokens\":700},\"cache_read_input_tokens\":null}}";
    p->body_usage(p, thinking, sizeof thinking - 1, &u);
    assert_usage_r(&u, 40, 900, -1, -1, 700);

    /* count_tokens and legacy completions report no usage */
    u = (struct rd_usage)NO_USAGE;
    const char count[] = "{\"input_tokens\":2095}";
    p->body_usage(p, count, sizeof count - 1, &u);
    assert_usage(&u, -1, -1, -1, -1);
    const char compl [] = "{\"type\":\"completion\",\"completion\":\" Hi\",\"stop_reason\":\"stop_sequence\"}";
    p->body_usage(p, compl, sizeof compl -1, &u);
    assert_usage(&u, -1, -1, -1, -1);

    /* hostile counts leave usage alone */
    static const char *const bad[] = {
        "{\"usage\":{\"input_tokens\":-5,\"output_tokens\":3}}",
        "{\"usage\":{\"input_tokens\":\"12\",\"output_tokens\":3}}",
        "{\"usage\":{\"input_tokens\":1.5,\"output_tokens\":3}}",
        "{\"usage\":{\"input_tokens\":9223372036854775807,\"cache_read_input_tokens\":9223372036854775807}}",
        "{\"usage\":{\"input_tokens\":99999999999999999999}}",
        "{\"usage\":{\"input_tokens\":12,",
        "{\"usage\":[1,2]}",
        "",
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        u = (struct rd_usage)NO_USAGE;
        size_t n = strlen(bad[i]);
        char *copy = malloc(n ? n : 1); /* exact size: an overread is caught */
        memcpy(copy, bad[i], n);
        p->body_usage(p, copy, n, &u);
        free(copy);
        assert_usage(&u, -1, -1, -1, -1);
    }
}

/* A recorded stream with prompt caching, as the API sends it (CRLF lines in
 * one event, a ping, a comment). */
static const char STREAM[] =
    "event: message_start\r\n"
    "data: {\"type\":\"message_start\",\"message\":{\"id\":\"msg_1\",\"type\":\"message\",\"role\":\"assistant\","
    "\"content\":[],\"model\":\"claude-sonnet-4-5\",\"stop_reason\":null,\"stop_sequence\":null,\"usage\":{"
    "\"input_tokens\":7,\"cache_creation_input_tokens\":1500,\"cache_read_input_tokens\":300,\"output_tokens\":1}}}"
    "\r\n\r\n"
    "event: content_block_start\n"
    "data: {\"type\":\"content_block_start\",\"index\":0,\"content_block\":{\"type\":\"text\",\"text\":\"\"}}\n\n"
    "event: ping\n"
    "data: {\"type\": \"ping\"}\n\n"
    ": a comment\n\n"
    "event: content_block_delta\n"
    "data: {\"type\":\"content_block_delta\",\"index\":0,\"delta\":{\"type\":\"text_delta\",\"text\":\"usage "
    "output_tokens 999\"}}\n\n"
    "event: content_block_stop\n"
    "data: {\"type\":\"content_block_stop\",\"index\":0}\n\n"
    "event: message_delta\n"
    "data: {\"type\":\"message_delta\",\"delta\":{\"stop_reason\":\"end_turn\",\"stop_sequence\":null},\"usage\":{"
    "\"output_tokens\":15}}\n\n"
    "event: message_stop\n"
    "data: {\"type\":\"message_stop\"}\n\n";

struct feed {
    struct rd_usage u;
    int ended; /* events that ended the stream */
    int events;
};

static int on_event(void *ud, const struct rd_sse_event *ev)
{
    struct feed *f = ud;
    const struct rd_provider *p = &rd_provider_anthropic;
    struct rd_stream_event se = rd_stream_event_of_sse(ev);
    f->ended += p->stream_event(p, &se, &f->u);
    f->events++;
    return 0;
}

/* Feeds s through the SSE scanner in two reads split at `at`. */
static struct feed feed_split(const char *s, size_t n, size_t at)
{
    struct feed f = {.u = NO_USAGE};
    struct rd_sse sse;
    rd_sse_init(&sse, 0);
    char *a = malloc(at ? at : 1), *b = malloc(n - at ? n - at : 1);
    memcpy(a, s, at);
    memcpy(b, s + at, n - at);
    assert_int_equal(rd_sse_feed(&sse, a, at, on_event, &f), 0);
    assert_int_equal(rd_sse_feed(&sse, b, n - at, on_event, &f), 0);
    free(a);
    free(b);
    rd_sse_free(&sse);
    return f;
}

static void test_stream_usage_split_everywhere(void **state)
{
    (void)state;
    size_t n = sizeof STREAM - 1;
    for (size_t at = 0; at <= n; at++) {
        struct feed f = feed_split(STREAM, n, at);
        assert_int_equal(f.events, 7);
        assert_int_equal(f.ended, 1);
        assert_usage(&f.u, 7 + 1500 + 300, 15, 300, 1500);
    }
}

static int ev(const char *name, const char *data, struct rd_usage *u)
{
    size_t n = strlen(data);
    char *d = malloc(n ? n : 1);
    memcpy(d, data, n);
    struct rd_stream_event e = {
        .type = RD_STREAM_MSG_EVENT, .name = name, .name_len = strlen(name), .data = d, .data_len = n};
    int rc = rd_provider_stream_event_anthropic(&rd_provider_anthropic, &e, u);
    free(d);
    return rc;
}

static void test_stream_usage_cases(void **state)
{
    (void)state;
    struct rd_usage u = NO_USAGE;
    /* message_start carries the input side and the first output count */
    assert_int_equal(ev("message_start",
                        "{\"type\":\"message_start\",\"message\":{\"usage\":{\"input_tokens\":10,"
                        "\"cache_read_input_tokens\":100,\"cache_creation_input_tokens\":50,\"output_tokens\":1}}}",
                        &u),
                     0);
    assert_usage(&u, 160, 1, 100, 50);
    /* a message_delta repeating all counts (newer API versions do) adds
     * nothing twice: counts are cumulative */
    assert_int_equal(ev("message_delta",
                        "{\"type\":\"message_delta\",\"delta\":{},\"usage\":{\"input_tokens\":10,"
                        "\"cache_read_input_tokens\":100,\"cache_creation_input_tokens\":50,\"output_tokens\":40}}",
                        &u),
                     0);
    assert_usage(&u, 160, 40, 100, 50);
    /* one that updates only the cache read keeps the raw input */
    assert_int_equal(ev("message_delta", "{\"usage\":{\"cache_read_input_tokens\":120,\"output_tokens\":41}}", &u), 0);
    assert_usage(&u, 180, 41, 120, 50);
    /* usage inside a delta's text is not usage */
    assert_int_equal(ev("content_block_delta",
                        "{\"type\":\"content_block_delta\",\"delta\":{\"text\":\"\\\"usage\\\":{\\\"output_tokens\\\""
                        ":5}\"},\"usage\":{\"output_tokens\":5}}",
                        &u),
                     0);
    assert_usage(&u, 180, 41, 120, 50);
    /* an error event is not a proper end; message_stop is */
    assert_int_equal(
        ev("error", "{\"type\":\"error\",\"error\":{\"type\":\"overloaded_error\",\"message\":\"x\"}}", &u), 0);
    assert_int_equal(ev("message_stop", "{\"type\":\"message_stop\"}", &u), 1);
    assert_usage(&u, 180, 41, 120, 50);

    /* unnamed events (Bedrock's invoke stream decoded) go by "type" */
    u = (struct rd_usage)NO_USAGE;
    assert_int_equal(ev("",
                        "{\"type\":\"message_start\",\"message\":{\"usage\":{\"input_tokens\":3,"
                        "\"output_tokens\":1}}}",
                        &u),
                     0);
    assert_int_equal(ev("", "{\"type\":\"message_delta\",\"usage\":{\"output_tokens\":9}}", &u), 0);
    assert_int_equal(ev("", "{\"type\":\"message_stop\",\"amazon-bedrock-invocationMetrics\":{}}", &u), 1);
    assert_usage(&u, 3, 9, -1, -1);
    assert_int_equal(ev("", "not json", &u), 0);
    assert_int_equal(ev("", "", &u), 0);

    /* an exception frame never ends the stream */
    struct rd_stream_event x = {
        .type = RD_STREAM_MSG_EXCEPTION, .name = "message_stop", .name_len = 12, .data = "{}", .data_len = 2};
    assert_int_equal(rd_provider_stream_event_anthropic(&rd_provider_anthropic, &x, &u), 0);
}

/* ---- emulator ----------------------------------------------------------- */

static void emulate(const char *method, const char *path, const char *query, const char *body, struct rd_emu_reply *out)
{
    const struct rd_provider *p = anthropic();
    struct rd_route_match m;
    rd_provider_route(p, method, path, &m);
    struct rd_emu_request req = {.method = method,
                                 .path = path,
                                 .query = query ? query : "",
                                 .body = body,
                                 .body_len = body ? strlen(body) : 0,
                                 .match = &m};
    assert_int_equal(p->emulate(p->emulator, &req, out), 0);
}

static struct json_object *plain_json(const struct rd_emu_reply *r, int status)
{
    assert_int_equal(r->status, status);
    assert_false(r->stream);
    assert_int_equal(r->n, 1);
    assert_string_equal(r->content_type, "application/json");
    return parse(r->chunks[0].data, r->chunks[0].len);
}

/* Asserts r is Anthropic's error with this status and message prefix. */
static void assert_error(const struct rd_emu_reply *r, int status, const char *type, const char *msg_prefix)
{
    struct json_object *doc = plain_json(r, status);
    assert_string_equal(rd_json_get_str(doc, "type"), "error");
    struct json_object *err = rd_json_get(doc, "error");
    assert_string_equal(rd_json_get_str(err, "type"), type);
    const char *msg = rd_json_get_str(err, "message");
    assert_non_null(msg);
    if (strncmp(msg, msg_prefix, strlen(msg_prefix)) != 0) {
        print_error("message \"%s\", wanted \"%s...\"\n", msg, msg_prefix);
        fail();
    }
    json_object_put(doc);
}

static void test_emu_message_plain(void **state)
{
    (void)state;
    struct rd_emu_reply r;
    const char body[] = "{\"model\":\"claude-sonnet-4-5\",\"max_tokens\":1024,\"system\":\"be brief\","
                        "\"messages\":[{\"role\":\"user\",\"content\":\"Hello, duck\"}]}";
    emulate("POST", "/v1/messages", NULL, body, &r);
    struct json_object *m = plain_json(&r, 200);
    const char *id = rd_json_get_str(m, "id");
    assert_non_null(id);
    assert_int_equal(strlen(id), 28);
    assert_memory_equal(id, "msg_01", 6);
    assert_string_equal(rd_json_get_str(m, "type"), "message");
    assert_string_equal(rd_json_get_str(m, "role"), "assistant");
    assert_string_equal(rd_json_get_str(m, "model"), "claude-sonnet-4-5");
    assert_string_equal(rd_json_get_str(m, "stop_reason"), "end_turn");
    struct json_object *seq = NULL;
    assert_true(json_object_object_get_ex(m, "stop_sequence", &seq));
    assert_null(seq); /* present, null */
    struct json_object *content = rd_json_get(m, "content");
    assert_int_equal(json_object_array_length(content), 1);
    struct json_object *b = json_object_array_get_idx(content, 0);
    assert_string_equal(rd_json_get_str(b, "type"), "text");
    assert_non_null(strstr(rd_json_get_str(b, "text"), "Hello, duck"));
    struct json_object *u = rd_json_get(m, "usage");
    int64_t in = rd_json_get_int(u, "input_tokens", -1), out = rd_json_get_int(u, "output_tokens", -1);
    assert_true(in > 0 && out >= 20);
    assert_int_equal(rd_json_get_int(u, "cache_read_input_tokens", -1), 0);
    assert_int_equal(rd_json_get_int(u, "cache_creation_input_tokens", -1), 0);
    /* the provider's own hook reads the emulator's body */
    struct rd_usage ru = NO_USAGE;
    rd_provider_body_usage_anthropic(&rd_provider_anthropic, r.chunks[0].data, r.chunks[0].len, &ru);
    assert_usage(&ru, in, out, 0, 0);
    /* pacing: the body carries every output token */
    assert_int_equal(r.chunks[0].tokens, (uint32_t)out);

    /* same request, same bytes; another seed, another answer */
    struct rd_emu_reply r2;
    emulate("POST", "/v1/messages", NULL, body, &r2);
    assert_int_equal(r2.chunks[0].len, r.chunks[0].len);
    assert_memory_equal(r2.chunks[0].data, r.chunks[0].data, r.chunks[0].len);
    rd_emu_reply_free(&r2);

    /* count_tokens agrees with input_tokens for the same body */
    emulate("POST", "/v1/messages/count_tokens", NULL, body, &r2);
    struct json_object *ct = plain_json(&r2, 200);
    assert_int_equal(rd_json_get_int(ct, "input_tokens", -1), in);
    assert_int_equal(json_object_object_length(ct), 1);
    json_object_put(ct);
    rd_emu_reply_free(&r2);
    json_object_put(m);
    rd_emu_reply_free(&r);
}

/* Events of an SSE reply: names in order and parsed data. */
struct events {
    char names[256][32];
    struct json_object *data[256];
    uint32_t tokens;
    size_t n;
};

static void sse_events(const struct rd_emu_reply *r, struct events *e)
{
    assert_int_equal(r->status, 200);
    assert_true(r->stream);
    assert_string_equal(r->content_type, "text/event-stream; charset=utf-8");
    memset(e, 0, sizeof *e);
    for (size_t i = 0; i < r->n; i++) {
        const char *s = r->chunks[i].data;
        assert_memory_equal(s, "event: ", 7);
        const char *nl = strchr(s, '\n');
        assert_non_null(nl);
        assert_true(e->n < 256);
        snprintf(e->names[e->n], sizeof e->names[0], "%.*s", (int)(nl - s - 7), s + 7);
        assert_memory_equal(nl + 1, "data: ", 6);
        const char *data = nl + 7;
        size_t dl = r->chunks[i].len - (size_t)(data - s);
        assert_true(dl >= 2);
        assert_memory_equal(data + dl - 2, "\n\n", 2);
        e->data[e->n] = parse(data, dl - 2);
        assert_string_equal(rd_json_get_str(e->data[e->n], "type"), e->names[e->n]);
        e->tokens += r->chunks[i].tokens;
        e->n++;
    }
}

static void events_free(struct events *e)
{
    for (size_t i = 0; i < e->n; i++)
        json_object_put(e->data[i]);
}

static void test_emu_message_stream(void **state)
{
    (void)state;
    const char plain[] = "{\"model\":\"claude-haiku-4-5\",\"max_tokens\":300,"
                         "\"messages\":[{\"role\":\"user\",\"content\":[{\"type\":\"text\",\"text\":\"stream\"},"
                         "{\"type\":\"text\",\"text\":\"please\"}]}]}";
    const char streamed[] = "{\"model\":\"claude-haiku-4-5\",\"max_tokens\":300,"
                            "\"messages\":[{\"role\":\"user\",\"content\":[{\"type\":\"text\",\"text\":\"stream\"},"
                            "{\"type\":\"text\",\"text\":\"please\"}]}],\"stream\":true}";
    struct rd_emu_reply rp, rs;
    emulate("POST", "/v1/messages", NULL, plain, &rp);
    emulate("POST", "/v1/messages", NULL, streamed, &rs);
    struct json_object *m = plain_json(&rp, 200);
    struct events e;
    sse_events(&rs, &e);
    assert_true(e.n >= 8);
    assert_string_equal(e.names[0], "message_start");
    assert_string_equal(e.names[1], "content_block_start");
    assert_string_equal(e.names[2], "ping");
    assert_string_equal(e.names[e.n - 3], "content_block_stop");
    assert_string_equal(e.names[e.n - 2], "message_delta");
    assert_string_equal(e.names[e.n - 1], "message_stop");
    struct rd_buf text;
    rd_buf_init(&text, 0);
    for (size_t i = 3; i < e.n - 3; i++) {
        assert_string_equal(e.names[i], "content_block_delta");
        struct json_object *d = rd_json_get(e.data[i], "delta");
        assert_string_equal(rd_json_get_str(d, "type"), "text_delta");
        assert_int_equal(rd_json_get_int(e.data[i], "index", -1), 0);
        assert_int_equal(rd_buf_appends(&text, rd_json_get_str(d, "text")), 0);
    }
    /* the streamed text, ids and usage are the plain answer's */
    struct json_object *msg = rd_json_get(e.data[0], "message");
    assert_string_equal(rd_json_get_str(msg, "id"), rd_json_get_str(m, "id"));
    assert_null(rd_json_get(msg, "stop_reason"));
    assert_int_equal(json_object_array_length(rd_json_get(msg, "content")), 0);
    const char *want = rd_json_get_str(json_object_array_get_idx(rd_json_get(m, "content"), 0), "text");
    assert_int_equal(text.len, strlen(want));
    assert_memory_equal(text.data, want, text.len);
    assert_non_null(strstr(want, "stream\nplease")); /* text blocks joined with a newline */
    struct json_object *usage = rd_json_get(m, "usage");
    int64_t out = rd_json_get_int(usage, "output_tokens", -1);
    assert_int_equal(rd_json_get_int(rd_json_get(msg, "usage"), "input_tokens", -1),
                     rd_json_get_int(usage, "input_tokens", -2));
    assert_int_equal(rd_json_get_int(rd_json_get(e.data[e.n - 2], "usage"), "output_tokens", -1), out);
    assert_string_equal(rd_json_get_str(rd_json_get(e.data[e.n - 2], "delta"), "stop_reason"), "end_turn");
    assert_int_equal(e.tokens, (uint32_t)out); /* pacing tags add up to the usage */

    /* the provider's stream hook, on the emulator's own bytes, split everywhere */
    struct rd_buf all;
    rd_buf_init(&all, 0);
    for (size_t i = 0; i < rs.n; i++)
        assert_int_equal(rd_buf_append(&all, rs.chunks[i].data, rs.chunks[i].len), 0);
    for (size_t at = 0; at <= all.len; at += 7) {
        struct feed f = feed_split(all.data, all.len, at);
        assert_int_equal(f.ended, 1);
        assert_usage(&f.u, rd_json_get_int(usage, "input_tokens", -1), out, 0, 0);
    }
    rd_buf_free(&all);
    rd_buf_free(&text);
    events_free(&e);
    json_object_put(m);
    rd_emu_reply_free(&rp);
    rd_emu_reply_free(&rs);
}

/* Extended thinking: a thinking block with a signature comes first, in the
 * Message and as thinking_delta + signature_delta events; its tokens are
 * part of output_tokens; the API's validation of "thinking". */
static void test_emu_thinking(void **state)
{
    (void)state;
    const char plain[] = "{\"model\":\"claude-sonnet-4-5\",\"max_tokens\":2048,"
                         "\"thinking\":{\"type\":\"enabled\",\"budget_tokens\":1024},"
                         "\"messages\":[{\"role\":\"user\",\"content\":\"think first\"}]}";
    const char streamed[] = "{\"model\":\"claude-sonnet-4-5\",\"max_tokens\":2048,"
                            "\"thinking\":{\"type\":\"enabled\",\"budget_tokens\":1024},"
                            "\"messages\":[{\"role\":\"user\",\"content\":\"think first\"}],\"stream\":true}";
    struct rd_emu_reply rp, rs;
    emulate("POST", "/v1/messages", NULL, plain, &rp);
    struct json_object *m = plain_json(&rp, 200);
    struct json_object *content = rd_json_get(m, "content");
    assert_int_equal(json_object_array_length(content), 2);
    struct json_object *tb = json_object_array_get_idx(content, 0);
    assert_string_equal(rd_json_get_str(tb, "type"), "thinking");
    const char *thought = rd_json_get_str(tb, "thinking"), *sig = rd_json_get_str(tb, "signature");
    assert_true(thought && strlen(thought) > 0);
    assert_true(sig && strlen(sig) == 128);
    struct json_object *xb = json_object_array_get_idx(content, 1);
    assert_string_equal(rd_json_get_str(xb, "type"), "text");
    int64_t out = rd_json_get_int(rd_json_get(m, "usage"), "output_tokens", -1);
    assert_int_equal(rp.chunks[0].tokens, (uint32_t)out);

    emulate("POST", "/v1/messages", NULL, streamed, &rs);
    struct events e;
    sse_events(&rs, &e);
    assert_string_equal(e.names[0], "message_start");
    assert_string_equal(e.names[1], "content_block_start");
    struct json_object *cb = rd_json_get(e.data[1], "content_block");
    assert_string_equal(rd_json_get_str(cb, "type"), "thinking");
    assert_string_equal(rd_json_get_str(cb, "thinking"), "");
    assert_string_equal(e.names[2], "ping");
    struct rd_buf t;
    rd_buf_init(&t, 0);
    size_t i = 3, think_tokens = 0;
    for (; strcmp(rd_json_get_str(rd_json_get(e.data[i], "delta"), "type"), "thinking_delta") == 0; i++) {
        assert_int_equal(rd_json_get_int(e.data[i], "index", -1), 0);
        assert_int_equal(rd_buf_appends(&t, rd_json_get_str(rd_json_get(e.data[i], "delta"), "thinking")), 0);
        think_tokens++;
    }
    assert_true(think_tokens > 0);
    assert_int_equal(t.len, strlen(thought));
    assert_memory_equal(t.data, thought, t.len);
    struct json_object *sd = rd_json_get(e.data[i], "delta");
    assert_string_equal(rd_json_get_str(sd, "type"), "signature_delta");
    assert_string_equal(rd_json_get_str(sd, "signature"), sig);
    assert_string_equal(e.names[i + 1], "content_block_stop");
    assert_int_equal(rd_json_get_int(e.data[i + 1], "index", -1), 0);
    assert_string_equal(e.names[i + 2], "content_block_start");
    assert_int_equal(rd_json_get_int(e.data[i + 2], "index", -1), 1);
    assert_string_equal(rd_json_get_str(rd_json_get(e.data[i + 2], "content_block"), "type"), "text");
    size_t pings = 0;
    for (size_t k = 0; k < e.n; k++)
        pings += strcmp(e.names[k], "ping") == 0;
    assert_int_equal(pings, 1);
    assert_int_equal(rd_json_get_int(rd_json_get(e.data[e.n - 2], "usage"), "output_tokens", -1), out);
    assert_int_equal(e.tokens, (uint32_t)out);
    rd_buf_free(&t);
    events_free(&e);
    json_object_put(m);
    rd_emu_reply_free(&rp);
    rd_emu_reply_free(&rs);

    /* disabled: no block */
    struct rd_emu_reply r;
    emulate("POST", "/v1/messages", NULL,
            "{\"model\":\"m\",\"max_tokens\":50,\"thinking\":{\"type\":\"disabled\"},"
            "\"messages\":[{\"role\":\"user\",\"content\":\"hi\"}]}",
            &r);
    m = plain_json(&r, 200);
    assert_string_equal(rd_json_get_str(json_object_array_get_idx(rd_json_get(m, "content"), 0), "type"), "text");
    json_object_put(m);
    rd_emu_reply_free(&r);

    static const struct {
        const char *thinking;
        int max_tokens;
        const char *msg;
    } bad[] = {
        {"{\"type\":\"enabled\"}", 2048, "thinking.enabled.budget_tokens: Field required"},
        {"{\"type\":\"enabled\",\"budget_tokens\":\"x\"}", 2048,
         "thinking.enabled.budget_tokens: Input should be a valid integer"},
        {"{\"type\":\"enabled\",\"budget_tokens\":1023}", 2048,
         "thinking.enabled.budget_tokens: Input should be greater"},
        {"{\"type\":\"enabled\",\"budget_tokens\":2048}", 2048, "`max_tokens` must be greater"},
        {"{\"type\":\"sometimes\"}", 2048, "thinking: Input tag 'sometimes'"},
        {"true", 2048, "thinking: Input should be a valid dictionary"},
    };
    for (size_t k = 0; k < sizeof bad / sizeof bad[0]; k++) {
        char body[512];
        snprintf(body, sizeof body,
                 "{\"model\":\"m\",\"max_tokens\":%d,\"thinking\":%s,"
                 "\"messages\":[{\"role\":\"user\",\"content\":\"hi\"}]}",
                 bad[k].max_tokens, bad[k].thinking);
        emulate("POST", "/v1/messages", NULL, body, &r);
        assert_error(&r, 400, "invalid_request_error", bad[k].msg);
        rd_emu_reply_free(&r);
    }
}

static const char TOOLS[] =
    "\"tools\":[{\"name\":\"get_weather\",\"description\":\"Weather\",\"input_schema\":{\"type\":\"object\","
    "\"properties\":{\"location\":{\"type\":\"string\"},\"unit\":{\"type\":\"string\",\"enum\":[\"celsius\","
    "\"fahrenheit\"]},\"days\":{\"type\":\"integer\",\"minimum\":1,\"maximum\":7},\"detail\":{\"type\":\"object\","
    "\"properties\":{\"hourly\":{\"type\":\"boolean\"}},\"required\":[\"hourly\"]},\"tags\":{\"type\":\"array\","
    "\"items\":{\"type\":\"string\",\"format\":\"date\"}},\"optional\":{\"type\":\"number\"}},\"required\":["
    "\"location\",\"unit\",\"days\",\"detail\",\"tags\"]}}]";

static void check_tool_input(struct json_object *in)
{
    assert_true(json_object_is_type(in, json_type_object));
    assert_string_equal(rd_json_get_str(in, "location"), "What is the weather in Paris?");
    assert_string_equal(rd_json_get_str(in, "unit"), "celsius");
    int64_t days = rd_json_get_int(in, "days", -1);
    assert_true(days >= 1 && days <= 7);
    assert_true(rd_json_get_bool(rd_json_get(in, "detail"), "hourly", false));
    struct json_object *tags = rd_json_get(in, "tags");
    assert_int_equal(json_object_array_length(tags), 1);
    assert_string_equal(json_object_get_string(json_object_array_get_idx(tags, 0)), "2025-01-01");
    assert_null(rd_json_get(in, "optional")); /* not required: left out */
}

static void test_emu_tool_use(void **state)
{
    (void)state;
    char plain[2048], streamed[2048];
    snprintf(plain, sizeof plain,
             "{\"model\":\"claude-sonnet-4-5\",\"max_tokens\":500,%s,\"messages\":[{\"role\":\"user\","
             "\"content\":\"What is the weather in Paris?\"}]}",
             TOOLS);
    snprintf(streamed, sizeof streamed, "%.*s,\"stream\":true}", (int)strlen(plain) - 1, plain);
    struct rd_emu_reply rp, rs;
    emulate("POST", "/v1/messages", NULL, plain, &rp);
    struct json_object *m = plain_json(&rp, 200);
    assert_string_equal(rd_json_get_str(m, "stop_reason"), "tool_use");
    struct json_object *content = rd_json_get(m, "content");
    assert_int_equal(json_object_array_length(content), 2);
    assert_string_equal(rd_json_get_str(json_object_array_get_idx(content, 0), "type"), "text");
    struct json_object *tu = json_object_array_get_idx(content, 1);
    assert_string_equal(rd_json_get_str(tu, "type"), "tool_use");
    assert_string_equal(rd_json_get_str(tu, "name"), "get_weather");
    assert_memory_equal(rd_json_get_str(tu, "id"), "toolu_01", 8);
    check_tool_input(rd_json_get(tu, "input"));
    /* tools count toward the input: the tool system prompt and the schema */
    assert_true(rd_json_get_int(rd_json_get(m, "usage"), "input_tokens", 0) > 346);

    /* streamed: the partial_json pieces reassemble into the same input */
    emulate("POST", "/v1/messages", NULL, streamed, &rs);
    struct events e;
    sse_events(&rs, &e);
    struct rd_buf js;
    rd_buf_init(&js, 0);
    size_t starts = 0, pieces = 0;
    for (size_t i = 0; i < e.n; i++) {
        if (strcmp(e.names[i], "content_block_start") == 0) {
            struct json_object *cb = rd_json_get(e.data[i], "content_block");
            if (strcmp(rd_json_get_str(cb, "type"), "tool_use") == 0) {
                assert_int_equal(rd_json_get_int(e.data[i], "index", -1), 1);
                assert_string_equal(rd_json_get_str(cb, "id"), rd_json_get_str(tu, "id"));
                assert_int_equal(json_object_object_length(rd_json_get(cb, "input")), 0);
            }
            starts++;
        }
        struct json_object *d = rd_json_get(e.data[i], "delta");
        const char *dt = rd_json_get_str(d, "type");
        if (dt && strcmp(dt, "input_json_delta") == 0) {
            assert_int_equal(rd_buf_appends(&js, rd_json_get_str(d, "partial_json")), 0);
            pieces++;
        }
    }
    assert_int_equal(starts, 2);
    assert_true(pieces >= 3);
    struct json_object *in = parse(js.data, js.len);
    check_tool_input(in);
    assert_true(json_object_equal(in, rd_json_get(tu, "input")));
    assert_string_equal(rd_json_get_str(rd_json_get(e.data[e.n - 2], "delta"), "stop_reason"), "tool_use");
    assert_int_equal(e.tokens, (uint32_t)rd_json_get_int(rd_json_get(m, "usage"), "output_tokens", -1));
    json_object_put(in);
    rd_buf_free(&js);
    events_free(&e);
    rd_emu_reply_free(&rs);

    /* tool_choice any: no preamble; a tool result turn with auto: text */
    snprintf(plain, sizeof plain,
             "{\"model\":\"m\",\"max_tokens\":500,%s,\"tool_choice\":{\"type\":\"any\"},\"messages\":[{\"role\":"
             "\"user\",\"content\":\"What is the weather in Paris?\"}]}",
             TOOLS);
    emulate("POST", "/v1/messages", NULL, plain, &rs);
    struct json_object *m2 = plain_json(&rs, 200);
    assert_int_equal(json_object_array_length(rd_json_get(m2, "content")), 1);
    assert_string_equal(rd_json_get_str(json_object_array_get_idx(rd_json_get(m2, "content"), 0), "type"), "tool_use");
    json_object_put(m2);
    rd_emu_reply_free(&rs);
    snprintf(plain, sizeof plain,
             "{\"model\":\"m\",\"max_tokens\":500,%s,\"messages\":[{\"role\":\"user\",\"content\":\"Weather?\"},"
             "{\"role\":\"assistant\",\"content\":[{\"type\":\"tool_use\",\"id\":\"toolu_1\",\"name\":\"get_weather\","
             "\"input\":{}}]},{\"role\":\"user\",\"content\":[{\"type\":\"tool_result\",\"tool_use_id\":\"toolu_1\","
             "\"content\":\"Sunny, 21C\"}]}]}",
             TOOLS);
    emulate("POST", "/v1/messages", NULL, plain, &rs);
    m2 = plain_json(&rs, 200);
    assert_string_equal(rd_json_get_str(m2, "stop_reason"), "end_turn");
    assert_non_null(
        strstr(rd_json_get_str(json_object_array_get_idx(rd_json_get(m2, "content"), 0), "text"), "Sunny, 21C"));
    json_object_put(m2);
    rd_emu_reply_free(&rs);

    /* too few tokens for the call: max_tokens, no tool_use block */
    snprintf(plain, sizeof plain,
             "{\"model\":\"m\",\"max_tokens\":8,%s,\"messages\":[{\"role\":\"user\",\"content\":\"Weather?\"}]}",
             TOOLS);
    emulate("POST", "/v1/messages", NULL, plain, &rs);
    m2 = plain_json(&rs, 200);
    assert_string_equal(rd_json_get_str(m2, "stop_reason"), "max_tokens");
    struct json_object *c2 = rd_json_get(m2, "content");
    for (size_t i = 0; i < json_object_array_length(c2); i++)
        assert_string_equal(rd_json_get_str(json_object_array_get_idx(c2, i), "type"), "text");
    json_object_put(m2);
    rd_emu_reply_free(&rs);
    json_object_put(m);
    rd_emu_reply_free(&rp);
}

static void test_emu_limits_and_stops(void **state)
{
    (void)state;
    struct rd_emu_reply r;
    emulate("POST", "/v1/messages", NULL,
            "{\"model\":\"m\",\"max_tokens\":3,\"messages\":[{\"role\":\"user\",\"content\":\"hi\"}]}", &r);
    struct json_object *m = plain_json(&r, 200);
    assert_string_equal(rd_json_get_str(m, "stop_reason"), "max_tokens");
    assert_int_equal(rd_json_get_int(rd_json_get(m, "usage"), "output_tokens", -1), 3);
    json_object_put(m);
    rd_emu_reply_free(&r);

    /* the echo holds "said": a stop sequence cuts before it */
    emulate("POST", "/v1/messages", NULL,
            "{\"model\":\"m\",\"max_tokens\":100,\"stop_sequences\":[\"zzz\",\"said\"],\"messages\":[{\"role\":"
            "\"user\",\"content\":\"hi\"}]}",
            &r);
    m = plain_json(&r, 200);
    assert_string_equal(rd_json_get_str(m, "stop_reason"), "stop_sequence");
    assert_string_equal(rd_json_get_str(m, "stop_sequence"), "said");
    assert_string_equal(rd_json_get_str(json_object_array_get_idx(rd_json_get(m, "content"), 0), "text"), "You ");
    json_object_put(m);
    rd_emu_reply_free(&r);

    /* a system prompt as blocks counts; an assistant turn is allowed */
    emulate("POST", "/v1/messages/count_tokens", NULL,
            "{\"model\":\"m\",\"system\":[{\"type\":\"text\",\"text\":\"0123456789012345678901234567890123456789\"}],"
            "\"messages\":[{\"role\":\"user\",\"content\":\"hi\"},{\"role\":\"assistant\",\"content\":\"ok\"}]}",
            &r);
    m = plain_json(&r, 200);
    assert_int_equal(rd_json_get_int(m, "input_tokens", -1), (3 + 10) + (3 + 1) + (3 + 1));
    json_object_put(m);
    rd_emu_reply_free(&r);
}

static void test_emu_errors(void **state)
{
    (void)state;
    static const struct {
        const char *method, *path, *body;
        int status;
        const char *type, *msg;
    } cases[] = {
        {"POST", "/v1/messages", "{\"model\":\"m\",\"messages\":[{\"role\":\"user\",\"content\":\"x\"}]}", 400,
         "invalid_request_error", "max_tokens: Field required"},
        {"POST", "/v1/messages", "{\"model\":\"m\",\"max_tokens\":5}", 400, "invalid_request_error",
         "messages: Field required"},
        {"POST", "/v1/messages", "{\"max_tokens\":5,\"messages\":[]}", 400, "invalid_request_error",
         "model: Field required"},
        {"POST", "/v1/messages", "{\"model\":\"m\",\"max_tokens\":0,\"messages\":[]}", 400, "invalid_request_error",
         "max_tokens: Input should be greater than or equal to 1"},
        {"POST", "/v1/messages", "{\"model\":\"m\",\"max_tokens\":5,\"messages\":[]}", 400, "invalid_request_error",
         "messages: at least one message is required"},
        {"POST", "/v1/messages",
         "{\"model\":\"m\",\"max_tokens\":5,\"messages\":[{\"role\":\"system\",\"content\":\"x\"}]}", 400,
         "invalid_request_error", "messages: Unexpected role \"system\""},
        {"POST", "/v1/messages", "{\"model\":\"m\",\"max_tokens\":5,\"messages\":[{\"role\":\"user\"}]}", 400,
         "invalid_request_error", "messages.0.content: Field required"},
        {"POST", "/v1/messages", "{\"model\":\"m\",\"max_tokens\":5,\"stream\":\"yes\",\"messages\":[]}", 400,
         "invalid_request_error", "stream: Input should be a valid boolean"},
        {"POST", "/v1/messages", "{\"model\":", 400, "invalid_request_error", "The request body is not valid JSON: "},
        {"POST", "/v1/messages", "", 400, "invalid_request_error", "The request body is not valid JSON: "},
        {"POST", "/v1/messages", "[1]", 400, "invalid_request_error", "Input should be a valid dictionary"},
        {"POST", "/v1/messages",
         "{\"model\":\"m\",\"max_tokens\":5,\"tool_choice\":{\"type\":\"any\"},\"messages\":[{\"role\":\"user\","
         "\"content\":\"x\"}]}",
         400, "invalid_request_error", "tool_choice may only be specified while providing tools."},
        {"POST", "/v1/messages",
         "{\"model\":\"m\",\"max_tokens\":5,\"tools\":[{\"name\":\"t\"}],\"messages\":[{\"role\":\"user\","
         "\"content\":\"x\"}]}",
         400, "invalid_request_error", "tools.0.custom.input_schema: Field required"},
        {"POST", "/v1/messages/count_tokens", "{\"messages\":[]}", 400, "invalid_request_error",
         "model: Field required"},
        {"POST", "/v1/complete", "{\"model\":\"claude-2.1\",\"prompt\":\"hi\",\"max_tokens_to_sample\":5}", 400,
         "invalid_request_error", "prompt must start with"},
        {"POST", "/v1/complete", "{\"model\":\"claude-2.1\",\"prompt\":\"\\n\\nHuman: hi\"}", 400,
         "invalid_request_error", "max_tokens_to_sample: Field required"},
        {"GET", "/v1/models/claude-nope", NULL, 404, "not_found_error", "model: claude-nope"},
        {"POST", "/v1/nope", "{}", 404, "not_found_error", "Not Found"},
        {"GET", "/v1/messages", NULL, 404, "not_found_error", "Not Found"},
        {"GET", "/v1/models", NULL, 200, NULL, NULL},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        struct rd_emu_reply r;
        emulate(cases[i].method, cases[i].path, NULL, cases[i].body, &r);
        if (cases[i].type)
            assert_error(&r, cases[i].status, cases[i].type, cases[i].msg);
        else
            assert_int_equal(r.status, cases[i].status);
        rd_emu_reply_free(&r);
    }
}

static void test_emu_models(void **state)
{
    (void)state;
    struct rd_emu_reply r;
    emulate("GET", "/v1/models", NULL, NULL, &r);
    struct json_object *l = plain_json(&r, 200);
    struct json_object *data = rd_json_get(l, "data");
    size_t n = json_object_array_length(data);
    assert_true(n >= 5);
    assert_false(rd_json_get_bool(l, "has_more", true));
    assert_string_equal(rd_json_get_str(l, "first_id"), rd_json_get_str(json_object_array_get_idx(data, 0), "id"));
    assert_string_equal(rd_json_get_str(l, "last_id"), rd_json_get_str(json_object_array_get_idx(data, n - 1), "id"));
    bool found = false;
    for (size_t i = 0; i < n; i++) {
        struct json_object *m = json_object_array_get_idx(data, i);
        assert_string_equal(rd_json_get_str(m, "type"), "model");
        if (strcmp(rd_json_get_str(m, "id"), "claude-3-5-haiku-20241022") == 0) {
            assert_string_equal(rd_json_get_str(m, "display_name"), "Claude Haiku 3.5");
            assert_string_equal(rd_json_get_str(m, "created_at"), "2024-10-22T00:00:00Z");
            found = true;
        }
    }
    assert_true(found);
    rd_emu_reply_free(&r);

    /* pages of 2 following after_id cover the list once */
    char after[64] = "";
    size_t seen = 0;
    for (int page = 0; page < 20; page++) {
        char q[96];
        snprintf(q, sizeof q, after[0] ? "limit=2&after_id=%s" : "limit=2", after);
        emulate("GET", "/v1/models", q, NULL, &r);
        struct json_object *pg = plain_json(&r, 200);
        struct json_object *d = rd_json_get(pg, "data");
        for (size_t i = 0; i < json_object_array_length(d); i++, seen++)
            assert_string_equal(rd_json_get_str(json_object_array_get_idx(d, i), "id"),
                                rd_json_get_str(json_object_array_get_idx(data, seen), "id"));
        bool more = rd_json_get_bool(pg, "has_more", false);
        if (more)
            snprintf(after, sizeof after, "%s", rd_json_get_str(pg, "last_id"));
        json_object_put(pg);
        rd_emu_reply_free(&r);
        if (!more)
            break;
    }
    assert_int_equal(seen, n);
    emulate("GET", "/v1/models", "limit=0", NULL, &r);
    assert_error(&r, 400, "invalid_request_error", "limit:");
    rd_emu_reply_free(&r);

    /* retrieve by id and by alias */
    emulate("GET", "/v1/models/claude-sonnet-4-5", NULL, NULL, &r);
    struct json_object *m = plain_json(&r, 200);
    assert_string_equal(rd_json_get_str(m, "id"), "claude-sonnet-4-5-20250929");
    assert_string_equal(rd_json_get_str(m, "display_name"), "Claude Sonnet 4.5");
    json_object_put(m);
    rd_emu_reply_free(&r);
    json_object_put(l);
}

static void test_emu_complete(void **state)
{
    (void)state;
    struct rd_emu_reply r, rs;
    emulate("POST", "/v1/complete", NULL,
            "{\"model\":\"claude-2.1\",\"max_tokens_to_sample\":300,\"prompt\":\"\\n\\nHuman: Hello there\\n\\n"
            "Assistant:\"}",
            &r);
    struct json_object *c = plain_json(&r, 200);
    assert_string_equal(rd_json_get_str(c, "type"), "completion");
    assert_memory_equal(rd_json_get_str(c, "id"), "compl_01", 8);
    assert_string_equal(rd_json_get_str(c, "stop_reason"), "stop_sequence");
    assert_string_equal(rd_json_get_str(c, "stop"), "\n\nHuman:");
    assert_non_null(strstr(rd_json_get_str(c, "completion"), "\"Hello there\""));
    emulate("POST", "/v1/complete", NULL,
            "{\"model\":\"claude-2.1\",\"max_tokens_to_sample\":300,\"stream\":true,\"prompt\":\"\\n\\nHuman: Hello "
            "there\\n\\nAssistant:\"}",
            &rs);
    struct events e;
    sse_events(&rs, &e);
    assert_string_equal(e.names[0], "ping");
    struct rd_buf text;
    rd_buf_init(&text, 0);
    for (size_t i = 1; i < e.n; i++) {
        assert_string_equal(e.names[i], "completion");
        assert_int_equal(rd_buf_appends(&text, rd_json_get_str(e.data[i], "completion")), 0);
        if (i + 1 < e.n)
            assert_null(rd_json_get(e.data[i], "stop_reason"));
    }
    assert_string_equal(rd_json_get_str(e.data[e.n - 1], "stop_reason"), "stop_sequence");
    assert_int_equal(text.len, strlen(rd_json_get_str(c, "completion")));
    assert_memory_equal(text.data, rd_json_get_str(c, "completion"), text.len);
    rd_buf_free(&text);
    events_free(&e);
    json_object_put(c);
    rd_emu_reply_free(&r);
    rd_emu_reply_free(&rs);
}

/* The builder as Vertex and Bedrock use it: no model in the body, a model
 * from the path, their own framing. */
struct framed {
    char names[256][32];
    size_t n;
    uint32_t tokens;
};

static void count_frame(struct rd_emu_reply *out, const char *event, const char *json, size_t len, uint32_t tokens,
                        void *ud)
{
    struct framed *f = ud;
    struct json_object *o = parse(json, len);
    assert_string_equal(rd_json_get_str(o, "type"), event);
    json_object_put(o);
    if (f->n < 256)
        snprintf(f->names[f->n++], sizeof f->names[0], "%s", event);
    f->tokens += tokens;
    rd_emu_reply_add(out, "x", 1, tokens);
}

static void test_emu_builder_framing(void **state)
{
    (void)state;
    const char body[] = "{\"anthropic_version\":\"bedrock-2023-05-31\",\"max_tokens\":50,\"messages\":[{\"role\":"
                        "\"user\",\"content\":\"hi\"}]}";
    struct rd_emu_request req = {.method = "POST",
                                 .path = "/model/anthropic.claude/invoke-with-response-stream",
                                 .query = "",
                                 .body = body,
                                 .body_len = sizeof body - 1};
    struct framed f = {0};
    struct rd_emu_reply r, rp;
    assert_int_equal(rd_emu_anthropic_messages(&req, "anthropic.claude-sonnet-4-5", true, count_frame, &f, &r), 0);
    assert_true(r.stream);
    assert_int_equal(r.n, f.n);
    assert_string_equal(f.names[0], "message_start");
    assert_string_equal(f.names[f.n - 1], "message_stop");
    /* the same body on another path and version gets the same answer */
    const char body2[] = "{\"anthropic_version\":\"vertex-2023-10-16\",\"max_tokens\":50,\"messages\":[{\"role\":"
                         "\"user\",\"content\":\"hi\"}]}";
    req.path = "/v1/projects/p/locations/l/publishers/anthropic/models/m:rawPredict";
    req.body = body2;
    req.body_len = sizeof body2 - 1;
    assert_int_equal(rd_emu_anthropic_messages(&req, "anthropic.claude-sonnet-4-5", false, NULL, NULL, &rp), 0);
    struct json_object *m = plain_json(&rp, 200);
    assert_string_equal(rd_json_get_str(m, "model"), "anthropic.claude-sonnet-4-5");
    assert_int_equal(rd_json_get_int(rd_json_get(m, "usage"), "output_tokens", -1), f.tokens);
    json_object_put(m);
    rd_emu_reply_free(&rp);
    rd_emu_reply_free(&r);
    /* a body error is never streamed */
    req.body = "{";
    req.body_len = 1;
    assert_int_equal(rd_emu_anthropic_messages(&req, "m", true, count_frame, &f, &r), 0);
    assert_error(&r, 400, "invalid_request_error", "The request body is not valid JSON");
    rd_emu_reply_free(&r);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_provider_data),      cmocka_unit_test(test_error_builder),
        cmocka_unit_test(test_body_usage),         cmocka_unit_test(test_stream_usage_split_everywhere),
        cmocka_unit_test(test_stream_usage_cases), cmocka_unit_test(test_emu_message_plain),
        cmocka_unit_test(test_emu_message_stream), cmocka_unit_test(test_emu_thinking),
        cmocka_unit_test(test_emu_tool_use),       cmocka_unit_test(test_emu_limits_and_stops),
        cmocka_unit_test(test_emu_errors),         cmocka_unit_test(test_emu_models),
        cmocka_unit_test(test_emu_complete),       cmocka_unit_test(test_emu_builder_framing),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
