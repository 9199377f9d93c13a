/* One proxy's response cache in memory (docs/caching.md): entries by key,
 * sharded, ref-counted, LRU-evicted under byte and entry limits, expired by
 * TTL, and the in-flight fills that identical concurrent misses share.
 *
 * Entries. An entry is created by the request that missed (the leader) as a
 * *fill*: rd_cache_fill_begin puts it in its shard's in-flight table, the
 * leader appends the response as it relays it (head, then body bytes, and
 * for a stream each event's end and time), and rd_cache_fill_commit makes it
 * a complete entry that hits are served from (or rd_cache_fill_abort drops
 * it). Other requests with the same key that arrive while the fill runs
 * *join* it (rd_cache_lookup returns it with RD_CACHE_LOOKUP_JOIN): they
 * read the same bytes as they arrive, from the first one, and are woken on
 * their own loop (struct rd_cache_follow). Once complete, an entry never
 * changes but for its hit count, access time and expiry (rd_cache_extend
 * moves expires_ms under the shard lock). A fill holds a reference on its
 * cache until it is committed or aborted, so the leader ends every fill
 * with one of them.
 *
 * Body storage is a list of chunks that never move once written, so a
 * reader holds (chunk, offset) positions without a lock and a hit never
 * copies the body: it takes a reference and writes from the chunks. While
 * an entry fills, its last chunk's len still grows: a joiner bounds its
 * reads by the len rd_cache_peek gave and takes each chunk as min(cap,
 * what remains of that len) (chunks fill to cap before the next starts),
 * following chunk->next only below that len.
 *
 * Threading: any thread. Each shard has a mutex, taken for a lookup, a
 * commit, a removal; no lock is global on the hit path. Fills are written
 * by their leader's thread only; readers see the bytes published under the
 * entry's own mutex (len only grows). Limits are enforced at commit by
 * evicting the least recently used complete entries across shards.
 * Clocks: wall clock epoch ms for created/expires (rd_cache_opts.now_ms
 * replaces it in tests). */
#ifndef RD_CACHE_CACHE_H
#define RD_CACHE_CACHE_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "providers/provider.h"

#define RD_CACHE_KEY_LEN 32 /* SHA-256 */
#define RD_CACHE_SHARDS 16
#define RD_CACHE_MODEL_MAX 128
/* The text of a key: "<model>:<64 hex>" (model may be empty: ":<hex>"). */
#define RD_CACHE_KEY_TEXT_MAX (RD_CACHE_MODEL_MAX + 1 + 64 + 1)

/* Bytes charged to an entry besides what it stores (the entry struct, its
 * chunk and header bookkeeping): documented in docs/caching.md, "Limits".
 * The limit counts charged bytes, so memory never passes cache_max_size by
 * more than RD_CACHE_SLOT_BYTES per entry (its hash-table slot). */
#define RD_CACHE_SLOT_BYTES 16

/* memory_limits defaults (docs/configuration.md). */
#define RD_CACHE_DEFAULT_MAX_BYTES (1024ull * 1024 * 1024)     /* cache_max_size "1GB" */
#define RD_CACHE_DEFAULT_MAX_ENTRIES 10000ull                   /* cache_max_entries */
#define RD_CACHE_DEFAULT_MAX_RESPONSE (10ull * 1024 * 1024)    /* response_buffer_size "10MB" */

enum rd_cache_state {
    RD_CACHE_FILLING,  /* the leader is writing it; joiners follow */
    RD_CACHE_COMPLETE, /* committed: hits are served from it */
    RD_CACHE_FAILED,   /* the fill was aborted: joiners go upstream themselves,
                        * or are cut if they already relayed part of it */
};

/* One stored response header (strings in the entry's own storage). */
struct rd_cache_hdr {
    const char *name, *value;
    uint32_t name_len, value_len;
};

/* A stream event's end in the body and when it came, ms after the head. */
struct rd_cache_mark {
    uint64_t end;
    uint32_t t_ms;
};

struct rd_cache_chunk {
    struct rd_cache_chunk *next;
    size_t len, cap; /* len: bytes written (grows only while filling) */
    char data[];
};

/* A reader that follows a fill from another loop: wake(ud) is called
 * (from the leader's thread, with no cache lock held) each time bytes, the
 * head, the end or a failure are published; it must only schedule work on
 * the reader's own loop (uv_async_send). */
struct rd_cache_follow {
    struct rd_cache_follow *next;
    void (*wake)(void *ud);
    void *ud;
};

struct rd_cache_entry {
    atomic_int refs;
    uint8_t key[RD_CACHE_KEY_LEN];
    char model[RD_CACHE_MODEL_MAX]; /* as classified ("" when unknown) */
    enum rd_req_kind kind;
    bool stream;     /* the body is an event stream (SSE or AWS event-stream) */
    /* The request it answers, for replay's "closest recorded request" and
     * exports: method and path (no query secrets; see rd_cache_key_input). */
    char *method, *path;

    /* head: set once by rd_cache_fill_head */
    int status;
    struct rd_cache_hdr *hdrs;
    size_t nhdrs;
    bool has_head;

    /* body */
    struct rd_cache_chunk *first, *last;
    uint64_t len; /* bytes published (guarded by mu while FILLING) */
    struct rd_cache_mark *marks; /* streams; complete once committed */
    size_t nmarks, cap_marks;
    struct rd_usage usage;
    char upstream_model[RD_CACHE_MODEL_MAX]; /* the model the response named ("" when none) */
    char finish[16]; /* "length" when the answer stopped on its token limit, else "" */

    int64_t created_ms; /* wall clock */
    /* Wall clock; 0 until committed. Atomic: rd_cache_extend (usage-based
     * TTL, under the shard lock) moves it while listings, exports and the
     * writer thread read it without that lock. */
    _Atomic int64_t expires_ms;
    uint32_t ttl_s;                 /* the TTL it was stored with (usage-based extension) */
    atomic_uint_fast64_t hits;
    atomic_uint_fast64_t access; /* the cache's access clock at the last hit or commit (LRU) */

    /* guarded by mu */
    pthread_mutex_t mu;
    enum rd_cache_state state;
    bool relayed;        /* the leader relayed part of the body (a failure then cuts joiners) */
    struct rd_cache_follow *follows;

    /* bookkeeping of the cache (guarded by the shard mutex) */
    size_t charge;     /* bytes charged against the limit */
    bool in_table;     /* reachable by lookups */
    struct rd_cache_entry *hnext;            /* hash chain */
    struct rd_cache_entry *lru_prev, *lru_next; /* shard LRU, most recent first */
    struct rd_cache *owner;
};

/* What rd_cache_lookup found. */
enum rd_cache_lookup {
    RD_CACHE_LOOKUP_MISS, /* nothing: *e is a new fill the caller leads (NULL when not asked to fill) */
    RD_CACHE_LOOKUP_HIT,  /* *e is complete and fresh */
    RD_CACHE_LOOKUP_JOIN, /* *e is being filled by another request: follow it */
};

struct rd_cache_limits {
    uint64_t max_bytes;   /* 0: no limit */
    uint64_t max_entries; /* 0: no limit */
    uint64_t max_response; /* response_buffer_size: a longer body is not stored (0: no limit) */
};

struct rd_cache_stats {
    uint64_t entries, bytes, hits, misses, evictions, expired;
    int64_t oldest_ms, newest_ms; /* created_ms of the oldest / newest entry; 0 when empty */
};

/* Called for each complete entry that leaves the table (eviction, expiry,
 * invalidation, replacement; not for clear on free): the persistence hook
 * deletes the stored copy. Called with no lock held. */
typedef void (*rd_cache_removed_fn)(void *ud, const struct rd_cache_entry *e);

struct rd_cache_opts {
    int64_t (*now_ms)(void); /* NULL: the wall clock (util/time.h) */
    rd_cache_removed_fn removed;
    void *removed_ud;
};

struct rd_cache;

/* refs starts at 1. opts may be NULL. */
struct rd_cache *rd_cache_new(const struct rd_cache_limits *lim, const struct rd_cache_opts *opts);
struct rd_cache *rd_cache_ref(struct rd_cache *c);
void rd_cache_unref(struct rd_cache *c); /* NULL-safe; frees every entry not referenced elsewhere */
/* New limits (a configuration change): evicts at once down to them. */
void rd_cache_set_limits(struct rd_cache *c, const struct rd_cache_limits *lim);
int64_t rd_cache_now(const struct rd_cache *c);

/* Looks key up. A complete, unexpired entry is a HIT (its hit count and
 * access time are updated; *e holds a reference). An expired one is removed
 * and does not count. A fill in flight is a JOIN (reference taken) when
 * join is true. Otherwise a MISS: with fill true, a new fill is created in
 * its place (state FILLING, *e with a reference for the leader; model, kind,
 * method and path from the arguments), else *e is NULL. hit counts are the
 * cache's (stats.hits/misses count HIT and MISS; JOIN counts as a hit). */
enum rd_cache_lookup rd_cache_lookup(struct rd_cache *c, const uint8_t key[RD_CACHE_KEY_LEN], bool join, bool fill,
                                     const char *model, enum rd_req_kind kind, const char *method, const char *path,
                                     struct rd_cache_entry **e);
/* Starts a fill of key without looking it up (refresh, record mode): a
 * complete entry of the key keeps serving hits until this one commits and
 * replaces it. Returns the FILLING entry with a reference for the leader;
 * not counted in the stats. */
struct rd_cache_entry *rd_cache_fill_begin(struct rd_cache *c, const uint8_t key[RD_CACHE_KEY_LEN],
                                           const char *model, enum rd_req_kind kind, const char *method,
                                           const char *path);

/* For a refresh (X-Rubberduck-Cache: refresh, Cache-Control: no-cache,
 * mode "record"): no lookup of complete entries; a fill in flight is
 * joined (JOIN, when join is true), otherwise a new fill is created
 * (MISS) even though a complete entry of the key may exist: it keeps
 * serving hits until the new one is committed in its place. */
enum rd_cache_lookup rd_cache_refresh(struct rd_cache *c, const uint8_t key[RD_CACHE_KEY_LEN], bool join,
                                      const char *model, enum rd_req_kind kind, const char *method, const char *path,
                                      struct rd_cache_entry **e);

/* ---- a fill (the leader's thread only) ---- */

/* Records the head: status and the headers to replay (copied). */
int rd_cache_fill_head(struct rd_cache_entry *e, int status, const struct rd_cache_hdr *hdrs, size_t n,
                       bool stream);
/* Appends body bytes (copied; published to joiners at once). Returns 0, or
 * RD_ETOOBIG once the body passes the cache's max_response: the entry will
 * not be stored, but it keeps taking bytes while someone follows it (keep
 * calling it and commit at the end, so followers get the whole answer);
 * with nobody following, the fill is dropped then (state FAILED).
 * RD_ESTATE once the fill has ended. */
int rd_cache_fill_data(struct rd_cache_entry *e, const char *p, size_t n);
/* Notes that a stream event ended at offset end of the body (at most the
 * length appended so far, and not before the previous mark), t_ms after
 * the head. Returns 0 or RD_EINVAL for an end out of order. */
int rd_cache_fill_mark(struct rd_cache_entry *e, uint64_t end, uint32_t t_ms);
/* Makes the fill a complete entry, stored for ttl_s seconds, replacing a
 * complete entry of the same key; evicts to the limits. The caller keeps
 * its reference. Returns 0; RD_ETOOBIG when the body passed max_response
 * or the entry is larger than max_bytes: it is then not stored, but marked
 * COMPLETE for its followers (they have every byte), or it was already
 * dropped; RD_EINVAL for ttl_s 0 (not stored, COMPLETE for its
 * followers as well) or no head (aborted: FAILED). */
int rd_cache_fill_commit(struct rd_cache_entry *e, uint32_t ttl_s);
/* Drops the fill: joiners are told (RD_CACHE_FAILED). The caller keeps
 * its reference. */
void rd_cache_fill_abort(struct rd_cache_entry *e);

/* ---- readers ---- */

/* Registers f to be woken on every publication of e (a FILLING entry);
 * returns false if e is no longer filling (read its state instead). wake
 * runs with e->mu held, so it must not call back into the cache; once
 * rd_cache_unfollow returns, f is never woken again and may be freed. */
bool rd_cache_follow(struct rd_cache_entry *e, struct rd_cache_follow *f);
void rd_cache_unfollow(struct rd_cache_entry *e, struct rd_cache_follow *f);
/* A snapshot of e's published state: its state, length and whether the head is in. */
void rd_cache_peek(struct rd_cache_entry *e, enum rd_cache_state *state, uint64_t *len, bool *has_head);

struct rd_cache_entry *rd_cache_entry_ref(struct rd_cache_entry *e);
void rd_cache_entry_unref(struct rd_cache_entry *e); /* NULL-safe */

/* "<model>:<hex>" into out (RD_CACHE_KEY_TEXT_MAX bytes). */
void rd_cache_key_text(const struct rd_cache_entry *e, char *out);
/* Parses "<model>:<hex>" or a bare 64-hex key into key; false if malformed. */
bool rd_cache_key_parse(const char *text, uint8_t key[RD_CACHE_KEY_LEN]);

/* ---- management (any thread; the API's) ---- */

void rd_cache_stats(struct rd_cache *c, struct rd_cache_stats *out);
/* Calls fn for each complete entry whose key text matches the glob pattern
 * ('*' any run, '?' one character; NULL: all), in key order starting after
 * the key `after` (NULL: from the first), at most limit (0: all) of them.
 * Each entry is referenced for the call. Returns how many were given. */
size_t rd_cache_list(struct rd_cache *c, const char *pattern, const uint8_t *after, size_t limit,
                     void (*fn)(void *ud, const struct rd_cache_entry *e), void *ud);
/* Removes the complete entries matching pattern (NULL: all); returns how many. */
size_t rd_cache_delete_pattern(struct rd_cache *c, const char *pattern);
/* Removes one entry; false if absent. */
bool rd_cache_delete_key(struct rd_cache *c, const uint8_t key[RD_CACHE_KEY_LEN]);
/* Removes the complete entries of a model (exact name); returns how many. */
size_t rd_cache_delete_model(struct rd_cache *c, const char *model);
/* Removes every expired entry (the background purge); returns how many. */
size_t rd_cache_purge_expired(struct rd_cache *c);
/* Inserts a complete entry built elsewhere (a cassette import, the store at
 * start-up): e must have its head, body, marks, created/expires set and be
 * COMPLETE; the cache takes a reference. An expired one is refused
 * (RD_EINVAL); one over the limits evicts others or is refused (RD_ETOOBIG). */
int rd_cache_insert(struct rd_cache *c, struct rd_cache_entry *e);
/* A new, empty COMPLETE-to-be entry for rd_cache_insert (refs 1): fill it
 * with rd_cache_fill_head/data/mark, then set created/expires and state. */
struct rd_cache_entry *rd_cache_entry_new(const uint8_t key[RD_CACHE_KEY_LEN], const char *model,
                                          enum rd_req_kind kind, const char *method, const char *path);
/* Extends a hit entry's expiry to expires_ms (usage-based TTL: the caller
 * computes now + ttl_s, capped); never shortens it. */
void rd_cache_extend(struct rd_cache *c, struct rd_cache_entry *e, int64_t expires_ms);

/* The closest complete entry to a missed request: same path and model,
 * most recent first; referenced, or NULL. For replay mode's miss error. */
struct rd_cache_entry *rd_cache_closest(struct rd_cache *c, const char *path, const char *model);

#endif
