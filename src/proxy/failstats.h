/* A proxy's simulated outcomes since it was loaded: how many requests got
 * each failure type (ip_blocked, rate_limited, ..., delayed), and the retry
 * audit (proxy/retry_audit.h), for GET /api/v1/proxies/{id}/failures.
 *
 * Threading: like proxy/usage.h, one slot of counters per I/O worker,
 * written by that worker only (relaxed atomics: no lock), summed by a
 * reader on any thread. The retry audit is shared by the workers (a client
 * may reach another worker with its retry) and locks a shard only when it
 * has something to say. Ref-counted: the manager's entry holds one
 * reference and every snapshot of the proxy another. */
#ifndef RD_PROXY_FAILSTATS_H
#define RD_PROXY_FAILSTATS_H

#include <json-c/json.h>
#include <stdint.h>

#include "http/headers.h"
#include "proxy/retry_audit.h"

/* Failure types a slot counts (enum rd_failure values below this). */
#define RD_FAILSTATS_TYPES 32

struct rd_failstats;

/* refs starts at 1; nslots worker slots (at least 1). */
struct rd_failstats *rd_failstats_new(unsigned nslots, int64_t since_ms);
struct rd_failstats *rd_failstats_ref(struct rd_failstats *f);
void rd_failstats_unref(struct rd_failstats *f); /* NULL-safe */

/* One request got simulated outcome type (an enum rd_failure). The worker
 * owning slot. */
void rd_failstats_count(struct rd_failstats *f, unsigned slot, int type);

/* The retry audit's client: the address, plus a hash of the request's
 * credential (Authorization, x-api-key, api-key or x-goog-api-key) when it
 * has one, so two applications behind one address are told apart. Only a
 * digest is kept. Pure. */
uint64_t rd_failstats_client_key(const char *client_ip, const struct rd_hdrs *req_hdrs);
struct rd_retry_audit *rd_failstats_audit(struct rd_failstats *f);

/* {"proxy_id", "since", "failures": {"<type>": n, ... every type},
 *  "retry_audit": {...}}; the caller owns the result. Any thread. */
struct json_object *rd_failstats_json(struct rd_failstats *f, int64_t proxy_id);
/* The same with extra[type] added to each count (the roll-ups of earlier
 * runs) and "since" the earlier of f's and since_ms. Any thread. */
struct json_object *rd_failstats_json_with(struct rd_failstats *f, int64_t proxy_id,
                                           const uint64_t extra[RD_FAILSTATS_TYPES], int64_t since_ms);

#endif
