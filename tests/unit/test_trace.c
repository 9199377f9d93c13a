/* Tests for src/obs/trace.c, trace_export.c and otlp.c: W3C traceparent
 * parsing at its edges, the trace context given to a request (continued or
 * new) and the traceparent forwarded upstream, the samplers, the OTEL_*
 * list syntax, the tracer's configuration errors, and the OTLP/JSON
 * document (parsed back and checked field by field). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "obs/otlp.h"
#include "obs/trace.h"
#include "proxy/req.h"
#include "util/err.h"
#include "util/json.h"

#define TID "4bf92f3577b34da6a3ce929d0e0e4736"
#define PID "00f067aa0ba902b7"
#define VALID "00-" TID "-" PID "-01"

static bool parse(const char *s, struct rd_traceparent *tp)
{
    return rd_traceparent_parse(s, strlen(s), tp);
}

static void test_traceparent_valid(void **state)
{
    (void)state;
    struct rd_traceparent tp;
    assert_true(parse(VALID, &tp));
    assert_int_equal(tp.version, 0);
    assert_int_equal(tp.trace_id[0], 0x4b);
    assert_int_equal(tp.trace_id[15], 0x36);
    assert_int_equal(tp.parent_id, 0x00f067aa0ba902b7ULL);
    assert_int_equal(tp.flags, 1);
    assert_true(parse("00-" TID "-" PID "-00", &tp));
    assert_int_equal(tp.flags, 0);
}

static void test_traceparent_invalid(void **state)
{
    (void)state;
    struct rd_traceparent tp;
    const char *bad[] = {
        "",
        "ff-" TID "-" PID "-01",                            /* version ff is forbidden */
        "00-00000000000000000000000000000000-" PID "-01",   /* all-zero trace id */
        "00-" TID "-0000000000000000-01",                   /* all-zero parent id */
        "00-" TID "-" PID "-0",                             /* 54 bytes */
        "00-" TID "-" PID "-011",                           /* 56 bytes for version 00 */
        "00-" TID "-" PID "-01-extra",                      /* version 00 has no more fields */
        "00-4BF92F3577B34DA6A3CE929D0E0E4736-" PID "-01",   /* upper-case hex */
        "00-" TID "-00F067AA0BA902B7-01",
        "00-" TID "-" PID "-0A",
        "0A-" TID "-" PID "-01",
        "00-" TID "x" PID "-01",                            /* wrong separator */
        "00_" TID "-" PID "-01",
        "00-4bf92f3577b34da6a3ce929d0e0e473g-" PID "-01",   /* not hex */
        "00-" TID "-" PID "-0x",
        "01-" TID "-" PID "-01x",                           /* a later version: extra fields after a dash only */
        "00-" TID "-00f067aa0ba902b-701",                   /* the right length, fields shifted */
        " 00-" TID "-" PID "-01",
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        if (parse(bad[i], &tp))
            fail_msg("accepted '%s'", bad[i]);
    }
    /* n is honoured: a valid value cut short is not read past its length */
    assert_false(rd_traceparent_parse(VALID, 54, &tp));
}

static void test_traceparent_future_version(void **state)
{
    (void)state;
    struct rd_traceparent tp;
    assert_true(parse("01-" TID "-" PID "-01", &tp));
    assert_int_equal(tp.version, 1);
    assert_true(parse("cc-" TID "-" PID "-01-what-the-future-will-bring", &tp));
    assert_int_equal(tp.version, 0xcc);
    assert_int_equal(tp.parent_id, 0x00f067aa0ba902b7ULL);
    assert_int_equal(tp.flags, 1);
}

/* ---- the request's context ---- */

struct fake {
    struct rd_req req;
    struct rd_http_exch x;
    struct rd_http_request hr;
};

static void fake_init(struct fake *f, const char *const *hdrs, size_t n)
{
    memset(f, 0, sizeof *f);
    rd_arena_init(&f->req.arena);
    rd_hdrs_init(&f->hr.headers, &f->req.arena);
    for (size_t i = 0; i + 1 < n; i += 2)
        rd_hdrs_add(&f->hr.headers, hdrs[i], strlen(hdrs[i]), hdrs[i + 1], strlen(hdrs[i + 1]));
    f->x.req = &f->hr;
    f->req.x = &f->x;
}

static void fake_free(struct fake *f)
{
    rd_hdrs_free(&f->hr.headers);
    rd_arena_free(&f->req.arena);
}

static bool is_lower_hex(const char *s, size_t n)
{
    if (strlen(s) != n)
        return false;
    for (size_t i = 0; i < n; i++)
        if (!((s[i] >= '0' && s[i] <= '9') || (s[i] >= 'a' && s[i] <= 'f')))
            return false;
    return true;
}

static void test_begin_continues(void **state)
{
    (void)state;
    const char *h[] = {"TraceParent", VALID};
    struct fake f;
    fake_init(&f, h, 2);
    rd_trace_begin(NULL, &f.req);
    assert_string_equal(f.req.trace_id, TID);
    assert_string_equal(f.req.parent_span_id, PID);
    assert_true(is_lower_hex(f.req.span_id, 16));
    assert_string_not_equal(f.req.span_id, PID);
    assert_int_equal(f.req.trace_flags, 1); /* no exporter: the parent's flag goes on */
    char tp[64];
    assert_true(rd_trace_traceparent(&f.req, tp, sizeof tp));
    assert_int_equal(strlen(tp), 55);
    assert_memory_equal(tp, "00-" TID "-", 36);
    assert_string_equal(tp + 52, "-01");
    /* the forwarded parent is a span of ours: neither the incoming parent
     * nor the request's span, and the same for the same request */
    assert_memory_not_equal(tp + 36, PID, 16);
    assert_memory_not_equal(tp + 36, f.req.span_id, 16);
    char again[64];
    assert_true(rd_trace_traceparent(&f.req, again, sizeof again));
    assert_string_equal(tp, again);
    assert_false(rd_trace_traceparent(&f.req, again, 55)); /* too small */
    fake_free(&f);
}

static void test_begin_new_trace(void **state)
{
    (void)state;
    /* no header, a hostile one, two of them: a new trace each time */
    const char *none[] = {"x", "y"};
    const char *hostile[] = {"traceparent", "00-" TID "-" PID "-01\r\nX-Evil: 1"};
    const char *upper[] = {"traceparent", "00-4BF92F3577B34DA6A3CE929D0E0E4736-" PID "-01"};
    const char *two[] = {"traceparent", VALID, "traceparent", VALID};
    const char *const *cases[] = {none, hostile, upper, two};
    size_t ns[] = {2, 2, 2, 4};
    char seen[4][33];
    for (size_t i = 0; i < 4; i++) {
        struct fake f;
        fake_init(&f, cases[i], ns[i]);
        rd_trace_begin(NULL, &f.req);
        assert_true(is_lower_hex(f.req.trace_id, 32));
        assert_string_not_equal(f.req.trace_id, TID);
        assert_string_equal(f.req.parent_span_id, "");
        assert_int_equal(f.req.trace_flags, 0); /* nobody records it */
        char tp[64];
        assert_true(rd_trace_traceparent(&f.req, tp, sizeof tp));
        assert_string_equal(tp + 52, "-00");
        memcpy(seen[i], f.req.trace_id, 33);
        for (size_t j = 0; j < i; j++)
            assert_string_not_equal(seen[i], seen[j]);
        fake_free(&f);
    }
    /* a request the server refused before it had an exchange */
    struct rd_req r;
    memset(&r, 0, sizeof r);
    rd_trace_begin(NULL, &r);
    assert_true(is_lower_hex(r.trace_id, 32));
    struct rd_req empty;
    memset(&empty, 0, sizeof empty);
    char tp[64] = "x";
    assert_false(rd_trace_traceparent(&empty, tp, sizeof tp));
    assert_string_equal(tp, "");
}

/* ---- samplers ---- */

static void test_sampler(void **state)
{
    (void)state;
    struct rd_sampler s;
    uint8_t low[16] = {1}, high[16];
    memset(high, 0xff, sizeof high);
    assert_int_equal(rd_sampler_parse(NULL, NULL, &s), 0); /* parentbased_always_on */
    assert_true(s.parent_based);
    assert_true(rd_sampler_decide(&s, low, false, false));
    assert_false(rd_sampler_decide(&s, low, true, false));
    assert_true(rd_sampler_decide(&s, low, true, true));
    assert_int_equal(rd_sampler_parse("always_off", NULL, &s), 0);
    assert_false(rd_sampler_decide(&s, low, true, true)); /* not parent-based */
    assert_int_equal(rd_sampler_parse("always_on", NULL, &s), 0);
    assert_true(rd_sampler_decide(&s, low, true, false));
    assert_int_equal(rd_sampler_parse("traceidratio", "0.5", &s), 0);
    assert_true(rd_sampler_decide(&s, low, false, false));
    assert_false(rd_sampler_decide(&s, high, false, false));
    assert_false(rd_sampler_decide(&s, high, true, true));
    assert_int_equal(rd_sampler_parse("traceidratio", "0", &s), 0);
    assert_false(rd_sampler_decide(&s, low, false, false));
    assert_int_equal(rd_sampler_parse("parentbased_traceidratio", "1", &s), 0);
    assert_true(rd_sampler_decide(&s, high, false, false));
    assert_false(rd_sampler_decide(&s, high, true, false));
    assert_int_equal(rd_sampler_parse("parentbased_always_off", NULL, &s), 0);
    assert_false(rd_sampler_decide(&s, low, false, false));
    assert_true(rd_sampler_decide(&s, low, true, true));
    const char *bad[][2] = {{"sometimes", NULL}, {"traceidratio", "2"}, {"traceidratio", "-0.1"},
                            {"traceidratio", "half"}, {"traceidratio", "nan"}, {"parentbased_", NULL},
                            {"ALWAYS_ON", NULL}};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++)
        assert_int_equal(rd_sampler_parse(bad[i][0], bad[i][1], &s), RD_EINVAL);
}

/* ---- k=v lists ---- */

struct pairs {
    char out[512];
    int stop_at;
    int n;
};

static bool collect(const char *k, const char *v, void *ud)
{
    struct pairs *p = ud;
    if (++p->n == p->stop_at)
        return false;
    size_t len = strlen(p->out);
    snprintf(p->out + len, sizeof p->out - len, "[%s|%s]", k, v);
    return true;
}

static void test_pairs(void **state)
{
    (void)state;
    struct pairs p = {0};
    assert_int_equal(rd_otel_parse_pairs(" api-key = s%3Dcr%2Cet , ,deployment.environment=prod%20eu,e=", collect, &p),
                     0);
    assert_string_equal(p.out, "[api-key|s=cr,et][deployment.environment|prod eu][e|]");
    const char *bad[] = {"novalue", "=v", "k=%", "k=%4", "k=%zz", "a=1,b"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        struct pairs q = {0};
        if (rd_otel_parse_pairs(bad[i], collect, &q) != RD_EINVAL)
            fail_msg("accepted '%s'", bad[i]);
    }
    struct pairs q = {.stop_at = 2};
    assert_int_equal(rd_otel_parse_pairs("a=1,b=2,c=3", collect, &q), RD_EINVAL);
    char big[5000];
    memset(big, 'a', sizeof big - 1);
    big[sizeof big - 1] = '\0';
    big[0] = 'k', big[1] = '=';
    struct pairs r = {0};
    assert_int_equal(rd_otel_parse_pairs(big, collect, &r), RD_ETOOBIG);
}

/* ---- configuration ---- */

static const char *const otel_vars[] = {
    "OTEL_SDK_DISABLED", "OTEL_TRACES_EXPORTER", "OTEL_EXPORTER_OTLP_ENDPOINT", "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT",
    "OTEL_EXPORTER_OTLP_PROTOCOL", "OTEL_EXPORTER_OTLP_TRACES_PROTOCOL", "OTEL_EXPORTER_OTLP_HEADERS",
    "OTEL_EXPORTER_OTLP_TIMEOUT", "OTEL_BSP_SCHEDULE_DELAY", "OTEL_TRACES_SAMPLER", "OTEL_TRACES_SAMPLER_ARG",
    "OTEL_RESOURCE_ATTRIBUTES", "OTEL_BSP_MAX_QUEUE_SIZE",
};

static int start_with(const char *const *kv, size_t n, struct rd_tracer **t, char *err, size_t errlen)
{
    for (size_t i = 0; i < sizeof otel_vars / sizeof otel_vars[0]; i++)
        unsetenv(otel_vars[i]);
    for (size_t i = 0; i + 1 < n; i += 2)
        setenv(kv[i], kv[i + 1], 1);
    err[0] = '\0';
    return rd_tracer_start(t, err, errlen);
}

static void test_config(void **state)
{
    (void)state;
    struct rd_tracer *t = (struct rd_tracer *)1;
    char err[256];
    assert_int_equal(start_with(NULL, 0, &t, err, sizeof err), 0);
    assert_null(t); /* no endpoint: not configured */
    const char *disabled[] = {"OTEL_EXPORTER_OTLP_ENDPOINT", "http://127.0.0.1:1", "OTEL_SDK_DISABLED", "TRUE"};
    assert_int_equal(start_with(disabled, 4, &t, err, sizeof err), 0);
    assert_null(t);
    const char *none[] = {"OTEL_EXPORTER_OTLP_ENDPOINT", "http://127.0.0.1:1", "OTEL_TRACES_EXPORTER", "none"};
    assert_int_equal(start_with(none, 4, &t, err, sizeof err), 0);
    assert_null(t);
    struct {
        const char *kv[4];
        const char *says;
    } bad[] = {
        {{"OTEL_EXPORTER_OTLP_ENDPOINT", "http://127.0.0.1:1", "OTEL_EXPORTER_OTLP_PROTOCOL", "http/protobuf"},
         "http/json"},
        {{"OTEL_EXPORTER_OTLP_ENDPOINT", "http://127.0.0.1:1", "OTEL_EXPORTER_OTLP_TRACES_PROTOCOL", "grpc"},
         "OTEL_EXPORTER_OTLP_TRACES_PROTOCOL"},
        {{"OTEL_EXPORTER_OTLP_ENDPOINT", "ftp://127.0.0.1:1"}, "http:// and https://"},
        {{"OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", "http://127.0.0.1:1/a b"}, "space"},
        {{"OTEL_EXPORTER_OTLP_ENDPOINT", "http://127.0.0.1:1", "OTEL_EXPORTER_OTLP_HEADERS", "a=%0d%0aX: y"},
         "control character"},
        {{"OTEL_EXPORTER_OTLP_ENDPOINT", "http://127.0.0.1:1", "OTEL_EXPORTER_OTLP_HEADERS", "a b=1"}, "token"},
        {{"OTEL_EXPORTER_OTLP_ENDPOINT", "http://127.0.0.1:1", "OTEL_BSP_SCHEDULE_DELAY", "-5"},
         "OTEL_BSP_SCHEDULE_DELAY"},
        {{"OTEL_EXPORTER_OTLP_ENDPOINT", "http://127.0.0.1:1", "OTEL_EXPORTER_OTLP_TIMEOUT", "10s"},
         "OTEL_EXPORTER_OTLP_TIMEOUT"},
        {{"OTEL_EXPORTER_OTLP_ENDPOINT", "http://127.0.0.1:1", "OTEL_TRACES_SAMPLER", "maybe"},
         "OTEL_TRACES_SAMPLER"},
        {{"OTEL_EXPORTER_OTLP_ENDPOINT", "http://127.0.0.1:1", "OTEL_TRACES_EXPORTER", "zipkin"}, "otlp"},
        {{"OTEL_EXPORTER_OTLP_ENDPOINT", "http://127.0.0.1:1", "OTEL_RESOURCE_ATTRIBUTES", "novalue"},
         "OTEL_RESOURCE_ATTRIBUTES"},
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        t = NULL;
        int rc = start_with(bad[i].kv, bad[i].kv[2] ? 4 : 2, &t, err, sizeof err);
        if (rc != RD_EINVAL || t != NULL || strstr(err, bad[i].says) == NULL)
            fail_msg("case %zu: rc %d, error '%s', expected to mention '%s'", i, rc, err, bad[i].says);
    }
    /* a good configuration starts and stops (nothing queued: nothing sent) */
    const char *good[] = {"OTEL_EXPORTER_OTLP_ENDPOINT", "http://127.0.0.1:1/", "OTEL_EXPORTER_OTLP_HEADERS",
                          "authorization=Bearer%20x", "OTEL_EXPORTER_OTLP_PROTOCOL", "http/json",
                          "OTEL_BSP_SCHEDULE_DELAY", "50"};
    assert_int_equal(start_with(good, 8, &t, err, sizeof err), 0);
    assert_non_null(t);
    struct rd_tracer_stats st;
    rd_tracer_stats(t, &st);
    assert_int_equal(st.queued, 0);
    rd_tracer_stop(t);
    for (size_t i = 0; i < sizeof otel_vars / sizeof otel_vars[0]; i++)
        unsetenv(otel_vars[i]);
}

/* ---- OTLP/JSON ---- */

static struct json_object *path_get(struct json_object *o, const char *const *keys, size_t n)
{
    for (size_t i = 0; i < n && o; i++)
        o = json_object_is_type(o, json_type_array) ? json_object_array_get_idx(o, strtoul(keys[i], NULL, 10))
                                                    : rd_json_get(o, keys[i]);
    return o;
}

/* The value object of attribute key in an attributes array, or NULL. */
static struct json_object *attr(struct json_object *attrs, const char *key)
{
    for (size_t i = 0; i < json_object_array_length(attrs); i++) {
        struct json_object *a = json_object_array_get_idx(attrs, i);
        if (strcmp(rd_json_get_str(a, "key"), key) == 0)
            return rd_json_get(a, "value");
    }
    return NULL;
}

static const char *attr_str(struct json_object *attrs, const char *key, const char *type)
{
    struct json_object *v = attr(attrs, key);
    return v ? rd_json_get_str(v, type) : NULL;
}

static struct json_object *span_named(struct json_object *spans, const char *name)
{
    for (size_t i = 0; i < json_object_array_length(spans); i++) {
        struct json_object *s = json_object_array_get_idx(spans, i);
        if (strcmp(rd_json_get_str(s, "name"), name) == 0)
            return s;
    }
    return NULL;
}

static void test_otlp_encode(void **state)
{
    (void)state;
    struct rd_trace_rec r[2];
    memset(r, 0, sizeof r);
    for (int i = 0; i < 16; i++)
        r[0].trace_id[i] = (uint8_t)(0xa0 + i);
    r[0].span_id = 0x1111111111111111ULL;
    r[0].parent_span_id = 0x00f067aa0ba902b7ULL;
    r[0].cache_span_id = 0x2222222222222222ULL;
    r[0].upstream_span_id = 0x3333333333333333ULL;
    r[0].start_ns = 1764745262123000000ULL;
    r[0].end_ns = r[0].start_ns + 5000000;
    r[0].cache_start_ns = r[0].start_ns + 1000;
    r[0].cache_end_ns = r[0].start_ns + 2000;
    r[0].up_start_ns = r[0].start_ns + 3000;
    r[0].up_end_ns = r[0].end_ns;
    r[0].flags = 1;
    r[0].provider = "openai";
    r[0].method = "POST";
    r[0].cache = "miss";
    r[0].failure = "";
    r[0].upstream_kind = "http";
    snprintf(r[0].model, sizeof r[0].model, "gpt-4o \"mini\"");
    snprintf(r[0].path, sizeof r[0].path, "/v1/chat/completions");
    snprintf(r[0].proxy_name, sizeof r[0].proxy_name, "p1");
    r[0].proxy_id = 7;
    r[0].status = 200;
    r[0].upstream_status = 200;
    r[0].request_size = 123;
    r[0].response_size = 456;
    r[0].input_tokens = 11;
    r[0].output_tokens = -1; /* not reported: no attribute */
    r[1] = r[0];
    r[1].parent_span_id = 0;
    r[1].cache_start_ns = 0;
    r[1].up_start_ns = 0;
    r[1].status = 503;
    r[1].failure = "error_injection";
    r[1].span_id = 0x4444444444444444ULL;
    assert_int_equal(rd_otlp_rec_spans(&r[0]), 3);
    assert_int_equal(rd_otlp_rec_spans(&r[1]), 1);
    const char *k[] = {"service.name", "deployment.environment"}, *v[] = {"rubberduck", "test"};
    struct rd_otlp_resource res = {k, v, 2};
    struct rd_buf out;
    rd_buf_init(&out, 0);
    assert_int_equal(rd_otlp_encode(&res, r, 2, &out), 0);
    struct json_object *doc;
    struct rd_json_err je;
    assert_int_equal(rd_json_parse(out.data, out.len, out.len, &doc, &je), 0);
    const char *rp[] = {"resourceSpans", "0", "resource", "attributes"};
    struct json_object *rattrs = path_get(doc, rp, 4);
    assert_non_null(rattrs);
    assert_string_equal(attr_str(rattrs, "service.name", "stringValue"), "rubberduck");
    assert_string_equal(attr_str(rattrs, "deployment.environment", "stringValue"), "test");
    const char *sp[] = {"resourceSpans", "0", "scopeSpans", "0", "spans"};
    struct json_object *spans = path_get(doc, sp, 5);
    assert_non_null(spans);
    assert_int_equal(json_object_array_length(spans), 4);

    struct json_object *req = span_named(spans, "process_llm_request"); /* the first: r[0] */
    assert_string_equal(rd_json_get_str(req, "traceId"), "a0a1a2a3a4a5a6a7a8a9aaabacadaeaf");
    assert_string_equal(rd_json_get_str(req, "spanId"), "1111111111111111");
    assert_string_equal(rd_json_get_str(req, "parentSpanId"), "00f067aa0ba902b7");
    assert_int_equal(rd_json_get_int(req, "kind", 0), 2); /* SERVER */
    assert_string_equal(rd_json_get_str(req, "startTimeUnixNano"), "1764745262123000000");
    assert_string_equal(rd_json_get_str(req, "endTimeUnixNano"), "1764745262128000000");
    assert_null(rd_json_get(req, "status"));
    struct json_object *a = rd_json_get(req, "attributes");
    assert_string_equal(attr_str(a, "llm.provider", "stringValue"), "openai");
    assert_string_equal(attr_str(a, "gen_ai.system", "stringValue"), "openai");
    assert_string_equal(attr_str(a, "llm.model", "stringValue"), "gpt-4o \"mini\"");
    assert_string_equal(attr_str(a, "gen_ai.request.model", "stringValue"), "gpt-4o \"mini\"");
    assert_string_equal(attr_str(a, "request.size", "intValue"), "123");
    assert_string_equal(attr_str(a, "response.size", "intValue"), "456");
    assert_string_equal(attr_str(a, "response.status", "intValue"), "200");
    assert_string_equal(attr_str(a, "gen_ai.usage.input_tokens", "intValue"), "11");
    assert_null(attr(a, "gen_ai.usage.output_tokens"));
    assert_string_equal(attr_str(a, "rubberduck.cache", "stringValue"), "miss");
    assert_null(attr(a, "rubberduck.failure_type")); /* none */
    assert_string_equal(attr_str(a, "rubberduck.proxy_id", "intValue"), "7");
    assert_string_equal(attr_str(a, "http.request.method", "stringValue"), "POST");
    assert_string_equal(attr_str(a, "url.path", "stringValue"), "/v1/chat/completions");

    struct json_object *c = span_named(spans, "cache_lookup");
    assert_string_equal(rd_json_get_str(c, "spanId"), "2222222222222222");
    assert_string_equal(rd_json_get_str(c, "parentSpanId"), "1111111111111111");
    assert_string_equal(rd_json_get_str(c, "startTimeUnixNano"), "1764745262123001000");
    assert_string_equal(rd_json_get_str(c, "endTimeUnixNano"), "1764745262123002000");
    struct json_object *u = span_named(spans, "upstream_call");
    assert_string_equal(rd_json_get_str(u, "spanId"), "3333333333333333");
    assert_string_equal(rd_json_get_str(u, "parentSpanId"), "1111111111111111");
    assert_int_equal(rd_json_get_int(u, "kind", 0), 3); /* CLIENT */
    assert_string_equal(rd_json_get_str(u, "traceId"), "a0a1a2a3a4a5a6a7a8a9aaabacadaeaf");

    struct json_object *root = json_object_array_get_idx(spans, 3); /* r[1]: one span */
    assert_string_equal(rd_json_get_str(root, "spanId"), "4444444444444444");
    assert_null(rd_json_get(root, "parentSpanId"));
    assert_int_equal(rd_json_get_int(rd_json_get(root, "status"), "code", 0), 2); /* ERROR for a 5xx */
    assert_string_equal(attr_str(rd_json_get(root, "attributes"), "rubberduck.failure_type", "stringValue"),
                        "error_injection");
    json_object_put(doc);
    rd_buf_free(&out);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_traceparent_valid),  cmocka_unit_test(test_traceparent_invalid),
        cmocka_unit_test(test_traceparent_future_version), cmocka_unit_test(test_begin_continues),
        cmocka_unit_test(test_begin_new_trace),    cmocka_unit_test(test_sampler),
        cmocka_unit_test(test_pairs),              cmocka_unit_test(test_config),
        cmocka_unit_test(test_otlp_encode),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
