/* Tests for src/obs/prom.c (the text exposition format 0.0.4) and for
 * src/obs/metrics.c (per-slot counting and the summed exposition): exact
 * escaping of label values and help text, number formatting, histogram
 * buckets at their boundaries (le is inclusive), the model cap. */
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "obs/metrics.h"
#include "obs/prom.h"
#include "proxy/req.h"
#include "util/err.h"

static void test_escape_label(void **state)
{
    (void)state;
    struct rd_buf b;
    rd_buf_init(&b, 0);
    assert_int_equal(rd_prom_escape_label(&b, "a\\b\"c\nd"), 0);
    assert_string_equal(b.data, "a\\\\b\\\"c\\nd");
    rd_buf_reset(&b);
    assert_int_equal(rd_prom_escape_label(&b, ""), 0);
    assert_int_equal(b.len, 0);
    assert_int_equal(rd_prom_escape_label(&b, "plain"), 0);
    assert_string_equal(b.data, "plain");
    rd_buf_free(&b);
}

static void test_family_and_samples(void **state)
{
    (void)state;
    struct rd_buf b;
    rd_buf_init(&b, 0);
    /* help escapes backslash and newline, not the quote */
    assert_int_equal(rd_prom_family(&b, "x_total", RD_PROM_COUNTER, "say \"hi\"\\\nnext"), 0);
    struct rd_prom_label l[3] = {{"a", "1"}, {"skip", NULL}, {"m", "q\"\n\\"}};
    assert_int_equal(rd_prom_sample_u64(&b, "x_total", NULL, l, 3, 18446744073709551615ull), 0);
    assert_int_equal(rd_prom_sample(&b, "y", "_sum", NULL, 0, 0.25), 0);
    assert_int_equal(rd_prom_family(&b, "g", RD_PROM_GAUGE, "gauge"), 0);
    assert_int_equal(rd_prom_family(&b, "h", RD_PROM_HISTOGRAM, "hist"), 0);
    assert_string_equal(b.data, "# HELP x_total say \"hi\"\\\\\\nnext\n"
                                "# TYPE x_total counter\n"
                                "x_total{a=\"1\",m=\"q\\\"\\n\\\\\"} 18446744073709551615\n"
                                "y_sum 0.25\n"
                                "# HELP g gauge\n# TYPE g gauge\n"
                                "# HELP h hist\n# TYPE h histogram\n");
    rd_buf_free(&b);
}

static void check_num(double v, const char *want)
{
    char out[RD_PROM_NUM_LEN];
    size_t n = rd_prom_format_double(out, v);
    assert_string_equal(out, want);
    assert_int_equal(n, strlen(want));
}

static void test_format_double(void **state)
{
    (void)state;
    check_num(INFINITY, "+Inf");
    check_num(-INFINITY, "-Inf");
    check_num(NAN, "NaN");
    check_num(0, "0");
    check_num(1, "1");
    check_num(-3, "-3");
    check_num(120, "120");
    check_num(0.005, "0.005");
    check_num(0.1, "0.1");
    check_num(2.5, "2.5");
    check_num(1e300, "1e+300");
    check_num(1.0 / 3.0, "0.3333333333333333");
    check_num(9007199254740993.0 * 4, "3.602879701896397e+16");
    /* every formatted number reads back as itself */
    const double vals[] = {0.1 + 0.2, 1e-9, 123456.789, 5e-324, 1.7976931348623157e308};
    for (size_t i = 0; i < sizeof vals / sizeof vals[0]; i++) {
        char out[RD_PROM_NUM_LEN];
        rd_prom_format_double(out, vals[i]);
        assert_true(strtod(out, NULL) == vals[i]);
    }
}

static void test_bucket_boundaries(void **state)
{
    (void)state;
    const double b[] = {0.005, 0.01, 1, 120};
    assert_int_equal(rd_prom_bucket(b, 4, 0), 0);
    assert_int_equal(rd_prom_bucket(b, 4, 0.005), 0); /* le is inclusive */
    assert_int_equal(rd_prom_bucket(b, 4, 0.0050001), 1);
    assert_int_equal(rd_prom_bucket(b, 4, 0.01), 1);
    assert_int_equal(rd_prom_bucket(b, 4, 1), 2);
    assert_int_equal(rd_prom_bucket(b, 4, 120), 3);
    assert_int_equal(rd_prom_bucket(b, 4, 120.000001), 4); /* +Inf */
    assert_int_equal(rd_prom_bucket(b, 4, NAN), 4);
}

static void test_histogram_text(void **state)
{
    (void)state;
    struct rd_buf b;
    rd_buf_init(&b, 0);
    const double bounds[] = {0.5, 1};
    const uint64_t counts[] = {2, 0, 3};
    struct rd_prom_label l[1] = {{"p", "x\"y"}};
    assert_int_equal(rd_prom_histogram(&b, "d_seconds", l, 1, bounds, counts, 2, 7.25), 0);
    assert_string_equal(b.data, "d_seconds_bucket{p=\"x\\\"y\",le=\"0.5\"} 2\n"
                                "d_seconds_bucket{p=\"x\\\"y\",le=\"1\"} 2\n"
                                "d_seconds_bucket{p=\"x\\\"y\",le=\"+Inf\"} 5\n"
                                "d_seconds_sum{p=\"x\\\"y\"} 7.25\n"
                                "d_seconds_count{p=\"x\\\"y\"} 5\n");
    rd_buf_free(&b);
}

static void test_buffer_cap(void **state)
{
    (void)state;
    struct rd_buf b;
    rd_buf_init(&b, 16);
    assert_int_equal(rd_prom_family(&b, "a_long_metric_name_total", RD_PROM_COUNTER, "help"), RD_ETOOBIG);
    rd_buf_free(&b);
}

/* ---- metrics.c ---- */

struct fake {
    struct rd_proxy_snap snap;
    struct rd_req *req; /* heap: it is large */
};

static void fake_init(struct fake *f, int64_t proxy_id)
{
    memset(&f->snap, 0, sizeof f->snap);
    f->snap.id = proxy_id;
    f->req = calloc(1, sizeof *f->req);
    assert_non_null(f->req);
    f->req->snap = &f->snap;
    f->req->provider = f->req->dialect = rd_provider_find("openai");
    assert_non_null(f->req->provider);
}

/* Resets the request to one that took us microseconds and sent status. */
static struct rd_req *fake_req(struct fake *f, int status, uint64_t us, const char *model)
{
    struct rd_req *r = f->req;
    struct rd_proxy_snap *snap = r->snap;
    const struct rd_provider *p = r->provider;
    memset(r, 0, sizeof *r);
    r->snap = snap;
    r->provider = r->dialect = p;
    r->status_sent = status;
    r->t_received = 1000000;
    r->t_done = 1000000 + us;
    r->usage = (struct rd_usage){-1, -1, -1, -1, -1};
    snprintf(r->model, sizeof r->model, "%s", model);
    return r;
}

static void assert_has_line(const char *text, const char *line)
{
    const char *p = text;
    size_t n = strlen(line);
    while ((p = strstr(p, line)) != NULL) {
        if ((p == text || p[-1] == '\n') && p[n] == '\n')
            return;
        p += n;
    }
    fail_msg("line not found: %s\n--- in ---\n%s", line, text);
}

static void test_metrics_counts(void **state)
{
    (void)state;
    struct rd_metrics *m = rd_metrics_new(2);
    struct fake f;
    fake_init(&f, 7);

    rd_metrics_begin(m, 0);
    rd_metrics_begin(m, 1);
    rd_metrics_begin(m, 1);
    assert_int_equal(rd_metrics_in_flight(m), 3);

    struct rd_req *r = fake_req(&f, 200, 5000, "gpt-4o-mini"); /* exactly 0.005 s */
    r->usage = (struct rd_usage){100, 20, 10, -1, 5};
    rd_metrics_done(m, 0, r);
    r = fake_req(&f, 429, 5001, "");
    r->failure = RD_FAIL_RATE_LIMITED;
    r->failures_seen = 1u << RD_FAIL_RATE_LIMITED;
    rd_metrics_done(m, 1, r);
    r = fake_req(&f, 0, 200000000, "we\"ird\nmo\\del"); /* 200 s: +Inf */
    r->usage = (struct rd_usage){1, 2, -1, -1, -1};
    r->err = RD_ETIMEDOUT;
    rd_metrics_done(m, 1, r);
    assert_int_equal(rd_metrics_in_flight(m), 0);
    r = fake_req(&f, 502, 10000, "");
    r->status_upstream = 502;
    rd_metrics_done(m, 0, r);
    r = fake_req(&f, 200, 1000, "gpt-4o-mini");
    r->cache = RD_CACHE_HIT;
    r->usage = (struct rd_usage){100, 20, 10, -1, 5};
    rd_metrics_done(m, 0, r); /* a hit: no tokens billed */

    struct rd_metrics_extra extra = {.active_proxies = 2, .cache_hits = 4, .log_dropped = 9, .open_connections = 3};
    struct rd_buf b;
    rd_buf_init(&b, 0);
    assert_int_equal(rd_metrics_render(m, &extra, &b), 0);
    const char *t = b.data;
    assert_has_line(t, "rubberduck_requests_total{proxy_id=\"7\",provider=\"openai\",status=\"0\"} 1");
    assert_has_line(t, "rubberduck_requests_total{proxy_id=\"7\",provider=\"openai\",status=\"200\"} 2");
    assert_has_line(t, "rubberduck_requests_total{proxy_id=\"7\",provider=\"openai\",status=\"429\"} 1");
    assert_has_line(t, "rubberduck_requests_total{proxy_id=\"7\",provider=\"openai\",status=\"502\"} 1");
    /* 1 ms and the 5 ms one in le=0.005; 5.001 ms and 10 ms in le=0.01; 200 s only in +Inf */
    const char *h = "rubberduck_request_duration_seconds_bucket{proxy_id=\"7\",provider=\"openai\",le=";
    char line[256];
    snprintf(line, sizeof line, "%s\"0.005\"} 2", h);
    assert_has_line(t, line);
    snprintf(line, sizeof line, "%s\"0.01\"} 4", h);
    assert_has_line(t, line);
    snprintf(line, sizeof line, "%s\"120\"} 4", h);
    assert_has_line(t, line);
    snprintf(line, sizeof line, "%s\"+Inf\"} 5", h);
    assert_has_line(t, line);
    assert_has_line(t, "rubberduck_request_duration_seconds_count{proxy_id=\"7\",provider=\"openai\"} 5");
    assert_has_line(t, "rubberduck_request_duration_seconds_sum{proxy_id=\"7\",provider=\"openai\"} 200.021001");
    assert_has_line(t, "rubberduck_upstream_errors_total{proxy_id=\"7\",provider=\"openai\"} 2");
    assert_has_line(t, "rubberduck_simulated_failures_total{proxy_id=\"7\",type=\"rate_limited\"} 1");
    assert_has_line(t, "rubberduck_tokens_total{proxy_id=\"7\",provider=\"openai\",model=\"gpt-4o-mini\","
                       "type=\"input\"} 100");
    assert_has_line(t, "rubberduck_tokens_total{proxy_id=\"7\",provider=\"openai\",model=\"gpt-4o-mini\","
                       "type=\"cached\"} 10");
    assert_has_line(t, "rubberduck_tokens_total{proxy_id=\"7\",provider=\"openai\",model=\"gpt-4o-mini\","
                       "type=\"reasoning\"} 5");
    assert_has_line(t, "rubberduck_tokens_total{proxy_id=\"7\",provider=\"openai\",model=\"we\\\"ird\\nmo\\\\del\","
                       "type=\"output\"} 2");
    /* the hit's cost is what it saved, not what it cost */
    const char *saved = "rubberduck_cache_saved_usd_total{proxy_id=\"7\",provider=\"openai\",model=\"gpt-4o-mini\"} ";
    const char *cost = "rubberduck_cost_usd_total{proxy_id=\"7\",provider=\"openai\",model=\"gpt-4o-mini\"} ";
    assert_non_null(strstr(t, saved));
    assert_non_null(strstr(t, cost));
    double saved_usd = strtod(strstr(t, saved) + strlen(saved), NULL);
    double cost_usd = strtod(strstr(t, cost) + strlen(cost), NULL);
    assert_true(saved_usd > 0);
    assert_true(fabs(cost_usd - saved_usd) <= 1e-12 * cost_usd); /* the same usage, once billed, once saved */
    assert_has_line(t, "rubberduck_active_proxies 2");
    assert_has_line(t, "rubberduck_open_connections 3");
    assert_has_line(t, "rubberduck_cache_hits_total 4");
    assert_has_line(t, "rubberduck_log_records_dropped_total 9");
    assert_has_line(t, "rubberduck_requests_in_flight 0");
    assert_null(strstr(t, "rubberduck_trace_spans")); /* no exporter configured: no trace families */
    /* every family is announced once, before its samples */
    assert_non_null(strstr(t, "# TYPE rubberduck_request_duration_seconds histogram\n"));
    assert_null(strstr(strstr(t, "# TYPE rubberduck_requests_total counter\n") + 1,
                       "# TYPE rubberduck_requests_total counter\n"));
    /* with an exporter: its three counters, typed */
    extra.has_tracer = true;
    extra.spans_exported = 12;
    extra.spans_dropped = 3;
    rd_buf_reset(&b);
    assert_int_equal(rd_metrics_render(m, &extra, &b), 0);
    t = b.data;
    assert_has_line(t, "# TYPE rubberduck_trace_spans_exported_total counter");
    assert_has_line(t, "rubberduck_trace_spans_exported_total 12");
    assert_has_line(t, "rubberduck_trace_spans_dropped_total 3");
    assert_has_line(t, "rubberduck_trace_spans_failed_total 0");
    rd_buf_free(&b);
    free(f.req);
    rd_metrics_free(m);
}

static void test_metrics_model_cap(void **state)
{
    (void)state;
    struct rd_metrics *m = rd_metrics_new(1);
    struct fake f;
    fake_init(&f, 1);
    for (int i = 0; i < RD_METRICS_MAX_MODELS + 44; i++) {
        char name[32];
        snprintf(name, sizeof name, "m%03d", i);
        struct rd_req *r = fake_req(&f, 200, 100, name);
        r->usage = (struct rd_usage){1, 1, -1, -1, -1};
        rd_metrics_done(m, 0, r);
    }
    struct rd_buf b;
    rd_buf_init(&b, 0);
    assert_int_equal(rd_metrics_render(m, NULL, &b), 0);
    assert_has_line(b.data, "rubberduck_tokens_total{proxy_id=\"1\",provider=\"openai\",model=\"m255\",type=\"input\"} 1");
    assert_null(strstr(b.data, "model=\"m256\""));
    assert_has_line(b.data, "rubberduck_tokens_total{proxy_id=\"1\",provider=\"openai\",model=\"(other)\",type=\"input\"} 44");
    assert_has_line(b.data, "rubberduck_requests_total{proxy_id=\"1\",provider=\"openai\",status=\"200\"} 300");
    rd_buf_free(&b);
    free(f.req);
    rd_metrics_free(m);
    /* NULL-safe */
    rd_metrics_begin(NULL, 0);
    rd_metrics_done(NULL, 0, NULL);
    assert_int_equal(rd_metrics_in_flight(NULL), 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_escape_label),      cmocka_unit_test(test_family_and_samples),
        cmocka_unit_test(test_format_double),     cmocka_unit_test(test_bucket_boundaries),
        cmocka_unit_test(test_histogram_text),    cmocka_unit_test(test_buffer_cap),
        cmocka_unit_test(test_metrics_counts),    cmocka_unit_test(test_metrics_model_cap),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
