/* Cassette lines: write -> read gives the same entry byte for byte (JSON,
 * SSE and event-stream bodies, marks and times included), the file shows
 * bodies the way the format promises, and malformed lines are refused with
 * the field named. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cache/cassette.h"
#include "cache/image.h"
#include "util/err.h"
#include "util/json.h"

#define T0 1796205600000LL /* 2026-12-02T10:00:00.000Z */

struct spec {
    const char *model, *ctype;
    bool stream;
    const char *body;
    size_t body_len;
    const uint64_t *ends; /* marks */
    const uint32_t *times;
    size_t nmarks;
};

/* A complete entry built through the cache's own fill calls, as a cache
 * entry that came from a response would be. */
static struct rd_cache_entry *mk(const struct spec *s, uint8_t keybyte)
{
    uint8_t key[RD_CACHE_KEY_LEN];
    memset(key, keybyte, sizeof key);
    struct rd_cache_entry *e = rd_cache_entry_new(key, s->model, RD_REQ_CHAT, "POST", "/v1/chat/completions");
    const struct rd_cache_hdr h[2] = {
        {.name = "content-type", .name_len = 12, .value = s->ctype, .value_len = (uint32_t)strlen(s->ctype)},
        {.name = "x-request-id", .name_len = 12, .value = "req_123", .value_len = 7},
    };
    assert_int_equal(rd_cache_fill_head(e, 200, h, 2, s->stream), 0);
    uint64_t at = 0;
    for (size_t i = 0; i < s->nmarks; i++) {
        assert_int_equal(rd_cache_fill_data(e, s->body + at, (size_t)(s->ends[i] - at)), 0);
        assert_int_equal(rd_cache_fill_mark(e, s->ends[i], s->times[i]), 0);
        at = s->ends[i];
    }
    if (at < s->body_len)
        assert_int_equal(rd_cache_fill_data(e, s->body + at, (size_t)(s->body_len - at)), 0);
    e->usage = (struct rd_usage){.input = 12, .output = 40, .cached = 3, .cache_write = 2, .reasoning = 7};
    snprintf(e->upstream_model, sizeof e->upstream_model, "%s-2024", s->model);
    e->created_ms = T0 + 123;
    e->expires_ms = T0 + 3600123;
    e->ttl_s = 3600;
    atomic_store(&e->hits, 3);
    e->state = RD_CACHE_COMPLETE;
    return e;
}

/* Everything a replay or an export shows must be the same. */
static void assert_same(const struct rd_cache_entry *a, const struct rd_cache_entry *b)
{
    struct rd_cache_image x, y;
    rd_cache_image_of(a, &x);
    rd_cache_image_of(b, &y);
    assert_memory_equal(x.key, y.key, RD_CACHE_KEY_LEN);
    assert_string_equal(x.model, y.model);
    assert_int_equal(x.kind, y.kind);
    assert_string_equal(x.method, y.method);
    assert_string_equal(x.path, y.path);
    assert_int_equal(x.status, y.status);
    assert_int_equal(x.stream, y.stream);
    assert_int_equal(x.nhdrs, y.nhdrs);
    for (size_t i = 0; i < x.nhdrs; i++) {
        assert_int_equal(x.hdrs[i].name_len, y.hdrs[i].name_len);
        assert_int_equal(x.hdrs[i].value_len, y.hdrs[i].value_len);
        assert_memory_equal(x.hdrs[i].name, y.hdrs[i].name, x.hdrs[i].name_len);
        assert_memory_equal(x.hdrs[i].value, y.hdrs[i].value, x.hdrs[i].value_len);
    }
    assert_int_equal(x.body_len, y.body_len);
    if (x.body_len)
        assert_memory_equal(x.body, y.body, x.body_len);
    assert_int_equal(x.nmarks, y.nmarks);
    for (size_t i = 0; i < x.nmarks; i++) {
        assert_int_equal(x.marks[i].end, y.marks[i].end);
        assert_int_equal(x.marks[i].t_ms, y.marks[i].t_ms);
    }
    assert_memory_equal(&x.usage, &y.usage, sizeof x.usage);
    assert_string_equal(x.upstream_model, y.upstream_model);
    assert_string_equal(x.finish, y.finish);
    assert_int_equal(x.created_ms, y.created_ms);
    assert_int_equal(x.expires_ms, y.expires_ms);
    assert_int_equal(x.ttl_s, y.ttl_s);
    assert_int_equal(x.hits, y.hits);
    free((char *)x.body);
    free((char *)y.body);
}

/* Writes e, checks the line is one line, reads it back and compares. The
 * line is left in out for the caller to look at. */
static void round_trip(struct rd_cache_entry *e, struct rd_buf *out)
{
    rd_buf_init(out, 0);
    assert_int_equal(rd_cassette_write(e, out), 0);
    assert_true(out->len > 0);
    assert_int_equal(out->data[out->len - 1], '\n');
    assert_null(memchr(out->data, '\n', out->len - 1));
    char err[200] = "";
    struct rd_cache_entry *back = rd_cassette_read(out->data, out->len, err, sizeof err);
    if (back == NULL)
        fail_msg("read back: %s\nline: %s", err, out->data);
    assert_int_equal(back->state, RD_CACHE_COMPLETE);
    assert_same(e, back);
    rd_cache_entry_unref(back);
}

static struct json_object *parse_line(const struct rd_buf *b)
{
    struct json_object *o = NULL;
    assert_int_equal(rd_json_parse(b->data, b->len, SIZE_MAX, &o, NULL), 0);
    return o;
}

static void test_json_body_pretty(void **state)
{
    (void)state;
    /* OpenAI's bodies are indented: parsed in the file, exact bytes in body_raw. */
    static const char body[] = "{\n  \"id\": \"chatcmpl-1\",\n  \"n\": 12345678901234567890,\n  \"x\": 1.50,\n"
                               "  \"url\": \"a/b\", \"u\": \"\\u00e9\"\n}\n";
    struct spec s = {.model = "gpt-4o", .ctype = "application/json", .body = body, .body_len = sizeof body - 1};
    struct rd_cache_entry *e = mk(&s, 0x11);
    struct rd_buf out;
    round_trip(e, &out);
    struct json_object *o = parse_line(&out);
    assert_string_equal(rd_json_get_str(o, "key"),
                        "gpt-4o:1111111111111111111111111111111111111111111111111111111111111111");
    assert_string_equal(rd_json_get_str(rd_json_get(o, "body"), "id"), "chatcmpl-1");
    assert_non_null(rd_json_get_str(o, "body_raw"));
    assert_string_equal(rd_json_get_str(o, "created"), "2026-12-02T10:00:00.123Z");
    assert_int_equal(rd_json_get_int(rd_json_get(o, "usage"), "cache_write", -1), 2);
    json_object_put(o);
    rd_buf_free(&out);
    rd_cache_entry_unref(e);
}

static void test_json_body_compact_has_no_raw(void **state)
{
    (void)state;
    static const char body[] = "{\"id\":\"msg_1\",\"content\":[{\"type\":\"text\",\"text\":\"hi/there\"}]}";
    struct spec s = {
        .model = "claude-3", .ctype = "application/json; charset=utf-8", .body = body, .body_len = sizeof body - 1};
    struct rd_cache_entry *e = mk(&s, 0x22);
    struct rd_buf out;
    round_trip(e, &out);
    struct json_object *o = parse_line(&out);
    assert_null(rd_json_get(o, "body_raw"));
    assert_non_null(rd_json_get(o, "body"));
    json_object_put(o);

    /* Someone edits "body" in a line that also carries body_raw: the edit wins. */
    static const char pretty[] = "{ \"a\": 1 }";
    struct spec p = {.model = "m", .ctype = "application/json", .body = pretty, .body_len = sizeof pretty - 1};
    struct rd_cache_entry *pe = mk(&p, 0x23);
    rd_buf_reset(&out);
    assert_int_equal(rd_cassette_write(pe, &out), 0);
    char *edit = strstr(out.data, "\"body\":{\"a\":1}");
    assert_non_null(edit);
    edit[12] = '2';
    char err[200] = "";
    struct rd_cache_entry *back = rd_cassette_read(out.data, out.len, err, sizeof err);
    assert_non_null(back);
    assert_int_equal(back->len, 7);
    assert_memory_equal(back->first->data, "{\"a\":2}", 7);
    rd_cache_entry_unref(back);
    rd_cache_entry_unref(pe);
    rd_buf_free(&out);
    rd_cache_entry_unref(e);
}

static void test_sse_stream_marks(void **state)
{
    (void)state;
    static const char body[] = "data: {\"choices\":[{\"delta\":{\"content\":\"H\xc3\xa9\"}}]}\n\n"
                               "data: {\"choices\":[{\"delta\":{\"content\":\"\\n\"}}]}\r\n\r\n"
                               "data: [DONE]\n\n";
    uint64_t e1 = (uint64_t)(strstr(body, "data: {\"choices\":[{\"delta\":{\"content\":\"\\n") - body);
    uint64_t e2 = (uint64_t)(strstr(body, "data: [DONE]") - body);
    const uint64_t ends[] = {e1, e2, sizeof body - 1};
    const uint32_t times[] = {0, 40, 41};
    struct spec s = {.model = "gpt-4o",
                     .ctype = "text/event-stream",
                     .stream = true,
                     .body = body,
                     .body_len = sizeof body - 1,
                     .ends = ends,
                     .times = times,
                     .nmarks = 3};
    struct rd_cache_entry *e = mk(&s, 0x33);
    struct rd_buf out;
    round_trip(e, &out);
    struct json_object *o = parse_line(&out);
    struct json_object *ev = rd_json_get(o, "events");
    assert_int_equal(json_object_array_length(ev), 3);
    assert_string_equal(rd_json_get_str(json_object_array_get_idx(ev, 2), "text"), "data: [DONE]\n\n");
    assert_int_equal(rd_json_get_int(json_object_array_get_idx(ev, 1), "t_ms", -1), 40);
    assert_null(rd_json_get(o, "body"));
    json_object_put(o);
    rd_buf_free(&out);
    rd_cache_entry_unref(e);

    /* Bytes after the last mark survive too, and a non-UTF-8 event goes as base64. */
    static const char odd[] = "data: \xff\n\ndata: tail";
    const uint64_t oends[] = {9};
    const uint32_t otimes[] = {5};
    struct spec t = {.model = "gpt-4o",
                     .ctype = "text/event-stream",
                     .stream = true,
                     .body = odd,
                     .body_len = sizeof odd - 1,
                     .ends = oends,
                     .times = otimes,
                     .nmarks = 1};
    e = mk(&t, 0x34);
    round_trip(e, &out);
    o = parse_line(&out);
    ev = rd_json_get(o, "events");
    assert_int_equal(json_object_array_length(ev), 2);
    assert_non_null(rd_json_get(json_object_array_get_idx(ev, 0), "base64"));
    assert_true(rd_json_get_bool(json_object_array_get_idx(ev, 1), "unmarked", false));
    json_object_put(o);
    rd_buf_free(&out);
    rd_cache_entry_unref(e);
}

static void test_eventstream_frames(void **state)
{
    (void)state;
    /* Two binary frames (prelude with NULs and high bytes), as Bedrock sends. */
    static const char body[] = "\x00\x00\x00\x1f\x00\x00\x00\x05\xab\xcd\xef\x01payload\x00\xff\x80"
                               "\x00\x00\x00\x10\x00\x00\x00\x00\x12\x34\x56\x78\x9a\xbc";
    const uint64_t ends[] = {22, sizeof body - 1};
    const uint32_t times[] = {3, 250};
    struct spec s = {.model = "anthropic.claude-3",
                     .ctype = "application/vnd.amazon.eventstream",
                     .stream = true,
                     .body = body,
                     .body_len = sizeof body - 1,
                     .ends = ends,
                     .times = times,
                     .nmarks = 2};
    struct rd_cache_entry *e = mk(&s, 0x44);
    struct rd_buf out;
    round_trip(e, &out);
    struct json_object *o = parse_line(&out);
    struct json_object *fr = rd_json_get(o, "frames");
    assert_int_equal(json_object_array_length(fr), 2);
    assert_string_equal(rd_json_get_str(json_object_array_get_idx(fr, 1), "base64"), "AAAAEAAAAAASNFZ4mrw=");
    json_object_put(o);
    rd_buf_free(&out);
    rd_cache_entry_unref(e);
}

static void test_other_bodies(void **state)
{
    (void)state;
    static const char text[] = "plain text, not JSON {";
    struct spec s = {.model = "", .ctype = "application/json", .body = text, .body_len = sizeof text - 1};
    struct rd_cache_entry *e = mk(&s, 0x55);
    struct rd_buf out;
    round_trip(e, &out);
    struct json_object *o = parse_line(&out);
    assert_string_equal(rd_json_get_str(o, "body_text"), text);
    assert_string_equal(rd_json_get_str(o, "key"), ":5555555555555555555555555555555555555555555555555555555555555555");
    json_object_put(o);
    rd_buf_free(&out);
    rd_cache_entry_unref(e);

    static const char bin[] = "\x89PNG\r\n\x1a\n\x00\x00";
    struct spec b = {.model = "m", .ctype = "image/png", .body = bin, .body_len = sizeof bin - 1};
    e = mk(&b, 0x56);
    round_trip(e, &out);
    o = parse_line(&out);
    assert_string_equal(rd_json_get_str(o, "body_base64"), "iVBORw0KGgoAAA==");
    json_object_put(o);
    rd_buf_free(&out);
    rd_cache_entry_unref(e);

    /* Found by fuzz_cassette: empty events of an empty stream. */
    const uint64_t zero_ends[] = {0, 0};
    const uint32_t zero_times[] = {1, 2};
    struct spec none = {.model = "m",
                        .ctype = "text/event-stream",
                        .stream = true,
                        .body = "",
                        .body_len = 0,
                        .ends = zero_ends,
                        .times = zero_times,
                        .nmarks = 2};
    e = mk(&none, 0x59);
    round_trip(e, &out);
    rd_buf_free(&out);
    rd_cache_entry_unref(e);

    struct spec empty = {.model = "m", .ctype = "text/plain", .body = "", .body_len = 0};
    e = mk(&empty, 0x57);
    round_trip(e, &out);
    rd_buf_free(&out);
    rd_cache_entry_unref(e);
}

static void test_deep_json_body(void **state)
{
    (void)state;
    /* As deep as a body may be on its own: inside the line it would pass
     * the parser's depth cap, so it goes as text and still reads back. */
    for (int depth = 60; depth <= 70; depth++) {
        char body[160];
        memset(body, '[', (size_t)depth);
        memset(body + depth, ']', (size_t)depth);
        struct spec s = {.model = "m", .ctype = "application/json", .body = body, .body_len = 2 * (size_t)depth};
        struct rd_cache_entry *e = mk(&s, 0x58);
        struct rd_buf out;
        round_trip(e, &out);
        rd_buf_free(&out);
        rd_cache_entry_unref(e);
    }
}

static void test_write_cap(void **state)
{
    (void)state;
    struct spec s = {.model = "m", .ctype = "text/plain", .body = "hello", .body_len = 5};
    struct rd_cache_entry *e = mk(&s, 0x66);
    struct rd_buf out;
    rd_buf_init(&out, 64);
    assert_int_equal(rd_buf_appends(&out, "before\n"), 0);
    assert_int_equal(rd_cassette_write(e, &out), RD_ETOOBIG);
    assert_int_equal(out.len, 7); /* never half a line */
    rd_buf_free(&out);
    rd_cache_entry_unref(e);
}

#define GOOD_HEAD                                                                                                      \
    "\"key\":\"m:6666666666666666666666666666666666666666666666666666666666666666\",\"model\":\"m\","                  \
    "\"kind\":\"chat\",\"method\":\"POST\",\"path\":\"/v1/x\",\"status\":200,\"headers\":[],"
#define GOOD_META                                                                                                      \
    "\"created\":\"2026-12-02T10:00:00.000Z\",\"expires\":\"2026-12-02T11:00:00Z\",\"ttl_s\":3600,\"usage\":{},"

static void test_malformed_lines(void **state)
{
    (void)state;
    static const struct {
        const char *line, *err;
    } bad[] = {
        {"not json", "line:"},
        {"[1,2]", "line: not a JSON object"},
        {"{" GOOD_HEAD GOOD_META "\"stream\":false}", "body: a line needs exactly one"},
        {"{" GOOD_META "\"stream\":false,\"body_text\":\"x\"}", "key: missing"},
        {"{" GOOD_HEAD GOOD_META "\"stream\":false,\"body_text\":\"x\",\"body_base64\":\"eA==\"}", "exactly one"},
        {"{\"key\":\"m:66\",\"model\":\"m\"}", "key: not"},
        {"{\"key\":\"x:6666666666666666666666666666666666666666666666666666666666666666\",\"model\":\"m\"}",
         "key: not"},
        {"{\"key\":\"m:666666666666666666666666666666666666666666666666666666666666666g\",\"model\":\"m\"}",
         "key: not"},
        {"{" GOOD_HEAD "\"stream\":false,\"created\":\"2026-02-30T10:00:00.000Z\"}", "created: not a UTC time"},
        /* Found by fuzz_cassette: a time before 1970 read, but wrote back as another. */
        {"{" GOOD_HEAD "\"stream\":false,\"created\":\"0651-12-02T10:00:00.000Z\"}", "created: not a UTC time"},
        {"{" GOOD_HEAD GOOD_META "\"stream\":true,\"body_text\":\"x\"}", "body_text: events and frames go with"},
        {"{" GOOD_HEAD GOOD_META "\"stream\":false,\"body_base64\":\"eA=\"}", "body_base64: not base64"},
        {"{" GOOD_HEAD GOOD_META "\"stream\":false,\"body_base64\":\"e A=\"}", "body_base64: not base64"},
        {"{" GOOD_HEAD GOOD_META
         "\"stream\":true,\"events\":[{\"t_ms\":5,\"text\":\"a\"},{\"t_ms\":4,\"text\":\"b\"}]}",
         "marks: event times go backwards"},
        {"{" GOOD_HEAD GOOD_META
         "\"stream\":true,\"events\":[{\"unmarked\":true,\"text\":\"a\"},{\"t_ms\":4,\"text\":\"b\"}]}",
         "events: only the last element may be unmarked"},
        {"{" GOOD_HEAD GOOD_META "\"stream\":true,\"events\":[{\"t_ms\":5}]}", "events: an element needs one string"},
        {"{" GOOD_HEAD GOOD_META "\"stream\":true,\"events\":[{\"t_ms\":4294967296,\"text\":\"a\"}]}",
         "t_ms: out of range"},
        {"{" GOOD_HEAD GOOD_META "\"stream\":false,\"body\":{},\"body_raw\":\"{\"}", "body_raw: not JSON"},
        {"{" GOOD_HEAD GOOD_META "\"stream\":false,\"body_text\":\"x\",\"body_raw\":\"{}\"}", "body_raw: only goes"},
        {"{\"key\":\"m:6666666666666666666666666666666666666666666666666666666666666666\",\"model\":\"m\","
         "\"kind\":\"chat\",\"method\":\"POST\",\"path\":\"/v1/x\",\"status\":500}",
         "status: out of range"},
        {"{\"key\":\"m:6666666666666666666666666666666666666666666666666666666666666666\",\"model\":\"m\","
         "\"kind\":\"dance\",\"method\":\"POST\",\"path\":\"/v1/x\",\"status\":200}",
         "kind: not a request type"},
        {"{\"key\":\"m:6666666666666666666666666666666666666666666666666666666666666666\",\"model\":\"m\","
         "\"kind\":\"chat\",\"method\":\"POST\",\"path\":\"/v1/x\\u0000y\",\"status\":200}",
         "path: holds a NUL"},
        {"{\"key\":\"m:6666666666666666666666666666666666666666666666666666666666666666\",\"model\":\"m\","
         "\"kind\":\"chat\",\"method\":\"POST\",\"path\":\"/v1/x\",\"status\":200,\"stream\":false,"
         "\"headers\":[[\"a\",1]]}",
         "headers: entry 0"},
        {"{\"key\":\"m:6666666666666666666666666666666666666666666666666666666666666666\",\"model\":\"m\","
         "\"kind\":\"chat\",\"method\":\"POST\",\"path\":\"/v1/x\",\"status\":200,\"stream\":false,"
         "\"headers\":[[\"x-a\",\"v\\r\\nset-cookie: s\"]]," GOOD_META "\"body_text\":\"\"}",
         "headers: a value holds CR"},
        {"{\"key\":\"m:6666666666666666666666666666666666666666666666666666666666666666\",\"model\":\"m\","
         "\"kind\":\"chat\",\"method\":\"POST\",\"path\":\"v1\",\"status\":200,\"stream\":false,"
         "\"headers\":[]," GOOD_META "\"body_text\":\"\"}",
         "path: must start with '/'"},
        {"{" GOOD_HEAD "\"stream\":false,\"created\":\"2026-12-02T10:00:00.000Z\",\"expires\":\"2026-12-02T10:00:00Z\","
         "\"ttl_s\":3600,\"usage\":{},\"body_text\":\"\"}",
         "expires: not after created"},
        {"{" GOOD_HEAD GOOD_META "\"stream\":false,\"ttl_s\":0,\"body_text\":\"\"}",
         "ttl_s: out of range"}, /* repeated: the last counts */
        {"{" GOOD_HEAD "\"stream\":false,\"created\":\"2026-12-02T10:00:00.000Z\",\"expires\":\"2026-12-02T11:00:00Z\","
         "\"ttl_s\":3600,\"usage\":{\"input\":-2},\"body_text\":\"\"}",
         "input: out of range"},
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        char err[200] = "";
        struct rd_cache_entry *e = rd_cassette_read(bad[i].line, strlen(bad[i].line), err, sizeof err);
        if (e != NULL || strstr(err, bad[i].err) == NULL)
            fail_msg("line %zu: got %s '%s', want '%s'", i, e ? "an entry" : "NULL", err, bad[i].err);
    }
    /* The minimal good line reads (the bad ones differ from it in one thing each). */
    const char *good = "{" GOOD_HEAD GOOD_META "\"stream\":false,\"body_text\":\"ok\",\"extra\":1}\n";
    char err[200] = "";
    struct rd_cache_entry *e = rd_cassette_read(good, strlen(good), err, sizeof err);
    if (e == NULL)
        fail_msg("good line: %s", err);
    assert_int_equal(e->expires_ms - e->created_ms, 3600000);
    assert_int_equal(e->created_ms, T0);
    rd_cache_entry_unref(e);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_json_body_pretty), cmocka_unit_test(test_json_body_compact_has_no_raw),
        cmocka_unit_test(test_sse_stream_marks), cmocka_unit_test(test_eventstream_frames),
        cmocka_unit_test(test_other_bodies),     cmocka_unit_test(test_write_cap),
        cmocka_unit_test(test_malformed_lines),  cmocka_unit_test(test_deep_json_body),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
