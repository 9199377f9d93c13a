/* See retry_audit.h. */
#include "proxy/retry_audit.h"

#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>

#include "util/mem.h"

struct entry {
    uint64_t key; /* 0: free slot (keys are never 0: see key_of) */
    uint64_t noted_ms, until_ms;
};

/* Aligned so two shards' locks never share a cache line. */
struct shard {
    _Alignas(64) pthread_mutex_t mu;
    struct entry v[RD_AUDIT_PER_SHARD];
};

struct rd_retry_audit {
    atomic_uint_fast32_t live; /* entries kept, all shards */
    atomic_uint_fast64_t advertised, early, honoured, expired, early_ms_max;
    struct shard *shards; /* owned array of RD_AUDIT_SHARDS */
};

static uint64_t key_of(uint64_t key)
{
    return key ? key : 1;
}

static struct shard *shard_of(const struct rd_retry_audit *a, uint64_t key)
{
    /* The key is a hash already; its high bits pick the shard. */
    return &a->shards[(key >> 59) % RD_AUDIT_SHARDS];
}

struct rd_retry_audit *rd_retry_audit_new(void)
{
    struct rd_retry_audit *a = rd_calloc(1, sizeof *a);
    size_t bytes = RD_AUDIT_SHARDS * sizeof *a->shards; /* a multiple of 64 */
    a->shards = aligned_alloc(_Alignof(struct shard), bytes);
    if (a->shards == NULL)
        abort();
    memset(a->shards, 0, bytes);
    for (unsigned i = 0; i < RD_AUDIT_SHARDS; i++)
        pthread_mutex_init(&a->shards[i].mu, NULL);
    return a;
}

void rd_retry_audit_free(struct rd_retry_audit *a)
{
    if (a == NULL)
        return;
    for (unsigned i = 0; i < RD_AUDIT_SHARDS; i++)
        pthread_mutex_destroy(&a->shards[i].mu);
    free(a->shards);
    free(a);
}

static void drop(struct rd_retry_audit *a, struct entry *e)
{
    e->key = 0;
    atomic_fetch_sub_explicit(&a->live, 1, memory_order_relaxed);
}

static bool stale(const struct entry *e, uint64_t now_ms)
{
    return now_ms > e->until_ms && now_ms - e->until_ms > RD_AUDIT_KEEP_MS;
}

void rd_retry_audit_note(struct rd_retry_audit *a, uint64_t key, uint64_t now_ms, uint64_t retry_after_ms)
{
    key = key_of(key);
    struct shard *s = shard_of(a, key);
    atomic_fetch_add_explicit(&a->advertised, 1, memory_order_relaxed);
    pthread_mutex_lock(&s->mu);
    struct entry *slot = NULL, *oldest = NULL;
    for (size_t i = 0; i < RD_AUDIT_PER_SHARD; i++) {
        struct entry *e = &s->v[i];
        if (e->key == key) {
            slot = e; /* the same client again: the new time replaces the old */
            break;
        }
        if (e->key != 0 && stale(e, now_ms)) {
            drop(a, e);
            atomic_fetch_add_explicit(&a->expired, 1, memory_order_relaxed);
        }
        if (e->key == 0 && slot == NULL)
            slot = e;
        else if (e->key != 0 && (oldest == NULL || e->noted_ms < oldest->noted_ms))
            oldest = e;
    }
    if (slot == NULL) {
        /* Full: the least recently told client gives up its place. */
        slot = oldest;
        drop(a, slot);
        atomic_fetch_add_explicit(&a->expired, 1, memory_order_relaxed);
    }
    if (slot->key != key)
        atomic_fetch_add_explicit(&a->live, 1, memory_order_relaxed);
    slot->key = key;
    slot->noted_ms = now_ms;
    slot->until_ms = now_ms + retry_after_ms;
    pthread_mutex_unlock(&s->mu);
}

bool rd_retry_audit_pending(const struct rd_retry_audit *a)
{
    return atomic_load_explicit(&a->live, memory_order_relaxed) != 0;
}

static void raise_max(atomic_uint_fast64_t *m, uint64_t v)
{
    uint_fast64_t cur = atomic_load_explicit(m, memory_order_relaxed);
    while (v > cur && !atomic_compare_exchange_weak_explicit(m, &cur, v, memory_order_relaxed, memory_order_relaxed))
        ;
}

enum rd_audit_outcome rd_retry_audit_arrive(struct rd_retry_audit *a, uint64_t key, uint64_t now_ms)
{
    key = key_of(key);
    struct shard *s = shard_of(a, key);
    enum rd_audit_outcome out = RD_AUDIT_NONE;
    pthread_mutex_lock(&s->mu);
    for (size_t i = 0; i < RD_AUDIT_PER_SHARD; i++) {
        struct entry *e = &s->v[i];
        if (e->key != key)
            continue;
        if (stale(e, now_ms)) {
            atomic_fetch_add_explicit(&a->expired, 1, memory_order_relaxed);
        } else if (now_ms < e->until_ms) {
            out = RD_AUDIT_EARLY;
            atomic_fetch_add_explicit(&a->early, 1, memory_order_relaxed);
            raise_max(&a->early_ms_max, e->until_ms - now_ms);
        } else {
            out = RD_AUDIT_HONOURED;
            atomic_fetch_add_explicit(&a->honoured, 1, memory_order_relaxed);
        }
        drop(a, e);
        break;
    }
    pthread_mutex_unlock(&s->mu);
    return out;
}

void rd_retry_audit_counts(const struct rd_retry_audit *a, struct rd_retry_audit_counts *out)
{
    out->advertised = atomic_load_explicit(&a->advertised, memory_order_relaxed);
    out->early = atomic_load_explicit(&a->early, memory_order_relaxed);
    out->honoured = atomic_load_explicit(&a->honoured, memory_order_relaxed);
    out->retries = out->early + out->honoured;
    out->expired = atomic_load_explicit(&a->expired, memory_order_relaxed);
    out->early_ms_max = atomic_load_explicit(&a->early_ms_max, memory_order_relaxed);
}
