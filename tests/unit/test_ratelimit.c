/* Tests for src/proxy/ratelimit.c with an injected clock: sliding-window
 * arithmetic at the window's edges, token-bucket refill exactness, bursts,
 * Retry-After and Reset values, fresh keys, key expiry and the key cap,
 * header keys, the tokens limiter, and two threads on one key admitting
 * exactly the ceiling (also run under TSan). */
#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>
#include <pthread.h>

#include "proxy/ratelimit.h"
#include "util/err.h"
#include "util/hash.h"

#define T0 1000000u /* an arbitrary monotonic start */

static struct rd_ratelimit_store *store(enum rd_rl_algorithm alg, uint32_t rpm, uint32_t burst, size_t max_keys)
{
    struct rd_rl_limits l = {.algorithm = alg, .per_minute = rpm, .burst = burst};
    const char *why = NULL;
    struct rd_ratelimit_store *s = rd_ratelimit_store_mem_new(&l, max_keys, &why);
    assert_non_null(s);
    assert_null(why);
    return s;
}

static struct rd_rl_verdict admit(struct rd_ratelimit_store *s, const char *key, uint64_t now)
{
    struct rd_rl_verdict v;
    assert_int_equal(s->ops->admit(s, key, strlen(key), now, 1, &v), 0);
    return v;
}

/* Admits n at now and asserts each is admitted. */
static void admit_n(struct rd_ratelimit_store *s, const char *key, uint64_t now, int n)
{
    for (int i = 0; i < n; i++)
        assert_true(admit(s, key, now).admitted);
}

static void test_window_edges(void **state)
{
    (void)state;
    struct rd_ratelimit_store *s = store(RD_RL_SLIDING_WINDOW, 3, 0, 100);
    struct rd_rl_verdict v = admit(s, "k", T0);
    assert_true(v.admitted);
    assert_int_equal(v.limit, 3);
    assert_int_equal(v.remaining, 2);
    assert_int_equal(v.reset_s, 60);
    assert_int_equal(v.retry_after_s, 0);
    admit_n(s, "k", T0, 2);
    v = admit(s, "k", T0);
    assert_false(v.admitted);
    assert_int_equal(v.remaining, 0);
    assert_int_equal(v.retry_after_s, 60);
    assert_int_equal(v.reset_s, 60);
    /* 59999 ms later the three still count; one millisecond is left */
    v = admit(s, "k", T0 + 59999);
    assert_false(v.admitted);
    assert_int_equal(v.retry_after_s, 1);
    assert_int_equal(v.reset_s, 1);
    /* at 60000 ms they have all left the window */
    v = admit(s, "k", T0 + 60000);
    assert_true(v.admitted);
    assert_int_equal(v.remaining, 2);
    assert_int_equal(v.reset_s, 60);
    rd_ratelimit_store_free(s);

    /* staggered admissions free one slot each */
    s = store(RD_RL_SLIDING_WINDOW, 3, 0, 100);
    admit_n(s, "k", T0, 1);
    admit_n(s, "k", T0 + 10000, 1);
    admit_n(s, "k", T0 + 20000, 1);
    v = admit(s, "k", T0 + 30000);
    assert_false(v.admitted);
    assert_int_equal(v.retry_after_s, 30); /* the one at T0 leaves at T0 + 60000 */
    assert_int_equal(v.reset_s, 50);       /* the one at T0 + 20000 at T0 + 80000 */
    v = admit(s, "k", T0 + 60000);
    assert_true(v.admitted);
    assert_int_equal(v.remaining, 0);
    v = admit(s, "k", T0 + 60500);
    assert_false(v.admitted);
    assert_int_equal(v.retry_after_s, 10); /* 9500 ms, rounded up */
    rd_ratelimit_store_free(s);
}

/* Against a brute-force model: random arrivals, each admitted exactly when
 * fewer than the ceiling were admitted in the trailing 60 s, and a refused
 * request retried after its Retry-After is admitted while one retried a
 * second earlier is not. */
static void test_window_exact_against_model(void **state)
{
    (void)state;
    enum { CEIL = 5, N = 4000 };
    struct rd_ratelimit_store *s = store(RD_RL_SLIDING_WINDOW, 4, 1, 100);
    uint64_t *admitted = calloc(N, sizeof *admitted);
    assert_non_null(admitted);
    size_t na = 0;
    uint64_t now = T0, x = 12345;
    for (int i = 0; i < N; i++) {
        x = x * 6364136223846793005ULL + 1442695040888963407ULL;
        now += (x >> 33) % 25000;
        size_t in_window = 0;
        for (size_t j = 0; j < na; j++)
            in_window += now - admitted[j] < 60000;
        struct rd_rl_verdict v = admit(s, "k", now);
        assert_int_equal(v.admitted, in_window < CEIL);
        if (v.admitted) {
            admitted[na++] = now;
            assert_int_equal(v.remaining, CEIL - in_window - 1);
        } else {
            assert_true(v.retry_after_s >= 1);
            /* probing does not consume: a refusal changes nothing */
            assert_false(admit(s, "k", now + (uint64_t)(v.retry_after_s - 1) * 1000).admitted);
            assert_true(admit(s, "k", now + (uint64_t)v.retry_after_s * 1000).admitted);
            admitted[na++] = now + (uint64_t)v.retry_after_s * 1000;
            now += (uint64_t)v.retry_after_s * 1000;
        }
    }
    free(admitted);
    rd_ratelimit_store_free(s);
}

static void test_fresh_key_admits_the_rate(void **state)
{
    (void)state;
    enum rd_rl_algorithm algs[] = {RD_RL_SLIDING_WINDOW, RD_RL_TOKEN_BUCKET};
    for (size_t i = 0; i < 2; i++) {
        struct rd_ratelimit_store *s = store(algs[i], 50, 0, 100);
        admit_n(s, "fresh", T0, 50);
        struct rd_rl_verdict v = admit(s, "fresh", T0);
        assert_false(v.admitted);
        assert_int_equal(v.limit, 50);
        assert_int_equal(v.remaining, 0);
        assert_true(v.retry_after_s >= 1);
        /* another key is untouched */
        v = admit(s, "other", T0);
        assert_true(v.admitted);
        assert_int_equal(v.remaining, 49);
        rd_ratelimit_store_free(s);
    }
}

static void test_bursts(void **state)
{
    (void)state;
    /* sliding window: the ceiling at once, then one per freed slot */
    struct rd_ratelimit_store *s = store(RD_RL_SLIDING_WINDOW, 10, 5, 100);
    admit_n(s, "k", T0, 15);
    struct rd_rl_verdict v = admit(s, "k", T0 + 1000);
    assert_false(v.admitted);
    assert_int_equal(v.limit, 15);
    assert_int_equal(v.retry_after_s, 59);
    rd_ratelimit_store_free(s);

    /* token bucket 60/min + 30: 90 at once, then one per second */
    s = store(RD_RL_TOKEN_BUCKET, 60, 30, 100);
    admit_n(s, "k", T0, 90);
    v = admit(s, "k", T0);
    assert_false(v.admitted);
    assert_int_equal(v.limit, 90);
    assert_int_equal(v.retry_after_s, 1);
    assert_int_equal(v.reset_s, 90); /* 90 units at one per second */
    v = admit(s, "k", T0 + 999);
    assert_false(v.admitted);
    assert_int_equal(v.retry_after_s, 1);
    v = admit(s, "k", T0 + 1000);
    assert_true(v.admitted);
    assert_int_equal(v.remaining, 0);
    /* after a minute idle only 60 came back: the burst is a one-off until full */
    v = admit(s, "k", T0 + 61000);
    assert_true(v.admitted);
    assert_int_equal(v.remaining, 59);
    rd_ratelimit_store_free(s);
}

/* 7 per minute does not divide 60000 ms: the k-th unit after a drain comes
 * back at exactly ceil(k * 60000 / 7) ms, for ten minutes, with no drift. */
static void test_bucket_refill_exact(void **state)
{
    (void)state;
    struct rd_ratelimit_store *s = store(RD_RL_TOKEN_BUCKET, 7, 0, 100);
    admit_n(s, "k", T0, 7);
    struct rd_rl_verdict v = admit(s, "k", T0);
    assert_false(v.admitted);
    assert_int_equal(v.retry_after_s, 9); /* 8572 ms */
    assert_int_equal(v.reset_s, 60);
    uint64_t k = 0;
    for (uint64_t t = 1; t <= 600000; t++) {
        v = admit(s, "k", T0 + t);
        if (v.admitted) {
            k++;
            assert_int_equal(t, (k * 60000 + 6) / 7);
        }
    }
    assert_int_equal(k, 70);
    rd_ratelimit_store_free(s);
}

static void test_bucket_retry_after_is_accurate(void **state)
{
    (void)state;
    struct rd_ratelimit_store *s = store(RD_RL_TOKEN_BUCKET, 13, 4, 100);
    uint64_t now = T0, x = 99;
    for (int i = 0; i < 3000; i++) {
        x = x * 6364136223846793005ULL + 1442695040888963407ULL;
        now += (x >> 33) % 3000;
        struct rd_rl_verdict v = admit(s, "k", now);
        if (!v.admitted) {
            assert_true(v.retry_after_s >= 1);
            assert_false(admit(s, "k", now + (uint64_t)(v.retry_after_s - 1) * 1000).admitted);
            now += (uint64_t)v.retry_after_s * 1000;
            assert_true(admit(s, "k", now).admitted);
        }
    }
    rd_ratelimit_store_free(s);
}

static void test_cost_and_charge(void **state)
{
    (void)state;
    struct rd_ratelimit rl;
    const char *why = NULL;
    struct rd_rl_limits req = {.algorithm = RD_RL_SLIDING_WINDOW, .per_minute = 100, .burst = 0};
    assert_int_equal(rd_ratelimit_init(&rl, &req, 1000, 100, &why), 0);
    uint8_t key[RD_RL_KEY_MAX];
    int klen = rd_ratelimit_key_proxy(key);
    assert_true(klen > 0);
    struct rd_rl_verdict r, t;
    /* reserve 600 of 1000 tokens */
    assert_int_equal(rd_ratelimit_admit(&rl, key, (size_t)klen, T0, 600, &r, &t), 0);
    assert_true(r.admitted && t.admitted);
    assert_int_equal(t.limit, 1000);
    assert_int_equal(t.remaining, 400);
    /* 600 more do not fit: refused, and the request slot is given back */
    assert_int_equal(rd_ratelimit_admit(&rl, key, (size_t)klen, T0, 600, &r, &t), 0);
    assert_false(r.admitted);
    assert_false(t.admitted);
    assert_int_equal(r.remaining, 99);
    assert_int_equal(t.retry_after_s, 12); /* 200 tokens at 1000/min = 12 s */
    assert_int_equal(r.retry_after_s, 12);
    /* the first request used 100 only: 500 come back */
    assert_int_equal(rd_ratelimit_charge(&rl, key, (size_t)klen, T0, 600, 100), 0);
    assert_int_equal(rd_ratelimit_admit(&rl, key, (size_t)klen, T0, 600, &r, &t), 0);
    assert_true(r.admitted && t.admitted);
    assert_int_equal(r.remaining, 98);
    assert_int_equal(t.remaining, 300);
    /* a request that used 2000 against 600 reserved puts the key in debt */
    assert_int_equal(rd_ratelimit_charge(&rl, key, (size_t)klen, T0, 600, 2000), 0);
    assert_int_equal(rd_ratelimit_admit(&rl, key, (size_t)klen, T0, 1, &r, &t), 0);
    assert_false(t.admitted);
    assert_int_equal(t.remaining, 0);
    assert_int_equal(t.retry_after_s, 61); /* debt stops at one capacity: from -1000 to 1 */
    /* more than the capacity is never admitted */
    assert_int_equal(rd_ratelimit_admit(&rl, key, (size_t)klen, T0 + 3600000, 1001, &r, &t), 0);
    assert_false(t.admitted);
    assert_true(t.exceeds_ceiling);
    rd_ratelimit_destroy(&rl);
    rd_ratelimit_destroy(&rl); /* idempotent */

    /* a refund on a sliding window frees the newest slots */
    struct rd_ratelimit_store *s = store(RD_RL_SLIDING_WINDOW, 3, 0, 10);
    admit_n(s, "k", T0, 3);
    assert_int_equal(s->ops->charge(s, "k", 1, T0 + 5, -2), 0);
    assert_int_equal(admit(s, "k", T0 + 5).remaining, 1);
    assert_int_equal(s->ops->charge(s, "k", 1, T0 + 5, 100), 0); /* fills, never beyond */
    struct rd_rl_verdict v = admit(s, "k", T0 + 6);
    assert_false(v.admitted);
    assert_int_equal(v.retry_after_s, 60);
    rd_ratelimit_store_free(s);
}

static void test_bad_arguments(void **state)
{
    (void)state;
    const char *why = NULL;
    struct rd_rl_limits l = {.algorithm = RD_RL_SLIDING_WINDOW, .per_minute = 0};
    assert_null(rd_ratelimit_store_mem_new(&l, 10, &why));
    assert_non_null(why);
    l.per_minute = 1;
    l.burst = RD_RL_WINDOW_CEILING_MAX;
    assert_null(rd_ratelimit_store_mem_new(&l, 10, &why));
    l.algorithm = RD_RL_TOKEN_BUCKET; /* a bucket takes it: it keeps one number */
    struct rd_ratelimit_store *s = rd_ratelimit_store_mem_new(&l, 10, &why);
    assert_non_null(s);
    struct rd_rl_verdict v;
    char big[RD_RL_KEY_MAX + 1];
    memset(big, 'x', sizeof big);
    assert_int_equal(s->ops->admit(s, big, sizeof big, T0, 1, &v), RD_EINVAL);
    assert_int_equal(s->ops->admit(s, big, 0, T0, 1, &v), RD_EINVAL);
    assert_int_equal(s->ops->admit(s, big, 1, T0, 0, &v), RD_EINVAL);
    assert_int_equal(s->ops->admit(s, big, RD_RL_KEY_MAX, T0, 1, &v), 0);
    rd_ratelimit_store_free(s);
    rd_ratelimit_store_free(NULL);
    uint8_t key[RD_RL_KEY_MAX];
    assert_int_equal(rd_ratelimit_key_ip("", 0, key), RD_EINVAL);
    assert_int_equal(rd_ratelimit_key_ip(big, 46, key), RD_EINVAL);
    assert_int_equal(rd_ratelimit_key_header("", 0, "v", 1, key), RD_EINVAL);
}

static void test_header_keys_hashed(void **state)
{
    (void)state;
    uint8_t a[RD_RL_KEY_MAX], b[RD_RL_KEY_MAX], c[RD_RL_KEY_MAX], d[RD_RL_KEY_MAX];
    const char *secret = "sk-live-0123456789abcdef";
    int la = rd_ratelimit_key_header("Authorization", 13, secret, strlen(secret), a);
    int lb = rd_ratelimit_key_header("authorization", 13, secret, strlen(secret), b);
    int lc = rd_ratelimit_key_header("authorization", 13, "sk-other", 8, c);
    int ld = rd_ratelimit_key_header("authorization", 13, NULL, 0, d);
    assert_int_equal(la, 1 + RD_SHA256_LEN);
    assert_int_equal(ld, la);
    assert_int_equal(lb, la);
    assert_memory_equal(a, b, (size_t)la); /* the name's case does not matter */
    assert_memory_not_equal(a, c, (size_t)la);
    assert_memory_not_equal(a, d, (size_t)la);
    /* the value is not in the key */
    assert_null(memmem(a, (size_t)la, "sk-live", 7));
    assert_null(memmem(a, (size_t)la, "0123456789", 10));

    struct rd_ratelimit_store *s = store(RD_RL_SLIDING_WINDOW, 2, 0, 100);
    struct rd_rl_verdict v;
    for (int i = 0; i < 2; i++)
        assert_int_equal(s->ops->admit(s, a, (size_t)la, T0, 1, &v), 0);
    assert_int_equal(s->ops->admit(s, b, (size_t)lb, T0, 1, &v), 0);
    assert_false(v.admitted); /* same header value: same window */
    assert_int_equal(s->ops->admit(s, c, (size_t)lc, T0, 1, &v), 0);
    assert_true(v.admitted); /* another value: its own window */
    rd_ratelimit_store_free(s);

    uint8_t i1[RD_RL_KEY_MAX], p[RD_RL_KEY_MAX];
    int li = rd_ratelimit_key_ip("127.0.0.1", 9, i1);
    assert_int_equal(li, 10);
    assert_int_equal(rd_ratelimit_key_proxy(p), 1);
    assert_true(p[0] != i1[0] && i1[0] != a[0] && a[0] != d[0]);
}

static void test_key_cap_and_expiry(void **state)
{
    (void)state;
    /* 1000 active keys into a store of 64: never more than 64 */
    struct rd_ratelimit_store *s = store(RD_RL_SLIDING_WINDOW, 5, 0, 64);
    char key[32];
    for (int i = 0; i < 1000; i++) {
        snprintf(key, sizeof key, "ip-%d", i);
        assert_true(admit(s, key, T0).admitted);
        assert_true(s->ops->key_count(s) <= 64);
    }
    assert_int_equal(s->ops->key_count(s), 64);
    /* a minute later every key is back to full: expiring drops them all */
    assert_int_equal(s->ops->expire(s, T0 + 59999), 0);
    assert_int_equal(s->ops->expire(s, T0 + 60000), 64);
    assert_int_equal(s->ops->key_count(s), 0);
    rd_ratelimit_store_free(s);

    /* idle keys go first, without a sweep, as new keys arrive */
    s = store(RD_RL_TOKEN_BUCKET, 60, 0, 1000);
    for (int i = 0; i < 200; i++) {
        snprintf(key, sizeof key, "old-%d", i);
        assert_true(admit(s, key, T0).admitted);
    }
    for (int i = 0; i < 200; i++) {
        snprintf(key, sizeof key, "new-%d", i);
        assert_true(admit(s, key, T0 + 1000).admitted); /* refilled: idle */
    }
    size_t n = s->ops->key_count(s);
    assert_true(n >= 200 && n < 300);
    rd_ratelimit_store_free(s);

    /* a full shard evicts an idle key before an active one (3 keys: one shard) */
    s = store(RD_RL_SLIDING_WINDOW, 1, 0, 3);
    admit_n(s, "A", T0, 1);
    admit_n(s, "B", T0 + 10000, 1);
    admit_n(s, "C", T0 + 15000, 1);
    assert_false(admit(s, "A", T0 + 20000).admitted); /* A most recently used */
    assert_true(admit(s, "D", T0 + 65000).admitted);  /* A is idle, B and C not */
    assert_int_equal(s->ops->key_count(s), 3);
    struct rd_rl_verdict v = admit(s, "B", T0 + 65000);
    assert_false(v.admitted); /* B was kept */
    assert_int_equal(v.retry_after_s, 5);
    assert_false(admit(s, "C", T0 + 65000).admitted);
    /* all active: the least recently used is forgotten (it starts full) */
    assert_true(admit(s, "E", T0 + 66000).admitted);
    assert_int_equal(s->ops->key_count(s), 3);
    assert_true(admit(s, "D", T0 + 66000).admitted); /* D was forgotten */
    rd_ratelimit_store_free(s);
}

/* Time read before the lock may arrive out of order from two threads; a
 * key's clock never goes back. */
static void test_time_never_goes_back(void **state)
{
    (void)state;
    struct rd_ratelimit_store *s = store(RD_RL_SLIDING_WINDOW, 1, 0, 10);
    admit_n(s, "k", T0 + 500, 1);
    struct rd_rl_verdict v = admit(s, "k", T0); /* earlier than the last call */
    assert_false(v.admitted);
    assert_int_equal(v.retry_after_s, 60);
    assert_true(admit(s, "k", T0 + 60500).admitted);
    rd_ratelimit_store_free(s);
}

struct hammer {
    struct rd_ratelimit_store *s;
    int admitted;
    pthread_barrier_t *go;
    bool step; /* time advances a millisecond per attempt */
};

static void *hammer_run(void *arg)
{
    struct hammer *h = arg;
    pthread_barrier_wait(h->go);
    for (int i = 0; i < 20000; i++) {
        struct rd_rl_verdict v;
        uint64_t now = T0 + (h->step ? (uint64_t)i : 0);
        if (h->s->ops->admit(h->s, "shared", 6, now, 1, &v) == 0 && v.admitted)
            h->admitted++;
    }
    return NULL;
}

static void test_two_threads_one_key(void **state)
{
    (void)state;
    enum rd_rl_algorithm algs[] = {RD_RL_SLIDING_WINDOW, RD_RL_TOKEN_BUCKET};
    for (size_t a = 0; a < 2; a++) {
        struct rd_ratelimit_store *s = store(algs[a], 1000, 500, 100);
        pthread_barrier_t go;
        assert_int_equal(pthread_barrier_init(&go, NULL, 2), 0);
        /* The window sees 20 s of attempts (nothing leaves it); the bucket
         * gets them all in one millisecond (nothing refills). */
        bool step = algs[a] == RD_RL_SLIDING_WINDOW;
        struct hammer h[2] = {{s, 0, &go, step}, {s, 0, &go, step}};
        pthread_t th[2];
        for (int i = 0; i < 2; i++)
            assert_int_equal(pthread_create(&th[i], NULL, hammer_run, &h[i]), 0);
        for (int i = 0; i < 2; i++)
            assert_int_equal(pthread_join(th[i], NULL), 0);
        pthread_barrier_destroy(&go);
        assert_int_equal(h[0].admitted + h[1].admitted, 1500);
        rd_ratelimit_store_free(s);
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_window_edges),
        cmocka_unit_test(test_window_exact_against_model),
        cmocka_unit_test(test_fresh_key_admits_the_rate),
        cmocka_unit_test(test_bursts),
        cmocka_unit_test(test_bucket_refill_exact),
        cmocka_unit_test(test_bucket_retry_after_is_accurate),
        cmocka_unit_test(test_cost_and_charge),
        cmocka_unit_test(test_bad_arguments),
        cmocka_unit_test(test_header_keys_hashed),
        cmocka_unit_test(test_key_cap_and_expiry),
        cmocka_unit_test(test_time_never_goes_back),
        cmocka_unit_test(test_two_threads_one_key),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
