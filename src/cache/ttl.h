/* How long a response is cached (docs/caching.md, "TTL"): the proxy's
 * cache_ttl block, compiled once into the snapshot.
 *
 *   ttl = by_model (exact name first, then the first glob that matches, in
 *         document order) else by_request_type (chat, completion, embedding,
 *         responses, messages, other) else default (3600 s);
 *   content_based: "truncated_s" replaces it when the answer stopped on its
 *         token limit (finish "length"); min() of the two otherwise;
 *   peak_hours: inside [start, end) UTC on the listed days, ttl * factor
 *         (rounded down, at least 1 s);
 *   usage_based: on a hit that brings the entry's hits to a multiple of
 *         every_hits, its expiry becomes now + ttl_s (the TTL it was stored
 *         with) when that is later, never past created + max_s.
 * A TTL of 0 means "not cached" for that model or type. Pure, clock
 * injected; any thread. */
#ifndef RD_CACHE_TTL_H
#define RD_CACHE_TTL_H

#include <json-c/json.h>
#include <stdbool.h>
#include <stdint.h>

#include "providers/provider.h"
#include "proxy/config.h"

#define RD_CACHE_TTL_DEFAULT 3600

struct rd_cache_ttl;

/* Compiles doc's cache_ttl block (validated by rd_config_validate; absent:
 * the defaults). Returns 0 with *out (free with rd_cache_ttl_free), or
 * RD_EINVAL with err filled (a glob that cannot be compiled, ...). */
int rd_cache_ttl_compile(struct json_object *doc, struct rd_cache_ttl **out, struct rd_config_err *err);
void rd_cache_ttl_free(struct rd_cache_ttl *t); /* NULL-safe */

/* The TTL in seconds of a response for model (as classified) of kind,
 * stopped for finish ("length", "" when not), stored at now_ms (wall
 * clock, epoch ms). 0: do not store. */
uint32_t rd_cache_ttl_for(const struct rd_cache_ttl *t, const char *model, enum rd_req_kind kind, const char *finish,
                          int64_t now_ms);
/* usage_based: the new expiry of an entry created at created_ms with
 * ttl_s, now at hits hits and expiring at expires_ms; returns expires_ms
 * unchanged when the rule does not apply. */
int64_t rd_cache_ttl_on_hit(const struct rd_cache_ttl *t, int64_t created_ms, uint32_t ttl_s, uint64_t hits,
                            int64_t expires_ms, int64_t now_ms);

#endif
