/* See metrics.h.
 *
 * Each worker slot holds two tables, grown when a new series first appears
 * (the only allocation; the steady state allocates nothing):
 *   routes  one row per (proxy, provider): requests by status sent, the
 *           duration histogram, upstream errors, simulated failures;
 *   models  one row per (proxy, provider, model) that reported tokens or a
 *           cost, at most RD_METRICS_MAX_MODELS distinct models per slot,
 *           the rest summed under "(other)".
 * A slot's mutex is taken by its worker for each finished request and by
 * the scrape while it copies the slot, never by another worker: it is
 * uncontended unless a scrape is copying that very slot. The in-flight
 * gauge is two relaxed atomics per slot written by their worker only. */
#include "obs/metrics.h"

#include <inttypes.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "obs/prom.h"
#include "proxy/req.h"
#include "util/err.h"
#include "util/mem.h"
#include "util/time.h"

#define OTHER "(other)"
#define NBOUNDS 15
#define NFAIL (RD_FAIL_STREAM_DUPLICATE + 1)

static const double bounds[NBOUNDS] = {0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 15, 30, 60, 120};

struct status_count {
    int status;
    uint64_t n;
};

struct route {
    int64_t proxy_id;
    const char *provider; /* static (the provider table's name) */
    struct status_count *st; /* owned */
    size_t nst, capst;
    uint64_t buckets[NBOUNDS + 1];
    uint64_t count;
    uint64_t sum_us;
    uint64_t upstream_errors;
    uint64_t failures[NFAIL];
};

struct model {
    int64_t proxy_id;
    const char *provider; /* static */
    uint32_t hash;        /* of the model name: compared before the name */
    char name[128];
    uint64_t input, output, cached, reasoning;
    double cost_usd;  /* billed upstream: requests not answered from the cache */
    double saved_usd; /* what cache hits would have cost */
};

/* Aligned so two workers' slots never share a cache line. */
struct slot {
    _Alignas(64) pthread_mutex_t mu;
    struct route *routes; /* owned */
    size_t nroutes, caproutes;
    struct model *models; /* owned */
    size_t nmodels, capmodels;
    size_t nnamed; /* models other than "(other)" */
    _Atomic uint64_t begun, done;
};

struct rd_metrics {
    unsigned nslots;
    struct slot *slots; /* owned array of nslots */
    int64_t start_ms;
};

struct rd_metrics *rd_metrics_new(unsigned nslots)
{
    struct rd_metrics *m = rd_calloc(1, sizeof *m);
    m->nslots = nslots ? nslots : 1;
    m->start_ms = rd_time_wall_ms();
    /* calloc only guarantees max_align_t: the slots need their 64. */
    size_t bytes = m->nslots * sizeof *m->slots; /* a multiple of 64, as aligned_alloc wants */
    m->slots = aligned_alloc(_Alignof(struct slot), bytes);
    if (m->slots == NULL)
        abort();
    memset(m->slots, 0, bytes);
    for (unsigned i = 0; i < m->nslots; i++) {
        pthread_mutex_init(&m->slots[i].mu, NULL);
        atomic_init(&m->slots[i].begun, 0);
        atomic_init(&m->slots[i].done, 0);
    }
    return m;
}

static void routes_free(struct route *v, size_t n)
{
    for (size_t i = 0; i < n; i++)
        free(v[i].st);
    free(v);
}

void rd_metrics_free(struct rd_metrics *m)
{
    if (m == NULL)
        return;
    for (unsigned i = 0; i < m->nslots; i++) {
        pthread_mutex_destroy(&m->slots[i].mu);
        routes_free(m->slots[i].routes, m->slots[i].nroutes);
        free(m->slots[i].models);
    }
    free(m->slots);
    free(m);
}

/* Only the slot's worker writes these: a relaxed load and store, no
 * read-modify-write, are enough and cost a plain add. */
static void bump(_Atomic uint64_t *v)
{
    atomic_store_explicit(v, atomic_load_explicit(v, memory_order_relaxed) + 1, memory_order_relaxed);
}

void rd_metrics_begin(struct rd_metrics *m, unsigned slot)
{
    if (m)
        bump(&m->slots[slot % m->nslots].begun);
}

uint64_t rd_metrics_in_flight(struct rd_metrics *m)
{
    if (m == NULL)
        return 0;
    uint64_t begun = 0, done = 0;
    /* done first: a request counted done was counted begun before it, so
     * the difference never goes below zero. */
    for (unsigned i = 0; i < m->nslots; i++)
        done += atomic_load_explicit(&m->slots[i].done, memory_order_acquire);
    for (unsigned i = 0; i < m->nslots; i++)
        begun += atomic_load_explicit(&m->slots[i].begun, memory_order_acquire);
    return begun > done ? begun - done : 0;
}

/* ---- the tables (slot or scrape copy) ---- */

static uint32_t hash_name(const char *s)
{
    uint32_t h = 2166136261u; /* FNV-1a */
    for (; *s; s++)
        h = (h ^ (uint8_t)*s) * 16777619u;
    return h;
}

static struct route *route_find(struct route *v, size_t n, int64_t proxy_id, const char *provider)
{
    for (size_t i = 0; i < n; i++)
        if (v[i].proxy_id == proxy_id && v[i].provider == provider)
            return &v[i];
    return NULL;
}

static struct route *route_get(struct route **v, size_t *n, size_t *cap, int64_t proxy_id, const char *provider)
{
    struct route *r = route_find(*v, *n, proxy_id, provider);
    if (r)
        return r;
    if (*n == *cap) {
        *cap = *cap ? 2 * *cap : 4;
        *v = rd_realloc(*v, *cap * sizeof **v);
    }
    r = &(*v)[(*n)++];
    memset(r, 0, sizeof *r);
    r->proxy_id = proxy_id;
    r->provider = provider;
    return r;
}

static void status_add(struct route *r, int status, uint64_t n)
{
    for (size_t i = 0; i < r->nst; i++)
        if (r->st[i].status == status) {
            r->st[i].n += n;
            return;
        }
    if (r->nst == r->capst) {
        r->capst = r->capst ? 2 * r->capst : 4;
        r->st = rd_realloc(r->st, r->capst * sizeof *r->st);
    }
    r->st[r->nst++] = (struct status_count){status, n};
}

static struct model *model_find(struct model *v, size_t n, int64_t proxy_id, const char *provider, uint32_t hash,
                                const char *name)
{
    for (size_t i = 0; i < n; i++)
        if (v[i].hash == hash && v[i].proxy_id == proxy_id && v[i].provider == provider &&
            strcmp(v[i].name, name) == 0)
            return &v[i];
    return NULL;
}

static struct model *model_append(struct model **v, size_t *n, size_t *cap, int64_t proxy_id, const char *provider,
                                  uint32_t hash, const char *name)
{
    if (*n == *cap) {
        *cap = *cap ? 2 * *cap : 8;
        *v = rd_realloc(*v, *cap * sizeof **v);
    }
    struct model *md = &(*v)[(*n)++];
    memset(md, 0, sizeof *md);
    md->proxy_id = proxy_id;
    md->provider = provider;
    md->hash = hash;
    snprintf(md->name, sizeof md->name, "%s", name);
    return md;
}

/* The slot's row for the model, made on first use; past the cap, the
 * proxy's "(other)" row. */
static struct model *slot_model(struct slot *s, int64_t proxy_id, const char *provider, const char *name)
{
    uint32_t h = hash_name(name);
    struct model *md = model_find(s->models, s->nmodels, proxy_id, provider, h, name);
    if (md)
        return md;
    if (s->nnamed >= RD_METRICS_MAX_MODELS || strcmp(name, OTHER) == 0) {
        name = OTHER;
        h = hash_name(OTHER);
        md = model_find(s->models, s->nmodels, proxy_id, provider, h, name);
        if (md)
            return md;
    } else {
        s->nnamed++;
    }
    return model_append(&s->models, &s->nmodels, &s->capmodels, proxy_id, provider, h, name);
}

static uint64_t part(int64_t v)
{
    return v > 0 ? (uint64_t)v : 0;
}

/* The upstream failed this request: the source reported an error (connect,
 * TLS, transfer, the upstream timeout) or answered 5xx. Not a cache hit (no
 * upstream), not the client leaving (RD_EABORTED: the proxy gave up on
 * the upstream, not the other way round). */
static bool is_upstream_error(const struct rd_req *req)
{
    if (req->cache == RD_CACHE_HIT || req->err == RD_EABORTED)
        return false;
    return req->err != 0 || req->status_upstream >= 500;
}

void rd_metrics_done(struct rd_metrics *m, unsigned slot, struct rd_req *req)
{
    if (m == NULL)
        return;
    struct slot *s = &m->slots[slot % m->nslots];
    const char *provider = req->provider ? req->provider->name : "";
    int64_t proxy_id = req->snap ? req->snap->id : 0;
    uint64_t t_end = req->t_done ? req->t_done : rd_req_now_us();
    uint64_t us = t_end > req->t_received ? t_end - req->t_received : 0;
    size_t b = rd_prom_bucket(bounds, NBOUNDS, (double)us / 1e6);
    uint32_t seen = req->failures_seen;
    if (req->failure != RD_FAIL_NONE)
        seen |= 1u << req->failure;
    /* Usage and cost are read before the lock: rd_req_usage may parse the
     * kept body the first time. */
    const struct rd_usage *u = rd_req_usage(req);
    double usd = 0;
    bool priced = rd_req_cost(req, &usd);
    bool has_usage = priced || u->input >= 0 || u->output >= 0 || u->cached >= 0 || u->reasoning >= 0;
    bool hit = req->cache == RD_CACHE_HIT;

    pthread_mutex_lock(&s->mu);
    struct route *r = route_get(&s->routes, &s->nroutes, &s->caproutes, proxy_id, provider);
    status_add(r, req->status_sent, 1);
    r->buckets[b]++;
    r->count++;
    r->sum_us += us;
    if (is_upstream_error(req))
        r->upstream_errors++;
    for (unsigned f = 1; seen && f < NFAIL; f++)
        if (seen & (1u << f))
            r->failures[f]++;
    if (has_usage) {
        struct model *md = slot_model(s, proxy_id, provider, req->model);
        if (hit) {
            md->saved_usd += usd;
        } else {
            md->input += part(u->input);
            md->output += part(u->output);
            md->cached += part(u->cached);
            md->reasoning += part(u->reasoning);
            md->cost_usd += usd;
        }
    }
    pthread_mutex_unlock(&s->mu);
    /* release: a reader that sees this done sees the begin before it */
    atomic_store_explicit(&s->done, atomic_load_explicit(&s->done, memory_order_relaxed) + 1, memory_order_release);
}

/* ---- the scrape ---- */

struct totals {
    struct route *routes;
    size_t nroutes, caproutes;
    struct model *models;
    size_t nmodels, capmodels;
};

static void merge_slot(struct totals *t, struct slot *s)
{
    pthread_mutex_lock(&s->mu);
    for (size_t i = 0; i < s->nroutes; i++) {
        const struct route *src = &s->routes[i];
        struct route *dst = route_get(&t->routes, &t->nroutes, &t->caproutes, src->proxy_id, src->provider);
        for (size_t j = 0; j < src->nst; j++)
            status_add(dst, src->st[j].status, src->st[j].n);
        for (size_t j = 0; j <= NBOUNDS; j++)
            dst->buckets[j] += src->buckets[j];
        dst->count += src->count;
        dst->sum_us += src->sum_us;
        dst->upstream_errors += src->upstream_errors;
        for (size_t j = 0; j < NFAIL; j++)
            dst->failures[j] += src->failures[j];
    }
    for (size_t i = 0; i < s->nmodels; i++) {
        const struct model *src = &s->models[i];
        struct model *dst = model_find(t->models, t->nmodels, src->proxy_id, src->provider, src->hash, src->name);
        if (dst == NULL)
            dst = model_append(&t->models, &t->nmodels, &t->capmodels, src->proxy_id, src->provider, src->hash,
                               src->name);
        dst->input += src->input;
        dst->output += src->output;
        dst->cached += src->cached;
        dst->reasoning += src->reasoning;
        dst->cost_usd += src->cost_usd;
        dst->saved_usd += src->saved_usd;
    }
    pthread_mutex_unlock(&s->mu);
}

static int by_route(const void *a, const void *b)
{
    const struct route *x = a, *y = b;
    if (x->proxy_id != y->proxy_id)
        return x->proxy_id < y->proxy_id ? -1 : 1;
    return strcmp(x->provider, y->provider);
}

static int by_status(const void *a, const void *b)
{
    const struct status_count *x = a, *y = b;
    return (x->status > y->status) - (x->status < y->status);
}

static int by_model(const void *a, const void *b)
{
    const struct model *x = a, *y = b;
    if (x->proxy_id != y->proxy_id)
        return x->proxy_id < y->proxy_id ? -1 : 1;
    int c = strcmp(x->provider, y->provider);
    return c ? c : strcmp(x->name, y->name);
}

/* Rendering state: the output, the first error, a proxy id's text. */
struct out {
    struct rd_buf *b;
    int rc;
};

static void family(struct out *o, const char *name, enum rd_prom_type type, const char *help)
{
    if (o->rc == 0)
        o->rc = rd_prom_family(o->b, name, type, help);
}

static void sample_u64(struct out *o, const char *name, const struct rd_prom_label *l, size_t nl, uint64_t v)
{
    if (o->rc == 0)
        o->rc = rd_prom_sample_u64(o->b, name, NULL, l, nl, v);
}

static void sample_f(struct out *o, const char *name, const struct rd_prom_label *l, size_t nl, double v)
{
    if (o->rc == 0)
        o->rc = rd_prom_sample(o->b, name, NULL, l, nl, v);
}

static void gauge1(struct out *o, const char *name, const char *help, uint64_t v)
{
    family(o, name, RD_PROM_GAUGE, help);
    sample_u64(o, name, NULL, 0, v);
}

static void counter1(struct out *o, const char *name, const char *help, uint64_t v)
{
    family(o, name, RD_PROM_COUNTER, help);
    sample_u64(o, name, NULL, 0, v);
}

static void render_routes(struct out *o, struct route *v, size_t n)
{
    char id[24], status[16];
    struct rd_prom_label l[3] = {{"proxy_id", id}, {"provider", NULL}, {"status", status}};
    family(o, "rubberduck_requests_total", RD_PROM_COUNTER,
           "Requests a proxy received, by the HTTP status sent to the client (0: none was sent).");
    for (size_t i = 0; i < n; i++) {
        snprintf(id, sizeof id, "%" PRId64, v[i].proxy_id);
        l[1].value = v[i].provider;
        if (v[i].nst)
            qsort(v[i].st, v[i].nst, sizeof *v[i].st, by_status);
        for (size_t j = 0; j < v[i].nst; j++) {
            snprintf(status, sizeof status, "%d", v[i].st[j].status);
            sample_u64(o, "rubberduck_requests_total", l, 3, v[i].st[j].n);
        }
    }
    family(o, "rubberduck_request_duration_seconds", RD_PROM_HISTOGRAM,
           "Time from the request's arrival to its last byte sent (or its end).");
    for (size_t i = 0; i < n && o->rc == 0; i++) {
        snprintf(id, sizeof id, "%" PRId64, v[i].proxy_id);
        l[1].value = v[i].provider;
        o->rc = rd_prom_histogram(o->b, "rubberduck_request_duration_seconds", l, 2, bounds, v[i].buckets, NBOUNDS,
                                  (double)v[i].sum_us / 1e6);
    }
    family(o, "rubberduck_upstream_errors_total", RD_PROM_COUNTER,
           "Requests the upstream failed: a source error (connect, TLS, transfer, upstream timeout) or a 5xx answer.");
    for (size_t i = 0; i < n; i++) {
        snprintf(id, sizeof id, "%" PRId64, v[i].proxy_id);
        l[1].value = v[i].provider;
        sample_u64(o, "rubberduck_upstream_errors_total", l, 2, v[i].upstream_errors);
    }
    /* By proxy and type: a proxy's rows of several providers are summed
     * (rows are sorted by proxy, so they are adjacent). */
    struct rd_prom_label fl[2] = {{"proxy_id", id}, {"type", NULL}};
    family(o, "rubberduck_simulated_failures_total", RD_PROM_COUNTER,
           "Outcomes the failure simulation produced, by type (a request may count under several).");
    for (size_t i = 0; i < n;) {
        uint64_t sum[NFAIL] = {0};
        size_t j = i;
        for (; j < n && v[j].proxy_id == v[i].proxy_id; j++)
            for (size_t f = 0; f < NFAIL; f++)
                sum[f] += v[j].failures[f];
        snprintf(id, sizeof id, "%" PRId64, v[i].proxy_id);
        for (unsigned f = 1; f < NFAIL; f++) {
            if (sum[f] == 0)
                continue;
            fl[1].value = rd_failure_name((enum rd_failure)f);
            sample_u64(o, "rubberduck_simulated_failures_total", fl, 2, sum[f]);
        }
        i = j;
    }
}

static void render_models(struct out *o, const struct model *v, size_t n)
{
    char id[24];
    struct rd_prom_label l[4] = {{"proxy_id", id}, {"provider", NULL}, {"model", NULL}, {"type", NULL}};
    static const char *const types[4] = {"input", "output", "cached", "reasoning"};
    family(o, "rubberduck_tokens_total", RD_PROM_COUNTER,
           "Tokens the upstream reported, by model and type (cached is part of input); cache hits not included.");
    for (size_t i = 0; i < n; i++) {
        snprintf(id, sizeof id, "%" PRId64, v[i].proxy_id);
        l[1].value = v[i].provider;
        l[2].value = v[i].name;
        const uint64_t vals[4] = {v[i].input, v[i].output, v[i].cached, v[i].reasoning};
        for (size_t t = 0; t < 4; t++) {
            l[3].value = types[t];
            sample_u64(o, "rubberduck_tokens_total", l, 4, vals[t]);
        }
    }
    family(o, "rubberduck_cost_usd_total", RD_PROM_COUNTER,
           "Cost in USD of the priced requests sent upstream, from the price table; cache hits not included.");
    for (size_t i = 0; i < n; i++) {
        snprintf(id, sizeof id, "%" PRId64, v[i].proxy_id);
        l[1].value = v[i].provider;
        l[2].value = v[i].name;
        sample_f(o, "rubberduck_cost_usd_total", l, 3, v[i].cost_usd);
    }
    family(o, "rubberduck_cache_saved_usd_total", RD_PROM_COUNTER,
           "What the requests answered from the cache cost when their answer was fetched.");
    for (size_t i = 0; i < n; i++) {
        snprintf(id, sizeof id, "%" PRId64, v[i].proxy_id);
        l[1].value = v[i].provider;
        l[2].value = v[i].name;
        sample_f(o, "rubberduck_cache_saved_usd_total", l, 3, v[i].saved_usd);
    }
}

static void render_extra(struct out *o, const struct rd_metrics_extra *e)
{
    gauge1(o, "rubberduck_active_proxies", "Proxies running.", e->active_proxies);
    gauge1(o, "rubberduck_open_connections", "Client connections open on the proxies' listeners.",
           e->open_connections);
    counter1(o, "rubberduck_cache_hits_total", "Cache lookups answered from the cache (all proxies).",
             e->cache_hits);
    counter1(o, "rubberduck_cache_misses_total", "Cache lookups not answered from the cache (all proxies).",
             e->cache_misses);
    counter1(o, "rubberduck_cache_evictions_total", "Cache entries evicted to stay within the memory limits.",
             e->cache_evictions);
    gauge1(o, "rubberduck_cache_bytes", "Bytes held by the response caches.", e->cache_bytes);
    gauge1(o, "rubberduck_cache_entries", "Entries in the response caches.", e->cache_entries);
    counter1(o, "rubberduck_log_records_dropped_total", "Request log records dropped because the buffer was full.",
             e->log_dropped);
    counter1(o, "rubberduck_log_records_written_total", "Request log records written to the store.",
             e->log_written);
    gauge1(o, "rubberduck_log_records_pending", "Request log records queued, not yet written.", e->log_pending);
    if (!e->has_tracer)
        return;
    counter1(o, "rubberduck_trace_spans_exported_total", "Spans the OTLP collector accepted.", e->spans_exported);
    counter1(o, "rubberduck_trace_spans_dropped_total", "Spans dropped because the export queue was full.",
             e->spans_dropped);
    counter1(o, "rubberduck_trace_spans_failed_total", "Spans lost with a batch the collector did not accept.",
             e->spans_failed);
}

int rd_metrics_render(struct rd_metrics *m, const struct rd_metrics_extra *extra, struct rd_buf *out)
{
    struct out o = {out, 0};
    struct rd_prom_label bl[1] = {{"version", RD_VERSION}};
    family(&o, "rubberduck_build_info", RD_PROM_GAUGE, "Always 1; the version is a label.");
    sample_u64(&o, "rubberduck_build_info", bl, 1, 1);
    if (m) {
        family(&o, "rubberduck_start_time_seconds", RD_PROM_GAUGE, "Start of the process, Unix time in seconds.");
        sample_f(&o, "rubberduck_start_time_seconds", NULL, 0, (double)m->start_ms / 1000.0);
    }
    gauge1(&o, "rubberduck_requests_in_flight", "Requests received and not finished yet.", rd_metrics_in_flight(m));
    static const struct rd_metrics_extra none;
    render_extra(&o, extra ? extra : &none);
    struct totals t = {0};
    for (unsigned i = 0; m && i < m->nslots; i++)
        merge_slot(&t, &m->slots[i]);
    if (t.nroutes)
        qsort(t.routes, t.nroutes, sizeof *t.routes, by_route);
    if (t.nmodels)
        qsort(t.models, t.nmodels, sizeof *t.models, by_model);
    render_routes(&o, t.routes, t.nroutes);
    render_models(&o, t.models, t.nmodels);
    routes_free(t.routes, t.nroutes);
    free(t.models);
    return o.rc;
}
