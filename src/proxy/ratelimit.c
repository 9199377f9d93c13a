#include "proxy/ratelimit.h"

#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include "util/err.h"
#include "util/hash.h"
#include "util/mem.h"

/* Shards of the in-memory store. Requests of different keys take different
 * mutexes most of the time, and a shard's critical section is a hash lookup
 * plus a few integer operations, so 32 small locks keep the I/O threads from
 * queueing on one another without a lock-free table. */
#define MAX_SHARDS 32u
/* First ring size of a sliding-window key; it doubles up to the ceiling. */
#define RING_START 8u

/* One key's state. Sliding window: a ring of admission timestamps (one per
 * unit, oldest at head), never more than the ceiling, so "at most the
 * ceiling in any trailing window" is checked exactly. Token bucket: the level
 * in 1/60000ths of a unit, so that refilling per_minute units per 60000 ms
 * adds exactly per_minute per millisecond, in integers, with no drift. */
struct entry {
    struct entry *chain;               /* hash chain of the shard */
    struct entry *lru_prev, *lru_next; /* most recently used first */
    uint64_t hash;
    uint64_t last_ms; /* latest now_ms seen: time never goes backwards for a key */
    struct {
        uint64_t *ts; /* owned, cap slots; NULL until the first admission */
        uint32_t cap, head, count;
    } win;
    struct {
        int64_t level; /* scaled by RD_RL_WINDOW_MS */
    } bucket;
    uint8_t key_len;
    uint8_t key[RD_RL_KEY_MAX];
};

struct shard {
    pthread_mutex_t mu;
    struct entry **heads; /* nheads chains */
    size_t nheads, count, max;
    struct entry lru; /* sentinel: lru.lru_next is the most recent */
};

struct mem_store {
    struct rd_ratelimit_store base; /* first */
    uint64_t ceiling;
    uint64_t hash_key; /* random: a client cannot aim its keys at one shard */
    size_t nshards;
    struct shard shards[MAX_SHARDS];
};

static uint64_t mix64(uint64_t x)
{
    x ^= x >> 30;
    x *= 0xbf58476d1ce4e5b9ULL;
    x ^= x >> 27;
    x *= 0x94d049bb133111ebULL;
    x ^= x >> 31;
    return x;
}

static uint64_t key_hash(const struct mem_store *m, const uint8_t *key, size_t len)
{
    uint64_t h = 0xcbf29ce484222325ULL ^ m->hash_key;
    for (size_t i = 0; i < len; i++) {
        h ^= key[i];
        h *= 0x100000001b3ULL;
    }
    return mix64(h ^ m->hash_key);
}

static uint32_t ms_to_s_ceil(uint64_t ms)
{
    uint64_t s = (ms + 999) / 1000;
    return s > UINT32_MAX ? UINT32_MAX : (uint32_t)s;
}

/* ---- sliding window ---- */

static uint64_t *ring_at(struct entry *e, uint32_t i)
{
    return &e->win.ts[(e->win.head + i) % e->win.cap];
}

/* Drops the admissions that have left the trailing window: one made at t
 * still counts at t + 59999 and no longer at t + 60000. */
static void win_prune(struct entry *e, uint64_t now)
{
    while (e->win.count > 0 && now - *ring_at(e, 0) >= RD_RL_WINDOW_MS) {
        e->win.head = (e->win.head + 1) % e->win.cap;
        e->win.count--;
    }
}

/* Makes room for n more timestamps (count + n <= ceiling). */
static void win_reserve(struct entry *e, uint64_t n, uint64_t ceiling)
{
    uint64_t need = e->win.count + n;
    if (need <= e->win.cap)
        return;
    uint64_t cap = e->win.cap ? e->win.cap : RING_START;
    while (cap < need)
        cap *= 2;
    if (cap > ceiling)
        cap = ceiling;
    uint64_t *ts = rd_malloc((size_t)cap * sizeof *ts);
    for (uint32_t i = 0; i < e->win.count; i++)
        ts[i] = *ring_at(e, i);
    free(e->win.ts);
    e->win.ts = ts;
    e->win.cap = (uint32_t)cap;
    e->win.head = 0;
}

static void win_push(struct entry *e, uint64_t now, uint64_t n, uint64_t ceiling)
{
    win_reserve(e, n, ceiling);
    for (uint64_t i = 0; i < n; i++) {
        e->win.count++;
        *ring_at(e, e->win.count - 1) = now;
    }
}

static void win_verdict(struct entry *e, uint64_t now, uint64_t ceiling, struct rd_rl_verdict *out)
{
    out->remaining = ceiling - e->win.count;
    /* Back to a full ceiling when the newest admission leaves the window. */
    out->reset_s = e->win.count ? ms_to_s_ceil(*ring_at(e, e->win.count - 1) + RD_RL_WINDOW_MS - now) : 0;
}

static void win_admit(struct entry *e, uint64_t now, uint64_t cost, uint64_t ceiling, struct rd_rl_verdict *out)
{
    win_prune(e, now);
    uint64_t free_slots = ceiling - e->win.count;
    if (cost <= free_slots) {
        win_push(e, now, cost, ceiling);
        out->admitted = true;
    } else {
        /* cost - free_slots more admissions must leave the window; the last
         * of them to leave is the (cost - free_slots)-th oldest. */
        uint64_t t = *ring_at(e, (uint32_t)(cost - free_slots - 1));
        out->retry_after_s = ms_to_s_ceil(t + RD_RL_WINDOW_MS - now);
    }
    win_verdict(e, now, ceiling, out);
}

/* Usage beyond the reservation fills free slots only: a saturated window
 * cannot hold more than the ceiling, so the excess is not carried. A refund
 * removes the newest admissions. */
static void win_charge(struct entry *e, uint64_t now, int64_t delta, uint64_t ceiling)
{
    win_prune(e, now);
    if (delta > 0) {
        uint64_t n = (uint64_t)delta, free_slots = ceiling - e->win.count;
        win_push(e, now, n < free_slots ? n : free_slots, ceiling);
    } else {
        uint64_t n = delta == INT64_MIN ? (uint64_t)INT64_MAX : (uint64_t)-delta;
        e->win.count = n >= e->win.count ? 0 : e->win.count - (uint32_t)n;
    }
}

/* ---- token bucket ---- */

static int64_t bucket_full(uint64_t ceiling)
{
    return (int64_t)(ceiling * RD_RL_WINDOW_MS);
}

static uint64_t div_ceil(uint64_t a, uint64_t b)
{
    return a / b + (a % b != 0);
}

/* Refills per_minute scaled units per elapsed millisecond, up to full. */
static void bucket_refill(struct entry *e, uint64_t elapsed, uint64_t per_minute, uint64_t ceiling)
{
    int64_t full = bucket_full(ceiling);
    if (e->bucket.level >= full)
        return;
    uint64_t gap = (uint64_t)(full - e->bucket.level);
    if (elapsed >= div_ceil(gap, per_minute))
        e->bucket.level = full;
    else
        e->bucket.level += (int64_t)(elapsed * per_minute); /* < gap: no overflow */
}

static void bucket_verdict(struct entry *e, uint64_t per_minute, uint64_t ceiling, struct rd_rl_verdict *out)
{
    int64_t level = e->bucket.level, full = bucket_full(ceiling);
    out->remaining = level > 0 ? (uint64_t)level / RD_RL_WINDOW_MS : 0;
    out->reset_s = ms_to_s_ceil(div_ceil((uint64_t)(full - level), per_minute));
}

static void bucket_admit(struct entry *e, uint64_t cost, uint64_t per_minute, uint64_t ceiling,
                         struct rd_rl_verdict *out)
{
    int64_t need = (int64_t)(cost * RD_RL_WINDOW_MS); /* cost <= ceiling: fits */
    if (e->bucket.level >= need) {
        e->bucket.level -= need;
        out->admitted = true;
    } else {
        uint64_t wait_ms = div_ceil((uint64_t)(need - e->bucket.level), per_minute);
        out->retry_after_s = ms_to_s_ceil(wait_ms);
    }
    bucket_verdict(e, per_minute, ceiling, out);
}

/* The level stays within [-full, full]: usage far beyond the reservation
 * costs at most one more full refill time. */
static void bucket_charge(struct entry *e, int64_t delta, uint64_t ceiling)
{
    int64_t full = bucket_full(ceiling);
    int64_t cap = (int64_t)(2 * ceiling);
    if (delta > cap)
        delta = cap;
    if (delta < -cap)
        delta = -cap;
    int64_t level = e->bucket.level - delta * (int64_t)RD_RL_WINDOW_MS;
    e->bucket.level = level > full ? full : level < -full ? -full : level;
}

/* ---- the table ---- */

/* Moves the key's state to now; returns true when it is back to what a fresh
 * key would have, so forgetting it changes nothing. */
static bool entry_settle(struct mem_store *m, struct entry *e, uint64_t now)
{
    if (now < e->last_ms)
        now = e->last_ms;
    uint64_t elapsed = now - e->last_ms;
    e->last_ms = now;
    if (m->base.limits.algorithm == RD_RL_SLIDING_WINDOW) {
        win_prune(e, now);
        return e->win.count == 0;
    }
    bucket_refill(e, elapsed, m->base.limits.per_minute, m->ceiling);
    return e->bucket.level == bucket_full(m->ceiling);
}

static void lru_unlink(struct entry *e)
{
    e->lru_prev->lru_next = e->lru_next;
    e->lru_next->lru_prev = e->lru_prev;
}

static void lru_push_front(struct shard *sh, struct entry *e)
{
    e->lru_next = sh->lru.lru_next;
    e->lru_prev = &sh->lru;
    sh->lru.lru_next->lru_prev = e;
    sh->lru.lru_next = e;
}

static void entry_remove(struct shard *sh, struct entry *e)
{
    struct entry **p = &sh->heads[e->hash & (sh->nheads - 1)];
    while (*p != e)
        p = &(*p)->chain;
    *p = e->chain;
    lru_unlink(e);
    free(e->win.ts);
    free(e);
    sh->count--;
}

static struct shard *shard_of(struct mem_store *m, uint64_t hash)
{
    /* The high bits pick the shard, the low bits the chain within it. */
    return &m->shards[(hash >> 58) & (m->nshards - 1)];
}

/* How far from the LRU end a full shard looks for an idle key to evict. */
#define EVICT_SCAN 8

/* Finds or creates the key's entry, under sh->mu. Idle keys at the least
 * recently used end are dropped first, so keys expire without a sweeper
 * (amortised O(1): a key is dropped once). A full shard then evicts an idle
 * key among its EVICT_SCAN least recently used, and failing that forgets its
 * least recently used key, which starts again from a full ceiling. */
static struct entry *entry_get(struct mem_store *m, struct shard *sh, uint64_t hash, const uint8_t *key, size_t len,
                               uint64_t now)
{
    struct entry *e = sh->heads[hash & (sh->nheads - 1)];
    while (e && !(e->hash == hash && e->key_len == len && memcmp(e->key, key, len) == 0))
        e = e->chain;
    while (sh->lru.lru_prev != &sh->lru && sh->lru.lru_prev != e && entry_settle(m, sh->lru.lru_prev, now))
        entry_remove(sh, sh->lru.lru_prev);
    if (!e && sh->count >= sh->max) {
        struct entry *victim = sh->lru.lru_prev, *p = victim;
        for (int i = 0; p != &sh->lru && i < EVICT_SCAN; p = p->lru_prev, i++) {
            if (entry_settle(m, p, now)) {
                victim = p;
                break;
            }
        }
        entry_remove(sh, victim);
    }
    if (e) {
        lru_unlink(e);
        lru_push_front(sh, e);
        return e;
    }
    e = rd_calloc(1, sizeof *e);
    e->hash = hash;
    e->key_len = (uint8_t)len;
    memcpy(e->key, key, len);
    e->last_ms = now;
    if (m->base.limits.algorithm == RD_RL_TOKEN_BUCKET)
        e->bucket.level = bucket_full(m->ceiling);
    struct entry **head = &sh->heads[hash & (sh->nheads - 1)];
    e->chain = *head;
    *head = e;
    lru_push_front(sh, e);
    sh->count++;
    return e;
}

static bool key_ok(size_t len)
{
    return len > 0 && len <= RD_RL_KEY_MAX;
}

static int mem_admit(struct rd_ratelimit_store *s, const void *key, size_t key_len, uint64_t now_ms, uint64_t cost,
                     struct rd_rl_verdict *out)
{
    struct mem_store *m = (struct mem_store *)s;
    if (!key_ok(key_len) || cost == 0 || !out)
        return RD_EINVAL;
    memset(out, 0, sizeof *out);
    out->limit = m->ceiling;
    uint64_t hash = key_hash(m, key, key_len);
    struct shard *sh = shard_of(m, hash);
    pthread_mutex_lock(&sh->mu);
    struct entry *e = entry_get(m, sh, hash, key, key_len, now_ms);
    entry_settle(m, e, now_ms);
    uint64_t now = e->last_ms;
    if (cost > m->ceiling) {
        out->exceeds_ceiling = true;
        out->retry_after_s = UINT32_MAX;
        if (m->base.limits.algorithm == RD_RL_SLIDING_WINDOW)
            win_verdict(e, now, m->ceiling, out);
        else
            bucket_verdict(e, m->base.limits.per_minute, m->ceiling, out);
    } else if (m->base.limits.algorithm == RD_RL_SLIDING_WINDOW) {
        win_admit(e, now, cost, m->ceiling, out);
    } else {
        bucket_admit(e, cost, m->base.limits.per_minute, m->ceiling, out);
    }
    pthread_mutex_unlock(&sh->mu);
    return 0;
}

static int mem_charge(struct rd_ratelimit_store *s, const void *key, size_t key_len, uint64_t now_ms, int64_t delta)
{
    struct mem_store *m = (struct mem_store *)s;
    if (!key_ok(key_len))
        return RD_EINVAL;
    if (delta == 0)
        return 0;
    uint64_t hash = key_hash(m, key, key_len);
    struct shard *sh = shard_of(m, hash);
    pthread_mutex_lock(&sh->mu);
    struct entry *e = entry_get(m, sh, hash, key, key_len, now_ms);
    entry_settle(m, e, now_ms);
    if (m->base.limits.algorithm == RD_RL_SLIDING_WINDOW)
        win_charge(e, e->last_ms, delta, m->ceiling);
    else
        bucket_charge(e, delta, m->ceiling);
    pthread_mutex_unlock(&sh->mu);
    return 0;
}

static size_t mem_expire(struct rd_ratelimit_store *s, uint64_t now_ms)
{
    struct mem_store *m = (struct mem_store *)s;
    size_t n = 0;
    for (size_t i = 0; i < m->nshards; i++) {
        struct shard *sh = &m->shards[i];
        pthread_mutex_lock(&sh->mu);
        for (struct entry *e = sh->lru.lru_next, *next; e != &sh->lru; e = next) {
            next = e->lru_next;
            if (entry_settle(m, e, now_ms)) {
                entry_remove(sh, e);
                n++;
            }
        }
        pthread_mutex_unlock(&sh->mu);
    }
    return n;
}

static size_t mem_key_count(struct rd_ratelimit_store *s)
{
    struct mem_store *m = (struct mem_store *)s;
    size_t n = 0;
    for (size_t i = 0; i < m->nshards; i++) {
        pthread_mutex_lock(&m->shards[i].mu);
        n += m->shards[i].count;
        pthread_mutex_unlock(&m->shards[i].mu);
    }
    return n;
}

static void mem_destroy(struct rd_ratelimit_store *s)
{
    struct mem_store *m = (struct mem_store *)s;
    for (size_t i = 0; i < m->nshards; i++) {
        struct shard *sh = &m->shards[i];
        while (sh->lru.lru_next != &sh->lru)
            entry_remove(sh, sh->lru.lru_next);
        free(sh->heads);
        pthread_mutex_destroy(&sh->mu);
    }
    free(m);
}

static const struct rd_ratelimit_store_ops mem_ops = {
    .admit = mem_admit,
    .charge = mem_charge,
    .expire = mem_expire,
    .key_count = mem_key_count,
    .destroy = mem_destroy,
};

static size_t pow2_at_least(size_t n)
{
    size_t p = 1;
    while (p < n)
        p *= 2;
    return p;
}

struct rd_ratelimit_store *rd_ratelimit_store_mem_new(const struct rd_rl_limits *limits, size_t max_keys,
                                                      const char **why)
{
    const char *unused;
    if (!why)
        why = &unused;
    *why = NULL;
    if (!limits || limits->per_minute == 0) {
        *why = "the per-minute rate must be at least 1";
        return NULL;
    }
    if (limits->algorithm != RD_RL_SLIDING_WINDOW && limits->algorithm != RD_RL_TOKEN_BUCKET) {
        *why = "unknown rate-limiting algorithm";
        return NULL;
    }
    uint64_t ceiling = (uint64_t)limits->per_minute + limits->burst;
    if (ceiling > RD_RL_CEILING_MAX) {
        *why = "the rate plus the burst is above 100000000";
        return NULL;
    }
    if (limits->algorithm == RD_RL_SLIDING_WINDOW && ceiling > RD_RL_WINDOW_CEILING_MAX) {
        *why = "a sliding window's rate plus burst is above 1000000 (use token_bucket)";
        return NULL;
    }
    if (max_keys == 0) {
        *why = "the key cap must be at least 1";
        return NULL;
    }
    struct mem_store *m = rd_calloc(1, sizeof *m);
    m->base.ops = &mem_ops;
    m->base.limits = *limits;
    m->ceiling = ceiling;
    if (rd_random_bytes(&m->hash_key, sizeof m->hash_key) != 0)
        m->hash_key = (uint64_t)(uintptr_t)m; /* only spreads keys; not a secret */
    /* Every shard holds at least 4 keys, so a small cap still evicts by
     * idleness and recency rather than by hash. */
    m->nshards = MAX_SHARDS;
    while (m->nshards > 1 && m->nshards * 4 > max_keys)
        m->nshards /= 2;
    for (size_t i = 0; i < m->nshards; i++) {
        struct shard *sh = &m->shards[i];
        if (pthread_mutex_init(&sh->mu, NULL) != 0)
            abort();
        sh->max = max_keys / m->nshards + (i < max_keys % m->nshards);
        sh->nheads = pow2_at_least(sh->max);
        sh->heads = rd_calloc(sh->nheads, sizeof *sh->heads);
        sh->lru.lru_next = sh->lru.lru_prev = &sh->lru;
    }
    return &m->base;
}

void rd_ratelimit_store_free(struct rd_ratelimit_store *s)
{
    if (s)
        s->ops->destroy(s);
}

/* ---- keys ---- */

int rd_ratelimit_key_proxy(uint8_t *out)
{
    out[0] = 'p';
    return 1;
}

int rd_ratelimit_key_ip(const char *ip, size_t ip_len, uint8_t *out)
{
    if (!ip || ip_len == 0 || ip_len > 45)
        return RD_EINVAL;
    out[0] = 'i';
    memcpy(out + 1, ip, ip_len);
    return (int)(ip_len + 1);
}

int rd_ratelimit_key_header(const char *name, size_t name_len, const char *value, size_t value_len, uint8_t *out)
{
    if (!name || name_len == 0 || name_len > 256)
        return RD_EINVAL;
    /* SHA-256 over "<lower-case name>\0<value>" (or the name alone for a
     * missing header): two headers' values never share a window, and the
     * value itself is not kept. */
    uint8_t buf[256 + 1];
    for (size_t i = 0; i < name_len; i++) {
        char c = name[i];
        buf[i] = (uint8_t)(c >= 'A' && c <= 'Z' ? c - 'A' + 'a' : c);
    }
    out[0] = value ? 'h' : 'm';
    if (!value) {
        rd_sha256(buf, name_len, out + 1);
        return 1 + RD_SHA256_LEN;
    }
    if (value_len > (1u << 20))
        return RD_EINVAL;
    size_t total = name_len + 1 + value_len;
    uint8_t *msg = rd_malloc(total);
    memcpy(msg, buf, name_len);
    msg[name_len] = 0;
    memcpy(msg + name_len + 1, value, value_len);
    rd_sha256(msg, total, out + 1);
    free(msg);
    return 1 + RD_SHA256_LEN;
}

/* ---- the proxy's limiter ---- */

int rd_ratelimit_init(struct rd_ratelimit *rl, const struct rd_rl_limits *requests, uint32_t tokens_per_minute,
                      size_t max_keys, const char **why)
{
    memset(rl, 0, sizeof *rl);
    rl->requests = rd_ratelimit_store_mem_new(requests, max_keys, why);
    if (!rl->requests)
        return RD_EINVAL;
    if (tokens_per_minute > 0) {
        /* Tokens are always a bucket: an exact window would keep one
         * timestamp per token. */
        struct rd_rl_limits tl = {.algorithm = RD_RL_TOKEN_BUCKET, .per_minute = tokens_per_minute, .burst = 0};
        rl->tokens = rd_ratelimit_store_mem_new(&tl, max_keys, why);
        if (!rl->tokens) {
            rd_ratelimit_destroy(rl);
            return RD_EINVAL;
        }
    }
    return 0;
}

void rd_ratelimit_destroy(struct rd_ratelimit *rl)
{
    if (!rl)
        return;
    rd_ratelimit_store_free(rl->requests);
    rd_ratelimit_store_free(rl->tokens);
    rl->requests = rl->tokens = NULL;
}

int rd_ratelimit_admit(struct rd_ratelimit *rl, const void *key, size_t key_len, uint64_t now_ms, uint64_t max_tokens,
                       struct rd_rl_verdict *req, struct rd_rl_verdict *tok)
{
    struct rd_rl_verdict tok_local;
    if (!tok)
        tok = &tok_local;
    memset(tok, 0, sizeof *tok);
    int rc = rl->requests->ops->admit(rl->requests, key, key_len, now_ms, 1, req);
    if (rc != 0 || !rl->tokens)
        return rc;
    if (!req->admitted) {
        /* Not reserved; report the tokens' state without consuming any. */
        tok->limit = (uint64_t)rl->tokens->limits.per_minute;
        return 0;
    }
    rc = rl->tokens->ops->admit(rl->tokens, key, key_len, now_ms, max_tokens ? max_tokens : 1, tok);
    if (rc != 0 || tok->admitted)
        return rc;
    /* The tokens refuse it: give the request slot back. */
    rc = rl->requests->ops->charge(rl->requests, key, key_len, now_ms, -1);
    req->admitted = false;
    if (req->remaining < req->limit)
        req->remaining++;
    req->retry_after_s = tok->retry_after_s;
    return rc;
}

int rd_ratelimit_charge(struct rd_ratelimit *rl, const void *key, size_t key_len, uint64_t now_ms, uint64_t reserved,
                        uint64_t actual)
{
    if (!rl->tokens)
        return 0;
    if (reserved == 0)
        reserved = 1; /* what rd_ratelimit_admit reserved for max_tokens 0 */
    const uint64_t cap = (uint64_t)INT64_MAX;
    if (reserved > cap)
        reserved = cap;
    if (actual > cap)
        actual = cap;
    int64_t delta = (int64_t)actual - (int64_t)reserved;
    return rl->tokens->ops->charge(rl->tokens, key, key_len, now_ms, delta);
}
