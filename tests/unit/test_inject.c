/* The pure cores of the timeout and error_injection stages (proxy/inject.h):
 * draw tables, how the rates combine, and reproducibility by seed. */
#include <math.h>
#include <stdio.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>
#include <cmocka.h>

#include "proxy/config.h"
#include "proxy/failure.h"
#include "proxy/inject.h"
#include "proxy/pipeline.h"
#include "proxy/req.h"
#include "proxy/stages/stages.h"
#include "util/json.h"

static struct json_object *doc(const char *text)
{
    struct json_object *o = NULL;
    assert_int_equal(rd_json_parse(text, strlen(text), 65536, &o, NULL), 0);
    struct rd_config_err err;
    assert_int_equal(rd_config_validate(o, &err), 0);
    return o;
}

/* The draw a pick reads: the top 53 bits of the stream's next value (a
 * second stream started the same way sees the same value). */
static uint64_t top53(struct rd_rng *r)
{
    return rd_rng_next(r) >> 11;
}

/* The table picks the first outcome whose cumulative bound is above the
 * draw: checked against a linear reading of the header's rule on many
 * draws, with rates that do and do not add up to 1. */
static void test_table_matches_rule(void **state)
{
    (void)state;
    static const double rates[][4] = {
        {0.1, 0.2, 0.3, 0.4}, {0.05, 0, 0.15, 0.03}, {1, 0, 0, 0}, {0, 0, 0, 0}, {0.5, 0.5, 0, 0},
    };
    for (size_t k = 0; k < sizeof rates / sizeof rates[0]; k++) {
        struct rd_draw_table t;
        rd_draw_table_init(&t);
        for (int i = 0; i < 4; i++)
            rd_draw_table_add(&t, 100 + i, rates[k][i]);
        for (uint64_t seq = 1; seq <= 20000; seq++) {
            struct rd_rng a, b;
            rd_rng_init(&a, 42, seq, 7);
            rd_rng_init(&b, 42, seq, 7);
            int got = rd_draw_table_pick(&t, &a);
            uint64_t u = top53(&b);
            int want = -1;
            uint64_t cum = 0;
            for (int i = 0; i < 4; i++) {
                cum += rates[k][i] >= 1 ? UINT64_C(1) << 53 : (uint64_t)(rates[k][i] * 0x1p53);
                if (rates[k][i] > 0 && u < cum) {
                    want = 100 + i;
                    break;
                }
            }
            assert_int_equal(got, want);
            /* one draw per pick, whatever the table holds */
            assert_int_equal(rd_rng_next(&a), rd_rng_next(&b));
        }
    }
}

static void test_table_edges(void **state)
{
    (void)state;
    struct rd_draw_table t;
    rd_draw_table_init(&t);
    rd_draw_table_add(&t, 1, 0.0); /* never fires: not even stored */
    rd_draw_table_add(&t, 2, -0.5);
    assert_int_equal(t.n, 0);
    rd_draw_table_add(&t, 3, 1.0);
    rd_draw_table_add(&t, 4, 0.5); /* after a total of 1: can never fire */
    for (uint64_t seq = 1; seq <= 1000; seq++) {
        struct rd_rng r;
        rd_rng_init(&r, 9, seq, 1);
        assert_int_equal(rd_draw_table_pick(&t, &r), 3);
    }
    /* the validator's tolerance (sum 1 + 1e-9) is clamped, not wrapped */
    rd_draw_table_init(&t);
    rd_draw_table_add(&t, 5, 0.6);
    rd_draw_table_add(&t, 6, 0.400000001);
    assert_true(t.cum[1] == UINT64_C(1) << 53);
    /* an empty table picks nothing */
    rd_draw_table_init(&t);
    struct rd_rng r;
    rd_rng_init(&r, 1, 1, 1);
    assert_int_equal(rd_draw_table_pick(&t, &r), -1);
}

/* The rates combine as documented: one draw u; u < hang_rate hangs,
 * u < hang_rate + timeout_rate times out, else the request passes; the
 * measured shares are within 5 sigma of the rates. */
static void test_timeout_rates_combine(void **state)
{
    (void)state;
    struct json_object *d = doc("{\"timeout_config\": {\"delay_ms\": 5000, \"timeout_rate\": 0.1, \"hang_rate\": 0.02}}");
    struct rd_timeout_cfg c;
    assert_true(rd_timeout_compile(d, &c));
    assert_int_equal(c.delay_ms, 5000);
    assert_int_equal(c.label, rd_rng_label("timeout"));
    const int n = 100000;
    int count[4] = {0};
    for (int seq = 1; seq <= n; seq++) {
        struct rd_rng r, u;
        rd_rng_init(&r, 1234, (uint64_t)seq, c.label);
        rd_rng_init(&u, 1234, (uint64_t)seq, c.label);
        enum rd_timeout_outcome o = rd_timeout_decide(&c, &r);
        count[o]++;
        double x = (double)top53(&u) / 0x1p53;
        if (x < 0.02)
            assert_int_equal(o, RD_TIMEOUT_HANG);
        else if (x < 0.12)
            assert_int_equal(o, RD_TIMEOUT_FAIL);
        else
            assert_int_equal(o, RD_TIMEOUT_PASS); /* rates set: passing requests are not delayed */
    }
    assert_int_equal(count[RD_TIMEOUT_DELAY], 0);
    const double p[4] = {[RD_TIMEOUT_PASS] = 0.88, [RD_TIMEOUT_FAIL] = 0.1, [RD_TIMEOUT_HANG] = 0.02};
    for (int o = 0; o < 4; o++) {
        double sigma = sqrt(n * p[o] * (1 - p[o]));
        assert_true(fabs(count[o] - n * p[o]) <= 5 * sigma + 1e-9);
    }
    json_object_put(d);
}

static void test_timeout_compile(void **state)
{
    (void)state;
    struct rd_timeout_cfg c;
    struct json_object *d = doc("{}");
    assert_false(rd_timeout_compile(d, &c)); /* absent: the stage is not in the run list */
    json_object_put(d);
    d = doc("{\"timeout_config\": {\"enabled\": false, \"hang_rate\": 1}}");
    assert_false(rd_timeout_compile(d, &c));
    json_object_put(d);
    d = doc("{\"timeout_config\": {\"delay_ms\": 0, \"timeout_rate\": 0}}");
    assert_false(rd_timeout_compile(d, &c)); /* nothing to do */
    json_object_put(d);

    /* no rates: every request is delayed, without a draw */
    d = doc("{\"timeout_config\": {\"enabled\": true, \"delay_ms\": 250}}");
    assert_true(rd_timeout_compile(d, &c));
    for (uint64_t seq = 1; seq <= 100; seq++) {
        struct rd_rng r;
        rd_rng_init(&r, 5, seq, c.label);
        assert_int_equal(rd_timeout_decide(&c, &r), RD_TIMEOUT_DELAY);
    }
    json_object_put(d);

    /* rate 1: always; a timeout with delay_ms 0 fails at once */
    d = doc("{\"timeout_config\": {\"timeout_rate\": 1}}");
    assert_true(rd_timeout_compile(d, &c));
    assert_int_equal(c.delay_ms, 0);
    for (uint64_t seq = 1; seq <= 100; seq++) {
        struct rd_rng r;
        rd_rng_init(&r, 5, seq, c.label);
        assert_int_equal(rd_timeout_decide(&c, &r), RD_TIMEOUT_FAIL);
    }
    json_object_put(d);
    d = doc("{\"timeout_config\": {\"hang_rate\": 0.3, \"timeout_rate\": 0.7}}");
    assert_true(rd_timeout_compile(d, &c));
    int hangs = 0;
    for (uint64_t seq = 1; seq <= 1000; seq++) {
        struct rd_rng r;
        rd_rng_init(&r, 5, seq, c.label);
        enum rd_timeout_outcome o = rd_timeout_decide(&c, &r);
        assert_true(o == RD_TIMEOUT_HANG || o == RD_TIMEOUT_FAIL); /* sum 1: nothing passes */
        hangs += o == RD_TIMEOUT_HANG;
    }
    assert_true(hangs > 300 - 5 * 15 && hangs < 300 + 5 * 15);
    json_object_put(d);
}

static void test_inject_compile(void **state)
{
    (void)state;
    struct rd_inject_cfg c;
    struct json_object *d = doc("{\"error_injection\": {\"503_rate\": 0.01, \"400_rate\": 0.05, \"429_rate\": 0.15, "
                                "\"401_rate\": 0.02, \"500_rate\": 0.03, \"404_rate\": 0}}");
    assert_true(rd_inject_compile(d, &c));
    /* ascending statuses, zero rates left out, whatever the key order */
    static const int want[] = {400, 401, 429, 500, 503};
    assert_int_equal(c.draws.n, 5);
    for (size_t i = 0; i < 5; i++)
        assert_int_equal(c.draws.value[i], want[i]);
    assert_int_equal(c.retry_after_s, RD_INJECT_RETRY_AFTER_DEFAULT);
    assert_int_equal(c.limit, RD_INJECT_LIMIT_DEFAULT);
    assert_int_equal(c.label, rd_rng_label("error_injection"));
    json_object_put(d);

    /* the same rates in another key order give the same outcomes */
    struct rd_inject_cfg c2;
    d = doc("{\"error_injection\": {\"400_rate\": 0.05, \"401_rate\": 0.02, \"429_rate\": 0.15, \"500_rate\": 0.03, "
            "\"503_rate\": 0.01}}");
    assert_true(rd_inject_compile(d, &c2));
    for (uint64_t seq = 1; seq <= 5000; seq++) {
        struct rd_rng a, b;
        rd_rng_init(&a, 77, seq, c.label);
        rd_rng_init(&b, 77, seq, c2.label);
        assert_int_equal(rd_inject_decide(&c, &a), rd_inject_decide(&c2, &b));
    }
    json_object_put(d);

    /* retry_after_s and the limit of the proxy's rate_limiting block */
    d = doc("{\"error_injection\": {\"429_rate\": 1, \"retry_after_s\": 7}, "
            "\"rate_limiting\": {\"requests_per_minute\": 100, \"burst_allowance\": 20}}");
    assert_true(rd_inject_compile(d, &c));
    assert_int_equal(c.retry_after_s, 7);
    assert_int_equal(c.limit, 120);
    json_object_put(d);

    d = doc("{\"error_injection\": {\"enabled\": false, \"500_rate\": 1}}");
    assert_false(rd_inject_compile(d, &c));
    json_object_put(d);
    d = doc("{\"error_injection\": {\"500_rate\": 0, \"retry_after_s\": 3}}");
    assert_false(rd_inject_compile(d, &c)); /* no rate above 0: not in the run list */
    json_object_put(d);
    d = doc("{\"error_injection\": {\"400_rate\": 0.5, \"599_rate\": 0.5}}");
    assert_true(rd_inject_compile(d, &c));
    assert_int_equal(c.draws.n, 2);
    json_object_put(d);
}

/* Same seed and request number: same outcome, run after run; another seed
 * gives another sequence; the timeout and error_injection decisions about
 * one request are independent streams (their labels differ). The measured
 * rate of a 10 % 500 is within 5 sigma. */
static void test_seed_reproducible(void **state)
{
    (void)state;
    struct json_object *d = doc("{\"error_injection\": {\"500_rate\": 0.1}, \"timeout_config\": {\"timeout_rate\": 0.1}}");
    struct rd_inject_cfg c;
    struct rd_timeout_cfg t;
    assert_true(rd_inject_compile(d, &c));
    assert_true(rd_timeout_compile(d, &t));
    enum { N = 1000 };
    static int first[N], again[N], other[N];
    int both = 0, hits = 0, differ = 0;
    for (uint64_t seq = 1; seq <= N; seq++) {
        struct rd_rng r;
        rd_rng_init(&r, 20261202, seq, c.label);
        first[seq - 1] = rd_inject_decide(&c, &r);
        rd_rng_init(&r, 20261202, seq, c.label);
        again[seq - 1] = rd_inject_decide(&c, &r);
        rd_rng_init(&r, 20261203, seq, c.label);
        other[seq - 1] = rd_inject_decide(&c, &r);
        struct rd_rng tr;
        rd_rng_init(&tr, 20261202, seq, t.label);
        bool timed_out = rd_timeout_decide(&t, &tr) == RD_TIMEOUT_FAIL;
        hits += first[seq - 1] == 500;
        both += first[seq - 1] == 500 && timed_out;
        differ += first[seq - 1] != other[seq - 1];
    }
    assert_memory_equal(first, again, sizeof first);
    assert_true(differ > 0);
    double sigma = sqrt(N * 0.1 * 0.9);
    assert_true(fabs(hits - N * 0.1) <= 5 * sigma);
    /* independent: about 1 % of requests get both, not 10 % (same draw) or 0 */
    assert_true(both >= 1 && both <= 30);
    json_object_put(d);
}

/* Configured, the two stages run in the default order before the
 * upstream; unconfigured (absent, disabled, all rates 0) they are not in
 * the run list at all. */
static void run_list(const char *text, const char *want)
{
    struct json_object *d = doc(text);
    struct rd_pipeline pl;
    struct rd_config_err err;
    assert_int_equal(rd_pipeline_compile(d, NULL, &pl, &err), 0);
    char names[256] = "";
    for (size_t i = 0; i < pl.n; i++) {
        size_t n = strlen(names);
        snprintf(names + n, sizeof names - n, "%s%s", i ? " " : "", pl.run[i].stage->name);
    }
    assert_string_equal(names, want);
    rd_pipeline_free(&pl);
    json_object_put(d);
}

static void test_pipeline_run_list(void **state)
{
    (void)state;
    run_list("{\"error_injection\": {\"500_rate\": 0.1}, \"timeout_config\": {\"hang_rate\": 0.1}}",
             "timeout error_injection cache upstream");
    run_list("{\"error_injection\": {\"500_rate\": 0}, \"timeout_config\": {\"enabled\": false, \"hang_rate\": 1}}",
             "cache upstream");
    run_list("{\"timeout_config\": {\"delay_ms\": 10}}", "timeout cache upstream");
    /* dropped by middleware_pipeline: configured but not run */
    run_list("{\"error_injection\": {\"500_rate\": 1}, \"middleware_pipeline\": [\"provider_forwarding\"]}",
             "upstream");
}

/* A request whose outcome a scenario or an override decided (plan.set) is
 * left to them: neither stage draws or answers; both go on at once. (A
 * draw would read req->snap, NULL here.) */
static void test_plan_set_skips_draws(void **state)
{
    (void)state;
    struct json_object *d = doc("{\"error_injection\": {\"500_rate\": 1}, \"timeout_config\": {\"hang_rate\": 1}}");
    struct rd_stage_env env = {.doc = d, .provider = NULL};
    struct rd_config_err err;
    const struct rd_stage *stages[] = {&rd_stage_timeout, &rd_stage_error_injection};
    for (size_t i = 0; i < 2; i++) {
        void *st = NULL;
        assert_int_equal(stages[i]->compile(&env, &st, &err), 0);
        assert_non_null(st);
        struct rd_req req;
        memset(&req, 0, sizeof req);
        req.plan.set = true;
        req.plan.status = 503;
        assert_int_equal(stages[i]->run(&req, st), RD_STAGE_NEXT);
        assert_int_equal(req.failure, RD_FAIL_NONE);
        assert_int_equal(req.state, RD_REQ_NEW);
        stages[i]->release(st);
    }
    json_object_put(d);
}

static void test_messages(void **state)
{
    (void)state;
    assert_string_equal(rd_failure_message(500), "The server had an error while processing your request.");
    assert_string_equal(rd_failure_message(529), "Overloaded");
    for (int s = RD_INJECT_STATUS_MIN; s <= RD_INJECT_STATUS_MAX; s++)
        assert_true(rd_failure_message(s)[0] != '\0');
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_table_matches_rule), cmocka_unit_test(test_table_edges),
        cmocka_unit_test(test_timeout_rates_combine), cmocka_unit_test(test_timeout_compile),
        cmocka_unit_test(test_inject_compile), cmocka_unit_test(test_seed_reproducible),
        cmocka_unit_test(test_pipeline_run_list), cmocka_unit_test(test_plan_set_skips_draws),
        cmocka_unit_test(test_messages),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
