/* The memory cache (cache.h): shards of complete entries and in-flight
 * fills, LRU eviction under byte and entry limits, and the life of a fill.
 *
 * Each shard (by the key's first byte) has a mutex, a chained hash table of
 * its complete entries, a short list of its fills in flight (a refresh may
 * fill a key while its older complete entry still serves hits) and an LRU
 * list of its complete entries, most recent first. Every LRU move ticks the
 * cache's access clock under the shard's lock, so within a shard the tail
 * has the smallest access; eviction takes the oldest of the shards' tails,
 * one shard lock at a time, never two at once.
 *
 * Lock order: a shard's mutex, then an entry's e->mu. A fill's state moves
 * from FILLING only under both (on its leader's thread), so the shard lock
 * alone tells which table an entry is in; followers read the state under
 * e->mu. Wakes and the removed callback run without the shard lock.
 *
 * References: each table holds one on its entries. A fill also holds one on
 * its cache, from its start to its commit or abort, so the cache (and the
 * limits the fill reads) outlives every fill a leader still writes; the
 * leader must therefore end each fill with rd_cache_fill_commit or
 * rd_cache_fill_abort. */
#include <stdlib.h>
#include <string.h>

#include "cache/cache_int.h"
#include "util/err.h"
#include "util/mem.h"
#include "util/time.h"

#define INITIAL_BUCKETS 64

void rd_cache_shard_lock(struct rd_cache_shard *s)
{
    if (pthread_mutex_lock(&s->mu) != 0)
        abort();
}

void rd_cache_shard_unlock(struct rd_cache_shard *s)
{
    if (pthread_mutex_unlock(&s->mu) != 0)
        abort();
}

static struct rd_cache_shard *shard_of(struct rd_cache *c, const uint8_t *key)
{
    return &c->shards[key[0] % RD_CACHE_SHARDS];
}

static size_t bucket_of(const struct rd_cache_shard *s, const uint8_t *key)
{
    uint64_t h;
    memcpy(&h, key + 8, sizeof(h)); /* SHA-256 bytes: already uniform */
    return (size_t)(h & (s->nbuckets - 1));
}

void rd_cache_gone_init(struct rd_cache_gone *g)
{
    g->v = g->inl;
    g->n = 0;
    g->cap = sizeof(g->inl) / sizeof(g->inl[0]);
}

void rd_cache_gone_add(struct rd_cache_gone *g, struct rd_cache_entry *e)
{
    if (g->n == g->cap) {
        struct rd_cache_entry **v = rd_malloc(2 * g->cap * sizeof(*v));
        memcpy(v, g->v, g->n * sizeof(*v));
        if (g->v != g->inl)
            free(g->v);
        g->v = v;
        g->cap *= 2;
    }
    g->v[g->n++] = e;
}

/* Tells the removed callback and drops the tables' references; no lock held. */
void rd_cache_gone_finish(struct rd_cache *c, struct rd_cache_gone *g)
{
    for (size_t i = 0; i < g->n; i++) {
        if (c->removed)
            c->removed(c->removed_ud, g->v[i]);
        rd_cache_entry_unref(g->v[i]);
    }
    if (g->v != g->inl)
        free(g->v);
    rd_cache_gone_init(g);
}

/* ---- one shard's tables (its lock held) ---- */

static void lru_unlink(struct rd_cache_shard *s, struct rd_cache_entry *e)
{
    if (e->lru_prev)
        e->lru_prev->lru_next = e->lru_next;
    else
        s->lru_head = e->lru_next;
    if (e->lru_next)
        e->lru_next->lru_prev = e->lru_prev;
    else
        s->lru_tail = e->lru_prev;
    e->lru_prev = e->lru_next = NULL;
}

/* Makes e the shard's most recent entry: front of the list, next tick. */
static void lru_front(struct rd_cache *c, struct rd_cache_shard *s, struct rd_cache_entry *e)
{
    e->lru_prev = NULL;
    e->lru_next = s->lru_head;
    if (s->lru_head)
        s->lru_head->lru_prev = e;
    else
        s->lru_tail = e;
    s->lru_head = e;
    atomic_store_explicit(&e->access, atomic_fetch_add(&c->clock, 1) + 1, memory_order_relaxed);
}

struct rd_cache_entry *rd_cache_table_find(const struct rd_cache_shard *s, const uint8_t *key)
{
    for (struct rd_cache_entry *e = s->buckets[bucket_of(s, key)]; e; e = e->hnext)
        if (memcmp(e->key, key, RD_CACHE_KEY_LEN) == 0)
            return e;
    return NULL;
}

/* Doubles the buckets once they are as many as the entries, which keeps
 * them under RD_CACHE_SLOT_BYTES per entry. */
static void table_grow(struct rd_cache_shard *s)
{
    size_t n = s->nbuckets * 2;
    struct rd_cache_entry **b = rd_calloc(n, sizeof(*b));
    for (size_t i = 0; i < s->nbuckets; i++) {
        struct rd_cache_entry *e = s->buckets[i];
        while (e) {
            struct rd_cache_entry *next = e->hnext;
            size_t j = bucket_of(&(struct rd_cache_shard){.nbuckets = n}, e->key);
            e->hnext = b[j];
            b[j] = e;
            e = next;
        }
    }
    free(s->buckets);
    s->buckets = b;
    s->nbuckets = n;
}

/* Adds a complete entry (its table reference is the caller's to give). */
static void table_add(struct rd_cache *c, struct rd_cache_shard *s, struct rd_cache_entry *e)
{
    if (s->count >= s->nbuckets)
        table_grow(s);
    size_t b = bucket_of(s, e->key);
    e->hnext = s->buckets[b];
    s->buckets[b] = e;
    e->in_table = true;
    lru_front(c, s, e);
    s->count++;
    s->bytes += e->charge;
    atomic_fetch_add(&c->entries, 1);
    atomic_fetch_add(&c->bytes, e->charge);
}

/* Takes a complete entry out; the table's reference goes with it. */
void rd_cache_table_remove(struct rd_cache *c, struct rd_cache_shard *s, struct rd_cache_entry *e)
{
    struct rd_cache_entry **pp = &s->buckets[bucket_of(s, e->key)];
    while (*pp != e)
        pp = &(*pp)->hnext;
    *pp = e->hnext;
    e->hnext = NULL;
    e->in_table = false;
    lru_unlink(s, e);
    s->count--;
    s->bytes -= e->charge;
    atomic_fetch_sub(&c->entries, 1);
    atomic_fetch_sub(&c->bytes, e->charge);
}

static struct rd_cache_entry *filling_find(const struct rd_cache_shard *s, const uint8_t *key)
{
    for (struct rd_cache_entry *e = s->filling; e; e = e->hnext)
        if (memcmp(e->key, key, RD_CACHE_KEY_LEN) == 0)
            return e;
    return NULL;
}

static void filling_remove(struct rd_cache_shard *s, struct rd_cache_entry *e)
{
    for (struct rd_cache_entry **pp = &s->filling; *pp; pp = &(*pp)->hnext) {
        if (*pp == e) {
            *pp = e->hnext;
            e->hnext = NULL;
            e->in_table = false;
            return;
        }
    }
}

/* A new fill in the shard's in-flight list: one reference for the list,
 * one for the leader, and one on the cache for the fill. */
static struct rd_cache_entry *fill_start(struct rd_cache *c, struct rd_cache_shard *s, const uint8_t *key,
                                         const char *model, enum rd_req_kind kind, const char *method, const char *path)
{
    struct rd_cache_entry *e = rd_cache_entry_new(key, model, kind, method, path);
    e->owner = rd_cache_ref(c);
    rd_cache_entry_ref(e);
    e->hnext = s->filling;
    s->filling = e;
    e->in_table = true;
    return e;
}

/* ---- the cache ---- */

static void limits_store(struct rd_cache *c, const struct rd_cache_limits *lim)
{
    atomic_store(&c->max_bytes, lim ? lim->max_bytes : 0);
    atomic_store(&c->max_entries, lim ? lim->max_entries : 0);
    atomic_store(&c->max_response, lim ? lim->max_response : 0);
}

struct rd_cache *rd_cache_new(const struct rd_cache_limits *lim, const struct rd_cache_opts *opts)
{
    struct rd_cache *c = rd_calloc(1, sizeof(*c));
    atomic_init(&c->refs, 1);
    if (opts) {
        c->now_ms = opts->now_ms;
        c->removed = opts->removed;
        c->removed_ud = opts->removed_ud;
    }
    limits_store(c, lim);
    for (size_t i = 0; i < RD_CACHE_SHARDS; i++) {
        struct rd_cache_shard *s = &c->shards[i];
        if (pthread_mutex_init(&s->mu, NULL) != 0)
            abort();
        s->nbuckets = INITIAL_BUCKETS;
        s->buckets = rd_calloc(s->nbuckets, sizeof(*s->buckets));
    }
    return c;
}

struct rd_cache *rd_cache_ref(struct rd_cache *c)
{
    atomic_fetch_add_explicit(&c->refs, 1, memory_order_relaxed);
    return c;
}

/* No fill is in flight here: each holds a reference on the cache. */
static void cache_free(struct rd_cache *c)
{
    for (size_t i = 0; i < RD_CACHE_SHARDS; i++) {
        struct rd_cache_shard *s = &c->shards[i];
        for (size_t b = 0; b < s->nbuckets; b++) {
            struct rd_cache_entry *e = s->buckets[b];
            while (e) {
                struct rd_cache_entry *next = e->hnext;
                e->hnext = e->lru_prev = e->lru_next = NULL;
                e->in_table = false;
                e->owner = NULL;
                rd_cache_entry_unref(e);
                e = next;
            }
        }
        free(s->buckets);
        pthread_mutex_destroy(&s->mu);
    }
    free(c);
}

void rd_cache_unref(struct rd_cache *c)
{
    if (c && atomic_fetch_sub_explicit(&c->refs, 1, memory_order_acq_rel) == 1)
        cache_free(c);
}

int64_t rd_cache_now(const struct rd_cache *c)
{
    return c->now_ms ? c->now_ms() : rd_time_wall_ms();
}

static bool over_limits(struct rd_cache *c)
{
    uint64_t mb = atomic_load(&c->max_bytes), me = atomic_load(&c->max_entries);
    return (mb && atomic_load(&c->bytes) > mb) || (me && atomic_load(&c->entries) > me);
}

/* The shard whose LRU tail is the least recently used, or -1 when every
 * shard is empty; one shard lock at a time. */
static int oldest_shard(struct rd_cache *c)
{
    int best = -1;
    uint64_t best_access = 0;
    for (int i = 0; i < RD_CACHE_SHARDS; i++) {
        struct rd_cache_shard *s = &c->shards[i];
        rd_cache_shard_lock(s);
        if (s->lru_tail) {
            uint64_t a = atomic_load_explicit(&s->lru_tail->access, memory_order_relaxed);
            if (best < 0 || a < best_access) {
                best = i;
                best_access = a;
            }
        }
        rd_cache_shard_unlock(s);
    }
    return best;
}

/* Evicts the least recently used complete entries until the cache is
 * within its limits. Between finding the oldest tail and taking it a hit
 * may move it; the shard's new tail is then the one evicted, which is as
 * close to LRU as concurrent hits allow. */
static void evict(struct rd_cache *c)
{
    while (over_limits(c)) {
        int i = oldest_shard(c);
        if (i < 0)
            return;
        struct rd_cache_shard *s = &c->shards[i];
        struct rd_cache_gone g;
        rd_cache_gone_init(&g);
        rd_cache_shard_lock(s);
        struct rd_cache_entry *v = s->lru_tail;
        if (v) {
            rd_cache_table_remove(c, s, v);
            rd_cache_gone_add(&g, v);
            atomic_fetch_add(&c->evictions, 1);
        }
        rd_cache_shard_unlock(s);
        rd_cache_gone_finish(c, &g);
    }
}

void rd_cache_set_limits(struct rd_cache *c, const struct rd_cache_limits *lim)
{
    limits_store(c, lim);
    evict(c);
}

enum rd_cache_lookup rd_cache_lookup(struct rd_cache *c, const uint8_t key[RD_CACHE_KEY_LEN], bool join, bool fill,
                                     const char *model, enum rd_req_kind kind, const char *method, const char *path,
                                     struct rd_cache_entry **e)
{
    int64_t now = rd_cache_now(c);
    struct rd_cache_shard *s = shard_of(c, key);
    enum rd_cache_lookup r = RD_CACHE_LOOKUP_MISS;
    struct rd_cache_entry *found = NULL;
    struct rd_cache_gone g;
    rd_cache_gone_init(&g);
    rd_cache_shard_lock(s);
    struct rd_cache_entry *x = rd_cache_table_find(s, key);
    if (x && rd_cache_entry_is_expired(x, now)) {
        rd_cache_table_remove(c, s, x);
        rd_cache_gone_add(&g, x);
        atomic_fetch_add(&c->expired, 1);
        x = NULL;
    }
    if (x) {
        lru_unlink(s, x);
        lru_front(c, s, x);
        atomic_fetch_add(&x->hits, 1);
        found = x;
        r = RD_CACHE_LOOKUP_HIT;
    } else if (join && (x = filling_find(s, key)) != NULL) {
        found = x;
        r = RD_CACHE_LOOKUP_JOIN;
    }
    atomic_fetch_add(r == RD_CACHE_LOOKUP_MISS ? &c->misses : &c->hits, 1);
    if (found && e)
        rd_cache_entry_ref(found);
    else if (!found && fill && e)
        found = fill_start(c, s, key, model, kind, method, path);
    rd_cache_shard_unlock(s);
    rd_cache_gone_finish(c, &g);
    if (e)
        *e = found;
    return r;
}

enum rd_cache_lookup rd_cache_refresh(struct rd_cache *c, const uint8_t key[RD_CACHE_KEY_LEN], bool join,
                                      const char *model, enum rd_req_kind kind, const char *method, const char *path,
                                      struct rd_cache_entry **e)
{
    struct rd_cache_shard *s = shard_of(c, key);
    rd_cache_shard_lock(s);
    struct rd_cache_entry *x = join ? filling_find(s, key) : NULL;
    enum rd_cache_lookup r = x ? RD_CACHE_LOOKUP_JOIN : RD_CACHE_LOOKUP_MISS;
    if (x)
        rd_cache_entry_ref(x);
    else
        x = fill_start(c, s, key, model, kind, method, path);
    rd_cache_shard_unlock(s);
    atomic_fetch_add(r == RD_CACHE_LOOKUP_MISS ? &c->misses : &c->hits, 1);
    *e = x;
    return r;
}

struct rd_cache_entry *rd_cache_fill_begin(struct rd_cache *c, const uint8_t key[RD_CACHE_KEY_LEN], const char *model,
                                           enum rd_req_kind kind, const char *method, const char *path)
{
    struct rd_cache_shard *s = shard_of(c, key);
    rd_cache_shard_lock(s);
    struct rd_cache_entry *e = fill_start(c, s, key, model, kind, method, path);
    rd_cache_shard_unlock(s);
    return e;
}

/* ---- the end of a fill (the leader's thread) ---- */

static enum rd_cache_state state_of(struct rd_cache_entry *e)
{
    enum rd_cache_state st;
    rd_cache_peek(e, &st, NULL, NULL);
    return st;
}

/* Ends fill e in state st without storing it: out of the in-flight list,
 * followers woken, the list's and the fill's references dropped. With
 * only_unfollowed it does nothing (and returns false) if someone follows.
 * Only the leader ends its fill, so checking the state first is no race,
 * and it keeps a fill that already ended (its cache may be gone) from
 * touching e->owner. */
static bool fill_end(struct rd_cache_entry *e, enum rd_cache_state st, bool only_unfollowed)
{
    if (state_of(e) != RD_CACHE_FILLING)
        return false;
    struct rd_cache *c = e->owner;
    if (!c) { /* an entry of rd_cache_entry_new, in no cache */
        rd_cache_entry_lock(e);
        e->state = st;
        rd_cache_entry_unlock(e);
        rd_cache_entry_wake(e);
        return true;
    }
    struct rd_cache_shard *s = shard_of(c, e->key);
    bool ended = false;
    rd_cache_shard_lock(s);
    rd_cache_entry_lock(e);
    if (!only_unfollowed || !e->follows) {
        e->state = st;
        ended = true;
    }
    rd_cache_entry_unlock(e);
    if (ended)
        filling_remove(s, e);
    rd_cache_shard_unlock(s);
    if (!ended)
        return false;
    rd_cache_entry_wake(e);
    rd_cache_entry_unref(e); /* the in-flight list's; the leader keeps its own */
    rd_cache_unref(c);
    return true;
}

int rd_cache_fill_data(struct rd_cache_entry *e, const char *p, size_t n)
{
    bool followed;
    rd_cache_entry_lock(e);
    enum rd_cache_state st = e->state;
    followed = e->follows != NULL;
    rd_cache_entry_unlock(e);
    if (st != RD_CACHE_FILLING)
        return RD_ESTATE;
    if (n == 0)
        return 0;
    uint64_t total, max = e->owner ? atomic_load(&e->owner->max_response) : 0;
    bool over = __builtin_add_overflow(e->len, (uint64_t)n, &total) || (max && total > max);
    /* Past max_response the entry can't be stored. With nobody following,
     * the fill ends here (a later joiner sees FAILED and goes upstream
     * itself); followers get every byte and the end. */
    if (over && !followed && fill_end(e, RD_CACHE_FAILED, true))
        return RD_ETOOBIG;
    rd_cache_entry_append(e, p, n);
    return over ? RD_ETOOBIG : 0;
}

void rd_cache_fill_abort(struct rd_cache_entry *e)
{
    if (e)
        fill_end(e, RD_CACHE_FAILED, false);
}

int rd_cache_fill_commit(struct rd_cache_entry *e, uint32_t ttl_s)
{
    enum rd_cache_state st = state_of(e);
    if (st != RD_CACHE_FILLING)
        return st == RD_CACHE_FAILED ? RD_ETOOBIG : RD_ESTATE;
    struct rd_cache *c = e->owner;
    if (!c || !e->has_head) {
        fill_end(e, RD_CACHE_FAILED, false);
        return RD_EINVAL;
    }
    if (ttl_s == 0) {
        /* Whole, but not to be kept (a TTL of 0): followers that joined
         * before the end finish the answer they hold. */
        fill_end(e, RD_CACHE_COMPLETE, false);
        return RD_EINVAL;
    }
    uint64_t max_resp = atomic_load(&c->max_response), max_bytes = atomic_load(&c->max_bytes);
    size_t charge = rd_cache_entry_charge(e);
    if ((max_resp && e->len > max_resp) || (max_bytes && charge > max_bytes)) {
        /* Every byte is in: followers finish the answer, nobody else gets it. */
        fill_end(e, RD_CACHE_COMPLETE, false);
        return RD_ETOOBIG;
    }
    int64_t now = rd_cache_now(c);
    struct rd_cache_shard *s = shard_of(c, e->key);
    struct rd_cache_gone g;
    rd_cache_gone_init(&g);
    rd_cache_shard_lock(s);
    filling_remove(s, e);
    rd_cache_entry_lock(e);
    e->state = RD_CACHE_COMPLETE;
    e->created_ms = now;
    e->expires_ms = now + (int64_t)ttl_s * 1000;
    e->ttl_s = ttl_s;
    rd_cache_entry_unlock(e);
    e->charge = charge;
    struct rd_cache_entry *old = rd_cache_table_find(s, e->key);
    if (old) {
        rd_cache_table_remove(c, s, old);
        rd_cache_gone_add(&g, old);
    }
    table_add(c, s, e); /* the in-flight list's reference moves to the table */
    rd_cache_shard_unlock(s);
    rd_cache_entry_wake(e);
    rd_cache_gone_finish(c, &g);
    evict(c);
    rd_cache_unref(c); /* the fill's */
    return 0;
}

int rd_cache_insert(struct rd_cache *c, struct rd_cache_entry *e)
{
    if (!c || !e || e->owner || e->state != RD_CACHE_COMPLETE || !e->has_head ||
        rd_cache_entry_is_expired(e, rd_cache_now(c)))
        return RD_EINVAL;
    uint64_t max_resp = atomic_load(&c->max_response), max_bytes = atomic_load(&c->max_bytes);
    size_t charge = rd_cache_entry_charge(e);
    if ((max_resp && e->len > max_resp) || (max_bytes && charge > max_bytes))
        return RD_ETOOBIG;
    struct rd_cache_shard *s = shard_of(c, e->key);
    struct rd_cache_gone g;
    rd_cache_gone_init(&g);
    rd_cache_shard_lock(s);
    e->owner = c;
    e->charge = charge;
    struct rd_cache_entry *old = rd_cache_table_find(s, e->key);
    if (old) {
        rd_cache_table_remove(c, s, old);
        rd_cache_gone_add(&g, old);
    }
    table_add(c, s, rd_cache_entry_ref(e));
    rd_cache_shard_unlock(s);
    rd_cache_gone_finish(c, &g);
    evict(c);
    return 0;
}

void rd_cache_extend(struct rd_cache *c, struct rd_cache_entry *e, int64_t expires_ms)
{
    struct rd_cache_shard *s = shard_of(c, e->key);
    rd_cache_shard_lock(s);
    if (e->in_table && e->owner == c && e->state == RD_CACHE_COMPLETE && expires_ms > e->expires_ms)
        e->expires_ms = expires_ms;
    rd_cache_shard_unlock(s);
}
