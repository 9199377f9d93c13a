/* A proxy's immutable runtime configuration (snapshot) and the shared holder
 * through which I/O workers read the current one. A configuration change
 * builds a new snapshot and swaps it in; requests in flight keep the one they
 * started with (they hold a reference). */
#ifndef RD_PROXY_SNAPSHOT_H
#define RD_PROXY_SNAPSHOT_H

#include <json-c/json.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>

#include "providers/provider.h"
#include "proxy/config.h"
#include "proxy/failstats.h"
#include "proxy/failure.h"
#include "proxy/pipeline.h"
#include "proxy/usage.h"
#include "store/store.h"

/* Which source answers the proxy's requests. */
enum rd_snap_source { RD_SNAP_SRC_H1, RD_SNAP_SRC_CURL, RD_SNAP_SRC_EMULATOR };

struct rd_proxy_snap {
    atomic_int refs;
    int64_t id;
    char *name;                          /* owned */
    const struct rd_provider *provider; /* static */
    bool emulator;                       /* upstream_url == "emulator" */
    char *upstream_base;                 /* owned; no trailing slash; NULL for the emulator */
    bool upstream_is_default;            /* no upstream_url: the provider's default_upstream */
    struct rd_limits limits;
    double emu_tps;
    uint64_t emu_seed;
    bool force_curl; /* upstream.client == "curl" */
    const char *ca_file; /* upstream.ca_file, borrowed from config; NULL for the system CAs */
    uint64_t header_timeout_ms;
    enum rd_snap_source source;
    struct rd_emu_setup emu; /* RD_SNAP_SRC_EMULATOR: the emulator source's context */
    struct json_object *config; /* owned, never modified after creation */
    struct rd_pipeline pipeline; /* the stages compiled from config (proxy/pipeline.h) */
    struct rd_failure_cfg failure; /* seed and failure block (proxy/failure.h) */
    /* Requests this snapshot has numbered (pipeline.active only): from 1,
     * shared by all workers, so "the nth request" and seeded draws do not
     * depend on which worker took a request. Starts again with each new
     * configuration. */
    atomic_uint_fast64_t req_seq;
    /* The proxy's usage totals (one reference, set by the manager after
     * creation; NULL when built outside a manager): requests add to it as
     * they are released. */
    struct rd_proxy_usage *usage;
    /* The proxy's simulated-outcome counts and retry audit (one reference,
     * set like usage; NULL outside a manager). */
    struct rd_failstats *failstats;
    /* The proxy's response cache (one reference, set like usage; NULL
     * outside a manager: the cache stage then does nothing). */
    struct rd_cache *cache;
};

/* Builds a snapshot from a record (borrowed; everything kept is copied).
 * Returns NULL with *why set to a static reason if the provider is unknown or
 * the record's config_json is not a document rd_config_validate accepts.
 * refs starts at 1. Any thread. */
struct rd_proxy_snap *rd_proxy_snap_new(const struct rd_proxy_rec *rec, uint64_t header_timeout_ms,
                                        const char **why);
/* Takes a reference (returns s); any thread. */
struct rd_proxy_snap *rd_proxy_snap_ref(struct rd_proxy_snap *s);
/* Drops a reference, freeing s with the last one; any thread. NULL-safe. */
void rd_proxy_snap_unref(struct rd_proxy_snap *s);

/* The holder shared by the control thread and the workers of one proxy. */
struct rd_proxy_rt {
    atomic_int refs;
    pthread_mutex_t mu;
    struct rd_proxy_snap *snap; /* guarded by mu */
    atomic_uint gen;            /* bumped after each swap: readers that cache a snapshot compare it */
};

/* Takes ownership of snap. refs starts at 1. */
struct rd_proxy_rt *rd_proxy_rt_new(struct rd_proxy_snap *snap);
struct rd_proxy_rt *rd_proxy_rt_ref(struct rd_proxy_rt *rt);
void rd_proxy_rt_unref(struct rd_proxy_rt *rt);
/* Any thread: the current snapshot with a reference the caller releases. */
struct rd_proxy_snap *rd_proxy_rt_acquire(struct rd_proxy_rt *rt);
/* Installs snap (ownership taken) and releases the previous one, after its
 * stages carried over what outlives a configuration change
 * (rd_pipeline_inherit: rate-limit windows). Control thread. */
void rd_proxy_rt_swap(struct rd_proxy_rt *rt, struct rd_proxy_snap *snap);

#endif
