/* The request-log record outside the store: its JSON (src/obs/record.c),
 * JSON string escaping (util/json.c rd_json_append_str), time parsing,
 * URL decoding, the API's filter parser and the in-memory filter match
 * (src/obs/filter.c). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>
#include <json-c/json.h>

#include "obs/filter.h"
#include "obs/record.h"
#include "util/buf.h"
#include "util/err.h"
#include "util/json.h"

static struct rd_log_rec sample(void)
{
    struct rd_log_rec r;
    memset(&r, 0, sizeof r);
    snprintf(r.id, sizeof r.id, "req_00000001deadbeef");
    r.ts_ms = INT64_C(1796279462123); /* 2026-12-03T06:31:02.123Z */
    r.proxy_id = 7;
    snprintf(r.node_id, sizeof r.node_id, "n1");
    snprintf(r.client_ip, sizeof r.client_ip, "127.0.0.1");
    snprintf(r.method, sizeof r.method, "POST");
    snprintf(r.path, sizeof r.path, "/v1/chat/completions");
    snprintf(r.provider, sizeof r.provider, "openai");
    snprintf(r.model, sizeof r.model, "gpt-4o \"quoted\"\n");
    r.status = 200;
    r.upstream_status = 200;
    r.latency_ms = 12.3456;
    r.upstream_latency_ms = -1;
    r.ttfb_ms = 3.5;
    r.request_bytes = 80;
    r.response_bytes = 300;
    r.cache = RD_LOG_CACHE_MISS;
    r.input_tokens = 10;
    r.output_tokens = -1;
    r.cached_tokens = 0;
    r.reasoning_tokens = -1;
    r.has_cost = true;
    r.cost_usd = 0.000125;
    snprintf(r.trace_id, sizeof r.trace_id, "0af7651916cd43dd8448eb211c80319c");
    return r;
}

static void test_json_record(void **state)
{
    (void)state;
    struct rd_log_rec r = sample();
    struct rd_buf b;
    rd_buf_init(&b, 0);
    assert_int_equal(rd_log_rec_json(&b, &r), 0);
    assert_int_equal(rd_buf_append(&b, "", 1), 0);
    struct json_object *o = json_tokener_parse(b.data);
    assert_non_null(o);
    assert_string_equal(rd_json_get_str(o, "id"), "req_00000001deadbeef");
    assert_string_equal(rd_json_get_str(o, "timestamp"), "2026-12-03T06:31:02.123Z");
    assert_int_equal(rd_json_get_int(o, "proxy_id", 0), 7);
    assert_string_equal(rd_json_get_str(o, "model"), "gpt-4o \"quoted\"\n");
    assert_string_equal(rd_json_get_str(o, "cache"), "miss");
    assert_true(json_object_is_type(rd_json_get(o, "failure_type"), json_type_null));
    assert_true(json_object_is_type(rd_json_get(o, "upstream_latency_ms"), json_type_null));
    assert_true(json_object_is_type(rd_json_get(o, "prompt_hash"), json_type_null));
    struct json_object *t = rd_json_get(o, "tokens");
    assert_int_equal(rd_json_get_int(t, "input", -5), 10);
    assert_true(json_object_is_type(rd_json_get(t, "output"), json_type_null));
    assert_int_equal(rd_json_get_int(t, "cached", -5), 0);
    assert_true(json_object_get_double(rd_json_get(o, "cost_usd")) > 0.000124);
    assert_false(json_object_get_boolean(rd_json_get(o, "stream")));
    /* Every field of the record is there, nothing else. */
    static const char *const keys[] = {"id", "timestamp", "proxy_id", "node_id", "client_ip", "method", "path",
                                       "provider", "model", "status", "upstream_status", "latency_ms",
                                       "upstream_latency_ms", "ttfb_ms", "request_bytes", "response_bytes", "cache",
                                       "failure_type", "response_delay_ms", "stream", "tokens", "cost_usd",
                                       "prompt_hash", "upstream_request_id", "trace_id"};
    assert_int_equal(json_object_object_length(o), sizeof keys / sizeof keys[0]);
    for (size_t i = 0; i < sizeof keys / sizeof keys[0]; i++)
        assert_true(json_object_object_get_ex(o, keys[i], NULL));
    r.has_cost = false;
    r.cache = RD_LOG_CACHE_NONE;
    rd_buf_reset(&b);
    assert_int_equal(rd_log_rec_json(&b, &r), 0);
    assert_int_equal(rd_buf_append(&b, "", 1), 0);
    json_object_put(o);
    o = json_tokener_parse(b.data);
    assert_true(json_object_is_type(rd_json_get(o, "cost_usd"), json_type_null));
    assert_true(json_object_is_type(rd_json_get(o, "cache"), json_type_null));
    json_object_put(o);
    rd_buf_free(&b);
}

static void test_json_escape(void **state)
{
    (void)state;
    struct rd_buf b;
    rd_buf_init(&b, 0);
    static const char in[] = "a\"b\\c\n\x01\xff\xc3\xa9\xe2\x82";
    assert_int_equal(rd_json_append_str(&b, in, sizeof in - 1), 0);
    assert_int_equal(rd_buf_append(&b, "", 1), 0);
    /* invalid bytes become U+FFFD, valid UTF-8 stays */
    assert_string_equal(b.data, "\"a\\\"b\\\\c\\n\\u0001\xEF\xBF\xBD\xc3\xa9\xEF\xBF\xBD\xEF\xBF\xBD\"");
    struct json_object *o = json_tokener_parse(b.data);
    assert_non_null(o);
    json_object_put(o);
    rd_buf_free(&b);
}

static void test_parse_time(void **state)
{
    (void)state;
    int64_t ms;
    assert_int_equal(rd_log_parse_time("2026-12-03T06:31:02.123Z", &ms), 0);
    assert_true(ms == INT64_C(1796279462123));
    assert_int_equal(rd_log_parse_time("2026-12-03T08:31:02.123+02:00", &ms), 0);
    assert_true(ms == INT64_C(1796279462123));
    assert_int_equal(rd_log_parse_time("2026-12-03", &ms), 0);
    assert_true(ms == INT64_C(1796256000000));
    assert_int_equal(rd_log_parse_time("1796279462123", &ms), 0);
    assert_true(ms == INT64_C(1796279462123));
    assert_int_equal(rd_log_parse_time("2026-02-29", &ms), -1);
    assert_int_equal(rd_log_parse_time("2024-02-29", &ms), 0);
    assert_int_equal(rd_log_parse_time("2026-13-01", &ms), -1);
    assert_int_equal(rd_log_parse_time("2026-12-03T25:00Z", &ms), -1);
    assert_int_equal(rd_log_parse_time("2026-12-03Tx", &ms), -1);
    assert_int_equal(rd_log_parse_time("", &ms), -1);
    assert_int_equal(rd_log_parse_time("-5", &ms), -1);
    assert_int_equal(rd_log_parse_time("9999999999999999", &ms), -1);
}

static void test_url_decode(void **state)
{
    (void)state;
    char out[16];
    assert_int_equal(rd_url_decode("a%20b+c", 7, out, sizeof out), 5);
    assert_string_equal(out, "a b c");
    assert_int_equal(rd_url_decode("%2", 2, out, sizeof out), -1);
    assert_int_equal(rd_url_decode("%zz", 3, out, sizeof out), -1);
    assert_int_equal(rd_url_decode("%00", 3, out, sizeof out), -1);
    assert_int_equal(rd_url_decode("0123456789abcdef", 16, out, sizeof out), -1);
}

static void test_query_parse(void **state)
{
    (void)state;
    struct rd_log_query q;
    const char *bad = NULL;
    char err[128];
    assert_int_equal(rd_log_query_parse("proxy_id=3&status_class=4xx&cache=hit&model=gpt-4o%2Bmini&q=a+b"
                                        "&since=2026-12-03&limit=50&cursor=1796279462123.42&count=true",
                                        NULL, &q, &bad, err, sizeof err),
                     0);
    assert_true(q.f.proxy_id == 3);
    assert_int_equal(q.f.status_class, 4);
    assert_int_equal(q.f.cache, RD_LOG_CACHE_HIT);
    assert_string_equal(q.f.model, "gpt-4o+mini");
    assert_string_equal(q.f.q, "a b");
    assert_true(q.f.since_ms == INT64_C(1796256000000));
    assert_int_equal(q.limit, 50);
    assert_true(q.f.before_ts == INT64_C(1796279462123) && q.f.before_seq == 42);
    assert_true(q.count);
    assert_int_equal(rd_log_query_parse(NULL, NULL, &q, &bad, err, sizeof err), 0);
    assert_int_equal(q.limit, 100);
    assert_int_equal(q.f.cache, -1);
    static const struct {
        const char *query, *field;
    } bads[] = {
        {"proxy_id=x", "proxy_id"},   {"status=99", "status"},      {"status_class=6xx", "status_class"},
        {"cache=maybe", "cache"},     {"limit=0", "limit"},         {"limit=1001", "limit"},
        {"cursor=abc", "cursor"},     {"since=yesterday", "since"}, {"nope=1", "query"},
        {"q=%zz", "q"},               {"count=yes", "count"},       {"since=2026-12-03&until=2026-12-02", "until"},
    };
    for (size_t i = 0; i < sizeof bads / sizeof bads[0]; i++) {
        bad = NULL;
        assert_int_equal(rd_log_query_parse(bads[i].query, NULL, &q, &bad, err, sizeof err), -1);
        assert_non_null(bad);
        assert_string_equal(bad, bads[i].field);
    }
    static const char *const extra[] = {"format", NULL};
    assert_int_equal(rd_log_query_parse("format=csv", extra, &q, &bad, err, sizeof err), 0);
}

static void test_match(void **state)
{
    (void)state;
    struct rd_log_rec r = sample();
    struct rd_log_query q;
    const char *bad;
    char err[128];
    assert_int_equal(rd_log_query_parse("proxy_id=7&status_class=2xx&cache=miss&failure_type=none", NULL, &q, &bad,
                                        err, sizeof err),
                     0);
    assert_true(rd_log_filter_match(&q.f, &r));
    assert_int_equal(rd_log_query_parse("q=c80319", NULL, &q, &bad, err, sizeof err), 0);
    assert_true(rd_log_filter_match(&q.f, &r)); /* in the trace id */
    assert_int_equal(rd_log_query_parse("q=C80319", NULL, &q, &bad, err, sizeof err), 0);
    assert_false(rd_log_filter_match(&q.f, &r)); /* case-sensitive */
    assert_int_equal(rd_log_query_parse("proxy_id=8", NULL, &q, &bad, err, sizeof err), 0);
    assert_false(rd_log_filter_match(&q.f, &r));
    assert_int_equal(rd_log_query_parse("failure_type=rate_limited", NULL, &q, &bad, err, sizeof err), 0);
    assert_false(rd_log_filter_match(&q.f, &r));
    assert_int_equal(rd_log_query_parse("until=1796279462123", NULL, &q, &bad, err, sizeof err), 0);
    assert_false(rd_log_filter_match(&q.f, &r)); /* until is exclusive */
    assert_int_equal(rd_log_query_parse("since=1796279462123", NULL, &q, &bad, err, sizeof err), 0);
    assert_true(rd_log_filter_match(&q.f, &r));
}

/* A block's short forms (record.h rd_log_block_ctx): one worker's ids are
 * implied by their index (through the 2^32 wrap), a gap or a step back
 * says "idl", timestamps are distances from ts_min ("dt", none at 0); the
 * records read back the same. Two workers' ids, or one that is not
 * canonical, leave every id spelled out. Hostile forms are errors. */
static void pack_block(struct rd_log_rec *const *p, size_t n, struct rd_log_block_ctx *c, struct rd_buf *common,
                       struct rd_buf *recs)
{
    uint64_t shared = rd_log_rec_shared(p, n);
    rd_log_block_ctx_of(c, p, n, shared);
    rd_buf_reset(common);
    rd_buf_reset(recs);
    assert_int_equal(rd_log_block_pack(common, shared ? p[0] : NULL, shared, c), 0);
    for (size_t i = 0; i < n; i++) {
        assert_int_equal(rd_log_rec_pack_in(recs, p[i], ~shared & ~RD_LOG_PACK_SEQ, c, i), 0);
        assert_int_equal(rd_buf_append(recs, "\n", 1), 0);
    }
}

/* Reads the records back (one per line of recs) and compares their JSON. */
static void read_block(struct rd_log_rec *const *p, size_t n, const struct rd_buf *common, const struct rd_buf *recs,
                       int64_t ts_min)
{
    struct rd_log_block_ctx c;
    struct rd_log_rec base, r;
    rd_log_rec_reset(&base);
    assert_int_equal(rd_log_rec_apply(common->data, common->len, &base), 0);
    assert_int_equal(rd_log_block_ctx_read(common->data, common->len, ts_min, &c), 0);
    const char *at = recs->data;
    for (size_t i = 0; i < n; i++) {
        const char *nl = memchr(at, '\n', recs->len - (size_t)(at - recs->data));
        assert_non_null(nl);
        r = base;
        assert_int_equal(rd_log_rec_apply_in(at, (size_t)(nl - at), &r, &c, i), 0);
        struct rd_buf a, b;
        rd_buf_init(&a, 0);
        rd_buf_init(&b, 0);
        assert_int_equal(rd_log_rec_json(&a, &r), 0);
        assert_int_equal(rd_log_rec_json(&b, p[i]), 0);
        assert_string_equal(a.data, b.data);
        rd_buf_free(&a);
        rd_buf_free(&b);
        at = nl + 1;
    }
}

static void test_block_forms(void **state)
{
    (void)state;
    static const char *const counts[] = {"ffffffff", "00000000", "00000005", "00000007", "00000003"};
    static const int64_t dts[] = {0, 7, 0, 1000, 3};
    struct rd_log_rec v[6], *p[6];
    for (int i = 0; i < 5; i++) {
        v[i] = sample();
        snprintf(v[i].id, sizeof v[i].id, "req_0000000a%s", counts[i]);
        v[i].ts_ms = INT64_C(1796279462000) + dts[i];
        v[i].latency_ms = i;
        p[i] = &v[i];
    }
    struct rd_log_block_ctx c;
    struct rd_buf common, recs;
    rd_buf_init(&common, 0);
    rd_buf_init(&recs, 0);
    pack_block(p, 5, &c, &common, &recs);
    assert_true(c.has_prefix);
    assert_string_equal(c.prefix, "req_0000000a");
    assert_int_equal(c.id0, 0xffffffffu);
    assert_int_equal(c.idmin, 0);
    assert_int_equal(c.idmax, 0xffffffffu);
    assert_int_equal(c.ts_min, INT64_C(1796279462000));
    assert_int_equal(c.ts_max, INT64_C(1796279463000));
    assert_null(strstr(recs.data, "req_"));
    assert_null(strstr(recs.data, "\"ts\""));
    /* record k's count is implied when it is id0 + k: 1 (through the
     * wrap) and 4; 2 and 3 are spelled out */
    const char *l1 = strchr(recs.data, '\n') + 1;
    assert_true(strncmp(l1, "{\"dt\":7,", 8) == 0);
    assert_non_null(strstr(recs.data, "\"idl\":5,"));
    assert_non_null(strstr(recs.data, "\"idl\":7,\"dt\":1000,"));
    assert_null(strstr(recs.data, "\"idl\":3"));
    assert_null(strstr(recs.data, "\"idl\":0"));
    read_block(p, 5, &common, &recs, c.ts_min);
    assert_true(rd_log_block_may_hold(&c, "req_0000000a00000005"));
    assert_false(rd_log_block_may_hold(&c, "req_0000000b00000005"));
    assert_true(rd_log_block_may_hold(&c, "something else"));

    /* every record alike in ts: common has it, no record says dt */
    for (int i = 0; i < 5; i++)
        v[i].ts_ms = INT64_C(1796279462000) + 50;
    pack_block(p, 5, &c, &common, &recs);
    assert_true(c.common_ts);
    assert_null(strstr(recs.data, "\"dt\""));
    read_block(p, 5, &common, &recs, c.ts_min);

    /* a range that excludes: idmin..idmax */
    snprintf(v[0].id, sizeof v[0].id, "req_0000000a00000010");
    pack_block(p, 5, &c, &common, &recs);
    assert_int_equal(c.idmin, 0);
    assert_int_equal(c.idmax, 0x10);
    assert_false(rd_log_block_may_hold(&c, "req_0000000a00000011"));
    read_block(p, 5, &common, &recs, c.ts_min);

    /* another worker's id, or ids that are not canonical: all spelled out */
    const char *odd[] = {"req_0000000b00000001", "req_0000000A00000001", "req_0000000a0000001", "", "x"};
    for (size_t k = 0; k < sizeof odd / sizeof odd[0]; k++) {
        v[5] = v[1];
        snprintf(v[5].id, sizeof v[5].id, "%s", odd[k]);
        p[5] = &v[5];
        pack_block(p, 6, &c, &common, &recs);
        assert_false(c.has_prefix);
        assert_null(strstr(common.data, "idp"));
        assert_non_null(strstr(recs.data, "\"id\":\"req_0000000a00000010\""));
        read_block(p, 6, &common, &recs, c.ts_min);
    }

    /* hostile forms */
    static const char *const bad_common[] = {
        "{\"idp\":\"req_0000000\"}",
        "{\"idp\":\"req_0000000G\"}",
        "{\"idp\":\"req_0000000a0\"}",
        "{\"idp\":12}",
        "{\"id0\":-1}",
        "{\"id0\":4294967296}",
        "{\"idmax\":1.5}",
        "{\"idmin\":\"3\"}",
        "{\"idp\":",
    };
    for (size_t k = 0; k < sizeof bad_common / sizeof bad_common[0]; k++)
        assert_int_equal(rd_log_block_ctx_read(bad_common[k], strlen(bad_common[k]), 0, &c), RD_EPROTO);
    assert_int_equal(rd_log_block_ctx_read("{\"idp\":\"req_0000000a\",\"id0\":4294967295}", 39, 5, &c), 0);
    assert_true(c.has_prefix);
    assert_int_equal(c.ts_min, 5);
    struct rd_log_rec r;
    static const char *const bad_rec[] = {
        "{\"dt\":-5}", "{\"dt\":9223372036854775807}", "{\"idl\":4294967296}", "{\"idl\":-1}", "{\"dt\":1.5}", "[]"};
    c.ts_min = INT64_C(1796279462000);
    for (size_t k = 0; k < sizeof bad_rec / sizeof bad_rec[0]; k++) {
        rd_log_rec_reset(&r);
        assert_int_equal(rd_log_rec_apply_in(bad_rec[k], strlen(bad_rec[k]), &r, &c, 0), RD_EPROTO);
    }
    rd_log_rec_reset(&r);
    assert_int_equal(rd_log_rec_apply_in("{}", 2, &r, &c, 1), 0);
    assert_string_equal(r.id, "req_0000000a00000000"); /* id0 + 1, wrapped */
    assert_int_equal(r.ts_ms, c.ts_min);
    rd_buf_free(&common);
    rd_buf_free(&recs);
}

/* rd_log_rec_shared compares strings a word at a time: the bytes past a
 * NUL are anything (the worker copies whole arrays), so strings alike are
 * alike whatever follows, and a difference anywhere up to the NUL shows. */
static void test_shared_strings(void **state)
{
    (void)state;
    struct {
        const char *a, *b;
        size_t pad_a, pad_b;
        bool same;
    } cases[] = {
        {"POST", "POST", 'x', 'y', true},
        {"POST", "POSTX", 0, 0, false},
        {"12345678", "12345678", 'a', 'b', true},
        {"12345678a", "12345678b", 0, 0, false},
        {"1234567", "1234567x", 'q', 0, false},
        {"", "", 'z', 'w', true},
        {"", "a", 0, 0, false},
        {"GET", "PUT", 0, 0, false},
        {"0123456789abcde", "0123456789abcde", '1', '2', true},
        {"0123456789abcde", "0123456789abcdf", 0, 0, false},
    };
    /* method's bit: the one field a record with only "POST" packs */
    uint64_t bit = 0;
    struct rd_log_rec m0 = sample();
    for (uint64_t m = RD_LOG_PACK_ALL; m; m &= m - 1) {
        struct rd_buf out;
        rd_buf_init(&out, 0);
        assert_int_equal(rd_log_rec_pack(&out, &m0, m & -m), 0);
        if (strncmp(out.data, "{\"method\":", 10) == 0)
            bit = m & -m;
        rd_buf_free(&out);
    }
    assert_true(bit != 0);
    for (size_t k = 0; k < sizeof cases / sizeof cases[0]; k++) {
        struct rd_log_rec a = sample(), b = sample();
        memset(a.method, (int)(cases[k].pad_a ? cases[k].pad_a : 'p'), sizeof a.method);
        memset(b.method, (int)(cases[k].pad_b ? cases[k].pad_b : 'r'), sizeof b.method);
        memcpy(a.method, cases[k].a, strlen(cases[k].a) + 1);
        memcpy(b.method, cases[k].b, strlen(cases[k].b) + 1);
        a.method[sizeof a.method - 1] = b.method[sizeof b.method - 1] = '\0';
        struct rd_log_rec *p[2] = {&a, &b};
        assert_int_equal((rd_log_rec_shared(p, 2) & bit) != 0, cases[k].same);
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_json_record), cmocka_unit_test(test_json_escape),    cmocka_unit_test(test_parse_time),
        cmocka_unit_test(test_url_decode),  cmocka_unit_test(test_query_parse),    cmocka_unit_test(test_match),
        cmocka_unit_test(test_block_forms), cmocka_unit_test(test_shared_strings),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
