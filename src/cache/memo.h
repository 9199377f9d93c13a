/* A per-worker memo of recent cache keys by the request's raw bytes. A
 * cache key costs a canonical JSON pass over the body and two SHA-256s
 * (cache/key.h): most of a cache hit's CPU. Clients repeat the same
 * request byte for byte (an SDK serialises the same call the same way), so
 * each worker remembers, for its last requests, the exact bytes the key was
 * computed from and the key. A hit needs the same bytes (compared in full,
 * not by hash) under the same compiled configuration (gen), so it returns
 * exactly what rd_cache_key would: the key is a pure function of them.
 *
 * The raw bytes are everything rd_cache_key reads: the dialect, method,
 * path, the whole query (the stream flag is read from the body, so it is
 * not repeated), the values of the configured key
 * headers and of the provider's auth headers (for a key per credential),
 * and the body. They stay in
 * the worker's memory only (like the request buffers), never logged or
 * stored. Direct-mapped, RD_KEY_MEMO_SLOTS slots; bodies above
 * RD_KEY_MEMO_MAX are not memoised. One thread (the worker's). */
#ifndef RD_CACHE_MEMO_H
#define RD_CACHE_MEMO_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "cache/cache.h"

#define RD_KEY_MEMO_SLOTS 256
#define RD_KEY_MEMO_MAX 8192

struct rd_key_memo {
    struct rd_key_memo_slot {
        uint64_t h, gen;
        size_t len;
        char *raw; /* owned */
        uint8_t key[RD_CACHE_KEY_LEN];
    } slot[RD_KEY_MEMO_SLOTS];
};

/* The key remembered for raw[0..n) under gen; false if none. */
bool rd_key_memo_get(const struct rd_key_memo *m, uint64_t gen, const char *raw, size_t n, uint64_t h,
                     uint8_t key[RD_CACHE_KEY_LEN]);
/* Remembers key for raw[0..n) under gen (copied), replacing the slot's. */
void rd_key_memo_put(struct rd_key_memo *m, uint64_t gen, const char *raw, size_t n, uint64_t h,
                     const uint8_t key[RD_CACHE_KEY_LEN]);
/* A 64-bit hash of raw (slot choice and a quick reject; never trusted alone). */
uint64_t rd_key_memo_hash(const char *raw, size_t n);
void rd_key_memo_free(struct rd_key_memo *m); /* NULL-safe */

#endif
