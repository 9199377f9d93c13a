/* See rollup.h. */
#include "obs/rollup.h"

#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "proxy/req.h"
#include "util/err.h"
#include "util/log.h"
#include "util/mem.h"
#include "util/time.h"

#define OTHER "(other)"
#define MINUTE_MS (RD_ROLLUP_MINUTE * 1000LL)
#define TICK_MS_DEFAULT 5000
#define PURGE_EVERY_MS (10LL * 60 * 1000)
/* Minute buckets kept for a retry when the database refuses a flush; past
 * this they are dropped (and said so): memory stays bounded. */
#define MAX_TRANSIT 65536
/* Totals of earlier runs kept per proxy apart; past it "(other)". */
#define MAX_BASE_PER_PROXY RD_ROLLUP_MAX_KEYS

/* Aligned so two workers' slots never share a cache line. */
struct slot {
    _Alignas(64) pthread_mutex_t mu;
    struct rd_rollup_agg *v; /* owned; every minute not taken yet */
    size_t n, cap;
    size_t last; /* the bucket the previous request went to: most go there again */
};

struct vec {
    struct rd_rollup_agg *v;
    size_t n, cap;
};

struct base_fail {
    int64_t proxy_id;
    int type; /* enum rd_failure */
    uint64_t count;
    int64_t since_ms;
};

struct rd_rollup {
    unsigned nslots;
    struct slot *slots; /* owned array of nslots */
    /* Held by the flusher from taking minutes out of the slots until they
     * are committed (or kept in transit), and by a reader across the store
     * rows and the pending buckets: a bucket is always in exactly one of
     * the places the reader looks. */
    pthread_mutex_t flush_mu;
    struct vec transit;             /* taken out, not written yet (flush_mu) */
    uint8_t blob[RD_HIST_BLOB_MAX]; /* the merge callback's output (flush_mu) */
    /* Totals of earlier runs, read once before the first flush, then
     * read-only. */
    struct vec base;
    struct base_fail *bfail;
    size_t nbfail, capbfail;
    /* The thread (rd_rollup_start); none for rd_rollup_new. */
    struct rd_store *store; /* owned, the thread's own connection */
    pthread_t thread;
    bool thread_started;
    pthread_mutex_t mu; /* stopping and wake */
    pthread_cond_t wake;
    bool stopping;
    uint64_t tick_ms;
};

static void copy_str(char *dst, size_t cap, const char *src)
{
    size_t len = src ? strlen(src) : 0;
    if (len >= cap)
        len = cap - 1;
    if (len)
        memcpy(dst, src, len);
    dst[len] = '\0';
}

static int64_t floor_to(int64_t ms, int64_t step)
{
    if (ms < 0)
        return 0;
    return ms - ms % step;
}

struct rd_rollup *rd_rollup_new(unsigned nslots)
{
    struct rd_rollup *r = rd_calloc(1, sizeof *r);
    r->nslots = nslots ? nslots : 1;
    size_t bytes = r->nslots * sizeof *r->slots; /* a multiple of 64, as aligned_alloc wants */
    r->slots = aligned_alloc(_Alignof(struct slot), bytes);
    if (r->slots == NULL)
        abort();
    memset(r->slots, 0, bytes);
    for (unsigned i = 0; i < r->nslots; i++)
        pthread_mutex_init(&r->slots[i].mu, NULL);
    pthread_mutex_init(&r->flush_mu, NULL);
    r->tick_ms = TICK_MS_DEFAULT;
    return r;
}

void rd_rollup_free(struct rd_rollup *r)
{
    if (r == NULL)
        return;
    for (unsigned i = 0; i < r->nslots; i++) {
        pthread_mutex_destroy(&r->slots[i].mu);
        free(r->slots[i].v);
    }
    free(r->slots);
    pthread_mutex_destroy(&r->flush_mu);
    free(r->transit.v);
    free(r->base.v);
    free(r->bfail);
    free(r);
}

/* ---- counting (the workers) ---- */

static bool same_key(const struct rd_rollup_agg *a, int64_t start, int64_t proxy_id, const char *provider,
                     const char *model)
{
    return a->start_ms == start && a->proxy_id == proxy_id && strcmp(a->provider, provider) == 0 &&
           strncmp(a->model, model, sizeof a->model - 1) == 0;
}

static struct rd_rollup_agg *vec_find(struct rd_rollup_agg *v, size_t n, int64_t start, int64_t proxy_id,
                                      const char *provider, const char *model)
{
    for (size_t i = 0; i < n; i++)
        if (same_key(&v[i], start, proxy_id, provider, model))
            return &v[i];
    return NULL;
}

static struct rd_rollup_agg *vec_append(struct rd_rollup_agg **v, size_t *n, size_t *cap, int32_t res_s, int64_t start,
                                        int64_t proxy_id, const char *provider, const char *model)
{
    if (*n == *cap) {
        *cap = *cap ? 2 * *cap : 8;
        *v = rd_realloc(*v, *cap * sizeof **v);
    }
    struct rd_rollup_agg *a = &(*v)[(*n)++];
    memset(a, 0, sizeof *a);
    a->res_s = res_s;
    a->start_ms = start;
    a->proxy_id = proxy_id;
    copy_str(a->provider, sizeof a->provider, provider);
    copy_str(a->model, sizeof a->model, model);
    return a;
}

static struct rd_rollup_agg *slot_bucket(struct slot *s, int64_t start, int64_t proxy_id, const char *provider,
                                         const char *model)
{
    if (s->last < s->n && same_key(&s->v[s->last], start, proxy_id, provider, model))
        return &s->v[s->last];
    struct rd_rollup_agg *a = vec_find(s->v, s->n, start, proxy_id, provider, model);
    if (a == NULL && s->n >= RD_ROLLUP_MAX_KEYS) {
        model = OTHER;
        a = vec_find(s->v, s->n, start, proxy_id, provider, model);
    }
    if (a == NULL)
        a = vec_append(&s->v, &s->n, &s->cap, RD_ROLLUP_MINUTE, start, proxy_id, provider, model);
    s->last = (size_t)(a - s->v);
    return a;
}

static int64_t part(int64_t v)
{
    return v > 0 ? v : 0;
}

void rd_rollup_add(struct rd_rollup *r, unsigned slot, const struct rd_rollup_sample *smp)
{
    struct slot *s = &r->slots[slot % r->nslots];
    pthread_mutex_lock(&s->mu);
    struct rd_rollup_agg *a = slot_bucket(s, floor_to(smp->wall_ms, MINUTE_MS), smp->proxy_id,
                                          smp->provider ? smp->provider : "", smp->model ? smp->model : "");
    a->requests++;
    switch (smp->cache) {
    case RD_CACHE_HIT: a->cache_hits++; break;
    case RD_CACHE_MISS: a->cache_misses++; break;
    case RD_CACHE_BYPASS: a->cache_bypass++; break;
    default: break;
    }
    if (smp->status >= 400) {
        if (smp->simulated)
            a->errors_simulated++;
        else
            a->errors_upstream++;
    }
    for (uint32_t bits = smp->failures_seen & ~1u; bits; bits &= bits - 1)
        a->failures[__builtin_ctz(bits)]++;
    rd_hist_add(&a->latency, smp->latency_us);
    if (smp->billed) {
        a->input_tokens += part(smp->usage.input);
        a->output_tokens += part(smp->usage.output);
        a->cached_tokens += part(smp->usage.cached);
        a->cache_write_tokens += part(smp->usage.cache_write);
        a->reasoning_tokens += part(smp->usage.reasoning);
        if (smp->has_cost) {
            a->cost_usd += smp->cost_usd;
            a->priced++;
        } else if (smp->usage.input >= 0 || smp->usage.output >= 0) {
            a->unpriced++; /* tokens, but no price: never counted as free */
        }
    }
    pthread_mutex_unlock(&s->mu);
}

void rd_rollup_done(struct rd_rollup *r, unsigned slot, struct rd_req *req)
{
    if (r == NULL)
        return;
    const struct rd_provider *p = req->provider ? req->provider : req->snap->provider;
    struct rd_rollup_sample s = {
        .wall_ms = req->wall_ms,
        .proxy_id = req->snap->id,
        .provider = p ? p->name : "",
        .model = req->model,
        .cache = (int)req->cache,
        .status = req->status_sent,
        .simulated = req->failure != RD_FAIL_NONE,
        .failures_seen = req->failures_seen,
        .latency_us = req->t_done > req->t_received ? req->t_done - req->t_received : 0,
        /* A cache hit cost nothing upstream: the totals are what was
         * billed, as the proxy's usage counts it (req.c req_release). */
        .billed = req->cache != RD_CACHE_HIT,
        .usage = {-1, -1, -1, -1, -1},
    };
    if (s.billed) {
        s.usage = *rd_req_usage(req);
        s.has_cost = rd_req_cost(req, &s.cost_usd);
    }
    rd_rollup_add(r, slot, &s);
}

/* ---- flushing (the roll-up thread) ---- */

void rd_rollup_agg_merge(struct rd_rollup_agg *d, const struct rd_rollup_agg *a)
{
    d->requests += a->requests;
    d->cache_hits += a->cache_hits;
    d->cache_misses += a->cache_misses;
    d->cache_bypass += a->cache_bypass;
    d->errors_simulated += a->errors_simulated;
    d->errors_upstream += a->errors_upstream;
    d->input_tokens += a->input_tokens;
    d->output_tokens += a->output_tokens;
    d->cached_tokens += a->cached_tokens;
    d->cache_write_tokens += a->cache_write_tokens;
    d->reasoning_tokens += a->reasoning_tokens;
    d->cost_usd += a->cost_usd;
    d->priced += a->priced;
    d->unpriced += a->unpriced;
    for (int t = 0; t < RD_ROLLUP_FAIL_TYPES; t++)
        d->failures[t] += a->failures[t];
    rd_hist_merge(&d->latency, &a->latency);
}

static void transit_add(struct vec *t, const struct rd_rollup_agg *a)
{
    struct rd_rollup_agg *d = vec_find(t->v, t->n, a->start_ms, a->proxy_id, a->provider, a->model);
    if (d == NULL) {
        if (t->n == t->cap) {
            t->cap = t->cap ? 2 * t->cap : 16;
            t->v = rd_realloc(t->v, t->cap * sizeof *t->v);
        }
        t->v[t->n++] = *a;
        return;
    }
    rd_rollup_agg_merge(d, a);
}

/* Moves the slot's buckets older than before_ms (every one with all) into
 * the transit list. Slot mutex held. */
static void take_closed(struct slot *s, struct vec *t, int64_t before_ms, bool all)
{
    size_t keep = 0;
    for (size_t i = 0; i < s->n; i++) {
        if (all || s->v[i].start_ms < before_ms)
            transit_add(t, &s->v[i]);
        else
            s->v[keep++] = s->v[i];
    }
    s->n = keep;
    s->last = 0;
}

static size_t merge_blobs(void *ud, const void *old, size_t old_len, const void *add, size_t add_len, const void **out)
{
    struct rd_rollup *r = ud;
    struct rd_hist h, a;
    if (rd_hist_decode(&a, add, add_len) < 0)
        return 0;
    if (rd_hist_decode(&h, old, old_len) < 0) {
        rd_warn("roll-ups: a stored latency histogram is damaged; it restarts from this minute");
        return 0;
    }
    rd_hist_merge(&h, &a);
    *out = r->blob;
    return rd_hist_encode(&h, r->blob, sizeof r->blob);
}

static const int32_t resolutions[] = {RD_ROLLUP_MINUTE, RD_ROLLUP_QUARTER, RD_ROLLUP_HOUR};
#define NRES (sizeof resolutions / sizeof resolutions[0])

static struct rd_rollup_rec to_rec(const struct rd_rollup_agg *a, int32_t res_s)
{
    return (struct rd_rollup_rec){
        .res_s = res_s,
        .start_ms = floor_to(a->start_ms, res_s * 1000LL),
        .proxy_id = a->proxy_id,
        .provider = a->provider,
        .model = a->model,
        .requests = (int64_t)a->requests,
        .cache_hits = (int64_t)a->cache_hits,
        .cache_misses = (int64_t)a->cache_misses,
        .cache_bypass = (int64_t)a->cache_bypass,
        .errors_simulated = (int64_t)a->errors_simulated,
        .errors_upstream = (int64_t)a->errors_upstream,
        .input_tokens = a->input_tokens,
        .output_tokens = a->output_tokens,
        .cached_tokens = a->cached_tokens,
        .cache_write_tokens = a->cache_write_tokens,
        .reasoning_tokens = a->reasoning_tokens,
        .cost_usd = a->cost_usd,
        .priced = (int64_t)a->priced,
        .unpriced = (int64_t)a->unpriced,
    };
}

/* Writes the transit list: each bucket into its row of every resolution,
 * its failures likewise. flush_mu held. */
static int write_transit(struct rd_rollup *r, struct rd_store *store)
{
    const struct vec *t = &r->transit;
    size_t nf = 0;
    for (size_t i = 0; i < t->n; i++)
        for (int k = 1; k < RD_ROLLUP_FAIL_TYPES; k++)
            nf += t->v[i].failures[k] > 0;
    struct rd_rollup_rec *recs = rd_malloc(t->n * NRES * sizeof *recs);
    struct rd_rollup_fail_rec *fails = nf ? rd_malloc(nf * NRES * sizeof *fails) : NULL;
    /* One blob per bucket, shared by its three rows. */
    uint8_t *blobs = rd_malloc(t->n * RD_HIST_BLOB_MAX);
    size_t n = 0, f = 0;
    for (size_t i = 0; i < t->n; i++) {
        const struct rd_rollup_agg *a = &t->v[i];
        uint8_t *blob = blobs + i * RD_HIST_BLOB_MAX;
        size_t len = a->latency.n ? rd_hist_encode(&a->latency, blob, RD_HIST_BLOB_MAX) : 0;
        for (size_t k = 0; k < NRES; k++) {
            recs[n] = to_rec(a, resolutions[k]);
            recs[n].latency = len ? blob : NULL;
            recs[n].latency_len = len;
            n++;
            for (int type = 1; type < RD_ROLLUP_FAIL_TYPES; type++)
                if (a->failures[type] > 0)
                    fails[f++] = (struct rd_rollup_fail_rec){
                        .res_s = resolutions[k],
                        .start_ms = recs[n - 1].start_ms,
                        .proxy_id = a->proxy_id,
                        .type = rd_failure_name((enum rd_failure)type),
                        .count = (int64_t)a->failures[type],
                    };
        }
    }
    int rc = rd_store_rollup_add(store, recs, n, fails, f, merge_blobs, r);
    free(blobs);
    free(fails);
    free(recs);
    return rc;
}

int rd_rollup_flush(struct rd_rollup *r, struct rd_store *store, int64_t now_ms, bool all)
{
    int64_t before = floor_to(now_ms, MINUTE_MS);
    pthread_mutex_lock(&r->flush_mu);
    for (unsigned i = 0; i < r->nslots; i++) {
        struct slot *s = &r->slots[i];
        pthread_mutex_lock(&s->mu);
        take_closed(s, &r->transit, before, all);
        pthread_mutex_unlock(&s->mu);
    }
    int ret = 0;
    if (r->transit.n > 0) {
        size_t n = r->transit.n;
        ret = write_transit(r, store);
        if (ret >= 0) {
            r->transit.n = 0;
            ret = (int)n;
        } else if (r->transit.n > MAX_TRANSIT) {
            rd_warn("roll-ups: the database refuses them; %zu minute buckets dropped", r->transit.n);
            r->transit.n = 0;
        }
    }
    pthread_mutex_unlock(&r->flush_mu);
    return ret;
}

int64_t rd_rollup_purge(struct rd_store *store, int64_t now_ms)
{
    int64_t a = rd_store_rollup_purge(store, RD_ROLLUP_MINUTE, now_ms - RD_ROLLUP_KEEP_MINUTES_MS);
    if (a < 0)
        return a;
    int64_t b = rd_store_rollup_purge(store, RD_ROLLUP_QUARTER, now_ms - RD_ROLLUP_KEEP_QUARTERS_MS);
    return b < 0 ? b : a + b;
}

/* ---- reading ---- */

struct read_ctx {
    rd_rollup_agg_fn fn;
    void *ud;
    struct rd_rollup_agg a;
};

static void agg_from_rec(struct rd_rollup_agg *a, const struct rd_rollup_rec *rec)
{
    memset(a, 0, offsetof(struct rd_rollup_agg, latency));
    a->res_s = rec->res_s;
    a->start_ms = rec->start_ms;
    a->proxy_id = rec->proxy_id;
    copy_str(a->provider, sizeof a->provider, rec->provider);
    copy_str(a->model, sizeof a->model, rec->model);
    a->requests = (uint64_t)part(rec->requests);
    a->cache_hits = (uint64_t)part(rec->cache_hits);
    a->cache_misses = (uint64_t)part(rec->cache_misses);
    a->cache_bypass = (uint64_t)part(rec->cache_bypass);
    a->errors_simulated = (uint64_t)part(rec->errors_simulated);
    a->errors_upstream = (uint64_t)part(rec->errors_upstream);
    a->input_tokens = part(rec->input_tokens);
    a->output_tokens = part(rec->output_tokens);
    a->cached_tokens = part(rec->cached_tokens);
    a->cache_write_tokens = part(rec->cache_write_tokens);
    a->reasoning_tokens = part(rec->reasoning_tokens);
    a->cost_usd = rec->cost_usd;
    a->priced = (uint64_t)part(rec->priced);
    a->unpriced = (uint64_t)part(rec->unpriced);
    if (rec->latency_len == 0 || rd_hist_decode(&a->latency, rec->latency, rec->latency_len) < 0)
        rd_hist_init(&a->latency); /* damaged: no latency for this row, its counts still hold */
}

static int read_row(void *ud, const struct rd_rollup_rec *rec)
{
    struct read_ctx *c = ud;
    agg_from_rec(&c->a, rec);
    c->fn(c->ud, &c->a);
    return 0;
}

static bool pending_matches(const struct rd_rollup_agg *a, const struct rd_rollup_filter *f)
{
    /* A minute belongs to the bucket its start falls in. */
    int64_t start = floor_to(a->start_ms, f->res_s * 1000LL);
    return start >= f->since_ms && (f->until_ms <= 0 || start < f->until_ms) &&
           (f->proxy_id == 0 || a->proxy_id == f->proxy_id);
}

static void give_pending(struct rd_rollup_agg *v, size_t n, const struct rd_rollup_filter *f, struct read_ctx *c)
{
    for (size_t i = 0; i < n; i++) {
        if (!pending_matches(&v[i], f))
            continue;
        c->a = v[i];
        memset(c->a.failures, 0, sizeof c->a.failures); /* as the rows: failures are not read here */
        c->fn(c->ud, &c->a);
    }
}

int rd_rollup_read(struct rd_rollup *r, struct rd_store *store, const struct rd_rollup_filter *f, rd_rollup_agg_fn fn,
                   void *ud)
{
    if (r == NULL || f == NULL || fn == NULL || f->res_s <= 0)
        return RD_EINVAL;
    struct read_ctx *c = rd_malloc(sizeof *c);
    c->fn = fn;
    c->ud = ud;
    pthread_mutex_lock(&r->flush_mu);
    int rc = rd_store_rollup_query(store, f, read_row, c);
    if (rc >= 0) {
        give_pending(r->transit.v, r->transit.n, f, c);
        for (unsigned i = 0; i < r->nslots; i++) {
            struct slot *s = &r->slots[i];
            pthread_mutex_lock(&s->mu);
            give_pending(s->v, s->n, f, c);
            pthread_mutex_unlock(&s->mu);
        }
    }
    pthread_mutex_unlock(&r->flush_mu);
    free(c);
    return rc < 0 ? RD_ESTORE : 0;
}

/* ---- totals of earlier runs ---- */

struct base_ctx {
    struct rd_rollup *r;
    int64_t proxy_id; /* the proxy whose rows come (ordered by proxy) */
    size_t count;     /* its entries so far */
    struct rd_rollup_agg a;
};

static int base_row(void *ud, const struct rd_rollup_rec *rec)
{
    struct base_ctx *c = ud;
    struct vec *b = &c->r->base;
    if (rec->proxy_id != c->proxy_id) {
        c->proxy_id = rec->proxy_id;
        c->count = 0;
    }
    agg_from_rec(&c->a, rec);
    rd_hist_init(&c->a.latency);
    bool fold = c->count >= MAX_BASE_PER_PROXY;
    if (fold)
        copy_str(c->a.model, sizeof c->a.model, OTHER);
    else
        c->count++;
    struct rd_rollup_agg *d = vec_find(b->v, b->n, c->a.start_ms, c->a.proxy_id, c->a.provider, c->a.model);
    if (fold && d == NULL) {
        /* "(other)" of this proxy and provider, whatever its first hour */
        for (size_t i = b->n; i-- > 0 && b->v[i].proxy_id == c->a.proxy_id;)
            if (strcmp(b->v[i].model, OTHER) == 0 && strcmp(b->v[i].provider, c->a.provider) == 0) {
                d = &b->v[i];
                break;
            }
    }
    if (d) {
        if (c->a.start_ms < d->start_ms)
            d->start_ms = c->a.start_ms;
        rd_rollup_agg_merge(d, &c->a);
        return 0;
    }
    transit_add(b, &c->a);
    return 0;
}

static int fail_type_of(const char *name)
{
    for (int t = 1; t < RD_ROLLUP_FAIL_TYPES; t++) {
        const char *n = rd_failure_name((enum rd_failure)t);
        if (n[0] == '\0')
            break;
        if (strcmp(n, name) == 0)
            return t;
    }
    return 0;
}

static int base_fail_row(void *ud, const struct rd_rollup_fail_rec *rec)
{
    struct rd_rollup *r = ud;
    int type = fail_type_of(rec->type);
    if (type == 0 || rec->count <= 0)
        return 0; /* a type this build does not know */
    if (r->nbfail == r->capbfail) {
        r->capbfail = r->capbfail ? 2 * r->capbfail : 16;
        r->bfail = rd_realloc(r->bfail, r->capbfail * sizeof *r->bfail);
    }
    r->bfail[r->nbfail++] = (struct base_fail){
        .proxy_id = rec->proxy_id, .type = type, .count = (uint64_t)rec->count, .since_ms = rec->start_ms};
    return 0;
}

int rd_rollup_load_base(struct rd_rollup *r, struct rd_store *store)
{
    struct base_ctx *c = rd_calloc(1, sizeof *c);
    c->r = r;
    c->proxy_id = -1;
    r->base.n = 0;
    r->nbfail = 0;
    int rc = rd_store_rollup_sums(store, RD_ROLLUP_HOUR, base_row, c);
    free(c);
    if (rc >= 0)
        rc = rd_store_rollup_fail_sums(store, RD_ROLLUP_HOUR, base_fail_row, r);
    if (rc < 0) {
        r->base.n = 0;
        r->nbfail = 0;
        return RD_ESTORE;
    }
    return 0;
}

void rd_rollup_usage_base(const struct rd_rollup *r, int64_t proxy_id, rd_rollup_agg_fn fn, void *ud)
{
    if (r == NULL)
        return;
    for (size_t i = 0; i < r->base.n; i++)
        if (r->base.v[i].proxy_id == proxy_id)
            fn(ud, &r->base.v[i]);
}

void rd_rollup_failures_base(const struct rd_rollup *r, int64_t proxy_id, uint64_t counts[RD_ROLLUP_FAIL_TYPES],
                             int64_t *since_ms)
{
    if (r == NULL)
        return;
    for (size_t i = 0; i < r->nbfail; i++) {
        const struct base_fail *b = &r->bfail[i];
        if (b->proxy_id != proxy_id)
            continue;
        counts[b->type] += b->count;
        if (b->since_ms < *since_ms)
            *since_ms = b->since_ms;
    }
}

/* ---- the thread ---- */

/* mono_ms as the absolute time the wake condvar's timed wait takes (it runs
 * on CLOCK_MONOTONIC, see start_sync). */
static struct timespec mono_ts(uint64_t mono_ms)
{
    return (struct timespec){.tv_sec = (time_t)(mono_ms / 1000), .tv_nsec = (long)(mono_ms % 1000) * 1000000L};
}

static void *flusher_main(void *arg)
{
    struct rd_rollup *r = arg;
    int64_t next_purge = 0; /* at once: what an earlier run left to purge */
    pthread_mutex_lock(&r->mu);
    while (!r->stopping) {
        struct timespec ts = mono_ts(rd_time_mono_ms() + r->tick_ms);
        while (!r->stopping && pthread_cond_timedwait(&r->wake, &r->mu, &ts) != ETIMEDOUT)
            ;
        pthread_mutex_unlock(&r->mu);
        int64_t now = rd_time_wall_ms();
        if (rd_rollup_flush(r, r->store, now, false) < 0)
            rd_warn("roll-ups: the flush failed; it is retried");
        if (now >= next_purge) {
            int64_t n = rd_rollup_purge(r->store, now);
            if (n > 0)
                rd_debug("roll-ups: %lld old rows purged", (long long)n);
            next_purge = now + PURGE_EVERY_MS;
        }
        pthread_mutex_lock(&r->mu);
    }
    pthread_mutex_unlock(&r->mu);
    return NULL;
}

static int start_sync(struct rd_rollup *r)
{
    pthread_condattr_t ca;
    if (pthread_condattr_init(&ca) != 0)
        return -ENOMEM;
    int rc = pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
    if (rc == 0)
        rc = pthread_cond_init(&r->wake, &ca);
    pthread_condattr_destroy(&ca);
    if (rc != 0)
        return -rc;
    if ((rc = pthread_mutex_init(&r->mu, NULL)) != 0) {
        pthread_cond_destroy(&r->wake);
        return -rc;
    }
    return 0;
}

static uint64_t tick_from_env(void)
{
    const char *v = getenv("RUBBERDUCK_ROLLUP_FLUSH_MS");
    if (v == NULL || v[0] == '\0')
        return TICK_MS_DEFAULT;
    char *end;
    errno = 0;
    unsigned long long ms = strtoull(v, &end, 10);
    if (errno || *end || v[0] == '-' || ms < 50 || ms > 60000) {
        rd_warn("RUBBERDUCK_ROLLUP_FLUSH_MS=%s is not 50..60000; using %d", v, TICK_MS_DEFAULT);
        return TICK_MS_DEFAULT;
    }
    return (uint64_t)ms;
}

int rd_rollup_start(const char *store_url, unsigned nslots, struct rd_rollup **out, char *errbuf, size_t errlen)
{
    *out = NULL;
    struct rd_rollup *r = rd_rollup_new(nslots);
    r->tick_ms = tick_from_env();
    int rc = rd_store_open(store_url, &r->store, errbuf, errlen);
    if (rc < 0) {
        rd_rollup_free(r);
        return rc;
    }
    if ((rc = rd_rollup_load_base(r, r->store)) < 0) {
        rd_seterr(errbuf, errlen, "cannot read the roll-ups of earlier runs");
        goto fail;
    }
    if ((rc = start_sync(r)) < 0) {
        rd_seterr(errbuf, errlen, "roll-ups: %s", rd_strerror(rc));
        goto fail;
    }
    if ((rc = pthread_create(&r->thread, NULL, flusher_main, r)) != 0) {
        rd_seterr(errbuf, errlen, "roll-ups: cannot start the thread: %s", rd_strerror(-rc));
        pthread_mutex_destroy(&r->mu);
        pthread_cond_destroy(&r->wake);
        rc = -rc;
        goto fail;
    }
    (void)pthread_setname_np(r->thread, "rd-rollup");
    r->thread_started = true;
    *out = r;
    return 0;
fail:
    rd_store_close(r->store);
    rd_rollup_free(r);
    return rc;
}

void rd_rollup_stop(struct rd_rollup *r)
{
    if (r == NULL)
        return;
    if (r->thread_started) {
        pthread_mutex_lock(&r->mu);
        r->stopping = true;
        pthread_cond_signal(&r->wake);
        pthread_mutex_unlock(&r->mu);
        int rc = pthread_join(r->thread, NULL);
        if (rc != 0)
            rd_error("roll-ups: joining the thread failed: %s", rd_strerror(-rc));
        pthread_mutex_destroy(&r->mu);
        pthread_cond_destroy(&r->wake);
    }
    /* The workers are joined: every request is in a slot; the open minute
     * goes too, so a restart finds everything. */
    if (r->store && rd_rollup_flush(r, r->store, rd_time_wall_ms(), true) < 0)
        rd_warn("roll-ups: the last flush failed; %zu minute buckets are lost", r->transit.n);
    rd_store_close(r->store);
    rd_rollup_free(r);
}
