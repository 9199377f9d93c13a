/* Write-behind persistence against a real SQLite file: what a cache commits
 * comes back after a restart byte for byte, expired entries do not,
 * deletions and clears reach the table, and a load honours the cache's
 * limits with the newest entries first. The caches run on an injected
 * clock. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <ftw.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "cache/cache.h"
#include "cache/image.h"
#include "cache/persist.h"
#include "store/store.h"
#include "util/err.h"

#define T0 1796205600000LL

static _Atomic int64_t fake_now = T0;

static int64_t now_ms(void)
{
    return fake_now;
}

struct fix {
    char dir[64];
    char url[160];
    int64_t proxy_a, proxy_b;
};

static int rm_one(const char *path, const struct stat *sb, int flag, struct FTW *ftw)
{
    (void)sb, (void)flag, (void)ftw;
    return remove(path);
}

static int64_t add_proxy(struct rd_store *s, char *name, int port)
{
    struct rd_proxy_rec r = {.name = name,
                             .provider = "openai",
                             .port = port,
                             .bind = "127.0.0.1",
                             .tags_json = "[]",
                             .config_json = "{}",
                             .desired_status = "stopped"};
    assert_int_equal(rd_store_proxy_insert(s, &r), 0);
    return r.id;
}

static int setup(void **state)
{
    struct fix *f = calloc(1, sizeof *f);
    if (f == NULL)
        return -1;
    snprintf(f->dir, sizeof f->dir, "/tmp/rd-persist-XXXXXX");
    if (mkdtemp(f->dir) == NULL) {
        free(f);
        return -1;
    }
    snprintf(f->url, sizeof f->url, "sqlite://%s/rd.db", f->dir);
    /* The proxies the rows belong to (cache_entries references them). */
    struct rd_store *s = NULL;
    if (rd_store_open(f->url, &s, NULL, 0) < 0)
        return -1;
    f->proxy_a = add_proxy(s, "a", 8100);
    f->proxy_b = add_proxy(s, "b", 8101);
    rd_store_close(s);
    fake_now = T0;
    *state = f;
    return 0;
}

static int teardown(void **state)
{
    struct fix *f = *state;
    int rc = nftw(f->dir, rm_one, 16, FTW_DEPTH | FTW_PHYS);
    free(f);
    return rc;
}

static struct rd_cache *new_cache(uint64_t max_entries, uint64_t max_bytes)
{
    struct rd_cache_limits lim = {.max_entries = max_entries, .max_bytes = max_bytes};
    struct rd_cache_opts opts = {.now_ms = now_ms};
    return rd_cache_new(&lim, &opts);
}

static struct rd_cache_persist *start(const struct fix *f)
{
    struct rd_cache_persist *p = NULL;
    char err[200] = "";
    if (rd_cache_persist_start(f->url, &p, err, sizeof err) != 0)
        fail_msg("persist start: %s", err);
    return p;
}

static void key_of(uint8_t b, uint8_t key[RD_CACHE_KEY_LEN])
{
    memset(key, b, RD_CACHE_KEY_LEN);
}

/* Commits an entry of key byte b through a real fill: a JSON body, or an
 * SSE stream of three events when stream is set. Returns it referenced. */
static struct rd_cache_entry *commit(struct rd_cache *c, uint8_t b, bool stream, uint32_t ttl_s)
{
    uint8_t key[RD_CACHE_KEY_LEN];
    key_of(b, key);
    struct rd_cache_entry *e = NULL;
    assert_int_equal(rd_cache_lookup(c, key, false, true, "gpt-4o", RD_REQ_CHAT, "POST", "/v1/chat/completions", &e),
                     RD_CACHE_LOOKUP_MISS);
    assert_non_null(e);
    const char *ct = stream ? "text/event-stream" : "application/json";
    const struct rd_cache_hdr h[2] = {
        {.name = "content-type", .name_len = 12, .value = ct, .value_len = (uint32_t)strlen(ct)},
        {.name = "x-request-id", .name_len = 12, .value = "req_\xc3\xa9", .value_len = 6},
    };
    assert_int_equal(rd_cache_fill_head(e, 200, h, 2, stream), 0);
    if (stream) {
        static const char *const ev[] = {"data: {\"a\":1}\n\n", "data: {\"b\":\"\\u0000\"}\n\n", "data: [DONE]\n\n"};
        uint64_t end = 0;
        for (uint32_t i = 0; i < 3; i++) {
            assert_int_equal(rd_cache_fill_data(e, ev[i], strlen(ev[i])), 0);
            end += strlen(ev[i]);
            assert_int_equal(rd_cache_fill_mark(e, end, 10 * i + b), 0);
        }
    } else {
        char body[64];
        int n = snprintf(body, sizeof body, "{\n  \"id\": \"chatcmpl-%u\",\n  \"x\": [1, 2]\n}", b);
        assert_int_equal(rd_cache_fill_data(e, body, (size_t)n), 0);
    }
    e->usage = (struct rd_usage){.input = b, .output = 2 * b, .cached = 1, .cache_write = 2, .reasoning = 3};
    snprintf(e->upstream_model, sizeof e->upstream_model, "gpt-4o-2024-%u", b);
    snprintf(e->finish, sizeof e->finish, "%s", b % 2 ? "length" : "");
    assert_int_equal(rd_cache_fill_commit(e, ttl_s), 0);
    return e;
}

static void assert_same(const struct rd_cache_entry *a, const struct rd_cache_entry *b)
{
    struct rd_cache_image x, y;
    rd_cache_image_of(a, &x);
    rd_cache_image_of(b, &y);
    assert_memory_equal(x.key, y.key, RD_CACHE_KEY_LEN);
    assert_string_equal(x.model, y.model);
    assert_int_equal(x.kind, y.kind);
    assert_string_equal(x.method, y.method);
    assert_string_equal(x.path, y.path);
    assert_int_equal(x.status, y.status);
    assert_int_equal(x.stream, y.stream);
    assert_int_equal(x.nhdrs, y.nhdrs);
    for (size_t i = 0; i < x.nhdrs; i++) {
        assert_int_equal(x.hdrs[i].name_len, y.hdrs[i].name_len);
        assert_int_equal(x.hdrs[i].value_len, y.hdrs[i].value_len);
        assert_memory_equal(x.hdrs[i].name, y.hdrs[i].name, x.hdrs[i].name_len);
        assert_memory_equal(x.hdrs[i].value, y.hdrs[i].value, x.hdrs[i].value_len);
    }
    assert_int_equal(x.body_len, y.body_len);
    assert_memory_equal(x.body, y.body, x.body_len);
    assert_int_equal(x.nmarks, y.nmarks);
    for (size_t i = 0; i < x.nmarks; i++) {
        assert_int_equal(x.marks[i].end, y.marks[i].end);
        assert_int_equal(x.marks[i].t_ms, y.marks[i].t_ms);
    }
    assert_memory_equal(&x.usage, &y.usage, sizeof x.usage);
    assert_string_equal(x.upstream_model, y.upstream_model);
    assert_string_equal(x.finish, y.finish);
    assert_int_equal(x.created_ms, y.created_ms);
    assert_int_equal(x.expires_ms, y.expires_ms);
    assert_int_equal(x.ttl_s, y.ttl_s);
    free((char *)x.body);
    free((char *)y.body);
}

/* The entry of key byte b in c, or NULL (a lookup that neither fills nor joins). */
static struct rd_cache_entry *find(struct rd_cache *c, uint8_t b)
{
    uint8_t key[RD_CACHE_KEY_LEN];
    key_of(b, key);
    struct rd_cache_entry *e = NULL;
    enum rd_cache_lookup r = rd_cache_lookup(c, key, false, false, "gpt-4o", RD_REQ_CHAT, "POST", "/x", &e);
    if (r != RD_CACHE_LOOKUP_HIT) {
        assert_null(e);
        return NULL;
    }
    return e;
}

/* Starts a writer, loads proxy's entries into a new cache with these limits,
 * and stops it (stop flushes, so the load is done). */
static struct rd_cache *reload(const struct fix *f, int64_t proxy, uint64_t max_entries, uint64_t max_bytes)
{
    struct rd_cache *c = new_cache(max_entries, max_bytes);
    struct rd_cache_persist *p = start(f);
    rd_cache_persist_load(p, proxy, c);
    rd_cache_persist_flush(p);
    rd_cache_persist_stop(p);
    return c;
}

static void test_restart_round_trip(void **state)
{
    struct fix *f = *state;
    struct rd_cache *c = new_cache(0, 0);
    struct rd_cache_entry *e[4] = {commit(c, 1, false, 60), commit(c, 2, true, 60), commit(c, 3, true, 3600),
                                   commit(c, 4, false, 10)};
    struct rd_cache_persist *p = start(f);
    for (int i = 0; i < 4; i++)
        rd_cache_persist_put(p, f->proxy_a, e[i]);
    rd_cache_persist_flush(p);
    uint64_t written = 0, deleted = 9, failed = 9;
    rd_cache_persist_counts(p, &written, &deleted, &failed);
    assert_int_equal(written, 4);
    assert_int_equal(deleted, 0);
    assert_int_equal(failed, 0);
    rd_cache_persist_stop(p);

    /* 30 s later: key 4 (10 s TTL) has expired and does not come back. */
    fake_now = T0 + 30000;
    struct rd_cache *c2 = reload(f, f->proxy_a, 0, 0);
    struct rd_cache_stats st;
    rd_cache_stats(c2, &st);
    assert_int_equal(st.entries, 3);
    for (int i = 0; i < 3; i++) {
        struct rd_cache_entry *got = find(c2, (uint8_t)(i + 1));
        assert_non_null(got);
        assert_same(e[i], got);
        rd_cache_entry_unref(got);
    }
    assert_null(find(c2, 4));
    /* Another proxy's load finds nothing of a's. */
    struct rd_cache *cb = reload(f, f->proxy_b, 0, 0);
    rd_cache_stats(cb, &st);
    assert_int_equal(st.entries, 0);

    for (int i = 0; i < 4; i++)
        rd_cache_entry_unref(e[i]);
    rd_cache_unref(cb);
    rd_cache_unref(c2);
    rd_cache_unref(c);
}

static void test_delete_and_clear(void **state)
{
    struct fix *f = *state;
    struct rd_cache *c = new_cache(0, 0);
    struct rd_cache_entry *e[3] = {commit(c, 1, false, 60), commit(c, 2, true, 60), commit(c, 3, false, 60)};
    struct rd_cache_persist *p = start(f);
    for (int i = 0; i < 3; i++) {
        rd_cache_persist_put(p, f->proxy_a, e[i]);
        rd_cache_persist_put(p, f->proxy_b, e[i]);
    }
    /* Queue order is kept: the delete after the put wins, the put after the clear stays. */
    rd_cache_persist_delete(p, f->proxy_a, e[1]->key);
    rd_cache_persist_clear(p, f->proxy_b);
    rd_cache_persist_put(p, f->proxy_b, e[2]);
    rd_cache_persist_flush(p);
    uint64_t written, deleted, failed;
    rd_cache_persist_counts(p, &written, &deleted, &failed);
    assert_int_equal(written, 7);
    assert_int_equal(deleted, 1 + 3);
    assert_int_equal(failed, 0);
    rd_cache_persist_stop(p);

    struct rd_cache *ca = reload(f, f->proxy_a, 0, 0), *cb = reload(f, f->proxy_b, 0, 0);
    struct rd_cache_entry *got;
    assert_non_null(got = find(ca, 1));
    rd_cache_entry_unref(got);
    assert_null(find(ca, 2));
    assert_non_null(got = find(ca, 3));
    rd_cache_entry_unref(got);
    assert_null(find(cb, 1));
    assert_non_null(got = find(cb, 3));
    rd_cache_entry_unref(got);
    rd_cache_unref(ca);
    rd_cache_unref(cb);

    /* Clear of every proxy. */
    p = start(f);
    rd_cache_persist_clear(p, 0);
    rd_cache_persist_stop(p); /* stop flushes */
    ca = reload(f, f->proxy_a, 0, 0);
    struct rd_cache_stats st;
    rd_cache_stats(ca, &st);
    assert_int_equal(st.entries, 0);
    rd_cache_unref(ca);

    /* A put for a proxy that does not exist fails, is counted, and the writer goes on. */
    p = start(f);
    rd_cache_persist_put(p, f->proxy_b + 100, e[0]);
    rd_cache_persist_put(p, f->proxy_a, e[0]);
    rd_cache_persist_flush(p);
    rd_cache_persist_counts(p, &written, &deleted, &failed);
    assert_int_equal(written, 1);
    assert_int_equal(failed, 1);
    rd_cache_persist_stop(p);

    for (int i = 0; i < 3; i++)
        rd_cache_entry_unref(e[i]);
    rd_cache_unref(c);
}

static void test_load_limits_newest_first(void **state)
{
    struct fix *f = *state;
    struct rd_cache *c = new_cache(0, 0);
    struct rd_cache_persist *p = start(f);
    struct rd_cache_entry *e[5];
    for (uint8_t i = 0; i < 5; i++) {
        fake_now = T0 + 1000 * i; /* key i + 1 is the i-th oldest */
        e[i] = commit(c, (uint8_t)(i + 1), false, 3600);
        rd_cache_persist_put(p, f->proxy_a, e[i]);
    }
    rd_cache_persist_stop(p);

    /* Two fit: the two newest are kept (the older ones went in first and
     * were the least recently used). */
    struct rd_cache *c2 = reload(f, f->proxy_a, 2, 0);
    struct rd_cache_stats st;
    rd_cache_stats(c2, &st);
    assert_int_equal(st.entries, 2);
    struct rd_cache_entry *got;
    assert_non_null(got = find(c2, 5));
    rd_cache_entry_unref(got);
    assert_non_null(got = find(c2, 4));
    rd_cache_entry_unref(got);
    assert_null(find(c2, 3));
    rd_cache_unref(c2);

    /* A byte limit that three entries fill exactly (what the cache charges
     * for them in c): the three newest. */
    struct rd_cache_stats full;
    rd_cache_stats(c, &full);
    assert_int_equal(full.bytes % 5, 0); /* same-sized entries */
    uint64_t per_entry = full.bytes / 5;
    c2 = reload(f, f->proxy_a, 0, 3 * per_entry);
    rd_cache_stats(c2, &st);
    assert_int_equal(st.entries, 3);
    assert_int_equal(st.bytes, 3 * per_entry);
    for (uint8_t k = 3; k <= 5; k++) {
        assert_non_null(got = find(c2, k));
        rd_cache_entry_unref(got);
    }
    assert_null(find(c2, 2));
    rd_cache_unref(c2);
    c2 = reload(f, f->proxy_a, 0, 3 * per_entry - 1);
    rd_cache_stats(c2, &st);
    assert_int_equal(st.entries, 2);
    assert_null(find(c2, 3));
    rd_cache_unref(c2);

    for (int i = 0; i < 5; i++)
        rd_cache_entry_unref(e[i]);
    rd_cache_unref(c);
}

struct producer {
    struct rd_cache_persist *p;
    int64_t proxy;
    struct rd_cache_entry *e[8];
};

static void *produce(void *arg)
{
    struct producer *w = arg;
    for (int round = 0; round < 50; round++) {
        for (int i = 0; i < 8; i++)
            rd_cache_persist_put(w->p, w->proxy, w->e[i]);
        if (round % 10 == 0)
            rd_cache_persist_flush(w->p);
    }
    return NULL;
}

/* Four threads queue at once (TSan checks the queue): every put is written. */
static void test_concurrent_producers(void **state)
{
    struct fix *f = *state;
    struct rd_cache *c = new_cache(0, 0);
    struct producer w[4];
    struct rd_cache_persist *p = start(f);
    for (int t = 0; t < 4; t++) {
        w[t].p = p;
        w[t].proxy = t % 2 ? f->proxy_b : f->proxy_a;
        for (int i = 0; i < 8; i++)
            w[t].e[i] = commit(c, (uint8_t)(8 * t + i + 1), i % 2 == 0, 60);
    }
    pthread_t th[4];
    for (int t = 0; t < 4; t++)
        assert_int_equal(pthread_create(&th[t], NULL, produce, &w[t]), 0);
    for (int t = 0; t < 4; t++)
        assert_int_equal(pthread_join(th[t], NULL), 0);
    rd_cache_persist_flush(p);
    uint64_t written, deleted, failed;
    rd_cache_persist_counts(p, &written, &deleted, &failed);
    assert_int_equal(written, 4 * 50 * 8);
    assert_int_equal(failed, 0);
    rd_cache_persist_stop(p);
    struct rd_cache *ca = reload(f, f->proxy_a, 0, 0);
    struct rd_cache_stats st;
    rd_cache_stats(ca, &st);
    assert_int_equal(st.entries, 16);
    rd_cache_unref(ca);
    for (int t = 0; t < 4; t++)
        for (int i = 0; i < 8; i++)
            rd_cache_entry_unref(w[t].e[i]);
    rd_cache_unref(c);
}

static void test_start_failure(void **state)
{
    (void)state;
    struct rd_cache_persist *p = NULL;
    char err[200] = "";
    assert_int_equal(rd_cache_persist_start("postgresql://u:secret@h/db", &p, err, sizeof err), RD_EINVAL);
    assert_null(p);
    assert_null(strstr(err, "secret"));
    rd_cache_persist_stop(NULL);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_restart_round_trip, setup, teardown),
        cmocka_unit_test_setup_teardown(test_delete_and_clear, setup, teardown),
        cmocka_unit_test_setup_teardown(test_load_limits_newest_first, setup, teardown),
        cmocka_unit_test_setup_teardown(test_concurrent_producers, setup, teardown),
        cmocka_unit_test(test_start_failure),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
