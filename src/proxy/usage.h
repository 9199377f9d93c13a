/* Token usage and cost totals of one proxy since it was loaded, by provider
 * and model, for GET /api/v1/proxies/{id}/usage (until the request log of
 * the observability issue exists).
 *
 * Threading: one slot per I/O worker. A worker adds to its own slot only,
 * under that slot's mutex, which nobody else takes except a reader summing
 * the slots (the API on the control thread): so the request path pays an
 * uncontended lock and no shared cache line, and a read sees every request
 * released before it. The object is ref-counted: the manager's entry holds
 * one reference and every snapshot of the proxy another (requests reach it
 * through their snapshot). */
#ifndef RD_PROXY_USAGE_H
#define RD_PROXY_USAGE_H

#include <json-c/json.h>
#include <stdint.h>

#include "providers/provider.h"

/* Distinct provider + model pairs a slot keeps apart; the rest are summed
 * under the model "(other)" (a client can send any model name). */
#define RD_USAGE_MAX_MODELS 256

struct rd_proxy_usage;

/* A table with nslots worker slots (at least 1), "since" wall-clock
 * since_ms. refs starts at 1. */
struct rd_proxy_usage *rd_proxy_usage_new(unsigned nslots, int64_t since_ms);
struct rd_proxy_usage *rd_proxy_usage_ref(struct rd_proxy_usage *u);
void rd_proxy_usage_unref(struct rd_proxy_usage *u); /* NULL-safe */

/* Counts one request of provider p for model ("" when unknown) with usage
 * us (fields -1 when not reported) in slot (the worker's index; taken
 * modulo the slot count). Its cost comes from the price table, looked up
 * once per model and slot. The worker thread that owns slot. */
void rd_proxy_usage_add(struct rd_proxy_usage *u, unsigned slot, const struct rd_provider *p, const char *model,
                        const struct rd_usage *us);

/* The totals as the API shows them (docs/api.md): {"proxy_id", "since",
 * "models": [...], "totals": {...}}; the caller owns the result. Any
 * thread. */
struct json_object *rd_proxy_usage_json(struct rd_proxy_usage *u, int64_t proxy_id);

/* Totals counted elsewhere for one provider and model (the roll-ups of
 * earlier runs). Strings are borrowed. */
struct rd_usage_extra {
    const char *provider, *model;
    uint64_t requests, priced, unpriced;
    int64_t input, output, cached, cache_write, reasoning;
    double cost_usd;
};

/* rd_proxy_usage_json with extra[0..n) added to u's totals (an extra whose
 * provider this build does not know is left out) and "since" the earlier
 * of u's and since_ms. Any thread. */
struct json_object *rd_proxy_usage_json_with(struct rd_proxy_usage *u, int64_t proxy_id,
                                             const struct rd_usage_extra *extra, size_t n, int64_t since_ms);

#endif
