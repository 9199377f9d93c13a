/* Tests for src/obs/rollup.c with an injected clock: a minute is written
 * only once it closed (or on the final flush), minutes add up into their
 * 15-minute and hourly rows, percentiles come from the merged histograms,
 * what is not flushed yet is read exactly once, the totals of earlier runs
 * come back, and old rows are purged. */
#include <ftw.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "obs/rollup.h"
#include "proxy/req.h"
#include "util/err.h"

/* 2026-12-01T11:00:00Z: on an hour, so on a quarter and a minute too. */
#define T0 1796000400000LL
#define MIN_MS 60000LL

struct fix {
    char dir[64];
    struct rd_store *s;
};

static int rm_one(const char *path, const struct stat *sb, int flag, struct FTW *ftw)
{
    (void)sb, (void)flag, (void)ftw;
    return remove(path);
}

static int setup(void **state)
{
    struct fix *f = calloc(1, sizeof *f);
    snprintf(f->dir, sizeof f->dir, "/tmp/rd-rollup-XXXXXX");
    if (mkdtemp(f->dir) == NULL)
        return -1;
    char url[128], err[256];
    snprintf(url, sizeof url, "%s/rd.db", f->dir);
    if (rd_store_open(url, &f->s, err, sizeof err) != 0)
        return -1;
    *state = f;
    return 0;
}

static int teardown(void **state)
{
    struct fix *f = *state;
    rd_store_close(f->s);
    int rc = nftw(f->dir, rm_one, 16, FTW_DEPTH | FTW_PHYS);
    free(f);
    return rc;
}

static struct rd_rollup_sample sample(int64_t at_ms, int64_t proxy_id, const char *model, uint64_t latency_us)
{
    return (struct rd_rollup_sample){.wall_ms = at_ms,
                                     .proxy_id = proxy_id,
                                     .provider = "openai",
                                     .model = model,
                                     .cache = RD_CACHE_MISS,
                                     .status = 200,
                                     .latency_us = latency_us,
                                     .billed = true,
                                     .usage = {-1, -1, -1, -1, -1}};
}

/* Rows of one resolution, as a flat list. */
struct rows {
    size_t n;
    struct rd_rollup_agg v[64];
};

static void collect(void *ud, const struct rd_rollup_agg *a)
{
    struct rows *r = ud;
    assert_true(r->n < 64);
    r->v[r->n++] = *a;
}

static void read_rows(struct rd_rollup *r, struct rd_store *s, int32_t res, int64_t proxy_id, struct rows *out)
{
    memset(out, 0, sizeof *out);
    struct rd_rollup_filter f = {.res_s = res, .since_ms = 0, .proxy_id = proxy_id};
    assert_int_equal(rd_rollup_read(r, s, &f, collect, out), 0);
}

static uint64_t sum_requests(const struct rows *r)
{
    uint64_t n = 0;
    for (size_t i = 0; i < r->n; i++)
        n += r->v[i].requests;
    return n;
}

static void test_minutes_close(void **state)
{
    struct fix *f = *state;
    struct rd_rollup *r = rd_rollup_new(2);
    struct rd_rollup_sample a = sample(T0 + 10000, 1, "gpt-4o-mini", 20000);
    rd_rollup_add(r, 0, &a);
    rd_rollup_add(r, 0, &a);
    rd_rollup_add(r, 1, &a);
    struct rd_rollup_sample b = sample(T0 + 70000, 1, "gpt-4o-mini", 20000);
    rd_rollup_add(r, 1, &b);

    /* the first minute is still open: nothing written */
    assert_int_equal(rd_rollup_flush(r, f->s, T0 + 59999, false), 0);
    struct rd_rollup_filter only_db = {.res_s = RD_ROLLUP_MINUTE};
    struct rows rows;
    memset(&rows, 0, sizeof rows);
    struct rd_rollup *empty = rd_rollup_new(1);
    assert_int_equal(rd_rollup_read(empty, f->s, &only_db, collect, &rows), 0);
    assert_int_equal(rows.n, 0);
    /* ... but read: pending buckets count */
    read_rows(r, f->s, RD_ROLLUP_MINUTE, 0, &rows);
    assert_int_equal(sum_requests(&rows), 4);

    /* it closed: one bucket (both workers' slots merged) written */
    assert_int_equal(rd_rollup_flush(r, f->s, T0 + MIN_MS, false), 1);
    memset(&rows, 0, sizeof rows);
    assert_int_equal(rd_rollup_read(empty, f->s, &only_db, collect, &rows), 0);
    assert_int_equal(rows.n, 1);
    assert_int_equal(rows.v[0].start_ms, T0);
    assert_int_equal(rows.v[0].requests, 3);
    /* written and pending read together: each request once */
    read_rows(r, f->s, RD_ROLLUP_MINUTE, 0, &rows);
    assert_int_equal(sum_requests(&rows), 4);
    read_rows(r, f->s, RD_ROLLUP_MINUTE, 2, &rows);
    assert_int_equal(rows.n, 0); /* another proxy */

    /* the final flush writes the open minute as well */
    assert_int_equal(rd_rollup_flush(r, f->s, T0 + 61000, true), 1);
    assert_int_equal(rd_rollup_flush(r, f->s, T0 + 3 * MIN_MS, false), 0);
    memset(&rows, 0, sizeof rows);
    struct rd_rollup_filter hours = {.res_s = RD_ROLLUP_HOUR};
    assert_int_equal(rd_rollup_read(empty, f->s, &hours, collect, &rows), 0);
    assert_int_equal(rows.n, 1);
    assert_int_equal(rows.v[0].requests, 4);
    rd_rollup_free(empty);
    rd_rollup_free(r);
}

static void test_quarters_and_hours(void **state)
{
    struct fix *f = *state;
    struct rd_rollup *r = rd_rollup_new(1);
    const int minutes[] = {0, 14, 15, 59, 60};
    for (size_t i = 0; i < sizeof minutes / sizeof minutes[0]; i++) {
        struct rd_rollup_sample s = sample(T0 + minutes[i] * MIN_MS + 5000, 7, "m", 1000);
        rd_rollup_add(r, 0, &s);
        /* flushed minute by minute, so the coarser rows are merged in the database */
        assert_int_equal(rd_rollup_flush(r, f->s, T0 + (minutes[i] + 1) * MIN_MS, false), 1);
    }
    struct rd_rollup *none = rd_rollup_new(1);
    struct rows q, h;
    read_rows(none, f->s, RD_ROLLUP_QUARTER, 7, &q);
    assert_int_equal(q.n, 4);
    const int64_t qstart[] = {T0, T0 + 15 * MIN_MS, T0 + 45 * MIN_MS, T0 + 60 * MIN_MS};
    const uint64_t qreq[] = {2, 1, 1, 1};
    for (size_t i = 0; i < 4; i++) {
        assert_int_equal(q.v[i].start_ms, qstart[i]);
        assert_int_equal(q.v[i].res_s, RD_ROLLUP_QUARTER);
        assert_int_equal(q.v[i].requests, qreq[i]);
        assert_int_equal(q.v[i].latency.n, qreq[i]);
    }
    read_rows(none, f->s, RD_ROLLUP_HOUR, 7, &h);
    assert_int_equal(h.n, 2);
    assert_int_equal(h.v[0].start_ms, T0);
    assert_int_equal(h.v[0].requests, 4);
    assert_int_equal(h.v[1].start_ms, T0 + 60 * MIN_MS);
    assert_int_equal(h.v[1].requests, 1);
    /* a window: the quarters from T0 + 15 min, before T0 + 60 min */
    struct rows w;
    memset(&w, 0, sizeof w);
    struct rd_rollup_filter win = {
        .res_s = RD_ROLLUP_QUARTER, .since_ms = T0 + 15 * MIN_MS, .until_ms = T0 + 60 * MIN_MS};
    assert_int_equal(rd_rollup_read(none, f->s, &win, collect, &w), 0);
    assert_int_equal(sum_requests(&w), 2);
    rd_rollup_free(none);
    rd_rollup_free(r);
}

static void test_counters_and_percentiles(void **state)
{
    struct fix *f = *state;
    struct rd_rollup *r = rd_rollup_new(2);
    /* minute 0: 98 fast answers (10 ms), with usage and a price */
    for (int i = 0; i < 98; i++) {
        struct rd_rollup_sample s = sample(T0 + 1000, 3, "gpt-4o-mini", 10000);
        s.usage = (struct rd_usage){.input = 10, .output = 5, .cached = 2, .cache_write = 0, .reasoning = 1};
        s.has_cost = true;
        s.cost_usd = 0.001;
        rd_rollup_add(r, (unsigned)i % 2, &s);
    }
    assert_int_equal(rd_rollup_flush(r, f->s, T0 + MIN_MS, false), 1);
    /* minute 1: a hit (no tokens billed), an unpriced answer, a simulated
     * 429 that was also delayed (and said delayed twice), an upstream 502 */
    struct rd_rollup_sample hit = sample(T0 + MIN_MS + 1, 3, "gpt-4o-mini", 2000000);
    hit.cache = RD_CACHE_HIT;
    hit.billed = false;
    hit.usage = (struct rd_usage){.input = 999, .output = 999};
    rd_rollup_add(r, 0, &hit);
    struct rd_rollup_sample unpriced = sample(T0 + MIN_MS + 2, 3, "gpt-4o-mini", 2100000);
    unpriced.usage = (struct rd_usage){.input = 7, .output = 3, .cached = -1, .cache_write = -1, .reasoning = -1};
    rd_rollup_add(r, 1, &unpriced);
    struct rd_rollup_sample sim = sample(T0 + MIN_MS + 3, 3, "gpt-4o-mini", 5000);
    sim.status = 429;
    sim.simulated = true;
    sim.cache = RD_CACHE_BYPASS;
    sim.failures_seen = (1u << RD_FAIL_RATE_LIMITED) | (1u << RD_FAIL_DELAYED);
    rd_rollup_add(r, 1, &sim);
    struct rd_rollup_sample up = sample(T0 + MIN_MS + 4, 3, "gpt-4o-mini", 5000);
    up.status = 502;
    rd_rollup_add(r, 0, &up);
    assert_int_equal(rd_rollup_flush(r, f->s, T0 + 2 * MIN_MS, false), 1);

    struct rows h;
    read_rows(r, f->s, RD_ROLLUP_HOUR, 3, &h);
    assert_int_equal(h.n, 1);
    const struct rd_rollup_agg *a = &h.v[0];
    assert_int_equal(a->requests, 102);
    assert_int_equal(a->cache_hits, 1);
    assert_int_equal(a->cache_misses, 100);
    assert_int_equal(a->cache_bypass, 1);
    assert_int_equal(a->errors_simulated, 1);
    assert_int_equal(a->errors_upstream, 1);
    assert_int_equal(a->input_tokens, 98 * 10 + 7);
    assert_int_equal(a->output_tokens, 98 * 5 + 3);
    assert_int_equal(a->cached_tokens, 98 * 2);
    assert_int_equal(a->reasoning_tokens, 98);
    assert_true(a->cost_usd > 0.0979 && a->cost_usd < 0.0981);
    assert_int_equal(a->priced, 98);
    assert_int_equal(a->unpriced, 1); /* the hit is neither */
    /* the hourly histogram is the merge of both minutes' */
    assert_int_equal(a->latency.n, 102);
    double p50, p95, p99;
    assert_true(rd_hist_quantile(&a->latency, 0.50, &p50));
    assert_true(rd_hist_quantile(&a->latency, 0.95, &p95));
    assert_true(rd_hist_quantile(&a->latency, 0.99, &p99));
    assert_true(p50 >= 5000 && p50 <= 11250);
    assert_true(p95 <= 11250);
    assert_true(p99 >= 1800000 && p99 <= 2100000);

    /* failures, each type once per request, come back as the totals of an
     * earlier run; so do the usage sums */
    struct rd_rollup *next = rd_rollup_new(1);
    assert_int_equal(rd_rollup_load_base(next, f->s), 0);
    uint64_t counts[RD_ROLLUP_FAIL_TYPES] = {0};
    int64_t since = INT64_MAX;
    rd_rollup_failures_base(next, 3, counts, &since);
    assert_int_equal(counts[RD_FAIL_RATE_LIMITED], 1);
    assert_int_equal(counts[RD_FAIL_DELAYED], 1);
    assert_int_equal(counts[RD_FAIL_TIMEOUT], 0);
    assert_int_equal(since, T0);
    struct rows base;
    memset(&base, 0, sizeof base);
    rd_rollup_usage_base(next, 3, collect, &base);
    assert_int_equal(base.n, 1);
    assert_int_equal(base.v[0].requests, 102);
    assert_int_equal(base.v[0].cache_hits, 1);
    assert_int_equal(base.v[0].input_tokens, 98 * 10 + 7);
    assert_string_equal(base.v[0].model, "gpt-4o-mini");
    assert_string_equal(base.v[0].provider, "openai");
    memset(&base, 0, sizeof base);
    rd_rollup_usage_base(next, 4, collect, &base);
    assert_int_equal(base.n, 0);
    rd_rollup_free(next);
    rd_rollup_free(r);
}

struct count {
    uint64_t other, total, n;
};

static void count_fn(void *ud, const struct rd_rollup_agg *a)
{
    struct count *c = ud;
    c->n++;
    c->total += a->requests;
    if (strcmp(a->model, "(other)") == 0)
        c->other += a->requests;
}

static void test_model_cap(void **state)
{
    struct fix *f = *state;
    struct rd_rollup *r = rd_rollup_new(1);
    char model[32];
    for (int i = 0; i < RD_ROLLUP_MAX_KEYS + 44; i++) {
        snprintf(model, sizeof model, "model-%d", i);
        struct rd_rollup_sample s = sample(T0, 9, model, 1000);
        rd_rollup_add(r, 0, &s);
    }
    /* the models past the cap share one "(other)" bucket */
    assert_int_equal(rd_rollup_flush(r, f->s, T0 + MIN_MS, false), RD_ROLLUP_MAX_KEYS + 1);
    struct rd_rollup *next = rd_rollup_new(1);
    assert_int_equal(rd_rollup_load_base(next, f->s), 0);
    struct count cnt = {0, 0, 0};
    rd_rollup_usage_base(next, 9, count_fn, &cnt);
    /* the hourly sums come back by model name, "(other)" first: it and
     * 255 models are kept apart, the last model joins "(other)" */
    assert_int_equal(cnt.n, RD_ROLLUP_MAX_KEYS);
    assert_int_equal(cnt.other, 45);
    assert_int_equal(cnt.total, RD_ROLLUP_MAX_KEYS + 44);
    rd_rollup_free(next);
    rd_rollup_free(r);
}

static void test_purge(void **state)
{
    struct fix *f = *state;
    struct rd_rollup *r = rd_rollup_new(1);
    int64_t now = T0 + 30LL * 24 * 3600 * 1000; /* 30 days on */
    struct rd_rollup_sample old = sample(T0, 5, "m", 1000);
    struct rd_rollup_sample days3 = sample(now - 3LL * 24 * 3600 * 1000, 5, "m", 1000);
    struct rd_rollup_sample recent = sample(now - 3600 * 1000, 5, "m", 1000);
    rd_rollup_add(r, 0, &old);
    rd_rollup_add(r, 0, &days3);
    rd_rollup_add(r, 0, &recent);
    assert_int_equal(rd_rollup_flush(r, f->s, now, false), 3);
    assert_true(rd_rollup_purge(f->s, now) > 0);
    struct rd_rollup *none = rd_rollup_new(1);
    struct rows m, q, h;
    read_rows(none, f->s, RD_ROLLUP_MINUTE, 5, &m);
    read_rows(none, f->s, RD_ROLLUP_QUARTER, 5, &q);
    read_rows(none, f->s, RD_ROLLUP_HOUR, 5, &h);
    assert_int_equal(m.n, 1); /* only the last 48 hours' minutes */
    assert_int_equal(m.v[0].start_ms, recent.wall_ms - recent.wall_ms % MIN_MS);
    assert_int_equal(q.n, 2); /* 14 days of quarters */
    assert_int_equal(h.n, 3); /* hours for good */
    rd_rollup_free(none);
    rd_rollup_free(r);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_minutes_close, setup, teardown),
        cmocka_unit_test_setup_teardown(test_quarters_and_hours, setup, teardown),
        cmocka_unit_test_setup_teardown(test_counters_and_percentiles, setup, teardown),
        cmocka_unit_test_setup_teardown(test_model_cap, setup, teardown),
        cmocka_unit_test_setup_teardown(test_purge, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
