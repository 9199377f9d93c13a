/* Tests for src/proxy/retry_audit.c (with an injected clock) and the
 * client keys and counters of src/proxy/failstats.c: early and honoured
 * retries at the advertised time's edge, a second advertisement replacing
 * the first, expiry, the bound on entries (least recently noted evicted),
 * clients told apart by address and credential, per-worker counters summed,
 * and threads noting and settling at once (also run under TSan). */
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

#include "http/headers.h"
#include "proxy/failstats.h"
#include "proxy/req.h"
#include "proxy/retry_audit.h"
#include "util/arena.h"

#define T0 5000000u /* an arbitrary monotonic start (ms) */

static struct rd_retry_audit_counts counts(const struct rd_retry_audit *a)
{
    struct rd_retry_audit_counts c;
    rd_retry_audit_counts(a, &c);
    return c;
}

static void test_early_and_honoured_at_the_edge(void **state)
{
    (void)state;
    struct rd_retry_audit *a = rd_retry_audit_new();
    assert_false(rd_retry_audit_pending(a));
    /* Nothing advertised: a request is no retry. */
    assert_int_equal(rd_retry_audit_arrive(a, 7, T0), RD_AUDIT_NONE);

    rd_retry_audit_note(a, 7, T0, 2000);
    assert_true(rd_retry_audit_pending(a));
    /* Another client is not this one's retry. */
    assert_int_equal(rd_retry_audit_arrive(a, 8, T0 + 10), RD_AUDIT_NONE);
    assert_true(rd_retry_audit_pending(a));
    /* One millisecond early is early. */
    assert_int_equal(rd_retry_audit_arrive(a, 7, T0 + 1999), RD_AUDIT_EARLY);
    assert_false(rd_retry_audit_pending(a));
    /* Settled: the request after that is no retry any more. */
    assert_int_equal(rd_retry_audit_arrive(a, 7, T0 + 1999), RD_AUDIT_NONE);

    rd_retry_audit_note(a, 7, T0 + 3000, 1000);
    assert_int_equal(rd_retry_audit_arrive(a, 7, T0 + 4000), RD_AUDIT_HONOURED); /* exactly on time */
    rd_retry_audit_note(a, 7, T0 + 5000, 0);                                     /* Retry-After: 0 */
    assert_int_equal(rd_retry_audit_arrive(a, 7, T0 + 5000), RD_AUDIT_HONOURED);

    struct rd_retry_audit_counts c = counts(a);
    assert_int_equal(c.advertised, 3);
    assert_int_equal(c.retries, 3);
    assert_int_equal(c.early, 1);
    assert_int_equal(c.honoured, 2);
    assert_int_equal(c.expired, 0);
    assert_int_equal(c.early_ms_max, 1);
    rd_retry_audit_free(a);
}

static void test_second_note_replaces_and_key_zero(void **state)
{
    (void)state;
    struct rd_retry_audit *a = rd_retry_audit_new();
    rd_retry_audit_note(a, 0, T0, 1000); /* key 0 is a key like another */
    rd_retry_audit_note(a, 0, T0 + 500, 5000);
    /* Judged against the later time: T0 + 5500. */
    assert_int_equal(rd_retry_audit_arrive(a, 0, T0 + 2000), RD_AUDIT_EARLY);
    assert_false(rd_retry_audit_pending(a));
    struct rd_retry_audit_counts c = counts(a);
    assert_int_equal(c.advertised, 2);
    assert_int_equal(c.retries, 1);
    assert_int_equal(c.early_ms_max, 3500);
    rd_retry_audit_free(a);
}

static void test_expiry(void **state)
{
    (void)state;
    struct rd_retry_audit *a = rd_retry_audit_new();
    rd_retry_audit_note(a, 11, T0, 1000);
    /* Back RD_AUDIT_KEEP_MS after the advertised time: still a retry. */
    assert_int_equal(rd_retry_audit_arrive(a, 11, T0 + 1000 + RD_AUDIT_KEEP_MS), RD_AUDIT_HONOURED);
    rd_retry_audit_note(a, 11, T0, 1000);
    /* One millisecond later: the entry had expired; not counted as a retry. */
    assert_int_equal(rd_retry_audit_arrive(a, 11, T0 + 1001 + RD_AUDIT_KEEP_MS), RD_AUDIT_NONE);
    assert_false(rd_retry_audit_pending(a));
    struct rd_retry_audit_counts c = counts(a);
    assert_int_equal(c.retries, 1);
    assert_int_equal(c.expired, 1);
    rd_retry_audit_free(a);
}

/* Keys below 2^59 all fall in one shard: fill it past its size. */
static void test_bounded_oldest_evicted(void **state)
{
    (void)state;
    struct rd_retry_audit *a = rd_retry_audit_new();
    for (uint64_t k = 1; k <= RD_AUDIT_PER_SHARD; k++)
        rd_retry_audit_note(a, k, T0 + k, 60000);
    assert_int_equal(counts(a).expired, 0);
    rd_retry_audit_note(a, 1000, T0 + 100, 60000); /* one too many: key 1, noted first, goes */
    assert_int_equal(counts(a).expired, 1);
    assert_int_equal(rd_retry_audit_arrive(a, 1, T0 + 200), RD_AUDIT_NONE);
    assert_int_equal(rd_retry_audit_arrive(a, 2, T0 + 200), RD_AUDIT_EARLY);
    assert_int_equal(rd_retry_audit_arrive(a, 1000, T0 + 200), RD_AUDIT_EARLY);
    /* A stale entry makes room before anyone is evicted. */
    rd_retry_audit_note(a, 2000, T0 + 60000 + RD_AUDIT_KEEP_MS + 100, 1000);
    struct rd_retry_audit_counts c = counts(a);
    assert_int_equal(c.expired, 1 + RD_AUDIT_PER_SHARD - 2); /* every old one was stale by then */
    assert_int_equal(rd_retry_audit_arrive(a, 2000, T0 + 60000 + RD_AUDIT_KEEP_MS + 1200), RD_AUDIT_HONOURED);
    assert_false(rd_retry_audit_pending(a));
    rd_retry_audit_free(a);
}

static uint64_t key_for(const char *ip, const char *name, const char *value)
{
    struct rd_arena arena;
    rd_arena_init(&arena);
    struct rd_hdrs h;
    rd_hdrs_init(&h, &arena);
    rd_hdrs_add_ref(&h, "Content-Type", "application/json");
    if (name)
        rd_hdrs_add_ref(&h, name, value);
    uint64_t k = rd_failstats_client_key(ip, &h);
    rd_hdrs_free(&h);
    rd_arena_free(&arena);
    return k;
}

static void test_client_keys(void **state)
{
    (void)state;
    uint64_t plain = key_for("127.0.0.1", NULL, NULL);
    assert_int_equal(plain, key_for("127.0.0.1", NULL, NULL));
    assert_int_not_equal(plain, key_for("127.0.0.2", NULL, NULL));
    uint64_t bearer = key_for("127.0.0.1", "Authorization", "Bearer sk-a");
    assert_int_not_equal(bearer, plain);
    assert_int_equal(bearer, key_for("127.0.0.1", "authorization", "Bearer sk-a")); /* names in any case */
    assert_int_not_equal(bearer, key_for("127.0.0.1", "Authorization", "Bearer sk-b"));
    assert_int_equal(key_for("10.0.0.1", "x-api-key", "k1"), key_for("10.0.0.1", "X-Api-Key", "k1"));
    assert_int_not_equal(key_for("10.0.0.1", "x-api-key", "k1"), key_for("10.0.0.1", "x-goog-api-key", "k2"));
    assert_int_not_equal(key_for("10.0.0.1", "api-key", "k1"), key_for("10.0.0.1", NULL, NULL));
    /* Other headers do not count. */
    assert_int_equal(key_for("10.0.0.1", "x-other", "v"), key_for("10.0.0.1", NULL, NULL));
    /* A credential longer than the stack buffer. */
    char big[2048];
    memset(big, 'a', sizeof big - 1);
    big[sizeof big - 1] = '\0';
    assert_int_equal(key_for("::1", "authorization", big), key_for("::1", "authorization", big));
    big[100] = 'b';
    assert_int_not_equal(key_for("::1", "authorization", big), key_for("::1", "authorization", "a"));
}

static void test_failure_counts_summed(void **state)
{
    (void)state;
    struct rd_failstats *f = rd_failstats_new(3, 0);
    rd_failstats_count(f, 0, RD_FAIL_DELAYED);
    rd_failstats_count(f, 2, RD_FAIL_DELAYED);
    rd_failstats_count(f, 5, RD_FAIL_RATE_LIMITED); /* slot taken modulo 3 */
    rd_failstats_count(f, 1, RD_FAIL_NONE);         /* not a type */
    rd_failstats_count(f, 1, RD_FAILSTATS_TYPES);   /* out of range: ignored */
    rd_retry_audit_note(rd_failstats_audit(f), 1, T0, 1000);
    assert_int_equal(rd_retry_audit_arrive(rd_failstats_audit(f), 1, T0 + 10), RD_AUDIT_EARLY);
    struct json_object *j = rd_failstats_json(f, 42);
    struct json_object *types = json_object_object_get(j, "failures");
    assert_int_equal(json_object_get_int64(json_object_object_get(j, "proxy_id")), 42);
    assert_int_equal(json_object_get_int64(json_object_object_get(types, "delayed")), 2);
    assert_int_equal(json_object_get_int64(json_object_object_get(types, "rate_limited")), 1);
    assert_int_equal(json_object_get_int64(json_object_object_get(types, "ip_blocked")), 0);
    assert_int_equal(json_object_object_length(types), RD_FAIL_STREAM_DUPLICATE); /* every type (the last one), "" excluded */
    struct json_object *audit = json_object_object_get(j, "retry_audit");
    assert_int_equal(json_object_get_int64(json_object_object_get(audit, "retries_total")), 1);
    assert_int_equal(json_object_get_int64(json_object_object_get(audit, "early_retries")), 1);
    assert_int_equal(json_object_get_int64(json_object_object_get(audit, "honoured")), 0);
    json_object_put(j);
    struct rd_failstats *g = rd_failstats_ref(f);
    rd_failstats_unref(f);
    rd_failstats_unref(g);
    rd_failstats_unref(NULL);
}

#define ROUNDS 2000

struct worker_arg {
    struct rd_retry_audit *a;
    uint64_t base;
};

static void *worker(void *p)
{
    struct worker_arg *w = p;
    for (uint64_t i = 0; i < ROUNDS; i++) {
        uint64_t key = (w->base + (i % 40)) * 0x9e3779b97f4a7c15ull; /* spread over the shards */
        rd_retry_audit_note(w->a, key, T0 + i, 10);
        (void)rd_retry_audit_arrive(w->a, key, T0 + i + (i % 2 ? 20 : 5));
    }
    return NULL;
}

static void test_threads(void **state)
{
    (void)state;
    struct rd_retry_audit *a = rd_retry_audit_new();
    pthread_t t[4];
    struct worker_arg args[4];
    for (int i = 0; i < 4; i++) {
        args[i] = (struct worker_arg){a, (uint64_t)i * 1000 + 1};
        assert_int_equal(pthread_create(&t[i], NULL, worker, &args[i]), 0);
    }
    for (int i = 0; i < 4; i++)
        pthread_join(t[i], NULL);
    struct rd_retry_audit_counts c = counts(a);
    /* Disjoint keys per thread: every note is settled by its own arrival. */
    assert_int_equal(c.advertised, 4 * ROUNDS);
    assert_int_equal(c.retries, 4 * ROUNDS);
    assert_int_equal(c.early, 4 * ROUNDS / 2);
    assert_int_equal(c.honoured, 4 * ROUNDS / 2);
    assert_false(rd_retry_audit_pending(a));
    rd_retry_audit_free(a);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_early_and_honoured_at_the_edge),
        cmocka_unit_test(test_second_note_replaces_and_key_zero),
        cmocka_unit_test(test_expiry),
        cmocka_unit_test(test_bounded_oldest_evicted),
        cmocka_unit_test(test_client_keys),
        cmocka_unit_test(test_failure_counts_summed),
        cmocka_unit_test(test_threads),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
