#include "proxy/snapshot.h"

#include <stdlib.h>
#include <string.h>

#include "cache/cache.h"
#include "proxy/secrets.h"
#include "upstream/upstream.h"
#include "util/json.h"
#include "util/mem.h"

struct rd_proxy_snap *rd_proxy_snap_new(const struct rd_proxy_rec *rec, uint64_t header_timeout_ms,
                                        const char **why)
{
    const struct rd_provider *p = rd_provider_find(rec->provider);
    if (p == NULL) {
        *why = "unknown provider";
        return NULL;
    }
    struct json_object *cfg = NULL;
    const char *text = rec->config_json ? rec->config_json : "{}";
    struct rd_config_err cerr;
    /* The API validates a document before storing it, so this only fails for
     * a database edited by hand or written by another version. Running with
     * defaults instead would silently drop settings such as ip_filtering. */
    if (rd_json_parse(text, strlen(text), 1u << 24, &cfg, NULL) != 0) {
        *why = "its stored configuration is invalid (replace it with PUT /api/v1/proxies/{id}/config)";
        return NULL;
    }
    /* Secrets are sealed in the database (proxy/secrets.h); requests need
     * them in clear, so the snapshot holds them opened. */
    if (rd_config_unseal(cfg, NULL) != 0) {
        json_object_put(cfg);
        *why = "its stored secrets cannot be opened with this server's secrets key (was DIR/secrets.key replaced?): "
               "send them again with PUT /api/v1/proxies/{id}/config";
        return NULL;
    }
    struct rd_pipeline pl;
    if (rd_config_validate(cfg, &cerr) != 0 || rd_pipeline_compile(cfg, p, &pl, &cerr) != 0) {
        json_object_put(cfg);
        *why = "its stored configuration is invalid (replace it with PUT /api/v1/proxies/{id}/config)";
        return NULL;
    }
    bool configured = rec->upstream_url && rec->upstream_url[0];
    const char *up = configured ? rec->upstream_url : p->default_upstream;
    if (up == NULL || (!configured && p->upstream_required)) {
        rd_pipeline_free(&pl);
        json_object_put(cfg);
        *why = "its provider needs an upstream_url (the provider's own endpoint, or \"emulator\")";
        return NULL;
    }
    struct rd_proxy_snap *s = rd_calloc(1, sizeof *s);
    atomic_init(&s->refs, 1);
    s->id = rec->id;
    s->name = rd_strdup(rec->name);
    s->provider = p;
    s->upstream_is_default = !configured;
    if (strcmp(up, "emulator") == 0) {
        s->emulator = true;
    } else {
        size_t n = strlen(up);
        while (n && up[n - 1] == '/')
            n--;
        s->upstream_base = rd_strndup(up, n);
    }
    s->config = cfg;
    s->pipeline = pl;
    rd_failure_cfg_read(cfg, &s->failure);
    rd_config_limits(cfg, &s->limits);
    s->emu_tps = rd_config_emulator_tps(cfg);
    s->force_curl = rd_config_upstream_curl(cfg);
    s->ca_file = rd_config_upstream_ca_file(cfg);
    s->emu_seed = (uint64_t)rd_json_get_int(rd_json_get(cfg, "emulator"), "seed", 0);
    s->header_timeout_ms = header_timeout_ms;
    /* The source is chosen once per snapshot: requests only look it up. */
    if (s->emulator) {
        s->source = RD_SNAP_SRC_EMULATOR;
        s->emu.dialect = p->emulator;
        s->emu.emulate = p->emulate;
        s->emu.seed = s->emu_seed;
        s->emu.tokens_per_second = s->emu_tps;
        s->emu.config = cfg;
    } else if (!s->force_curl && rd_upstream_native_ok(s->upstream_base)) {
        s->source = RD_SNAP_SRC_H1;
    } else {
        s->source = RD_SNAP_SRC_CURL;
    }
    return s;
}

struct rd_proxy_snap *rd_proxy_snap_ref(struct rd_proxy_snap *s)
{
    atomic_fetch_add_explicit(&s->refs, 1, memory_order_relaxed);
    return s;
}

void rd_proxy_snap_unref(struct rd_proxy_snap *s)
{
    if (s == NULL || atomic_fetch_sub_explicit(&s->refs, 1, memory_order_acq_rel) != 1)
        return;
    free(s->name);
    free(s->upstream_base);
    rd_pipeline_free(&s->pipeline);
    json_object_put(s->config);
    rd_proxy_usage_unref(s->usage);
    rd_failstats_unref(s->failstats);
    rd_cache_unref(s->cache);
    free(s);
}

struct rd_proxy_rt *rd_proxy_rt_new(struct rd_proxy_snap *snap)
{
    struct rd_proxy_rt *rt = rd_calloc(1, sizeof *rt);
    atomic_init(&rt->refs, 1);
    atomic_init(&rt->gen, 0);
    pthread_mutex_init(&rt->mu, NULL);
    rt->snap = snap;
    return rt;
}

struct rd_proxy_rt *rd_proxy_rt_ref(struct rd_proxy_rt *rt)
{
    atomic_fetch_add_explicit(&rt->refs, 1, memory_order_relaxed);
    return rt;
}

void rd_proxy_rt_unref(struct rd_proxy_rt *rt)
{
    if (rt == NULL || atomic_fetch_sub_explicit(&rt->refs, 1, memory_order_acq_rel) != 1)
        return;
    rd_proxy_snap_unref(rt->snap);
    pthread_mutex_destroy(&rt->mu);
    free(rt);
}

struct rd_proxy_snap *rd_proxy_rt_acquire(struct rd_proxy_rt *rt)
{
    /* The lock makes "load the pointer, take a reference" atomic with
     * respect to a swap that drops the last reference of the old one. */
    pthread_mutex_lock(&rt->mu);
    struct rd_proxy_snap *s = rd_proxy_snap_ref(rt->snap);
    pthread_mutex_unlock(&rt->mu);
    return s;
}

void rd_proxy_rt_swap(struct rd_proxy_rt *rt, struct rd_proxy_snap *snap)
{
    /* Only the control thread swaps, so rt->snap is stable here without the
     * lock; snap is not published yet, so its stages may still change. */
    rd_pipeline_inherit(&snap->pipeline, &rt->snap->pipeline);
    pthread_mutex_lock(&rt->mu);
    struct rd_proxy_snap *old = rt->snap;
    rt->snap = snap;
    pthread_mutex_unlock(&rt->mu);
    atomic_fetch_add_explicit(&rt->gen, 1, memory_order_release);
    rd_proxy_snap_unref(old);
}
