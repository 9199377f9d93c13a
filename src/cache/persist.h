/* Write-behind persistence of response caches (docs/caching.md,
 * "Persistence"): one writer thread for the process, with its own store
 * connection (store/store.h, opened from the same URL), takes entries and
 * deletions from a queue and writes them to the cache_entries table, in
 * batches (one transaction each), never on a request's path. The table
 * mirrors the memory caches: a committed entry is written, an entry that
 * leaves a cache (eviction, expiry, invalidation) is deleted. At start-up
 * each proxy's entries are loaded by the writer thread, newest first and
 * unexpired, up to the cache's limits, into the proxy's rd_cache (requests
 * that come before are misses).
 *
 * Threading: every call but start/stop from any thread; they only queue. */
#ifndef RD_CACHE_PERSIST_H
#define RD_CACHE_PERSIST_H

#include <stddef.h>
#include <stdint.h>

#include "cache/cache.h"

struct rd_cache_persist;

/* Opens a second connection to store_url and starts the writer thread.
 * Returns 0 with *out, or a negative code with a reason in err. */
int rd_cache_persist_start(const char *store_url, struct rd_cache_persist **out, char *err, size_t errlen);
/* Writes everything queued, then stops the thread and closes. NULL-safe. */
void rd_cache_persist_stop(struct rd_cache_persist *p);

/* Queues a committed entry of proxy_id (a reference is taken). */
void rd_cache_persist_put(struct rd_cache_persist *p, int64_t proxy_id, struct rd_cache_entry *e);
/* Queues the deletion of one key of proxy_id. */
void rd_cache_persist_delete(struct rd_cache_persist *p, int64_t proxy_id, const uint8_t key[RD_CACHE_KEY_LEN]);
/* Queues the deletion of all entries of proxy_id (0: of every proxy). */
void rd_cache_persist_clear(struct rd_cache_persist *p, int64_t proxy_id);
/* Queues the load of proxy_id's stored entries into c (a reference to c is
 * held until done): those unexpired at rd_cache_now(c) are read newest
 * first, then inserted oldest first, so that where they do not all fit
 * c's own LRU eviction drops the oldest and keeps the newest (and, through
 * the removed hook, deletes the stored copies of those it drops). The rows
 * of a proxy mirror its cache, so the load holds about one cache's worth
 * of entries at once. */
void rd_cache_persist_load(struct rd_cache_persist *p, int64_t proxy_id, struct rd_cache *c);
/* Blocks until everything queued before the call is written (tests, the
 * cassette export). */
void rd_cache_persist_flush(struct rd_cache_persist *p);
/* Entries written, deleted and failed writes since start (for /health and tests). */
void rd_cache_persist_counts(struct rd_cache_persist *p, uint64_t *written, uint64_t *deleted, uint64_t *failed);

#endif
