/* The cache stage (docs/caching.md): the pipeline's "caching", between the
 * failure simulation and the upstream.
 *
 * Request side (run): a cacheable request gets its key (cache/key.h) and is
 * looked up in the proxy's cache (snap->cache, cache/cache.h):
 *   HIT   answered from the entry by the replay source (cache/replay.h),
 *         through the relay of forward.c, so the response-side stages
 *         shape replays too; response_delay's cache_only applies here;
 *   JOIN  an identical request is in flight: this one follows its fill
 *         from the first byte (the same replay source), or goes upstream
 *         itself if that one fails before its head;
 *   MISS  the request leads a new fill and goes on to the upstream; the
 *         relay records the source's answer as it passes (the
 *         rd_cache_record_* calls of forward.c) and the fill is committed
 *         when the request ends, if what came is storable.
 * X-Cache: HIT|MISS|BYPASS on every response (and X-Cache-Key, Age on
 * hits) unless failure.reveal is false. Client controls: X-Rubberduck-Cache
 * bypass|refresh, Cache-Control no-store (bypass) / no-cache (refresh).
 * mode "record" refreshes every request; mode "replay" never goes
 * upstream for a cacheable request: a miss is the provider's 404 naming
 * the key and the closest recorded request.
 *
 * Stored: a 2xx answer that came whole (the source ended without error,
 * a stream with its provider's proper end), without Cache-Control no-store
 * or private, within response_buffer_size, with a TTL above 0. Committing
 * also persists it (write-behind) and, with invalidate_on_model_change,
 * drops the model's entries when the upstream names another model version
 * than the last entry of the same path did. on_done also feeds the
 * invalidate_on_error_rate window. */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "cache/cache.h"
#include "cache/key.h"
#include "cache/memo.h"
#include "cache/persist.h"
#include "cache/replay.h"
#include "cache/ttl.h"
#include "proxy/forward.h"
#include "proxy/req.h"
#include "proxy/stages/stages.h"
#include "util/err.h"
#include "util/hash.h"
#include "util/json.h"
#include "util/json_scan.h"
#include "util/log.h"
#include "util/mem.h"
#include "util/time.h"

#define KEY_HEADERS_MAX 16

struct cache_cfg {
    bool record, replay;  /* mode */
    bool original_timing; /* replay_timing "original" */
    bool persist, scope_proxy, coalesce, model_change;
    const char *key_headers[KEY_HEADERS_MAX]; /* borrowed from the document */
    size_t nkey_headers;
    struct rd_cache_ttl *ttl;
    uint64_t gen; /* unique per compiled configuration: the key memo's scope */
    struct rd_cache_limits limits;
    /* invalidate_on_error_rate (threshold 0: off) */
    double err_threshold;
    uint64_t err_window_ms, err_min;
    pthread_mutex_t mu; /* the window: taken once per upstream answer, never on a hit */
    uint64_t win_start_ms, win_total, win_errors;
};

/* Per request (in the arena). */
struct cache_req {
    const struct cache_cfg *cfg; /* the stage's (the snapshot the request holds owns it) */
    struct rd_cache_entry *fill; /* a miss this request leads (one reference) */
    bool src_ok;     /* the source ended without error */
    bool unstorable; /* no-store/private, not 2xx, too big, ... */
    uint8_t key[RD_CACHE_KEY_LEN];
};

static struct rd_cache_persist *g_persist;

void rd_cache_stage_set_persist(struct rd_cache_persist *p)
{
    g_persist = p;
}

void rd_cache_stage_removed(void *ud, const struct rd_cache_entry *e)
{
    if (g_persist)
        rd_cache_persist_delete(g_persist, (int64_t)(intptr_t)ud, e->key);
}

/* ---- compile ---- */

static const char *str_of(struct json_object *b, const char *key, const char *dflt)
{
    const char *v = b ? rd_json_get_str(b, key) : NULL;
    return v ? v : dflt;
}

static double num_of(struct json_object *b, const char *key, double dflt)
{
    struct json_object *v = b ? rd_json_get(b, key) : NULL;
    return v ? json_object_get_double(v) : dflt;
}

static uint64_t size_of(struct json_object *block, const char *field, uint64_t dflt)
{
    struct json_object *v = block ? rd_json_get(block, field) : NULL;
    uint64_t out = dflt;
    if (v && json_object_is_type(v, json_type_int))
        out = (uint64_t)json_object_get_int64(v);
    else if (v && json_object_is_type(v, json_type_string) && rd_config_parse_size(json_object_get_string(v), &out) != 0)
        out = dflt; /* the schema accepted it: unreachable */
    return out;
}

void rd_cache_limits_of(struct json_object *doc, struct rd_cache_limits *out)
{
    struct json_object *m = doc ? rd_json_get(doc, "memory_limits") : NULL;
    out->max_bytes = size_of(m, "cache_max_size", RD_CACHE_DEFAULT_MAX_BYTES);
    out->max_entries = size_of(m, "cache_max_entries", RD_CACHE_DEFAULT_MAX_ENTRIES);
    out->max_response = size_of(m, "response_buffer_size", RD_CACHE_DEFAULT_MAX_RESPONSE);
}

static int compile(const struct rd_stage_env *env, void **state, struct rd_config_err *err)
{
    *state = NULL;
    struct json_object *b = rd_json_get(env->doc, "cache");
    if (b && !rd_json_get_bool(b, "enabled", true))
        return 0;
    struct cache_cfg *c = rd_calloc(1, sizeof *c);
    const char *mode = b ? str_of(b, "mode", "normal") : "normal";
    c->record = strcmp(mode, "record") == 0;
    c->replay = strcmp(mode, "replay") == 0;
    c->original_timing = b && strcmp(str_of(b, "replay_timing", "instant"), "original") == 0;
    c->persist = !b || rd_json_get_bool(b, "persist", true);
    c->scope_proxy = b && strcmp(str_of(b, "scope", "credential"), "proxy") == 0;
    c->coalesce = !b || rd_json_get_bool(b, "coalesce", true);
    c->model_change = !b || rd_json_get_bool(b, "invalidate_on_model_change", true);
    struct json_object *kh = b ? rd_json_get(b, "key_headers") : NULL;
    for (size_t i = 0; kh && i < json_object_array_length(kh) && i < KEY_HEADERS_MAX; i++)
        c->key_headers[c->nkey_headers++] = json_object_get_string(json_object_array_get_idx(kh, i));
    struct json_object *er = b ? rd_json_get(b, "invalidate_on_error_rate") : NULL;
    if (er) {
        c->err_threshold = num_of(er, "threshold", 0);
        c->err_window_ms = (uint64_t)rd_json_get_int(er, "window_s", 60) * 1000u;
        c->err_min = (uint64_t)rd_json_get_int(er, "min_requests", 20);
    }
    rd_cache_limits_of(env->doc, &c->limits);
    int rc = rd_cache_ttl_compile(env->doc, &c->ttl, err);
    if (rc != 0) {
        free(c);
        return rc;
    }
    static atomic_uint_fast64_t gens;
    c->gen = atomic_fetch_add(&gens, 1) + 1;
    pthread_mutex_init(&c->mu, NULL);
    *state = c;
    return 0;
}

static void release(void *state)
{
    struct cache_cfg *c = state;
    rd_cache_ttl_free(c->ttl);
    pthread_mutex_destroy(&c->mu);
    free(c);
}

/* ---- request side ---- */

static void add_hdr(struct rd_req *req, const char *name, const char *value)
{
    if (req->snap->failure.reveal)
        rd_hdrs_add_ref(&req->add_hdrs, name, value);
}

/* What the client asks for: 0 nothing, 1 refresh, 2 bypass. */
static int client_control(const struct rd_hdrs *h)
{
    const char *v = rd_hdrs_get(h, "x-rubberduck-cache");
    if (v && strcasecmp(v, "bypass") == 0)
        return 2;
    if (v && strcasecmp(v, "refresh") == 0)
        return 1;
    int out = 0;
    for (size_t i = 0; i < h->n; i++) {
        const struct rd_hdr *f = &h->v[i];
        if (!rd_hdr_name_eq(f->name, f->name_len, "cache-control"))
            continue;
        if (strcasestr(f->value, "no-store"))
            return 2;
        if (strcasestr(f->value, "no-cache"))
            out = 1;
    }
    return out;
}

/* "stream": true at the top of the body (OpenAI, Anthropic): such a
 * request is a separate entry from the same request without it. */
static bool asks_stream(const char *body, size_t len)
{
    static const char *const path[] = {"stream", NULL};
    struct rd_json_span v;
    return body && rd_json_scan_find(body, len, path, &v) == 0 && v.n == 4 && memcmp(v.p, "true", 4) == 0;
}

static void bypass(struct rd_req *req)
{
    req->cache = RD_CACHE_BYPASS;
    add_hdr(req, "X-Cache", "BYPASS");
}

static void start_replay(struct rd_req *req)
{
    const struct cache_cfg *c = req->snap->pipeline.state[RD_STAGE_CACHE];
    struct cache_req *cr = req->stage_data[RD_STAGE_CACHE];
    rd_forward_replay(req, cr->fill, c->original_timing);
}

static void hit_headers(struct rd_req *req, struct rd_cache_entry *e, bool joined)
{
    char *key = rd_arena_alloc(&req->arena, RD_CACHE_KEY_TEXT_MAX);
    rd_cache_key_text(e, key);
    add_hdr(req, "X-Cache", "HIT");
    add_hdr(req, "X-Cache-Key", key);
    int64_t age_ms = joined ? 0 : rd_cache_now(req->snap->cache) - e->created_ms;
    char *age = rd_arena_alloc(&req->arena, 24);
    snprintf(age, 24, "%lld", (long long)(age_ms > 0 ? age_ms / 1000 : 0));
    add_hdr(req, "Age", age);
}

/* A hit or a join: replayed, after a response delay (cache_only delays
 * exactly these). The entry reference moves to the request's data. */
static enum rd_stage_rc serve(struct rd_req *req, const struct cache_cfg *c, struct cache_req *cr,
                              struct rd_cache_entry *e, bool joined)
{
    req->cache = RD_CACHE_HIT;
    cr->fill = NULL;
    hit_headers(req, e, joined);
    if (!joined) {
        int64_t now = rd_cache_now(req->snap->cache);
        int64_t exp = rd_cache_ttl_on_hit(c->ttl, e->created_ms, e->ttl_s, atomic_load(&e->hits), e->expires_ms, now);
        if (exp != e->expires_ms)
            rd_cache_extend(req->snap->cache, e, exp);
    }
    /* The replay takes its own reference; ours is dropped on release. */
    cr->fill = e;
    req->stage_data[RD_STAGE_CACHE] = cr;
    if (!rd_response_delay_hold(req, start_replay))
        start_replay(req);
    return RD_STAGE_DONE;
}

/* mode "replay", nothing recorded for this request: the provider's 404
 * naming the key and the closest recorded request. */
static enum rd_stage_rc replay_miss(struct rd_req *req, const uint8_t key[RD_CACHE_KEY_LEN])
{
    char hex[65];
    rd_hex(key, RD_CACHE_KEY_LEN, hex);
    char closest[RD_CACHE_KEY_TEXT_MAX + 256] = "nothing was recorded for this path and model";
    struct rd_cache_entry *e = rd_cache_closest(req->snap->cache, req->path, req->model);
    if (e) {
        char k[RD_CACHE_KEY_TEXT_MAX];
        rd_cache_key_text(e, k);
        char when[32];
        rd_time_format(e->created_ms, when, sizeof when);
        snprintf(closest, sizeof closest, "the closest recorded request is %s (%s %s, recorded %s)", k, e->method,
                 e->path, when);
        rd_cache_entry_unref(e);
    }
    size_t cap = 512 + sizeof closest;
    char *msg = rd_arena_alloc(&req->arena, cap);
    snprintf(msg, cap,
             "Rubberduck cache replay mode: no recorded answer for this request (cache key %s:%s); %s. "
             "Record it with the proxy's cache mode \"record\", or import a cassette.",
             req->model, hex, closest);
    req->cache = RD_CACHE_MISS;
    add_hdr(req, "X-Cache", "MISS");
    rd_req_fail(req, 404, msg);
    return RD_STAGE_DONE;
}

/* Appends a length-prefixed field to raw (no separator can be forged). */
static char *field(char *w, const char *p, size_t n)
{
    uint32_t len = (uint32_t)n;
    memcpy(w, &len, sizeof len);
    memcpy(w + sizeof len, p, n);
    return w + sizeof len + n;
}

static bool key_header(const struct cache_cfg *c, const struct rd_provider *cred, const struct rd_hdr *h)
{
    for (size_t i = 0; i < c->nkey_headers; i++)
        if (rd_hdr_name_eq(h->name, h->name_len, c->key_headers[i]))
            return true;
    if (c->scope_proxy) /* the key holds no credential: its headers do not matter */
        return false;
    for (size_t i = 0; cred->auth_headers && cred->auth_headers[i]; i++)
        if (rd_hdr_name_eq(h->name, h->name_len, cred->auth_headers[i]))
            return true;
    return false;
}

/* Everything rd_cache_key reads of this request, as one byte string for
 * the key memo (cache/memo.h), in the arena; 0 when the body is too big to
 * be worth remembering. */
static size_t raw_material(struct rd_req *req, const struct cache_cfg *c, const struct rd_cache_key_input *in,
                           char **out)
{
    const struct rd_hdrs *hs = in->headers;
    size_t nq = strlen(in->query), np = strlen(in->path), nm = strlen(in->method),
           nd = strlen(in->provider->name);
    size_t n = in->body_len + nq + np + nm + nd + 5 * sizeof(uint32_t);
    if (in->body_len > RD_KEY_MEMO_MAX)
        return 0;
    for (size_t i = 0; i < hs->n; i++)
        if (key_header(c, in->cred_provider, &hs->v[i]))
            n += hs->v[i].name_len + hs->v[i].value_len + 2 * sizeof(uint32_t);
    char *w = *out = rd_arena_alloc(&req->arena, n);
    w = field(w, in->provider->name, nd);
    w = field(w, in->method, nm);
    w = field(w, in->path, np);
    w = field(w, in->query, nq);
    /* No stream flag: it is read from the body (asks_stream), which is here. */
    for (size_t i = 0; i < hs->n; i++) {
        if (!key_header(c, in->cred_provider, &hs->v[i]))
            continue;
        w = field(w, hs->v[i].name, hs->v[i].name_len);
        w = field(w, hs->v[i].value, hs->v[i].value_len);
    }
    w = field(w, in->body ? in->body : "", in->body_len);
    return (size_t)(w - *out);
}

/* rd_cache_key through the worker's memo. in->stream is filled here, on a
 * miss only: scanning the body for it costs more than the memo's lookup. */
static int key_of(struct rd_req *req, const struct cache_cfg *c, struct rd_cache_key_input *in, uint8_t key[32])
{
    char *raw = NULL;
    size_t n = raw_material(req, c, in, &raw);
    uint64_t h = n ? rd_key_memo_hash(raw, n) : 0;
    struct rd_key_memo *m = req->env->key_memo;
    if (n && m && rd_key_memo_get(m, c->gen, raw, n, h, key))
        return 0;
    in->stream = asks_stream(in->body, in->body_len);
    in->canon_body = req->canon_body;
    in->canon_body_len = req->canon_body_len;
    struct rd_buf scratch;
    rd_buf_init(&scratch, 0);
    size_t off = 0;
    int rc = rd_cache_key_canon(in, &scratch, key, &off);
    if (rc == 0 && req->canon_body == NULL && in->body_len) { /* kept for this request's other key */
        size_t clen = scratch.len - off;
        char *keep = rd_arena_alloc(&req->arena, clen ? clen : 1);
        memcpy(keep, scratch.data + off, clen);
        req->canon_body = keep;
        req->canon_body_len = clen;
    }
    rd_buf_free(&scratch);
    if (rc == 0 && n) {
        if (m == NULL)
            m = req->env->key_memo = rd_calloc(1, sizeof *m);
        rd_key_memo_put(m, c->gen, raw, n, h, key);
    }
    return rc;
}

/* What rd_cache_key reads of req under c. */
static void key_input(struct rd_req *req, const struct cache_cfg *c, struct rd_cache_key_input *in)
{
    const struct rd_http_request *hr = req->x->req;
    *in = (struct rd_cache_key_input){
        .provider = req->dialect,
        .method = hr->method,
        .path = hr->path,
        .query = hr->query,
        .headers = &hr->headers,
        .body = hr->body.data,
        .body_len = hr->body.len,
        .key_headers = c->key_headers,
        .nkey_headers = c->nkey_headers,
        .scope_proxy = c->scope_proxy,
        .cred_provider = req->provider,
        .stream = false, /* key_of reads it when it needs it */
    };
}

/* The prompt hash is the key of a cache of scope "proxy" without key
 * headers. gen 0 is its namespace in the key memo (compiled caches count
 * from 1): the key depends on nothing configured, only on the request and
 * the provider's data. */
static const struct cache_cfg prompt_cfg = {.scope_proxy = true, .gen = 0};

void rd_cache_prompt_hash(struct rd_req *req)
{
    if (req->prompt_hash_set || !req->cacheable || req->x == NULL || req->x->req == NULL)
        return;
    struct rd_cache_key_input in;
    key_input(req, &prompt_cfg, &in);
    req->prompt_hash_set = key_of(req, &prompt_cfg, &in, req->prompt_hash) == 0;
}

static enum rd_stage_rc run(struct rd_req *req, const void *state)
{
    const struct cache_cfg *c = state;
    struct rd_cache *cache = req->snap->cache;
    if (cache == NULL) /* a snapshot built outside a manager (tests) */
        return RD_STAGE_NEXT;
    const struct rd_http_request *hr = req->x->req;
    int control = req->cacheable ? client_control(&hr->headers) : 2;
    if (control == 2) {
        bypass(req);
        return RD_STAGE_NEXT;
    }
    struct cache_req *cr = rd_arena_alloc(&req->arena, sizeof *cr);
    memset(cr, 0, sizeof *cr);
    cr->cfg = c;
    struct rd_cache_key_input in;
    key_input(req, c, &in);
    req->t_cache_start = rd_req_now_us(); /* the key and the lookup: the trace's cache_lookup span */
    if (key_of(req, c, &in, cr->key) != 0) { /* not JSON: nothing to key it by */
        req->t_cache_end = rd_req_now_us();
        bypass(req);
        return RD_STAGE_NEXT;
    }
    if (c->scope_proxy && c->nkey_headers == 0) { /* the prompt hash's own material */
        memcpy(req->prompt_hash, cr->key, sizeof req->prompt_hash);
        req->prompt_hash_set = true;
    }
    struct rd_cache_entry *e = NULL;
    enum rd_cache_lookup found;
    bool refresh = control == 1 || c->record;
    if (c->replay)
        found = rd_cache_lookup(cache, cr->key, true, false, req->model, req->kind, req->method, req->path, &e);
    else if (refresh)
        found = rd_cache_refresh(cache, cr->key, c->coalesce, req->model, req->kind, req->method, req->path, &e);
    else
        found = rd_cache_lookup(cache, cr->key, c->coalesce, true, req->model, req->kind, req->method, req->path, &e);
    req->t_cache_end = rd_req_now_us();
    switch (found) {
    case RD_CACHE_LOOKUP_HIT: return serve(req, c, cr, e, false);
    case RD_CACHE_LOOKUP_JOIN: return serve(req, c, cr, e, true);
    case RD_CACHE_LOOKUP_MISS: break;
    }
    if (c->replay)
        return replay_miss(req, cr->key);
    req->cache = RD_CACHE_MISS;
    add_hdr(req, "X-Cache", "MISS");
    cr->fill = e; /* NULL if the cache could not take one: relayed, not stored */
    req->stage_data[RD_STAGE_CACHE] = cr;
    return RD_STAGE_NEXT;
}

/* ---- the relay's recording (forward.c) ---- */

static struct cache_req *leading(struct rd_req *req)
{
    struct cache_req *cr = req->stage_data[RD_STAGE_CACHE];
    return cr && cr->fill && req->cache == RD_CACHE_MISS ? cr : NULL;
}

static void give_up(struct cache_req *cr)
{
    if (!cr->unstorable) {
        cr->unstorable = true;
        rd_cache_fill_abort(cr->fill);
    }
}

/* Headers not replayed: framing, per-connection and per-response ones. */
static bool replayed_header(const struct rd_hdr *h)
{
    static const char *const skip[] = {"content-length", "date", "set-cookie", "age", "x-cache", "x-cache-key",
                                       "x-ratelimit-limit-requests-proxy", NULL};
    if (rd_hdr_is_hop_by_hop(h->name, h->name_len))
        return false;
    for (size_t i = 0; skip[i]; i++)
        if (rd_hdr_name_eq(h->name, h->name_len, skip[i]))
            return false;
    return true;
}

static bool forbids_storing(const struct rd_hdrs *hdrs)
{
    for (size_t i = 0; i < hdrs->n; i++) {
        const struct rd_hdr *h = &hdrs->v[i];
        if (rd_hdr_name_eq(h->name, h->name_len, "cache-control") &&
            (strcasestr(h->value, "no-store") || strcasestr(h->value, "private")))
            return true;
    }
    return false;
}

void rd_cache_record_head(struct rd_req *req, int status, const struct rd_hdrs *hdrs)
{
    struct cache_req *cr = leading(req);
    if (cr == NULL)
        return;
    /* Joiners go upstream themselves at once rather than wait for an
     * answer that will not be stored. */
    if (status < 200 || status > 299 || forbids_storing(hdrs)) {
        give_up(cr);
        return;
    }
    struct rd_cache_hdr *v = rd_arena_alloc(&req->arena, (hdrs->n ? hdrs->n : 1) * sizeof *v);
    size_t n = 0;
    for (size_t i = 0; i < hdrs->n; i++) {
        const struct rd_hdr *h = &hdrs->v[i];
        if (replayed_header(h))
            v[n++] = (struct rd_cache_hdr){h->name, h->value, (uint32_t)h->name_len, (uint32_t)h->value_len};
    }
    if (rd_cache_fill_head(cr->fill, status, v, n, req->stream) != 0)
        give_up(cr);
}

void rd_cache_record_data(struct rd_req *req, const char *p, size_t n)
{
    struct cache_req *cr = leading(req);
    if (cr && !cr->unstorable && rd_cache_fill_data(cr->fill, p, n) == RD_ETOOBIG)
        rd_req_debug(req, "the response passed response_buffer_size: relayed, not cached");
}

void rd_cache_record_event(struct rd_req *req, uint64_t end)
{
    struct cache_req *cr = leading(req);
    if (cr == NULL || cr->unstorable)
        return;
    uint64_t t = req->t_first_byte ? (rd_req_now_us() - req->t_first_byte) / 1000u : 0;
    (void)rd_cache_fill_mark(cr->fill, end, t > UINT32_MAX ? UINT32_MAX : (uint32_t)t);
}

void rd_cache_record_done(struct rd_req *req)
{
    struct cache_req *cr = leading(req);
    if (cr)
        cr->src_ok = true;
}

static void commit(struct rd_req *req, const struct cache_cfg *c, struct cache_req *cr);

void rd_cache_record_end(struct rd_req *req)
{
    struct cache_req *cr = leading(req);
    if (cr && !cr->unstorable)
        commit(req, cr->cfg, cr);
}

bool rd_cache_rejoin(struct rd_req *req)
{
    struct cache_req *cr = req->stage_data[RD_STAGE_CACHE];
    if (cr == NULL || req->cache != RD_CACHE_HIT || req->head_sent)
        return false;
    /* The request it followed failed before its head: this one looks up
     * again, so the joiners of a failed fill coalesce among themselves (one
     * leads a new fill, which is stored if it succeeds; the rest join it).
     * Each round costs one upstream call, so N joiners cost at most the N
     * calls they would have made alone. */
    rd_cache_entry_unref(cr->fill);
    cr->fill = NULL;
    req->stage_data[RD_STAGE_CACHE] = NULL;
    req->cache = RD_CACHE_NONE;
    rd_hdrs_remove(&req->add_hdrs, "X-Cache");
    rd_hdrs_remove(&req->add_hdrs, "X-Cache-Key");
    rd_hdrs_remove(&req->add_hdrs, "Age");
    const void *state = req->snap->pipeline.state[RD_STAGE_CACHE];
    rd_req_set_state(req, RD_REQ_NEW);
    if (run(req, state) == RD_STAGE_NEXT)
        rd_pipeline_resume(req); /* stage_next is still the stage after this one */
    return true;
}

/* ---- commit ---- */

/* Loose byte patterns in the stored answer: a finish on the length limit
 * ("length", "max_tokens", "MAX_TOKENS") and the model the upstream named. */
static bool stopped_on_length(const struct rd_cache_entry *e)
{
    static const char *const pats[] = {"\"finish_reason\":\"length\"", "\"finish_reason\": \"length\"",
                                       "\"stop_reason\":\"max_tokens\"", "\"stop_reason\": \"max_tokens\"",
                                       "\"finishReason\":\"MAX_TOKENS\"", "\"finishReason\": \"MAX_TOKENS\"",
                                       "\"stopReason\":\"max_tokens\"", "\"stopReason\": \"max_tokens\"", NULL};
    for (const struct rd_cache_chunk *ch = e->first; ch; ch = ch->next)
        for (size_t i = 0; pats[i]; i++)
            if (memmem(ch->data, ch->len, pats[i], strlen(pats[i])))
                return true;
    return false;
}

/* The model the answer names ("model", Gemini's "modelVersion", an
 * Anthropic stream's message.model), from the body or the first event. */
static void answer_model(const struct rd_cache_entry *e, char *out, size_t cap)
{
    static const char *const p1[] = {"model", NULL}, *const p2[] = {"modelVersion", NULL},
                             *const p3[] = {"message", "model", NULL};
    static const char *const *const paths[] = {p1, p2, p3};
    out[0] = '\0';
    if (e->first == NULL)
        return;
    const char *doc = e->first->data;
    size_t len = e->first->len;
    if (e->stream) { /* the first SSE event's data */
        const char *d = memmem(doc, len, "data:", 5);
        if (d == NULL)
            return;
        d += 5;
        const char *nl = memchr(d, '\n', len - (size_t)(d - doc));
        len = nl ? (size_t)(nl - d) : len - (size_t)(d - doc);
        doc = d;
    }
    for (size_t i = 0; i < 3; i++)
        if (rd_json_scan_string(doc, len, paths[i], out, cap) > 0)
            return;
    out[0] = '\0';
}

static void commit(struct rd_req *req, const struct cache_cfg *c, struct cache_req *cr)
{
    struct rd_cache_entry *e = cr->fill;
    struct rd_cache *cache = req->snap->cache;
    bool whole = cr->src_ok && req->err == 0 && (!req->stream || req->stream_ended);
    enum rd_cache_state st;
    rd_cache_peek(e, &st, NULL, NULL); /* FAILED: dropped past response_buffer_size */
    if (cr->unstorable || !whole || st != RD_CACHE_FILLING) {
        give_up(cr);
        return;
    }
    e->usage = *rd_req_usage(req);
    if (stopped_on_length(e))
        snprintf(e->finish, sizeof e->finish, "length");
    answer_model(e, e->upstream_model, sizeof e->upstream_model);
    uint32_t ttl = rd_cache_ttl_for(c->ttl, req->model, req->kind, e->finish, rd_cache_now(cache));
    if (ttl == 0) { /* not kept; a joiner still finishes the whole answer it follows */
        cr->unstorable = true;
        (void)rd_cache_fill_commit(e, 0);
        return;
    }
    /* invalidate_on_model_change: the last entry of this path and model was
     * answered by another model version: what the cache holds for the
     * model is from the previous one. */
    if (c->model_change && e->upstream_model[0] && req->model[0]) {
        struct rd_cache_entry *prev = rd_cache_closest(cache, req->path, req->model);
        if (prev && prev->upstream_model[0] && strcmp(prev->upstream_model, e->upstream_model) != 0) {
            size_t n = rd_cache_delete_model(cache, req->model);
            rd_req_info(req, "the upstream answers %s with %s now (was %s): %zu cached entries dropped", req->model,
                        e->upstream_model, prev->upstream_model, n);
        }
        rd_cache_entry_unref(prev);
    }
    cr->unstorable = true; /* committed or refused: nothing more to do with the fill */
    if (rd_cache_fill_commit(e, ttl) == 0 && c->persist && g_persist)
        rd_cache_persist_put(g_persist, req->snap->id, e);
}

/* invalidate_on_error_rate: upstream answers (5xx, no answer) over a
 * fixed window; past the threshold the proxy's cache is cleared, once per
 * window. */
static void error_window(struct rd_req *req, struct cache_cfg *c)
{
    if (c->err_threshold <= 0 || req->t_upstream == 0 || req->cache == RD_CACHE_HIT)
        return;
    if (req->err == RD_EABORTED)
        return; /* the client left: says nothing about the upstream */
    bool failed = req->err != 0 || req->status_upstream >= 500 || req->status_upstream == 0;
    uint64_t now = rd_req_now_us() / 1000u;
    bool clear = false;
    pthread_mutex_lock(&c->mu);
    if (now - c->win_start_ms >= c->err_window_ms) {
        c->win_start_ms = now;
        c->win_total = c->win_errors = 0;
    }
    c->win_total++;
    c->win_errors += failed;
    if (c->win_total >= c->err_min && (double)c->win_errors >= c->err_threshold * (double)c->win_total &&
        c->win_errors > 0) {
        clear = true;
        c->win_errors = 0;
        c->win_total = 0;
        c->win_start_ms = now; /* once per window */
    }
    pthread_mutex_unlock(&c->mu);
    if (clear) {
        size_t n = rd_cache_delete_pattern(req->snap->cache, NULL);
        rd_req_warn(req, "upstream error rate reached %.0f%%: the cache was cleared (%zu entries)",
                    c->err_threshold * 100.0, n);
    }
}

static void on_done(struct rd_req *req, const void *state)
{
    struct cache_cfg *c = (struct cache_cfg *)state;
    struct cache_req *cr = req->stage_data[RD_STAGE_CACHE];
    if (cr && cr->fill) {
        if (req->cache == RD_CACHE_MISS && !cr->unstorable)
            commit(req, c, cr);
        rd_cache_entry_unref(cr->fill);
        cr->fill = NULL;
    }
    if (req->snap->cache)
        error_window(req, c);
}

const struct rd_stage rd_stage_cache = {
    .name = "cache",
    .compile = compile,
    .release = release,
    .run = run,
    .on_done = on_done,
};
