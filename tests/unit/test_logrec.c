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

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_json_record), cmocka_unit_test(test_json_escape), cmocka_unit_test(test_parse_time),
        cmocka_unit_test(test_url_decode),  cmocka_unit_test(test_query_parse), cmocka_unit_test(test_match),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
