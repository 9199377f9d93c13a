/* Persistent state behind one interface (struct rd_store_ops), so the SQLite
 * default and the later PostgreSQL store are interchangeable. SQL lives only
 * in the implementations. See docs/store.md.
 *
 * Thread rule: a store object is used by one thread only, the control
 * thread's (or the cache's writer thread, which opens its own store object
 * on the same URL: src/cache/persist.c). Every call below may block on disk
 * I/O or a database lock (up to the 5 s busy timeout), so no I/O worker and
 * no libuv loop callback on a worker may call it; workers ask the control
 * thread (uv_async) and get the result back. */
#ifndef RD_STORE_STORE_H
#define RD_STORE_STORE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* One proxy as persisted. Strings are owned (malloc) unless NULL. */
struct rd_proxy_rec {
    int64_t id;
    char *name;
    char *provider;
    int port;             /* 1..65535 */
    char *bind;           /* listen address, "127.0.0.1" by default */
    char *upstream_url;   /* NULL means the provider's default upstream */
    char *description;    /* may be NULL */
    char *tags_json;      /* JSON array text, "[]" by default */
    char *model;          /* may be NULL */
    char *config_json;    /* JSON object text, "{}" by default */
    char *desired_status; /* "running" or "stopped": what to restore at start-up */
    char *last_error;     /* may be NULL */
    int64_t created_at;   /* epoch ms */
    int64_t updated_at;   /* epoch ms */
};

#define RD_STORE_CACHE_KEY_LEN 32 /* a SHA-256 cache key (cache/cache.h RD_CACHE_KEY_LEN) */

/* One response-cache entry as persisted (cache_entries, 002_cache.sql). The
 * store does not interpret headers (JSON text), body or marks (opaque bytes
 * the cache encodes, src/cache/persist.c). Strings are NUL-terminated and
 * never NULL. Given to rd_store_cache_put, every pointer is borrowed for the
 * call; given to an rd_cache_rec_fn, they point into the store's current
 * row and are valid only until the callback returns. */
struct rd_cache_rec {
    int64_t proxy_id;
    uint8_t key[RD_STORE_CACHE_KEY_LEN]; /* stored as 64 lower-case hex */
    const char *model, *kind, *method, *path;
    int status; /* 100..599 */
    bool stream;
    const char *headers; /* JSON text */
    size_t headers_len;
    const void *body; /* NULL only when body_len is 0 */
    size_t body_len;
    const void *marks; /* NULL only when marks_len is 0 (stored as NULL) */
    size_t marks_len;
    int64_t input_tokens, output_tokens, cached_tokens, cache_write_tokens, reasoning_tokens;
    const char *upstream_model, *finish;
    int64_t created_at, expires_at; /* epoch ms */
    int64_t ttl_s;                  /* > 0 */
    int64_t hits;
};

/* Called by rd_store_cache_load for each row; a non-zero return stops the load. */
typedef int (*rd_cache_rec_fn)(void *ud, const struct rd_cache_rec *rec);

struct rd_log_rec;

/* What a request-log query selects (every field optional: 0, -1 or NULL
 * selects everything). Strings are borrowed. */
struct rd_log_filter {
    int64_t proxy_id;          /* 0: any */
    int status;                /* 0: any */
    int status_class;          /* 0: any; 1..5 for 1xx..5xx */
    int cache;                 /* -1: any; enum rd_log_cache */
    const char *failure_type;  /* NULL: any; "none": requests without one */
    const char *model;         /* NULL: any; exact */
    int64_t since_ms, until_ms; /* ts_ms >= since, ts_ms < until; 0: open */
    const char *q;             /* NULL: any; substring of id, path, model, client_ip,
                                * upstream_request_id, trace_id, prompt_hash */
    /* keyset: rows strictly older than (before_ts, before_seq) in the order
     * newest first (ts_ms desc, seq desc); before_seq 0: from the newest */
    int64_t before_ts;
    uint64_t before_seq;
};

/* Called by rd_store_log_query for each row (valid only for the call); a
 * non-zero return stops the query. */
typedef int (*rd_log_rec_fn)(void *ud, const struct rd_log_rec *rec);

/* One roll-up bucket as persisted (metrics_rollups, 004_metrics_rollups.sql):
 * the counters of resolution_s seconds from start_ms for one proxy,
 * provider and model. Strings are never NULL. latency is a histogram blob
 * the store does not interpret (obs/hist.h), NULL when latency_len is 0.
 * Given to rd_store_rollup_add, every pointer is borrowed for the call;
 * given to an rd_rollup_rec_fn, they are valid only until it returns. */
struct rd_rollup_rec {
    int32_t res_s;
    int64_t start_ms;
    int64_t proxy_id;
    const char *provider, *model;
    int64_t requests, cache_hits, cache_misses, cache_bypass;
    int64_t errors_simulated, errors_upstream;
    int64_t input_tokens, output_tokens, cached_tokens, cache_write_tokens, reasoning_tokens;
    double cost_usd;
    int64_t priced, unpriced;
    const void *latency;
    size_t latency_len;
};

/* Simulated outcomes of one type in a bucket of a proxy (metrics_rollup_failures). */
struct rd_rollup_fail_rec {
    int32_t res_s;
    int64_t start_ms;
    int64_t proxy_id;
    const char *type; /* "rate_limited", ... */
    int64_t count;
};

/* Which buckets a roll-up query reads: resolution res_s, start_ms in
 * [since_ms, until_ms) (until 0: open), proxy_id (0: every proxy). */
struct rd_rollup_filter {
    int32_t res_s;
    int64_t since_ms, until_ms;
    int64_t proxy_id;
};

/* Called for each row of a roll-up query; a non-zero return stops it. */
typedef int (*rd_rollup_rec_fn)(void *ud, const struct rd_rollup_rec *rec);
typedef int (*rd_rollup_fail_fn)(void *ud, const struct rd_rollup_fail_rec *rec);
/* Merges a stored row's latency blob (old) with the one being added (add)
 * into *out, a buffer the callback owns that stays valid until its next
 * call; returns its length (0: keep add alone, e.g. old is damaged). */
typedef size_t (*rd_rollup_merge_fn)(void *ud, const void *old, size_t old_len, const void *add, size_t add_len,
                                     const void **out);

struct rd_store;

struct rd_store_ops {
    const char *name; /* "sqlite" */
    void (*close)(struct rd_store *s);
    int (*ping)(struct rd_store *s);
    void (*appender)(struct rd_store *s); /* NULL: nothing to tune */
    int (*proxy_list)(struct rd_store *s, struct rd_proxy_rec **out, size_t *n);
    int (*proxy_get)(struct rd_store *s, int64_t id, struct rd_proxy_rec *out);
    int (*proxy_insert)(struct rd_store *s, struct rd_proxy_rec *rec);
    int (*proxy_update)(struct rd_store *s, const struct rd_proxy_rec *rec);
    int (*proxy_delete)(struct rd_store *s, int64_t id);
    int (*schema_version)(struct rd_store *s);
    /* The response cache's table; see the rd_store_cache_* wrappers. */
    int (*cache_put)(struct rd_store *s, const struct rd_cache_rec *recs, size_t n);
    int (*cache_delete)(struct rd_store *s, int64_t proxy_id, const uint8_t key[RD_STORE_CACHE_KEY_LEN]);
    int (*cache_clear)(struct rd_store *s, int64_t proxy_id);
    int (*cache_purge)(struct rd_store *s, int64_t now_ms);
    int (*cache_load)(struct rd_store *s, int64_t proxy_id, int64_t now_ms, uint64_t max_entries,
                      uint64_t max_bytes, rd_cache_rec_fn fn, void *ud);
    /* The request log (request_logs); see the rd_store_log_* wrappers. */
    int (*log_put)(struct rd_store *s, struct rd_log_rec *const *recs, size_t n);
    int (*log_query)(struct rd_store *s, const struct rd_log_filter *f, size_t limit, rd_log_rec_fn fn, void *ud);
    int64_t (*log_count)(struct rd_store *s, const struct rd_log_filter *f);
    int (*log_get)(struct rd_store *s, const char *id, struct rd_log_rec *out);
    int64_t (*log_delete)(struct rd_store *s, const struct rd_log_filter *f);
    /* The metric roll-ups (metrics_rollups); see the rd_store_rollup_* wrappers. */
    int (*rollup_add)(struct rd_store *s, const struct rd_rollup_rec *recs, size_t n,
                      const struct rd_rollup_fail_rec *fails, size_t nfails, rd_rollup_merge_fn merge, void *ud);
    int (*rollup_query)(struct rd_store *s, const struct rd_rollup_filter *f, rd_rollup_rec_fn fn, void *ud);
    int (*rollup_sums)(struct rd_store *s, int32_t res_s, rd_rollup_rec_fn fn, void *ud);
    int (*rollup_fail_sums)(struct rd_store *s, int32_t res_s, rd_rollup_fail_fn fn, void *ud);
    int64_t (*rollup_purge)(struct rd_store *s, int32_t res_s, int64_t before_ms);
};

struct rd_store {
    const struct rd_store_ops *ops;
    void *impl;
};

/* Opens the store named by url: "sqlite:///abs/path.db", "sqlite://rel/path.db"
 * or a plain file path (url is borrowed). Creates the file and its missing
 * parent directories (0700) if needed, enables WAL and foreign keys, and
 * applies pending migrations in one transaction each. On success *out is a
 * store owned by the caller (rd_store_close). On failure *out is untouched,
 * the return is RD_EINVAL (bad or unsupported URL, e.g. "postgresql://"),
 * RD_ESTORE (SQLite failure, failed migration, or a database whose schema is
 * newer than this binary) or -errno (directory creation), and a reason goes
 * into errbuf when it is non-NULL. The reason never quotes a URL beyond its
 * scheme, so a password in it is not echoed. Control thread only. */
int rd_store_open(const char *url, struct rd_store **out, char *errbuf, size_t errlen);
void rd_store_close(struct rd_store *s); /* NULL-safe */

/* 0 when the database answers a trivial query, else RD_ESTORE. */
int rd_store_ping(struct rd_store *s);
/* The connection mostly appends (the request log's writer): its page cache
 * is kept small (SQLite: 128 KiB instead of 2 MiB), so that the memory it
 * cycles through, and the CPU cache it shares with the workers, stay small.
 * Best effort. NULL-safe. */
void rd_store_appender(struct rd_store *s);
/* Highest applied migration version (>= 1 once open), or RD_ESTORE. */
int rd_store_schema_version(struct rd_store *s);

/* All proxies ordered by id; *out is an array of *n records owned by the
 * caller (free with rd_proxy_recs_free). */
int rd_store_proxy_list(struct rd_store *s, struct rd_proxy_rec **out, size_t *n);
/* Fills *out (owned by the caller) or returns RD_ENOTFOUND. */
int rd_store_proxy_get(struct rd_store *s, int64_t id, struct rd_proxy_rec *out);
/* Inserts rec; sets rec->id, created_at and updated_at (created_at passed in
 * is ignored). NULL bind, tags_json, config_json and desired_status take the
 * defaults, and rec then receives owned copies of them, so rec matches the
 * stored row. Returns RD_ECONFLICT when the name or the port is taken
 * (nothing written), RD_EINVAL for an empty name or provider, a port outside
 * 1..65535 or a desired_status other than "running"/"stopped", RD_ESTORE on
 * database failure. */
int rd_store_proxy_insert(struct rd_store *s, struct rd_proxy_rec *rec);
/* Replaces every column of the row with id rec->id except created_at
 * (updated_at is set by the store and not written back: rec is const; read
 * the row again if needed). NULL defaulted fields take the defaults as on
 * insert. RD_ENOTFOUND, RD_ECONFLICT, RD_EINVAL, RD_ESTORE as above. */
int rd_store_proxy_update(struct rd_store *s, const struct rd_proxy_rec *rec);
/* RD_ENOTFOUND if absent. */
int rd_store_proxy_delete(struct rd_store *s, int64_t id);

/* ---- the response cache (cache_entries) ----
 * Keys are per proxy: (proxy_id, key) is unique. A row whose proxy is
 * deleted goes with it (ON DELETE CASCADE). */

/* Inserts or replaces recs[0..n) in one transaction (prepared statements).
 * A row refused by the database on its own (its proxy no longer exists, a
 * CHECK fails) is skipped, logged at warn and not counted; the others are
 * written. Returns how many rows were written, RD_EINVAL when a record is
 * invalid (NULL string, status outside 100..599, ttl_s <= 0; nothing
 * written), or RD_ESTORE when the transaction failed (nothing written). */
int rd_store_cache_put(struct rd_store *s, const struct rd_cache_rec *recs, size_t n);
/* Deletes one key of a proxy. Returns 1 if a row went, 0 if there was none,
 * RD_ESTORE. */
int rd_store_cache_delete(struct rd_store *s, int64_t proxy_id, const uint8_t key[RD_STORE_CACHE_KEY_LEN]);
/* Deletes every row of proxy_id (0: of every proxy). Returns the count or RD_ESTORE. */
int rd_store_cache_clear(struct rd_store *s, int64_t proxy_id);
/* Deletes every row with expires_at <= now_ms (the background purge).
 * Returns the count or RD_ESTORE. */
int rd_store_cache_purge(struct rd_store *s, int64_t now_ms);
/* Calls fn for proxy_id's rows with expires_at > now_ms, newest created_at
 * first, while at most max_entries rows (0: no limit) and max_bytes bytes
 * (0: no limit; a row counts body_len + headers_len + marks_len) are given:
 * the first row that would pass either limit ends the load, so what is
 * loaded is always the newest stretch. Stops early when fn returns non-zero.
 * Returns how many rows fn was given, or RD_ESTORE (fn may have been called
 * for some rows before the failure). */
int rd_store_cache_load(struct rd_store *s, int64_t proxy_id, int64_t now_ms, uint64_t max_entries,
                        uint64_t max_bytes, rd_cache_rec_fn fn, void *ud);

/* ---- the request log (request_logs, 003_request_logs.sql) ---- */

/* Inserts *recs[0..n) in one transaction (prepared statements) and sets
 * each one's seq to its row's. The records are passed by pointer: the log
 * writer hands over those in its queue's chunks without copying them.
 * Returns n, RD_EINVAL (a record with an empty id; nothing written) or
 * RD_ESTORE (nothing written). */
int rd_store_log_put(struct rd_store *s, struct rd_log_rec *const *recs, size_t n);
/* Calls fn for at most limit rows (0: no limit) matching f, newest first
 * (ts_ms desc, seq desc). Returns how many rows fn was given, or RD_ESTORE. */
int rd_store_log_query(struct rd_store *s, const struct rd_log_filter *f, size_t limit, rd_log_rec_fn fn, void *ud);
/* How many rows match f (its keyset fields ignored), or RD_ESTORE. */
int64_t rd_store_log_count(struct rd_store *s, const struct rd_log_filter *f);
/* The row with request id id into *out, RD_ENOTFOUND or RD_ESTORE. */
int rd_store_log_get(struct rd_store *s, const char *id, struct rd_log_rec *out);
/* Deletes the rows matching f (keyset ignored); returns the count or RD_ESTORE. */
int64_t rd_store_log_delete(struct rd_store *s, const struct rd_log_filter *f);

/* ---- the metric roll-ups (metrics_rollups, 004_metrics_rollups.sql) ---- */

/* Adds recs[0..n) and fails[0..nfails) to their rows in one transaction:
 * a row that does not exist is inserted, one that does gets every counter
 * added and its latency blob merged with merge(ud, ...) (called only when
 * both blobs exist). Returns n + nfails, RD_EINVAL (a NULL string, a
 * resolution <= 0; nothing written) or RD_ESTORE (nothing written). */
int rd_store_rollup_add(struct rd_store *s, const struct rd_rollup_rec *recs, size_t n,
                        const struct rd_rollup_fail_rec *fails, size_t nfails, rd_rollup_merge_fn merge, void *ud);
/* Calls fn for each row matching f, by start_ms ascending. Returns how many
 * rows fn was given, or RD_ESTORE. */
int rd_store_rollup_query(struct rd_store *s, const struct rd_rollup_filter *f, rd_rollup_rec_fn fn, void *ud);
/* The counters of every row of resolution res_s summed by proxy, provider
 * and model (start_ms: the earliest bucket; no latency). Returns how many
 * sums fn was given, or RD_ESTORE. */
int rd_store_rollup_sums(struct rd_store *s, int32_t res_s, rd_rollup_rec_fn fn, void *ud);
/* The same for the simulated outcomes, by proxy and type. */
int rd_store_rollup_fail_sums(struct rd_store *s, int32_t res_s, rd_rollup_fail_fn fn, void *ud);
/* Deletes the rows of resolution res_s that start before before_ms (both
 * tables). Returns the count or RD_ESTORE. */
int64_t rd_store_rollup_purge(struct rd_store *s, int32_t res_s, int64_t before_ms);

void rd_proxy_rec_free(struct rd_proxy_rec *rec);             /* frees the strings; NULL-safe */
void rd_proxy_recs_free(struct rd_proxy_rec *recs, size_t n); /* frees each and the array */
/* Deep copy of src into *dst. dst's previous strings are not freed; free
 * them first if dst held any. */
void rd_proxy_rec_copy(struct rd_proxy_rec *dst, const struct rd_proxy_rec *src);

#endif
