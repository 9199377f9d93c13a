/* Tests for src/proxy/snapshot.c: building a proxy's runtime configuration
 * from its record, reference counting, and the holder the workers read it
 * through while the control thread swaps in new ones. Run under ASan (a
 * reader that used a freed snapshot is a use-after-free report) and TSan. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>
#include <pthread.h>

#include "proxy/snapshot.h"
#include "util/mem.h"

/* A record like the store returns, its strings on the heap so that the test
 * can free them and show the snapshot kept copies. */
static struct rd_proxy_rec rec_of(int64_t id, const char *provider, const char *upstream, const char *config)
{
    char name[32];
    snprintf(name, sizeof name, "p%lld", (long long)id);
    struct rd_proxy_rec r = {
        .id = id,
        .name = rd_strdup(name),
        .provider = rd_strdup(provider),
        .port = 8000,
        .upstream_url = upstream ? rd_strdup(upstream) : NULL,
        .config_json = config ? rd_strdup(config) : NULL,
    };
    return r;
}

static void rec_free(struct rd_proxy_rec *r)
{
    free(r->name);
    free(r->provider);
    free(r->upstream_url);
    free(r->config_json);
}

static struct rd_proxy_snap *snap_of(int64_t id, const char *provider, const char *upstream, const char *config,
                                     const char **why)
{
    struct rd_proxy_rec r = rec_of(id, provider, upstream, config);
    struct rd_proxy_snap *s = rd_proxy_snap_new(&r, 10000, why);
    rec_free(&r);
    return s;
}

static void test_built_from_record(void **state)
{
    (void)state;
    const char *why = NULL;
    struct rd_proxy_snap *s = snap_of(7, "openai", "http://127.0.0.1:9/v1//",
                                      "{\"limits\":{\"max_body_bytes\":1024,\"upstream_timeout_ms\":5000},"
                                      "\"emulator\":{\"tokens_per_second\":50,\"seed\":42},"
                                      "\"upstream\":{\"client\":\"curl\",\"ca_file\":\"/etc/ca.pem\"}}",
                                      &why);
    assert_non_null(s);
    assert_null(why);
    assert_int_equal(atomic_load(&s->refs), 1);
    assert_int_equal(s->id, 7);
    assert_string_equal(s->name, "p7"); /* a copy: the record is gone */
    assert_string_equal(s->provider->name, "openai");
    assert_false(s->emulator);
    assert_string_equal(s->upstream_base, "http://127.0.0.1:9/v1"); /* trailing slashes dropped */
    assert_int_equal(s->limits.max_body_bytes, 1024);
    assert_int_equal(s->limits.upstream_timeout_ms, 5000);
    assert_int_equal(s->limits.connect_timeout_ms, 10000); /* defaults for the rest */
    assert_int_equal(s->limits.idle_timeout_ms, 60000);
    assert_true(s->emu_tps == 50.0);
    assert_int_equal(s->emu_seed, 42);
    assert_true(s->force_curl);
    assert_string_equal(s->ca_file, "/etc/ca.pem");
    assert_int_equal(s->header_timeout_ms, 10000);
    rd_proxy_snap_unref(s);

    /* no upstream_url: the provider's default; no config: all defaults */
    s = snap_of(8, "deepseek", NULL, NULL, &why);
    assert_non_null(s);
    assert_string_equal(s->upstream_base, "https://api.deepseek.com");
    assert_false(s->force_curl);
    assert_null(s->ca_file);
    assert_int_equal(s->limits.max_body_bytes, 33554432);
    rd_proxy_snap_unref(s);

    s = snap_of(9, "openai", "emulator", "{}", &why);
    assert_non_null(s);
    assert_true(s->emulator);
    assert_null(s->upstream_base);
    rd_proxy_snap_unref(s);
}

static void test_invalid_records_rejected(void **state)
{
    (void)state;
    static const struct {
        const char *provider, *config, *why;
    } bad[] = {
        {"no-such-provider", "{}", "unknown provider"},
        {"openai", "{not json", "its stored configuration is invalid"},
        {"openai", "[]", "its stored configuration is invalid"},
        {"openai", "{\"limits\":{\"max_body_bytes\":0}}", "its stored configuration is invalid"},
        {"openai", "{\"no_such_block\":{}}", "its stored configuration is invalid"},
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        const char *why = NULL;
        assert_null(snap_of(1, bad[i].provider, NULL, bad[i].config, &why));
        assert_non_null(why);
        assert_true(strncmp(why, bad[i].why, strlen(bad[i].why)) == 0);
    }
}

static void test_ref_unref(void **state)
{
    (void)state;
    const char *why = NULL;
    struct rd_proxy_snap *s = snap_of(1, "openai", NULL, "{}", &why);
    assert_ptr_equal(rd_proxy_snap_ref(s), s);
    assert_ptr_equal(rd_proxy_snap_ref(s), s);
    assert_int_equal(atomic_load(&s->refs), 3);
    rd_proxy_snap_unref(s);
    rd_proxy_snap_unref(s);
    assert_int_equal(atomic_load(&s->refs), 1);
    assert_string_equal(s->name, "p1"); /* still alive */
    rd_proxy_snap_unref(s);                /* freed: LeakSanitizer checks the rest */
    rd_proxy_snap_unref(NULL);

    /* the holder owns its snapshot; one taken from it outlives the holder */
    struct rd_proxy_rt *rt = rd_proxy_rt_new(snap_of(2, "openai", NULL, "{}", &why));
    assert_ptr_equal(rd_proxy_rt_ref(rt), rt);
    rd_proxy_rt_unref(rt);
    struct rd_proxy_snap *held = rd_proxy_rt_acquire(rt);
    assert_int_equal(held->id, 2);
    rd_proxy_rt_swap(rt, snap_of(3, "openai", NULL, "{}", &why));
    assert_string_equal(held->name, "p2"); /* the swap dropped only the holder's reference */
    struct rd_proxy_snap *now = rd_proxy_rt_acquire(rt);
    assert_int_equal(now->id, 3);
    rd_proxy_rt_unref(rt);
    assert_string_equal(now->name, "p3");
    rd_proxy_snap_unref(now);
    rd_proxy_snap_unref(held);
}

/* ---- swaps while other threads read ---- */

#define READERS 4
#define READS 20000
#define SWAPS 2000

struct race {
    struct rd_proxy_rt *rt;
    pthread_barrier_t go;
};

static void *reader(void *arg)
{
    struct race *r = arg;
    struct rd_proxy_snap *kept[8] = {0};
    int64_t last = 0;
    int bad = 0;
    pthread_barrier_wait(&r->go);
    for (int i = 0; i < READS; i++) {
        struct rd_proxy_snap *s = rd_proxy_rt_acquire(r->rt);
        char want[32];
        snprintf(want, sizeof want, "p%lld", (long long)s->id);
        /* a freed or half-built snapshot would not read back consistently
         * (and ASan would report the read); swaps are never seen backwards */
        if (strcmp(s->name, want) != 0 || s->id < last || atomic_load(&s->refs) < 1 ||
            s->limits.max_body_bytes != 1024)
            bad++;
        last = s->id;
        /* Keep some across later swaps, as a request in flight does. */
        size_t k = (size_t)i % 8;
        rd_proxy_snap_unref(kept[k]);
        kept[k] = s;
    }
    for (size_t k = 0; k < 8; k++)
        rd_proxy_snap_unref(kept[k]);
    return (void *)(intptr_t)bad;
}

static void test_swap_while_readers_acquire(void **state)
{
    (void)state;
    static const char cfg[] = "{\"limits\":{\"max_body_bytes\":1024}}";
    const char *why = NULL;
    struct race r = {.rt = rd_proxy_rt_new(snap_of(1, "openai", NULL, cfg, &why))};
    assert_int_equal(pthread_barrier_init(&r.go, NULL, READERS + 1), 0);
    pthread_t t[READERS];
    for (int i = 0; i < READERS; i++)
        assert_int_equal(pthread_create(&t[i], NULL, reader, &r), 0);
    pthread_barrier_wait(&r.go);
    for (int64_t id = 2; id <= SWAPS + 1; id++) {
        struct rd_proxy_snap *s = snap_of(id, "openai", NULL, cfg, &why);
        assert_non_null(s);
        rd_proxy_rt_swap(r.rt, s);
    }
    for (int i = 0; i < READERS; i++) {
        void *bad = NULL;
        assert_int_equal(pthread_join(t[i], &bad), 0);
        assert_int_equal((intptr_t)bad, 0);
    }
    struct rd_proxy_snap *last = rd_proxy_rt_acquire(r.rt);
    assert_int_equal(last->id, SWAPS + 1);
    assert_int_equal(atomic_load(&last->refs), 2); /* the holder's and ours: readers released theirs */
    rd_proxy_snap_unref(last);
    rd_proxy_rt_unref(r.rt);
    assert_int_equal(pthread_barrier_destroy(&r.go), 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_built_from_record),
        cmocka_unit_test(test_invalid_records_rejected),
        cmocka_unit_test(test_ref_unref),
        cmocka_unit_test(test_swap_while_readers_acquire),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
