/* Internals shared by cache.c (the shards, limits and the life of a fill)
 * and entry.c (an entry's own storage and its followers). Not included
 * from outside src/cache/. */
#ifndef RD_CACHE_CACHE_INT_H
#define RD_CACHE_CACHE_INT_H

#include <stddef.h>

#include "cache/cache.h"

/* Body chunks start small (most answers are a few KiB) and double up to
 * RD_CACHE_CHUNK_MAX, so a long stream needs few allocations and the unused
 * tail of the last chunk stays below half the body (or below 1 MiB). */
#define RD_CACHE_CHUNK_MIN ((size_t)4 * 1024)
#define RD_CACHE_CHUNK_MAX ((size_t)1024 * 1024)

/* One shard (cache.c): its mutex guards everything in it and the
 * bookkeeping fields of its entries (charge, in_table, hnext, lru_*). */
struct rd_cache_shard {
    pthread_mutex_t mu;
    struct rd_cache_entry **buckets; /* complete entries, chained by hnext */
    size_t nbuckets, count;
    uint64_t bytes;                 /* charge of the complete entries */
    struct rd_cache_entry *filling; /* fills in flight, chained by hnext, newest first */
    struct rd_cache_entry *lru_head, *lru_tail;
};

struct rd_cache {
    atomic_int refs;
    int64_t (*now_ms)(void);
    rd_cache_removed_fn removed;
    void *removed_ud;
    atomic_uint_fast64_t max_bytes, max_entries, max_response;
    /* The shards' totals, changed under their locks, read for the limits. */
    atomic_uint_fast64_t bytes, entries;
    atomic_uint_fast64_t hits, misses, evictions, expired;
    atomic_uint_fast64_t clock; /* the access clock */
    struct rd_cache_shard shards[RD_CACHE_SHARDS];
};

/* Entries taken out of a table under a shard lock, to be handed to the
 * removed callback and released once it is dropped. */
struct rd_cache_gone {
    struct rd_cache_entry **v, *inl[8];
    size_t n, cap;
};

void rd_cache_shard_lock(struct rd_cache_shard *s);
void rd_cache_shard_unlock(struct rd_cache_shard *s);
void rd_cache_gone_init(struct rd_cache_gone *g);
void rd_cache_gone_add(struct rd_cache_gone *g, struct rd_cache_entry *e);
/* Calls the removed callback for each entry and drops the table's
 * reference; no lock may be held. Leaves g empty and reusable. */
void rd_cache_gone_finish(struct rd_cache *c, struct rd_cache_gone *g);
/* The complete entry of key in shard s (its lock held), or NULL. */
struct rd_cache_entry *rd_cache_table_find(const struct rd_cache_shard *s, const uint8_t *key);
/* Takes complete entry e out of shard s (its lock held); the table's
 * reference goes to the caller (rd_cache_gone_add). */
void rd_cache_table_remove(struct rd_cache *c, struct rd_cache_shard *s, struct rd_cache_entry *e);

static inline bool rd_cache_entry_is_expired(const struct rd_cache_entry *e, int64_t now)
{
    return e->expires_ms <= now;
}

/* e->mu; abort if the mutex fails (it only can on a corrupted entry). */
void rd_cache_entry_lock(struct rd_cache_entry *e);
void rd_cache_entry_unlock(struct rd_cache_entry *e);

/* Copies p[0..n) into e's chunks (the fill's thread only), then publishes
 * the new length under e->mu and wakes every follower. */
void rd_cache_entry_append(struct rd_cache_entry *e, const char *p, size_t n);
/* Calls every follower's wake, holding e->mu (see entry.c for why). */
void rd_cache_entry_wake(struct rd_cache_entry *e);
/* The bytes e is charged against its cache's max_bytes: what it allocated
 * (the entry, method and path, header block, chunk capacity, marks). The
 * fill's thread, or anyone once e is complete. */
size_t rd_cache_entry_charge(const struct rd_cache_entry *e);

#endif
