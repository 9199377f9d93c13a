/* Tests for src/obs/hist.c: bucket boundaries, quantiles within the
 * bucket's precision (better with interpolation), merging equal to adding,
 * and blobs that round-trip while damaged ones are refused. */
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "obs/hist.h"
#include "util/err.h"

static double rel_err(double got, double want)
{
    return fabs(got - want) / want;
}

static void test_buckets(void **state)
{
    (void)state;
    assert_int_equal(rd_hist_bucket_of(0), 0);
    assert_int_equal(rd_hist_bucket_of(511), 0);
    assert_int_equal(rd_hist_bucket_of(512), 1);
    assert_int_equal(rd_hist_bucket_of(575), 1); /* 512 + 64 - 1: the first eighth of the octave */
    assert_int_equal(rd_hist_bucket_of(576), 2);
    assert_int_equal(rd_hist_bucket_of(1023), 8);
    assert_int_equal(rd_hist_bucket_of(1024), 9);
    assert_true(rd_hist_bucket_of(120000000) < RD_HIST_BUCKETS - 1); /* 120 s: not in the overflow */
    assert_int_equal(rd_hist_bucket_of((uint64_t)1 << 29), RD_HIST_BUCKETS - 1);
    assert_int_equal(rd_hist_bucket_of(UINT64_MAX), RD_HIST_BUCKETS - 1);
    /* every value lies in [floor(b), floor(b + 1)) of its bucket, and a
     * bucket is at most an eighth of its floor wide */
    for (uint64_t v = 1; v < ((uint64_t)1 << 30); v = v * 21 / 20 + 1) {
        unsigned b = rd_hist_bucket_of(v);
        assert_true(rd_hist_bucket_floor(b) <= v);
        if (b + 1 < RD_HIST_BUCKETS) {
            assert_true(v < rd_hist_bucket_floor(b + 1));
            if (b > 0)
                assert_true(rd_hist_bucket_floor(b + 1) - rd_hist_bucket_floor(b) <= rd_hist_bucket_floor(b) / 8);
        }
    }
}

static void test_quantiles(void **state)
{
    (void)state;
    struct rd_hist h;
    rd_hist_init(&h);
    double us;
    assert_false(rd_hist_quantile(&h, 0.5, &us));
    /* 1 ms .. 1000 ms in 1 ms steps: the q-quantile is q * 1000 ms */
    for (uint64_t k = 1; k <= 1000; k++)
        rd_hist_add(&h, k * 1000);
    assert_int_equal(h.n, 1000);
    assert_int_equal(h.min_us, 1000);
    assert_int_equal(h.max_us, 1000000);
    const double qs[] = {0.5, 0.9, 0.95, 0.99};
    for (size_t i = 0; i < sizeof qs / sizeof qs[0]; i++) {
        assert_true(rd_hist_quantile(&h, qs[i], &us));
        assert_true(rel_err(us, qs[i] * 1e6) < 0.02);
    }
    assert_true(rd_hist_quantile(&h, 1.0, &us));
    assert_true(us == 1000000.0);
    assert_true(rd_hist_quantile(&h, 0.0, &us));
    assert_true(us >= 1000.0 && us < 1200.0);
    assert_false(rd_hist_quantile(&h, 1.5, &us));
    assert_false(rd_hist_quantile(&h, -0.1, &us));
    assert_false(rd_hist_quantile(&h, NAN, &us));

    /* a single value is exact, whatever its bucket's width */
    struct rd_hist one;
    rd_hist_init(&one);
    rd_hist_add(&one, 123456);
    assert_true(rd_hist_quantile(&one, 0.99, &us));
    assert_true(us == 123456.0);
    /* beyond the last octave, the quantile stays within what was seen */
    rd_hist_add(&one, 900000000);
    assert_true(rd_hist_quantile(&one, 1.0, &us));
    assert_true(us == 900000000.0);
}

static void test_skewed(void **state)
{
    (void)state;
    /* 98 fast answers and 2 slow ones: p50 is fast, p99 is slow */
    struct rd_hist h;
    rd_hist_init(&h);
    for (int i = 0; i < 98; i++)
        rd_hist_add(&h, 5000 + (uint64_t)i);
    rd_hist_add(&h, 30000000);
    rd_hist_add(&h, 31000000);
    double p50, p99;
    assert_true(rd_hist_quantile(&h, 0.5, &p50));
    assert_true(rd_hist_quantile(&h, 0.99, &p99));
    assert_true(p50 >= 5000 && p50 < 5700);
    assert_true(p99 >= 28000000 && p99 <= 31000000);
}

static void test_merge(void **state)
{
    (void)state;
    struct rd_hist all, a, b;
    rd_hist_init(&all);
    rd_hist_init(&a);
    rd_hist_init(&b);
    for (uint64_t k = 0; k < 5000; k++) {
        uint64_t v = (k * 7919) % 3000000 + 100;
        rd_hist_add(&all, v);
        rd_hist_add(k % 3 ? &a : &b, v);
    }
    struct rd_hist m;
    rd_hist_init(&m);
    rd_hist_merge(&m, &a);
    rd_hist_merge(&m, &b);
    assert_memory_equal(&m, &all, sizeof m);
    struct rd_hist empty;
    rd_hist_init(&empty);
    rd_hist_merge(&m, &empty);
    assert_memory_equal(&m, &all, sizeof m);
}

static void test_blob(void **state)
{
    (void)state;
    struct rd_hist h, back;
    rd_hist_init(&h);
    uint8_t blob[RD_HIST_BLOB_MAX];
    size_t len = rd_hist_encode(&h, blob, sizeof blob);
    assert_true(len > 0);
    assert_int_equal(rd_hist_decode(&back, blob, len), 0);
    assert_int_equal(back.n, 0);
    for (uint64_t k = 0; k < 300; k++)
        rd_hist_add(&h, k * k * 97);
    rd_hist_add(&h, UINT64_MAX / 2);
    len = rd_hist_encode(&h, blob, sizeof blob);
    assert_true(len > 0 && len < 600); /* compact: only the buckets in use */
    assert_int_equal(rd_hist_decode(&back, blob, len), 0);
    assert_memory_equal(&back, &h, sizeof h);
    /* every bucket used, with the largest counts: still fits the maximum */
    struct rd_hist full;
    rd_hist_init(&full);
    for (unsigned i = 0; i < RD_HIST_BUCKETS; i++)
        full.c[i] = UINT64_MAX / RD_HIST_BUCKETS;
    full.n = (UINT64_MAX / RD_HIST_BUCKETS) * RD_HIST_BUCKETS;
    full.max_us = full.sum_us = UINT64_MAX;
    assert_true(rd_hist_encode(&full, blob, sizeof blob) > 0);
    assert_int_equal(rd_hist_encode(&h, blob, 3), 0);

    /* damaged blobs: refused, and the histogram left empty */
    len = rd_hist_encode(&h, blob, sizeof blob);
    for (size_t cut = 0; cut < len; cut++) {
        assert_int_equal(rd_hist_decode(&back, blob, cut), RD_EPROTO);
        assert_int_equal(back.n, 0);
    }
    uint8_t longer[RD_HIST_BLOB_MAX + 1];
    memcpy(longer, blob, len);
    longer[len] = 0; /* a trailing byte */
    assert_int_equal(rd_hist_decode(&back, longer, len + 1), RD_EPROTO);
    uint8_t bad[RD_HIST_BLOB_MAX];
    memcpy(bad, blob, len);
    bad[0] = 9; /* unknown version */
    assert_int_equal(rd_hist_decode(&back, bad, len), RD_EPROTO);
    const uint8_t gap_out[] = {1, 1, 1, 1, 1, 200, 1, 1}; /* n 1, then a bucket past the end */
    assert_int_equal(rd_hist_decode(&back, gap_out, sizeof gap_out), RD_EPROTO);
    const uint8_t mismatch[] = {1, 2, 1, 1, 2, 5, 1}; /* n 2, one counted */
    assert_int_equal(rd_hist_decode(&back, mismatch, sizeof mismatch), RD_EPROTO);
    const uint8_t zero[] = {1, 0, 0, 0, 0, 5, 0}; /* a bucket of count 0 */
    assert_int_equal(rd_hist_decode(&back, zero, sizeof zero), RD_EPROTO);
    const uint8_t ok[] = {1, 1, 7, 7, 7, 0, 1};
    assert_int_equal(rd_hist_decode(&back, ok, sizeof ok), 0);
    assert_int_equal(back.c[0], 1);
    const uint8_t longvar[] = {1, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x7f};
    assert_int_equal(rd_hist_decode(&back, longvar, sizeof longvar), RD_EPROTO);
    assert_int_equal(rd_hist_decode(&back, NULL, 0), RD_EPROTO);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_buckets), cmocka_unit_test(test_quantiles), cmocka_unit_test(test_skewed),
        cmocka_unit_test(test_merge),   cmocka_unit_test(test_blob),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
