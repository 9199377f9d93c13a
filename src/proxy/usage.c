/* See usage.h. */
#include "proxy/usage.h"

#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "providers/pricing.h"
#include "util/mem.h"
#include "util/time.h"

#define OTHER "(other)"

struct bucket {
    const struct rd_provider *provider;
    char model[128];
    const struct rd_price *price; /* NULL: no price for this model */
    uint64_t requests;
    uint64_t unpriced; /* requests that reported tokens but have no price */
    uint64_t priced;   /* requests whose cost is in cost_usd */
    int64_t input, output, cached, cache_write, reasoning;
    double cost_usd;
};

/* Aligned so two workers' slots never share a cache line. */
struct slot {
    _Alignas(64) pthread_mutex_t mu;
    struct bucket *v; /* owned */
    size_t n, cap;
};

struct rd_proxy_usage {
    atomic_int refs;
    int64_t since_ms;
    unsigned nslots;
    struct slot *slots; /* owned array of nslots */
};

struct rd_proxy_usage *rd_proxy_usage_new(unsigned nslots, int64_t since_ms)
{
    struct rd_proxy_usage *u = rd_calloc(1, sizeof *u);
    atomic_init(&u->refs, 1);
    u->since_ms = since_ms;
    u->nslots = nslots ? nslots : 1;
    /* calloc only guarantees max_align_t: the slots need their 64. */
    size_t bytes = u->nslots * sizeof *u->slots; /* a multiple of 64, as aligned_alloc wants */
    u->slots = aligned_alloc(_Alignof(struct slot), bytes);
    if (u->slots == NULL)
        abort();
    memset(u->slots, 0, bytes);
    for (unsigned i = 0; i < u->nslots; i++)
        pthread_mutex_init(&u->slots[i].mu, NULL);
    return u;
}

struct rd_proxy_usage *rd_proxy_usage_ref(struct rd_proxy_usage *u)
{
    atomic_fetch_add_explicit(&u->refs, 1, memory_order_relaxed);
    return u;
}

void rd_proxy_usage_unref(struct rd_proxy_usage *u)
{
    if (u == NULL || atomic_fetch_sub_explicit(&u->refs, 1, memory_order_acq_rel) != 1)
        return;
    for (unsigned i = 0; i < u->nslots; i++) {
        pthread_mutex_destroy(&u->slots[i].mu);
        free(u->slots[i].v);
    }
    free(u->slots);
    free(u);
}

static struct bucket *find(struct bucket *v, size_t n, const struct rd_provider *p, const char *model)
{
    for (size_t i = 0; i < n; i++)
        if (v[i].provider == p && strcmp(v[i].model, model) == 0)
            return &v[i];
    return NULL;
}

static struct bucket *append(struct bucket **v, size_t *n, size_t *cap, const struct rd_provider *p,
                             const char *model)
{
    if (*n == *cap) {
        *cap = *cap ? 2 * *cap : 4;
        *v = rd_realloc(*v, *cap * sizeof **v);
    }
    struct bucket *b = &(*v)[(*n)++];
    memset(b, 0, sizeof *b);
    b->provider = p;
    size_t len = strlen(model);
    if (len >= sizeof b->model)
        len = sizeof b->model - 1;
    memcpy(b->model, model, len);
    b->model[len] = '\0';
    return b;
}

/* The slot's bucket for p + model, made (with its price looked up) on
 * first use; past RD_USAGE_MAX_MODELS, the "(other)" bucket. */
static struct bucket *bucket_for(struct slot *s, const struct rd_provider *p, const char *model)
{
    struct bucket *b = find(s->v, s->n, p, model);
    if (b)
        return b;
    if (s->n >= RD_USAGE_MAX_MODELS) {
        b = find(s->v, s->n, p, OTHER);
        return b ? b : append(&s->v, &s->n, &s->cap, p, OTHER);
    }
    b = append(&s->v, &s->n, &s->cap, p, model);
    b->price = model[0] ? rd_pricing_lookup(p->name, model) : NULL;
    return b;
}

static int64_t part(int64_t v)
{
    return v > 0 ? v : 0;
}

void rd_proxy_usage_add(struct rd_proxy_usage *u, unsigned slot, const struct rd_provider *p, const char *model,
                        const struct rd_usage *us)
{
    struct slot *s = &u->slots[slot % u->nslots];
    pthread_mutex_lock(&s->mu);
    struct bucket *b = bucket_for(s, p, model ? model : "");
    b->requests++;
    b->input += part(us->input);
    b->output += part(us->output);
    b->cached += part(us->cached);
    b->cache_write += part(us->cache_write);
    b->reasoning += part(us->reasoning);
    double usd;
    if (rd_pricing_cost(b->price, us, &usd)) {
        b->cost_usd += usd;
        b->priced++;
    } else if (us->input >= 0 || us->output >= 0) {
        b->unpriced++; /* tokens, but no price: never counted as free */
    }
    pthread_mutex_unlock(&s->mu);
}

static void merge(struct bucket *dst, const struct bucket *src)
{
    dst->requests += src->requests;
    dst->unpriced += src->unpriced;
    dst->priced += src->priced;
    dst->input += src->input;
    dst->output += src->output;
    dst->cached += src->cached;
    dst->cache_write += src->cache_write;
    dst->reasoning += src->reasoning;
    dst->cost_usd += src->cost_usd;
    if (dst->price == NULL)
        dst->price = src->price;
}

static int by_model(const void *a, const void *b)
{
    const struct bucket *x = a, *y = b;
    int c = strcmp(x->provider->name, y->provider->name);
    return c ? c : strcmp(x->model, y->model);
}

/* cost_usd: the sum of the known costs, or null when some request reported
 * tokens, none of them could be priced (an unknown model). */
static struct json_object *cost_json(const struct bucket *b)
{
    if (b->unpriced > 0 && b->priced == 0)
        return NULL;
    /* Ten significant digits: the figures behind it have three or four, and
     * json-c's default %.17g would show the binary rounding. */
    char text[32];
    snprintf(text, sizeof text, "%.10g", b->cost_usd);
    return json_object_new_double_s(b->cost_usd, text);
}

static void add_counts(struct json_object *o, const struct bucket *b)
{
    json_object_object_add(o, "requests", json_object_new_int64((int64_t)b->requests));
    json_object_object_add(o, "input_tokens", json_object_new_int64(b->input));
    json_object_object_add(o, "output_tokens", json_object_new_int64(b->output));
    json_object_object_add(o, "cached_tokens", json_object_new_int64(b->cached));
    json_object_object_add(o, "cache_write_tokens", json_object_new_int64(b->cache_write));
    json_object_object_add(o, "reasoning_tokens", json_object_new_int64(b->reasoning));
    json_object_object_add(o, "cost_usd", cost_json(b));
    json_object_object_add(o, "unpriced_requests", json_object_new_int64((int64_t)b->unpriced));
}

/* An extra as a bucket of p (its price looked up as a slot would). */
static void add_extra(struct bucket **all, size_t *n, size_t *cap, const struct rd_provider *p,
                      const struct rd_usage_extra *x)
{
    const char *model = x->model ? x->model : "";
    struct bucket *b = find(*all, *n, p, model);
    if (b == NULL) {
        b = append(all, n, cap, p, model);
        b->price = model[0] && strcmp(model, OTHER) != 0 ? rd_pricing_lookup(p->name, model) : NULL;
    }
    struct bucket t = {.provider = p,
                       .requests = x->requests,
                       .unpriced = x->unpriced,
                       .priced = x->priced,
                       .input = x->input,
                       .output = x->output,
                       .cached = x->cached,
                       .cache_write = x->cache_write,
                       .reasoning = x->reasoning,
                       .cost_usd = x->cost_usd};
    merge(b, &t);
}

struct json_object *rd_proxy_usage_json(struct rd_proxy_usage *u, int64_t proxy_id)
{
    return rd_proxy_usage_json_with(u, proxy_id, NULL, 0, u->since_ms);
}

struct json_object *rd_proxy_usage_json_with(struct rd_proxy_usage *u, int64_t proxy_id,
                                             const struct rd_usage_extra *extra, size_t nextra, int64_t since_ms)
{
    struct bucket *all = NULL;
    size_t n = 0, cap = 0;
    for (size_t i = 0; i < nextra; i++) {
        const struct rd_provider *p = extra[i].provider ? rd_provider_find(extra[i].provider) : NULL;
        if (p)
            add_extra(&all, &n, &cap, p, &extra[i]);
    }
    for (unsigned i = 0; i < u->nslots; i++) {
        struct slot *s = &u->slots[i];
        pthread_mutex_lock(&s->mu);
        for (size_t j = 0; j < s->n; j++) {
            struct bucket *b = find(all, n, s->v[j].provider, s->v[j].model);
            if (b == NULL)
                b = append(&all, &n, &cap, s->v[j].provider, s->v[j].model);
            merge(b, &s->v[j]);
        }
        pthread_mutex_unlock(&s->mu);
    }
    if (n > 1)
        qsort(all, n, sizeof *all, by_model);
    struct bucket total;
    memset(&total, 0, sizeof total);
    struct json_object *models = json_object_new_array();
    for (size_t i = 0; i < n; i++) {
        const struct bucket *b = &all[i];
        merge(&total, b);
        struct json_object *o = json_object_new_object();
        json_object_object_add(o, "provider", json_object_new_string(b->provider->name));
        json_object_object_add(o, "model", b->model[0] ? json_object_new_string(b->model) : NULL);
        add_counts(o, b);
        struct json_object *price = NULL;
        if (b->price) {
            price = json_object_new_object();
            /* the row's provider: another than the proxy's when it resells (Claude on Vertex) */
            json_object_object_add(price, "provider", json_object_new_string(b->price->provider));
            json_object_object_add(price, "family", json_object_new_string(b->price->family));
            json_object_object_add(price, "input_per_mtok", json_object_new_double(b->price->input));
            json_object_object_add(price, "cached_input_per_mtok", json_object_new_double(b->price->cached_input));
            json_object_object_add(price, "cache_write_per_mtok", json_object_new_double(b->price->cache_write));
            json_object_object_add(price, "output_per_mtok", json_object_new_double(b->price->output));
            json_object_object_add(price, "checked", json_object_new_string(b->price->checked));
            json_object_object_add(price, "source", json_object_new_string(b->price->source));
        }
        json_object_object_add(o, "price", price);
        json_object_array_add(models, o);
    }
    free(all);
    char ts[32];
    struct json_object *root = json_object_new_object();
    json_object_object_add(root, "proxy_id", json_object_new_int64(proxy_id));
    int64_t since = since_ms < u->since_ms ? since_ms : u->since_ms;
    json_object_object_add(root, "since", json_object_new_string(rd_time_format(since, ts, sizeof ts)));
    json_object_object_add(root, "models", models);
    struct json_object *totals = json_object_new_object();
    add_counts(totals, &total);
    json_object_object_add(root, "totals", totals);
    return root;
}
