/* Tests for src/cache/cache.c, entry.c and admin.c with an injected clock:
 * miss, fill, commit and hit; joiners following a fill and being woken;
 * abort; expiry; LRU eviction order under the byte and the entry limit;
 * max_bytes and max_response refusals; replacement; listing with a pattern
 * and a cursor; deletion by pattern, key and model; the removed callback;
 * references outliving removal; shrinking limits; keys' text; inserts,
 * closest and extend; and four threads on overlapping keys (run under TSan
 * too). */
#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <cmocka.h>
#include <pthread.h>

#include "cache/cache.h"
#include "util/err.h"

static int64_t g_now = 1700000000000;

static int64_t test_now(void)
{
    return g_now;
}

/* What the removed callback saw. */
struct removals {
    uint8_t keys[64][RD_CACHE_KEY_LEN];
    size_t n;
};

static void on_removed(void *ud, const struct rd_cache_entry *e)
{
    struct removals *r = ud;
    if (r->n < 64)
        memcpy(r->keys[r->n], e->key, RD_CACHE_KEY_LEN);
    r->n++;
}

static void key_of(unsigned i, uint8_t key[RD_CACHE_KEY_LEN])
{
    memset(key, 0, RD_CACHE_KEY_LEN);
    key[0] = (uint8_t)i; /* spreads over the shards */
    key[8] = (uint8_t)(i * 7 + 1);
    key[31] = (uint8_t)(i >> 8);
}

static struct rd_cache *cache_new(uint64_t max_bytes, uint64_t max_entries, uint64_t max_response, struct removals *r)
{
    struct rd_cache_limits lim = {max_bytes, max_entries, max_response};
    struct rd_cache_opts o = {.now_ms = test_now, .removed = r ? on_removed : NULL, .removed_ud = r};
    return rd_cache_new(&lim, &o);
}

static const struct rd_cache_hdr CT = {"content-type", "application/json", 12, 16};

/* Fills key with body (as model) and commits it for ttl_s; returns commit's code. */
static int store(struct rd_cache *c, unsigned i, const char *model, const char *body, uint32_t ttl_s)
{
    uint8_t key[RD_CACHE_KEY_LEN];
    key_of(i, key);
    struct rd_cache_entry *e = rd_cache_fill_begin(c, key, model, RD_REQ_CHAT, "POST", "/v1/chat/completions");
    assert_non_null(e);
    assert_int_equal(rd_cache_fill_head(e, 200, &CT, 1, false), 0);
    assert_int_equal(rd_cache_fill_data(e, body, strlen(body)), 0);
    int rc = rd_cache_fill_commit(e, ttl_s);
    rd_cache_entry_unref(e);
    return rc;
}

/* The body of a complete entry, into out. */
static void body_of(const struct rd_cache_entry *e, char *out, size_t cap)
{
    size_t at = 0;
    for (const struct rd_cache_chunk *ch = e->first; ch; ch = ch->next) {
        assert_true(at + ch->len < cap);
        memcpy(out + at, ch->data, ch->len);
        at += ch->len;
    }
    assert_int_equal(at, e->len);
    out[at] = '\0';
}

static enum rd_cache_lookup get(struct rd_cache *c, unsigned i, struct rd_cache_entry **e)
{
    uint8_t key[RD_CACHE_KEY_LEN];
    key_of(i, key);
    return rd_cache_lookup(c, key, false, false, "m", RD_REQ_CHAT, "POST", "/p", e);
}

/* Whether key i is in the cache, without touching its LRU position. */
static bool present(struct rd_cache *c, unsigned i);

static void test_miss_fill_commit_hit(void **state)
{
    (void)state;
    struct rd_cache *c = cache_new(0, 0, 0, NULL);
    uint8_t key[RD_CACHE_KEY_LEN];
    key_of(1, key);
    struct rd_cache_entry *e = NULL;
    assert_int_equal(rd_cache_lookup(c, key, true, true, "gpt-4o", RD_REQ_CHAT, "POST", "/v1/chat", &e),
                     RD_CACHE_LOOKUP_MISS);
    assert_non_null(e);
    assert_int_equal(e->state, RD_CACHE_FILLING);
    assert_string_equal(e->model, "gpt-4o");
    assert_int_equal(rd_cache_fill_head(e, 200, &CT, 1, false), 0);
    assert_int_equal(rd_cache_fill_head(e, 200, &CT, 1, false), RD_ESTATE);
    assert_int_equal(rd_cache_fill_data(e, "{\"a\":", 5), 0);
    assert_int_equal(rd_cache_fill_data(e, "1}", 2), 0);
    assert_int_equal(rd_cache_fill_commit(e, 60), 0);
    assert_int_equal(e->created_ms, g_now);
    assert_int_equal(e->expires_ms, g_now + 60000);
    rd_cache_entry_unref(e);

    struct rd_cache_entry *h = NULL;
    assert_int_equal(rd_cache_lookup(c, key, true, true, "gpt-4o", RD_REQ_CHAT, "POST", "/v1/chat", &h),
                     RD_CACHE_LOOKUP_HIT);
    char body[64];
    body_of(h, body, sizeof(body));
    assert_string_equal(body, "{\"a\":1}");
    assert_int_equal(h->status, 200);
    assert_int_equal(h->nhdrs, 1);
    assert_string_equal(h->hdrs[0].value, "application/json");
    assert_string_equal(h->path, "/v1/chat");
    assert_int_equal(atomic_load(&h->hits), 1);
    rd_cache_entry_unref(h);

    /* A lookup that doesn't fill returns NULL on a miss. */
    key_of(2, key);
    h = (struct rd_cache_entry *)1;
    assert_int_equal(rd_cache_lookup(c, key, true, false, "", RD_REQ_CHAT, "POST", "/", &h), RD_CACHE_LOOKUP_MISS);
    assert_null(h);
    struct rd_cache_stats st;
    rd_cache_stats(c, &st);
    assert_int_equal(st.entries, 1);
    assert_int_equal(st.hits, 1);
    assert_int_equal(st.misses, 2);
    assert_true(st.bytes > 7);
    assert_int_equal(st.oldest_ms, g_now);
    assert_int_equal(st.newest_ms, g_now);
    rd_cache_unref(c);
}

struct waker {
    int woken;
};

static void wake(void *ud)
{
    ((struct waker *)ud)->woken++;
}

static void test_join_and_wake(void **state)
{
    (void)state;
    struct rd_cache *c = cache_new(0, 0, 0, NULL);
    uint8_t key[RD_CACHE_KEY_LEN];
    key_of(3, key);
    struct rd_cache_entry *lead = NULL, *join = NULL, *other = NULL;
    assert_int_equal(rd_cache_lookup(c, key, true, true, "m", RD_REQ_CHAT, "POST", "/p", &lead), RD_CACHE_LOOKUP_MISS);
    assert_int_equal(rd_cache_lookup(c, key, true, true, "m", RD_REQ_CHAT, "POST", "/p", &join), RD_CACHE_LOOKUP_JOIN);
    assert_ptr_equal(join, lead);
    /* Not joining is a miss with a second fill of its own. */
    assert_int_equal(rd_cache_lookup(c, key, false, true, "m", RD_REQ_CHAT, "POST", "/p", &other),
                     RD_CACHE_LOOKUP_MISS);
    assert_ptr_not_equal(other, lead);
    rd_cache_fill_abort(other);
    rd_cache_entry_unref(other);

    struct waker w = {0};
    struct rd_cache_follow f = {.wake = wake, .ud = &w};
    assert_true(rd_cache_follow(join, &f));
    assert_int_equal(rd_cache_fill_head(lead, 200, &CT, 1, true), 0);
    assert_int_equal(w.woken, 1);
    enum rd_cache_state st;
    uint64_t len;
    bool head;
    rd_cache_peek(join, &st, &len, &head);
    assert_true(head);
    assert_int_equal(len, 0);
    /* More than one chunk, so the reader crosses a link. */
    static char big[10000];
    memset(big, 'x', sizeof(big));
    assert_int_equal(rd_cache_fill_data(lead, big, sizeof(big)), 0);
    assert_int_equal(rd_cache_fill_mark(lead, sizeof(big), 5), 0);
    assert_int_equal(w.woken, 2);
    rd_cache_peek(join, &st, &len, &head);
    assert_int_equal(st, RD_CACHE_FILLING);
    assert_int_equal(len, sizeof(big));
    assert_int_equal(rd_cache_fill_commit(lead, 60), 0);
    assert_int_equal(w.woken, 3);
    rd_cache_peek(join, &st, &len, &head);
    assert_int_equal(st, RD_CACHE_COMPLETE);
    assert_int_equal(join->nmarks, 1);
    assert_int_equal(join->marks[0].end, sizeof(big));
    rd_cache_unfollow(join, &f);
    assert_false(rd_cache_follow(join, &f)); /* complete: nothing to follow */
    uint64_t n = 0;
    for (const struct rd_cache_chunk *ch = join->first; ch; ch = ch->next) {
        for (size_t i = 0; i < ch->len; i++)
            assert_int_equal(ch->data[i], 'x');
        n += ch->len;
    }
    assert_int_equal(n, sizeof(big));
    struct rd_cache_stats s;
    rd_cache_stats(c, &s);
    assert_int_equal(s.hits, 1); /* the join */
    assert_int_equal(s.misses, 2);
    rd_cache_entry_unref(join);
    rd_cache_entry_unref(lead);
    rd_cache_unref(c);
}

static void test_abort(void **state)
{
    (void)state;
    struct rd_cache *c = cache_new(0, 0, 0, NULL);
    uint8_t key[RD_CACHE_KEY_LEN];
    key_of(4, key);
    struct rd_cache_entry *lead = NULL, *join = NULL;
    rd_cache_lookup(c, key, true, true, "m", RD_REQ_CHAT, "POST", "/p", &lead);
    assert_int_equal(rd_cache_lookup(c, key, true, true, "m", RD_REQ_CHAT, "POST", "/p", &join), RD_CACHE_LOOKUP_JOIN);
    struct waker w = {0};
    struct rd_cache_follow f = {.wake = wake, .ud = &w};
    assert_true(rd_cache_follow(join, &f));
    rd_cache_fill_abort(lead);
    assert_int_equal(w.woken, 1);
    enum rd_cache_state st;
    rd_cache_peek(join, &st, NULL, NULL);
    assert_int_equal(st, RD_CACHE_FAILED);
    assert_int_equal(rd_cache_fill_data(lead, "x", 1), RD_ESTATE);
    assert_int_equal(rd_cache_fill_commit(lead, 60), RD_ETOOBIG);
    rd_cache_unfollow(join, &f);
    rd_cache_entry_unref(join);
    rd_cache_entry_unref(lead);
    /* The key is free again: the next request leads a new fill. */
    struct rd_cache_entry *e = NULL;
    assert_int_equal(rd_cache_lookup(c, key, true, true, "m", RD_REQ_CHAT, "POST", "/p", &e), RD_CACHE_LOOKUP_MISS);
    /* A commit without a head is refused and aborts. */
    assert_int_equal(rd_cache_fill_commit(e, 60), RD_EINVAL);
    rd_cache_peek(e, &st, NULL, NULL);
    assert_int_equal(st, RD_CACHE_FAILED);
    rd_cache_entry_unref(e);
    rd_cache_unref(c);
}

/* A whole answer committed with a TTL of 0 (by_model 0): not stored, but
 * a request that joined it finishes it (COMPLETE), never cut (FAILED). */
static void test_ttl0_joiner_completes(void **state)
{
    (void)state;
    struct rd_cache *c = cache_new(0, 0, 0, NULL);
    uint8_t key[RD_CACHE_KEY_LEN];
    key_of(5, key);
    struct rd_cache_entry *lead = NULL, *join = NULL;
    rd_cache_lookup(c, key, true, true, "m", RD_REQ_CHAT, "POST", "/p", &lead);
    assert_int_equal(rd_cache_fill_head(lead, 200, &CT, 1, false), 0);
    assert_int_equal(rd_cache_fill_data(lead, "{}", 2), 0);
    assert_int_equal(rd_cache_lookup(c, key, true, true, "m", RD_REQ_CHAT, "POST", "/p", &join), RD_CACHE_LOOKUP_JOIN);
    assert_int_equal(rd_cache_fill_commit(lead, 0), RD_EINVAL);
    enum rd_cache_state st;
    uint64_t len = 0;
    rd_cache_peek(join, &st, &len, NULL);
    assert_int_equal(st, RD_CACHE_COMPLETE);
    assert_int_equal(len, 2);
    rd_cache_entry_unref(join);
    rd_cache_entry_unref(lead);
    struct rd_cache_entry *e = NULL;
    assert_int_equal(rd_cache_lookup(c, key, true, false, "m", RD_REQ_CHAT, "POST", "/p", &e), RD_CACHE_LOOKUP_MISS);
    assert_null(e);
    rd_cache_unref(c);
}

static void test_expiry(void **state)
{
    (void)state;
    struct removals r = {0};
    struct rd_cache *c = cache_new(0, 0, 0, &r);
    assert_int_equal(store(c, 5, "m", "a", 10), 0);
    assert_int_equal(store(c, 6, "m", "b", 20), 0);
    struct rd_cache_entry *e = NULL;
    g_now += 9999;
    assert_int_equal(get(c, 5, &e), RD_CACHE_LOOKUP_HIT);
    rd_cache_entry_unref(e);
    g_now += 1; /* exactly at expires_ms: gone */
    assert_int_equal(get(c, 5, &e), RD_CACHE_LOOKUP_MISS);
    assert_null(e);
    assert_int_equal(r.n, 1);
    assert_int_equal(r.keys[0][0], 5);
    assert_int_equal(rd_cache_purge_expired(c), 0);
    g_now += 10000;
    assert_int_equal(rd_cache_purge_expired(c), 1);
    assert_int_equal(r.n, 2);
    assert_int_equal(r.keys[1][0], 6);
    struct rd_cache_stats s;
    rd_cache_stats(c, &s);
    assert_int_equal(s.entries, 0);
    assert_int_equal(s.bytes, 0);
    assert_int_equal(s.expired, 2);
    assert_int_equal(s.oldest_ms, 0);
    rd_cache_unref(c);
}

static uint64_t one_charge(void)
{
    struct rd_cache *c = cache_new(0, 0, 0, NULL);
    assert_int_equal(store(c, 0, "m", "body", 60), 0);
    struct rd_cache_stats s;
    rd_cache_stats(c, &s);
    rd_cache_unref(c);
    return s.bytes;
}

struct keys_seen {
    uint8_t first[16];
    size_t n;
};

static void see(void *ud, const struct rd_cache_entry *e)
{
    struct keys_seen *k = ud;
    if (k->n < 16)
        k->first[k->n] = e->key[0];
    k->n++;
}

static bool present(struct rd_cache *c, unsigned i)
{
    uint8_t key[RD_CACHE_KEY_LEN];
    key_of(i, key);
    struct keys_seen k = {0};
    size_t n = rd_cache_list(c, NULL, NULL, 0, see, &k);
    for (size_t j = 0; j < n && j < 16; j++)
        if (k.first[j] == key[0])
            return true;
    return false;
}

/* Stores 1..3, touches 1 and 3, adds 4: 2 is the one evicted. */
static void lru_order(struct rd_cache *c, struct removals *r)
{
    for (unsigned i = 1; i <= 3; i++)
        assert_int_equal(store(c, i, "m", "body", 60), 0);
    struct rd_cache_entry *e;
    assert_int_equal(get(c, 1, &e), RD_CACHE_LOOKUP_HIT);
    rd_cache_entry_unref(e);
    assert_int_equal(get(c, 3, &e), RD_CACHE_LOOKUP_HIT);
    rd_cache_entry_unref(e);
    assert_int_equal(store(c, 4, "m", "body", 60), 0);
    assert_int_equal(r->n, 1);
    assert_int_equal(r->keys[0][0], 2);
    assert_true(present(c, 1) && !present(c, 2) && present(c, 3) && present(c, 4));
    /* Next oldest: 1 (touched before 3). */
    assert_int_equal(store(c, 5, "m", "body", 60), 0);
    assert_int_equal(r->n, 2);
    assert_int_equal(r->keys[1][0], 1);
    struct rd_cache_stats s;
    rd_cache_stats(c, &s);
    assert_int_equal(s.entries, 3);
    assert_int_equal(s.evictions, 2);
}

static void test_lru_by_bytes(void **state)
{
    (void)state;
    struct removals r = {0};
    uint64_t charge = one_charge();
    struct rd_cache *c = cache_new(3 * charge, 0, 0, &r);
    lru_order(c, &r);
    struct rd_cache_stats s;
    rd_cache_stats(c, &s);
    assert_int_equal(s.bytes, 3 * charge);
    rd_cache_unref(c);
}

static void test_lru_by_entries(void **state)
{
    (void)state;
    struct removals r = {0};
    struct rd_cache *c = cache_new(0, 3, 0, &r);
    lru_order(c, &r);
    rd_cache_unref(c);
}

static void test_over_max_bytes_refused(void **state)
{
    (void)state;
    struct removals r = {0};
    uint64_t charge = one_charge();
    struct rd_cache *c = cache_new(charge + 100, 0, 0, &r);
    assert_int_equal(store(c, 1, "m", "body", 60), 0);
    /* A body over the limit (a second chunk) is refused, and evicts nobody. */
    static char big[8000];
    memset(big, 'y', sizeof(big) - 1);
    assert_int_equal(store(c, 2, "m", big, 60), RD_ETOOBIG);
    assert_int_equal(r.n, 0);
    assert_true(present(c, 1));
    assert_false(present(c, 2));
    rd_cache_unref(c);
}

static void test_max_response(void **state)
{
    (void)state;
    struct rd_cache *c = cache_new(0, 0, 10, NULL);
    uint8_t key[RD_CACHE_KEY_LEN];
    key_of(7, key);
    /* Nobody follows: the fill is dropped at once, a later joiner sees FAILED. */
    struct rd_cache_entry *e = rd_cache_fill_begin(c, key, "m", RD_REQ_CHAT, "POST", "/p");
    assert_int_equal(rd_cache_fill_head(e, 200, &CT, 1, false), 0);
    assert_int_equal(rd_cache_fill_data(e, "0123456789", 10), 0);
    assert_int_equal(rd_cache_fill_data(e, "a", 1), RD_ETOOBIG);
    enum rd_cache_state st;
    rd_cache_peek(e, &st, NULL, NULL);
    assert_int_equal(st, RD_CACHE_FAILED);
    assert_int_equal(rd_cache_fill_commit(e, 60), RD_ETOOBIG);
    rd_cache_entry_unref(e);
    struct rd_cache_entry *h = NULL;
    assert_int_equal(rd_cache_lookup(c, key, true, false, "m", RD_REQ_CHAT, "POST", "/p", &h), RD_CACHE_LOOKUP_MISS);

    /* Followed: it keeps every byte, the follower sees the end, nothing is stored. */
    e = rd_cache_fill_begin(c, key, "m", RD_REQ_CHAT, "POST", "/p");
    assert_int_equal(rd_cache_lookup(c, key, true, false, "m", RD_REQ_CHAT, "POST", "/p", &h), RD_CACHE_LOOKUP_JOIN);
    struct waker w = {0};
    struct rd_cache_follow f = {.wake = wake, .ud = &w};
    assert_true(rd_cache_follow(h, &f));
    assert_int_equal(rd_cache_fill_head(e, 200, &CT, 1, false), 0);
    assert_int_equal(rd_cache_fill_data(e, "0123456789", 10), 0);
    assert_int_equal(rd_cache_fill_data(e, "abc", 3), RD_ETOOBIG);
    assert_int_equal(rd_cache_fill_data(e, "def", 3), RD_ETOOBIG);
    assert_int_equal(rd_cache_fill_commit(e, 60), RD_ETOOBIG);
    uint64_t len;
    rd_cache_peek(h, &st, &len, NULL);
    assert_int_equal(st, RD_CACHE_COMPLETE);
    assert_int_equal(len, 16);
    char body[32];
    body_of(h, body, sizeof(body));
    assert_string_equal(body, "0123456789abcdef");
    rd_cache_unfollow(h, &f);
    rd_cache_entry_unref(h);
    rd_cache_entry_unref(e);
    assert_int_equal(get(c, 7, &h), RD_CACHE_LOOKUP_MISS);
    struct rd_cache_stats s;
    rd_cache_stats(c, &s);
    assert_int_equal(s.entries, 0);
    rd_cache_unref(c);
}

static void test_replace_same_key(void **state)
{
    (void)state;
    struct removals r = {0};
    struct rd_cache *c = cache_new(0, 0, 0, &r);
    assert_int_equal(store(c, 8, "m", "old", 60), 0);
    struct rd_cache_entry *old = NULL, *now = NULL;
    assert_int_equal(get(c, 8, &old), RD_CACHE_LOOKUP_HIT);
    /* A refresh fills while the old entry still serves hits. */
    uint8_t key[RD_CACHE_KEY_LEN];
    key_of(8, key);
    struct rd_cache_entry *e = rd_cache_fill_begin(c, key, "m", RD_REQ_CHAT, "POST", "/p");
    assert_int_equal(get(c, 8, &now), RD_CACHE_LOOKUP_HIT);
    assert_ptr_equal(now, old);
    rd_cache_entry_unref(now);
    assert_int_equal(rd_cache_fill_head(e, 201, &CT, 1, false), 0);
    assert_int_equal(rd_cache_fill_data(e, "new", 3), 0);
    assert_int_equal(rd_cache_fill_commit(e, 60), 0);
    rd_cache_entry_unref(e);
    assert_int_equal(r.n, 1);
    assert_int_equal(r.keys[0][0], 8);
    assert_int_equal(get(c, 8, &now), RD_CACHE_LOOKUP_HIT);
    char body[8];
    body_of(now, body, sizeof(body));
    assert_string_equal(body, "new");
    body_of(old, body, sizeof(body)); /* the reader's copy stays readable */
    assert_string_equal(body, "old");
    assert_false(old->in_table);
    rd_cache_entry_unref(now);
    rd_cache_entry_unref(old);
    struct rd_cache_stats s;
    rd_cache_stats(c, &s);
    assert_int_equal(s.entries, 1);
    rd_cache_unref(c);
}

struct listed {
    char text[8][RD_CACHE_KEY_TEXT_MAX];
    uint8_t keys[8][RD_CACHE_KEY_LEN];
    size_t n;
};

static void collect(void *ud, const struct rd_cache_entry *e)
{
    struct listed *l = ud;
    assert_true(l->n < 8);
    rd_cache_key_text(e, l->text[l->n]);
    memcpy(l->keys[l->n], e->key, RD_CACHE_KEY_LEN);
    l->n++;
}

static void test_list_pattern_cursor(void **state)
{
    (void)state;
    struct rd_cache *c = cache_new(0, 0, 0, NULL);
    /* Keys 0x30.. in descending order of insertion, two models. */
    for (unsigned i = 0; i < 6; i++)
        assert_int_equal(store(c, 0x35 - i, i % 2 ? "gpt-4o" : "claude", "b", 60), 0);
    struct listed l = {0};
    assert_int_equal(rd_cache_list(c, "gpt-4o:*", NULL, 2, collect, &l), 2);
    assert_int_equal(l.keys[0][0], 0x30);
    assert_int_equal(l.keys[1][0], 0x32);
    assert_memory_equal(l.text[0], "gpt-4o:30", 9);
    struct listed m = {0};
    assert_int_equal(rd_cache_list(c, "gpt-4o:*", l.keys[1], 2, collect, &m), 1);
    assert_int_equal(m.keys[0][0], 0x34);
    struct listed all = {0};
    assert_int_equal(rd_cache_list(c, NULL, NULL, 0, collect, &all), 6);
    for (size_t i = 0; i < 6; i++)
        assert_int_equal(all.keys[i][0], 0x30 + i);
    struct listed q = {0};
    assert_int_equal(rd_cache_list(c, "?laude:31*", NULL, 0, collect, &q), 1);
    assert_int_equal(q.keys[0][0], 0x31);
    struct listed none = {0};
    assert_int_equal(rd_cache_list(c, "gpt-4o", NULL, 0, collect, &none), 0);
    rd_cache_unref(c);
}

static void test_delete(void **state)
{
    (void)state;
    struct removals r = {0};
    struct rd_cache *c = cache_new(0, 0, 0, &r);
    for (unsigned i = 0; i < 6; i++)
        assert_int_equal(store(c, 0x40 + i, i < 2 ? "a" : i < 4 ? "b" : "c", "b", 60), 0);
    assert_int_equal(rd_cache_delete_pattern(c, "a:*"), 2);
    assert_int_equal(r.n, 2);
    assert_int_equal(rd_cache_delete_model(c, "b"), 2);
    assert_int_equal(rd_cache_delete_model(c, "b"), 0);
    assert_int_equal(r.n, 4);
    uint8_t key[RD_CACHE_KEY_LEN];
    key_of(0x44, key);
    struct rd_cache_entry *held = NULL;
    assert_int_equal(get(c, 0x44, &held), RD_CACHE_LOOKUP_HIT);
    assert_true(rd_cache_delete_key(c, key));
    assert_false(rd_cache_delete_key(c, key));
    assert_int_equal(r.n, 5);
    assert_int_equal(r.keys[4][0], 0x44);
    /* Removed but still readable by its holder until unref (ASan checks the free). */
    char body[8];
    body_of(held, body, sizeof(body));
    assert_string_equal(body, "b");
    assert_int_equal(atomic_load(&held->refs), 1);
    rd_cache_entry_unref(held);
    assert_int_equal(rd_cache_delete_pattern(c, NULL), 1);
    assert_int_equal(r.n, 6);
    struct rd_cache_stats s;
    rd_cache_stats(c, &s);
    assert_int_equal(s.entries, 0);
    assert_int_equal(s.bytes, 0);
    /* Freeing the cache is no removal. */
    assert_int_equal(store(c, 0x50, "a", "b", 60), 0);
    rd_cache_unref(c);
    assert_int_equal(r.n, 6);
}

static void test_set_limits_shrinks(void **state)
{
    (void)state;
    struct removals r = {0};
    struct rd_cache *c = cache_new(0, 0, 0, &r);
    for (unsigned i = 1; i <= 5; i++)
        assert_int_equal(store(c, i, "m", "body", 60), 0);
    struct rd_cache_entry *e;
    assert_int_equal(get(c, 1, &e), RD_CACHE_LOOKUP_HIT);
    rd_cache_entry_unref(e);
    struct rd_cache_limits lim = {.max_entries = 2};
    rd_cache_set_limits(c, &lim);
    assert_int_equal(r.n, 3);
    assert_true(present(c, 1) && present(c, 5));
    uint64_t charge = one_charge();
    lim = (struct rd_cache_limits){.max_bytes = charge};
    rd_cache_set_limits(c, &lim);
    assert_true(present(c, 1) && !present(c, 5));
    rd_cache_unref(c);
}

static void test_key_text(void **state)
{
    (void)state;
    uint8_t key[RD_CACHE_KEY_LEN], back[RD_CACHE_KEY_LEN];
    for (size_t i = 0; i < sizeof(key); i++)
        key[i] = (uint8_t)(i * 9 + 3);
    struct rd_cache_entry *e = rd_cache_entry_new(key, "ft:gpt-4o:acme::x1", RD_REQ_CHAT, NULL, NULL);
    char text[RD_CACHE_KEY_TEXT_MAX];
    rd_cache_key_text(e, text);
    assert_int_equal(strlen(text), strlen("ft:gpt-4o:acme::x1") + 1 + 64);
    assert_true(rd_cache_key_parse(text, back));
    assert_memory_equal(key, back, sizeof(key));
    assert_true(rd_cache_key_parse(text + strlen("ft:gpt-4o:acme::x1") + 1, back)); /* bare hex */
    assert_memory_equal(key, back, sizeof(key));
    assert_true(rd_cache_key_parse(text + strlen("ft:gpt-4o:acme::x1"), back)); /* ":hex" */
    assert_false(rd_cache_key_parse("gpt-4o:abc", back));
    char bad[RD_CACHE_KEY_TEXT_MAX];
    memcpy(bad, text, sizeof(bad));
    bad[strlen(bad) - 1] = 'g';
    assert_false(rd_cache_key_parse(bad, back));
    assert_false(rd_cache_key_parse(NULL, back));
    rd_cache_entry_unref(e);
}

static struct rd_cache_entry *built(unsigned i, const char *path, int64_t created, int64_t expires)
{
    uint8_t key[RD_CACHE_KEY_LEN];
    key_of(i, key);
    struct rd_cache_entry *e = rd_cache_entry_new(key, "m", RD_REQ_CHAT, "POST", path);
    assert_int_equal(rd_cache_fill_head(e, 200, &CT, 1, true), 0);
    assert_int_equal(rd_cache_fill_data(e, "data: x\n\n", 9), 0);
    assert_int_equal(rd_cache_fill_mark(e, 9, 0), 0);
    e->created_ms = created;
    e->expires_ms = expires;
    e->state = RD_CACHE_COMPLETE;
    return e;
}

static void test_insert_closest_extend(void **state)
{
    (void)state;
    struct rd_cache *c = cache_new(0, 0, 0, NULL);
    struct rd_cache_entry *a = built(0x60, "/v1/x", g_now - 2000, g_now + 1000);
    struct rd_cache_entry *b = built(0x61, "/v1/x", g_now - 1000, g_now + 1000);
    struct rd_cache_entry *old = built(0x62, "/v1/x", g_now - 5000, g_now);
    assert_int_equal(rd_cache_insert(c, a), 0);
    assert_int_equal(rd_cache_insert(c, a), RD_EINVAL); /* already in */
    assert_int_equal(rd_cache_insert(c, b), 0);
    assert_int_equal(rd_cache_insert(c, old), RD_EINVAL); /* expired */
    assert_null(rd_cache_closest(c, "/v1/y", "m"));
    assert_null(rd_cache_closest(c, "/v1/x", "other"));
    struct rd_cache_entry *near = rd_cache_closest(c, "/v1/x", "m");
    assert_ptr_equal(near, b);
    rd_cache_entry_unref(near);
    struct rd_cache_entry *h;
    assert_int_equal(get(c, 0x60, &h), RD_CACHE_LOOKUP_HIT);
    rd_cache_extend(c, h, g_now + 50000);
    rd_cache_extend(c, h, g_now + 10); /* never shortens */
    assert_int_equal(h->expires_ms, g_now + 50000);
    rd_cache_entry_unref(h);
    g_now += 2000;
    assert_int_equal(get(c, 0x60, &h), RD_CACHE_LOOKUP_HIT);
    rd_cache_entry_unref(h);
    assert_int_equal(get(c, 0x61, &h), RD_CACHE_LOOKUP_MISS);
    rd_cache_entry_unref(a);
    rd_cache_entry_unref(b);
    rd_cache_entry_unref(old);
    rd_cache_unref(c);
}

/* ---- four threads on overlapping keys ---- */

struct worker {
    struct rd_cache *c;
    unsigned seed;
    pthread_barrier_t *go;
    long ops;
    bool bad;
};

static atomic_int g_wakes;

static void count_wake(void *ud)
{
    (void)ud;
    atomic_fetch_add(&g_wakes, 1);
}

static unsigned next(unsigned *s)
{
    *s = *s * 1103515245u + 12345u;
    return *s >> 16;
}

/* Each key's body is its number repeated, so any reader can check it. */
static void read_check(struct worker *w, struct rd_cache_entry *e, unsigned k)
{
    enum rd_cache_state st;
    uint64_t len;
    rd_cache_peek(e, &st, &len, NULL);
    /* As cache.h tells joiners: bound by the peeked len and each chunk's
     * cap, follow first and next only below that len. */
    uint64_t at = 0;
    const struct rd_cache_chunk *ch = len ? e->first : NULL;
    while (ch) {
        size_t n = len - at < ch->cap ? (size_t)(len - at) : ch->cap;
        for (size_t i = 0; i < n; i++)
            if (ch->data[i] != (char)('a' + k % 26))
                w->bad = true;
        at += n;
        ch = at < len ? ch->next : NULL;
    }
    if (st == RD_CACHE_COMPLETE && len != 9000)
        w->bad = true;
}

static void lead(struct worker *w, struct rd_cache_entry *e, unsigned k, unsigned r)
{
    char body[3000];
    memset(body, 'a' + (int)(k % 26), sizeof(body));
    rd_cache_fill_head(e, 200, &CT, 1, true);
    for (int i = 0; i < 3; i++)
        rd_cache_fill_data(e, body, sizeof(body));
    if (r % 5 == 0)
        rd_cache_fill_abort(e);
    else
        rd_cache_fill_commit(e, 1 + r % 3);
    (void)w;
}

static void *work(void *arg)
{
    struct worker *w = arg;
    pthread_barrier_wait(w->go);
    struct timespec t0, t;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    for (;;) {
        clock_gettime(CLOCK_MONOTONIC, &t);
        if ((t.tv_sec - t0.tv_sec) * 1000 + (t.tv_nsec - t0.tv_nsec) / 1000000 >= 500)
            break;
        unsigned r = next(&w->seed), k = r % 24;
        uint8_t key[RD_CACHE_KEY_LEN];
        key_of(k, key);
        struct rd_cache_entry *e = NULL;
        if (r % 31 == 0) {
            rd_cache_delete_key(w->c, key);
        } else if (r % 97 == 0) {
            rd_cache_delete_pattern(w->c, "m:0?*");
            rd_cache_purge_expired(w->c);
        } else {
            enum rd_cache_lookup got = rd_cache_lookup(w->c, key, true, true, "m", RD_REQ_CHAT, "POST", "/p", &e);
            if (got == RD_CACHE_LOOKUP_MISS) {
                lead(w, e, k, r);
            } else {
                struct rd_cache_follow f = {.wake = count_wake};
                bool following = got == RD_CACHE_LOOKUP_JOIN && rd_cache_follow(e, &f);
                read_check(w, e, k);
                if (following)
                    rd_cache_unfollow(e, &f);
            }
            rd_cache_entry_unref(e);
        }
        w->ops++;
    }
    return NULL;
}

/* Real time, so the 1-3 s TTLs of the workers' entries do expire. */
static int64_t real_now(void)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (int64_t)t.tv_sec * 1000 + t.tv_nsec / 1000000;
}

static void test_threads(void **state)
{
    (void)state;
    struct rd_cache_limits lim = {.max_bytes = 12 * 13000, .max_entries = 10};
    struct rd_cache_opts o = {.now_ms = real_now};
    struct rd_cache *c = rd_cache_new(&lim, &o);
    pthread_barrier_t go;
    assert_int_equal(pthread_barrier_init(&go, NULL, 4), 0);
    struct worker w[4];
    pthread_t th[4];
    for (unsigned i = 0; i < 4; i++) {
        w[i] = (struct worker){.c = c, .seed = i * 7919 + 1, .go = &go};
        assert_int_equal(pthread_create(&th[i], NULL, work, &w[i]), 0);
    }
    long ops = 0;
    for (int i = 0; i < 4; i++) {
        assert_int_equal(pthread_join(th[i], NULL), 0);
        assert_false(w[i].bad);
        ops += w[i].ops;
    }
    pthread_barrier_destroy(&go);
    assert_true(ops > 1000);
    struct rd_cache_stats s;
    rd_cache_stats(c, &s);
    assert_true(s.entries <= 10);
    assert_true(s.bytes <= lim.max_bytes);
    assert_true(s.hits + s.misses > 0);
    assert_true(s.evictions > 0);           /* the limits were hit */
    assert_true(atomic_load(&g_wakes) > 0); /* and fills were followed */
    rd_cache_unref(c);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_miss_fill_commit_hit),
        cmocka_unit_test(test_ttl0_joiner_completes),
        cmocka_unit_test(test_join_and_wake),
        cmocka_unit_test(test_abort),
        cmocka_unit_test(test_expiry),
        cmocka_unit_test(test_lru_by_bytes),
        cmocka_unit_test(test_lru_by_entries),
        cmocka_unit_test(test_over_max_bytes_refused),
        cmocka_unit_test(test_max_response),
        cmocka_unit_test(test_replace_same_key),
        cmocka_unit_test(test_list_pattern_cursor),
        cmocka_unit_test(test_delete),
        cmocka_unit_test(test_set_limits_shrinks),
        cmocka_unit_test(test_key_text),
        cmocka_unit_test(test_insert_closest_extend),
        cmocka_unit_test(test_threads),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
