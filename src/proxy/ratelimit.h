/* Rate limiting: per-key limiter state behind a store interface, and the
 * request/token limiter a proxy's rate_limit stage will use.
 *
 * Pure logic with an injected clock: every call takes now_ms (monotonic
 * milliseconds) and nothing here reads a clock or sleeps. The state lives in a
 * struct rd_ratelimit_store reached only through its ops table, so a Redis
 * store can replace the in-memory one (rd_ratelimit_store_mem_new) without the
 * callers changing. docs/failure-simulation.md ("Rate limiting") documents the
 * algorithms with worked examples. */
#ifndef RD_PROXY_RATELIMIT_H
#define RD_PROXY_RATELIMIT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* The window both algorithms are defined over. */
#define RD_RL_WINDOW_MS 60000u
/* Largest key a store accepts, in bytes (the builders below stay under it). */
#define RD_RL_KEY_MAX 64u
/* Largest ceiling (per-minute rate + burst) a limiter accepts, and a
 * sliding window (8 bytes per admission in the window). */
#define RD_RL_CEILING_MAX 100000000u
#define RD_RL_WINDOW_CEILING_MAX 1000000u

enum rd_rl_algorithm {
    RD_RL_SLIDING_WINDOW, /* exact: at most the ceiling in any trailing 60 s */
    RD_RL_TOKEN_BUCKET,   /* capacity = ceiling, refilled at per_minute / 60 s */
};

/* What one limiter enforces. */
struct rd_rl_limits {
    enum rd_rl_algorithm algorithm;
    uint32_t per_minute; /* sustained rate, >= 1 */
    uint32_t burst;      /* extra above it; ceiling = per_minute + burst */
};

/* The outcome of an admission, for the response headers. */
struct rd_rl_verdict {
    bool admitted;
    bool exceeds_ceiling;   /* the cost is above the ceiling: never admitted (retry_after_s UINT32_MAX) */
    uint64_t limit;         /* the ceiling (X-RateLimit-Limit) */
    uint64_t remaining;     /* units still admissible now, after this admission (X-RateLimit-Remaining) */
    uint32_t reset_s;       /* seconds until the key is back to a full ceiling (X-RateLimit-Reset), ceil */
    uint32_t retry_after_s; /* limited: seconds until this cost would be admitted, ceil, >= 1; else 0 */
};

struct rd_ratelimit_store;

/* A store of per-key limiter state. Every op may be called from any thread
 * concurrently; an implementation serialises what it must per key. */
struct rd_ratelimit_store_ops {
    /* Admits cost units (>= 1) for key[0..key_len) at now_ms, or not, and
     * fills *out. An unknown key starts full. Returns 0, or RD_EINVAL (cost 0,
     * key empty or longer than RD_RL_KEY_MAX). */
    int (*admit)(struct rd_ratelimit_store *s, const void *key, size_t key_len, uint64_t now_ms, uint64_t cost,
                 struct rd_rl_verdict *out);
    /* Adjusts the units charged to key after the fact: delta > 0 consumes
     * more (usage beyond the reservation; the key may go into debt),
     * delta < 0 gives back (a reservation larger than the usage). Returns 0,
     * or RD_EINVAL for a bad key. */
    int (*charge)(struct rd_ratelimit_store *s, const void *key, size_t key_len, uint64_t now_ms, int64_t delta);
    /* Drops every key whose state is back to full at now_ms (forgetting it
     * changes no verdict); returns how many. Not needed for correctness:
     * the in-memory store also drops idle keys as it goes. */
    size_t (*expire)(struct rd_ratelimit_store *s, uint64_t now_ms);
    /* Number of keys holding state (for tests and metrics). */
    size_t (*key_count)(struct rd_ratelimit_store *s);
    /* Frees the store. NULL-safe in the wrapper below. */
    void (*destroy)(struct rd_ratelimit_store *s);
};

struct rd_ratelimit_store {
    const struct rd_ratelimit_store_ops *ops; /* static */
    struct rd_rl_limits limits;
};

/* The in-memory store: a table sharded by a keyed hash of the key, each shard
 * with its own small mutex, hash chains and LRU list. Holds at most max_keys
 * keys (>= 1), in shards of at least 4: a key whose state is back to full
 * (idle) is dropped once it is among the least recently used of its shard; a
 * full shard evicts an idle key first, else forgets its least recently used
 * one (which then starts again from a full ceiling). Returns NULL with *why set (static) when
 * the limits are invalid (per_minute 0, ceiling above RD_RL_CEILING_MAX, or
 * above RD_RL_WINDOW_CEILING_MAX for a sliding window). */
struct rd_ratelimit_store *rd_ratelimit_store_mem_new(const struct rd_rl_limits *limits, size_t max_keys,
                                                      const char **why);
/* Calls s->ops->destroy; NULL-safe. */
void rd_ratelimit_store_free(struct rd_ratelimit_store *s);

/* Keys. A key is opaque bytes; these build the three the configuration
 * names into out[0..RD_RL_KEY_MAX) and return the length, or RD_EINVAL. */
/* The whole proxy shares one window. */
int rd_ratelimit_key_proxy(uint8_t *out);
/* One window per client address (its text form, at most 45 bytes: an address
 * is not a secret, so it is kept as it is). */
int rd_ratelimit_key_ip(const char *ip, size_t ip_len, uint8_t *out);
/* One window per value of a header (name matched case-insensitively): the
 * value, often an API key, is hashed with SHA-256 and never kept. A missing
 * header (value NULL) is its own key. */
int rd_ratelimit_key_header(const char *name, size_t name_len, const char *value, size_t value_len, uint8_t *out);

/* A proxy's limiter: requests, and optionally tokens. */
struct rd_ratelimit {
    struct rd_ratelimit_store *requests; /* owned */
    struct rd_ratelimit_store *tokens;   /* owned; NULL without tokens_per_minute */
};

/* Creates the limiter: requests per `requests`, and tokens (a token bucket of
 * capacity tokens_per_minute, no burst) when tokens_per_minute > 0, each in an
 * in-memory store of at most max_keys keys. Returns 0 or RD_EINVAL with *why
 * set. Any thread. */
int rd_ratelimit_init(struct rd_ratelimit *rl, const struct rd_rl_limits *requests, uint32_t tokens_per_minute,
                      size_t max_keys, const char **why);
/* Frees both stores; NULL-safe, idempotent. */
void rd_ratelimit_destroy(struct rd_ratelimit *rl);

/* Admits one request reserving max_tokens (clamped to >= 1; ignored without
 * a tokens limiter) for key. The request is admitted only when both limiters
 * admit it; a request slot taken when the tokens limiter then refuses is
 * given back, and req->retry_after_s is the tokens' wait. *req and *tok
 * (tok may be NULL) get the verdicts; *tok is all zero without a tokens
 * limiter, and holds only its limit when the request limiter refused (no
 * tokens were asked for). Returns 0 or RD_EINVAL. Any thread. */
int rd_ratelimit_admit(struct rd_ratelimit *rl, const void *key, size_t key_len, uint64_t now_ms, uint64_t max_tokens,
                       struct rd_rl_verdict *req, struct rd_rl_verdict *tok);
/* Charges a finished request's usage: actual tokens against the reserved
 * ones (what rd_ratelimit_admit reserved). Does nothing without a tokens
 * limiter. Returns 0 or RD_EINVAL. Any thread. */
int rd_ratelimit_charge(struct rd_ratelimit *rl, const void *key, size_t key_len, uint64_t now_ms, uint64_t reserved,
                        uint64_t actual);

#endif
