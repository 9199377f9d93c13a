/* The retry audit of one proxy: after a simulated outcome that advertised a
 * Retry-After, was the same client's next request to the proxy early?
 * (docs/failure-simulation.md, "Retry audit").
 *
 * A client is a 64-bit key (failstats.c derives it from the client address
 * and a hash of its credential; nothing here sees either). The table keeps
 * one entry per client with an advertised retry time: RD_AUDIT_SHARDS shards
 * of RD_AUDIT_PER_SHARD entries, so memory is fixed; a full shard drops its
 * least recently noted entry, and an entry whose client has not come back
 * RD_AUDIT_KEEP_MS after the advertised time is dropped when met. Dropped
 * entries count as "expired", never as retries.
 *
 * Threading: any thread. Each shard has its own mutex, taken only when a
 * Retry-After is noted or, on a request's arrival, when the table holds at
 * least one entry (one relaxed atomic load otherwise): a proxy that
 * advertises nothing pays no lock. Time is a parameter (monotonic ms). */
#ifndef RD_PROXY_RETRY_AUDIT_H
#define RD_PROXY_RETRY_AUDIT_H

#include <stdbool.h>
#include <stdint.h>

#define RD_AUDIT_SHARDS 16
#define RD_AUDIT_PER_SHARD 64
#define RD_AUDIT_KEEP_MS (10u * 60u * 1000u)

enum rd_audit_outcome {
    RD_AUDIT_NONE,     /* nothing was advertised to this client (or it expired) */
    RD_AUDIT_EARLY,    /* it came back before the advertised time */
    RD_AUDIT_HONOURED, /* it came back at or after it */
};

struct rd_retry_audit_counts {
    uint64_t advertised; /* Retry-After values noted */
    uint64_t retries;    /* next requests after one: early + honoured */
    uint64_t early;
    uint64_t honoured;
    uint64_t expired;      /* entries dropped without a next request (kept too long, or evicted) */
    uint64_t early_ms_max; /* the earliest retry: how long before the advertised time it came */
};

struct rd_retry_audit;

struct rd_retry_audit *rd_retry_audit_new(void);
void rd_retry_audit_free(struct rd_retry_audit *a); /* NULL-safe */

/* Client key was told at now_ms to come back retry_after_ms later (a later
 * advertisement to the same client replaces the earlier one). */
void rd_retry_audit_note(struct rd_retry_audit *a, uint64_t key, uint64_t now_ms, uint64_t retry_after_ms);
/* True when some entry is kept: the request path asks this before deriving
 * a client key. */
bool rd_retry_audit_pending(const struct rd_retry_audit *a);
/* A request of client key arrived at now_ms: settles and removes its entry,
 * if any, and says how. */
enum rd_audit_outcome rd_retry_audit_arrive(struct rd_retry_audit *a, uint64_t key, uint64_t now_ms);
/* The counters so far. */
void rd_retry_audit_counts(const struct rd_retry_audit *a, struct rd_retry_audit_counts *out);

#endif
