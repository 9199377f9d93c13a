/* The rate_limit stage: the rate_limiting block turned into a limiter
 * (proxy/ratelimit.h) per proxy, consulted once per request.
 *
 * Every request of a configured proxy takes one unit of its key's window
 * (the proxy, its client address, or a header's value) and, with
 * tokens_per_minute, reserves its max_tokens (the dialect's field, read
 * with rd_provider_max_tokens; 1 when absent) in a token bucket; on_done
 * then charges what the response actually used. Every response of the
 * request carries X-RateLimit-Limit/Remaining/Reset (and the -Tokens
 * variants with a tokens limit); a refused request gets the configured
 * status (429 by default) as the provider's native error with an exact
 * Retry-After, the configured headers and, when configured, the configured
 * body. docs/failure-simulation.md, "Rate limiting", is the user's view.
 *
 * Sharing: the limiter sits in the compiled state, which the snapshot
 * owns and every worker of the proxy reads, so the windows are the same
 * whatever worker takes a request (the store locks per shard). A new
 * configuration whose limiter settings are unchanged takes over the
 * previous limiter (inherit), so a PUT that changes another block does not
 * reset anyone's window; one that changes them starts fresh windows. */
#include <inttypes.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "proxy/failure.h"
#include "proxy/ratelimit.h"
#include "proxy/req.h"
#include "proxy/stages/stages.h"
#include "util/err.h"
#include "util/json.h"
#include "util/mem.h"
#include "util/time.h"

/* Keys a per-client limiter keeps (idle ones expire as they go; past this
 * the least recently used client is forgotten, see ratelimit.h), within
 * about 256 MiB of sliding-window timestamps (8 bytes per admission). */
#define MAX_KEYS 65536u
#define WINDOW_BYTES_BUDGET (256u << 20)
#define MIN_KEYS 16u
#define MAX_HEADERS 32

enum key_kind { KEY_PROXY, KEY_IP, KEY_HEADER };

/* The limiter, shared by the snapshots whose settings compare equal. */
struct limiter {
    atomic_int refs;
    struct rd_ratelimit rl;
};

struct rl_state {
    struct limiter *lim; /* one reference */
    /* what the limiter was built from: equal settings share it */
    struct rd_rl_limits limits;
    uint32_t tokens_per_minute; /* 0: no tokens limit */
    enum key_kind key;
    char header[72]; /* KEY_HEADER: the name */
    /* the refusal */
    int status;
    struct {
        const char *name, *value; /* borrowed from the document */
    } hdrs[MAX_HEADERS];
    size_t nhdrs;
    char *body; /* owned; NULL: the provider's native body */
    size_t body_len;
};

/* What on_done needs of an admitted request with a tokens limit. */
struct rl_req {
    uint64_t reserved;
    size_t key_len;
    uint8_t key[RD_RL_KEY_MAX];
};

static void limiter_unref(struct limiter *l)
{
    if (l == NULL || atomic_fetch_sub_explicit(&l->refs, 1, memory_order_acq_rel) != 1)
        return;
    rd_ratelimit_destroy(&l->rl);
    free(l);
}

static void release(void *state)
{
    struct rl_state *st = state;
    limiter_unref(st->lim);
    free(st->body);
    free(st);
}

static int fail(struct rd_config_err *err, const char *field, const char *msg)
{
    snprintf(err->field, sizeof err->field, "%s", field);
    snprintf(err->message, sizeof err->message, "%s", msg);
    return RD_EINVAL;
}

/* The request limiter's key cap: every key could hold a full window. */
static size_t max_keys(const struct rl_state *st)
{
    if (st->key == KEY_PROXY)
        return 1;
    uint64_t ceiling = (uint64_t)st->limits.per_minute + st->limits.burst;
    uint64_t n = MAX_KEYS;
    if (st->limits.algorithm == RD_RL_SLIDING_WINDOW && ceiling * 8 * n > WINDOW_BYTES_BUDGET)
        n = WINDOW_BYTES_BUDGET / (ceiling * 8);
    return n < MIN_KEYS ? MIN_KEYS : (size_t)n;
}

static int read_response(struct rl_state *st, struct json_object *resp)
{
    st->status = (int)rd_json_get_int(resp, "status_code", 429);
    struct json_object *hdrs = rd_json_get(resp, "headers");
    if (hdrs && json_object_is_type(hdrs, json_type_object)) {
        json_object_object_foreach(hdrs, name, value)
        {
            if (st->nhdrs < MAX_HEADERS && json_object_is_type(value, json_type_string)) {
                st->hdrs[st->nhdrs].name = name;
                st->hdrs[st->nhdrs].value = json_object_get_string(value);
                st->nhdrs++;
            }
        }
    }
    struct json_object *body = rd_json_get(resp, "body");
    if (body == NULL)
        return 0;
    size_t len = 0;
    const char *text;
    if (json_object_is_type(body, json_type_string)) {
        text = json_object_get_string(body);
        len = (size_t)json_object_get_string_len(body);
    } else {
        text = rd_json_str(body, &len);
    }
    st->body = rd_strndup(text, len);
    st->body_len = len;
    return 0;
}

static int compile(const struct rd_stage_env *env, void **state, struct rd_config_err *err)
{
    struct json_object *blk = rd_json_get(env->doc, "rate_limiting");
    *state = NULL;
    if (blk == NULL || !rd_json_get_bool(blk, "enabled", true))
        return 0;
    struct rl_state *st = rd_calloc(1, sizeof *st);
    const char *alg = rd_json_get_str(blk, "algorithm");
    st->limits.algorithm = alg && strcmp(alg, "token_bucket") == 0 ? RD_RL_TOKEN_BUCKET : RD_RL_SLIDING_WINDOW;
    st->limits.per_minute = (uint32_t)rd_json_get_int(blk, "requests_per_minute", 1);
    st->limits.burst = (uint32_t)rd_json_get_int(blk, "burst_allowance", 0);
    st->tokens_per_minute = (uint32_t)rd_json_get_int(blk, "tokens_per_minute", 0);
    const char *key = rd_json_get_str(blk, "key");
    if (key == NULL || strcmp(key, "proxy") == 0) {
        st->key = KEY_PROXY;
    } else if (strcmp(key, "ip") == 0) {
        st->key = KEY_IP;
    } else {
        /* The schema let only "header:<token of at most 64 bytes>" through. */
        st->key = KEY_HEADER;
        snprintf(st->header, sizeof st->header, "%s", key + strlen("header:"));
    }
    read_response(st, rd_json_get(blk, "rate_limit_response"));
    const char *why = NULL;
    st->lim = rd_calloc(1, sizeof *st->lim);
    atomic_init(&st->lim->refs, 1);
    if (rd_ratelimit_init(&st->lim->rl, &st->limits, st->tokens_per_minute, max_keys(st), &why) != 0) {
        release(st);
        return fail(err, "rate_limiting", why ? why : "invalid rate limits");
    }
    *state = st;
    return 0;
}

static bool same_limiter(const struct rl_state *a, const struct rl_state *b)
{
    return a->limits.algorithm == b->limits.algorithm && a->limits.per_minute == b->limits.per_minute &&
           a->limits.burst == b->limits.burst && a->tokens_per_minute == b->tokens_per_minute && a->key == b->key &&
           strcasecmp(a->header, b->header) == 0;
}

static void inherit(void *state, const void *prev)
{
    struct rl_state *st = state;
    const struct rl_state *old = prev;
    if (old->lim == st->lim || !same_limiter(st, old))
        return;
    atomic_fetch_add_explicit(&old->lim->refs, 1, memory_order_relaxed);
    limiter_unref(st->lim);
    st->lim = old->lim;
}

/* ---- the request path ---- */

static int build_key(const struct rl_state *st, const struct rd_req *req, uint8_t *out)
{
    switch (st->key) {
    case KEY_PROXY: break;
    case KEY_IP: {
        int n = rd_ratelimit_key_ip(req->client_ip, strnlen(req->client_ip, sizeof req->client_ip), out);
        if (n > 0)
            return n;
        break; /* no address (not a TCP peer): such clients share the proxy's key */
    }
    case KEY_HEADER: {
        const struct rd_hdr *h = rd_hdrs_find(&req->x->req->headers, st->header);
        int n = rd_ratelimit_key_header(st->header, strlen(st->header), h ? h->value : NULL, h ? h->value_len : 0,
                                        out);
        if (n > 0)
            return n;
        break; /* a value above 1 MiB: the request parser's caps keep it from happening */
    }
    }
    return rd_ratelimit_key_proxy(out);
}

static void add_u64(struct rd_req *req, const char *name, uint64_t v)
{
    char text[24];
    int n = snprintf(text, sizeof text, "%" PRIu64, v);
    rd_hdrs_add(&req->add_hdrs, name, strlen(name), text, (size_t)n);
}

/* X-RateLimit-* for every response of the request; the -Tokens ones when
 * the tokens limiter was asked (it is not when the request limit refused). */
static void add_headers(struct rd_req *req, const struct rd_rl_verdict *v, const struct rd_rl_verdict *tv,
                        bool tokens_asked)
{
    add_u64(req, "X-RateLimit-Limit", v->limit);
    add_u64(req, "X-RateLimit-Remaining", v->remaining);
    add_u64(req, "X-RateLimit-Reset", v->reset_s);
    if (!tokens_asked)
        return;
    add_u64(req, "X-RateLimit-Limit-Tokens", tv->limit);
    add_u64(req, "X-RateLimit-Remaining-Tokens", tv->remaining);
    add_u64(req, "X-RateLimit-Reset-Tokens", tv->reset_s);
}

static void refuse(struct rd_req *req, const struct rl_state *st, const struct rd_rl_verdict *v,
                   const struct rd_rl_verdict *tv, bool tokens_asked, uint64_t max_tokens)
{
    char msg[256];
    struct rd_error_spec e = {.status = st->status, .message = msg, .retry_after_s = (int)v->retry_after_s,
                              .body = st->body, .body_len = st->body_len};
    if (tokens_asked && tv->exceeds_ceiling) {
        /* Waiting never helps: no Retry-After. */
        e.retry_after_s = -1;
        snprintf(msg, sizeof msg,
                 "Request too large: it reserves %" PRIu64 " tokens (max_tokens) and the limit is %" PRIu32
                 " tokens per minute.",
                 max_tokens, st->tokens_per_minute);
    } else if (tokens_asked) {
        snprintf(msg, sizeof msg,
                 "Rate limit reached for tokens per minute: limit %" PRIu32 ", remaining %" PRIu64
                 ", requested %" PRIu64 ". Please try again in %" PRIu32 "s.",
                 st->tokens_per_minute, tv->remaining, max_tokens, v->retry_after_s);
    } else {
        snprintf(msg, sizeof msg,
                 "Rate limit reached for requests per minute: limit %" PRIu64 " (%" PRIu32 " per minute plus a burst"
                 " of %" PRIu32 "). Please try again in %" PRIu32 "s.",
                 v->limit, st->limits.per_minute, st->limits.burst, v->retry_after_s);
    }
    /* Configured headers replace computed ones of the same name (and,
     * through rd_req_fail_spec, the native ones: a pinned Retry-After). */
    for (size_t i = 0; i < st->nhdrs; i++) {
        rd_hdrs_remove(&req->add_hdrs, st->hdrs[i].name);
        rd_hdrs_add_ref(&req->add_hdrs, st->hdrs[i].name, st->hdrs[i].value);
    }
    rd_req_simulate_error(req, RD_FAIL_RATE_LIMITED, &e);
}

static enum rd_stage_rc run(struct rd_req *req, const void *state)
{
    const struct rl_state *st = state;
    struct rd_ratelimit *rl = &st->lim->rl;
    uint8_t key[RD_RL_KEY_MAX];
    int key_len = build_key(st, req, key);
    uint64_t max_tokens = 1;
    if (rl->tokens) {
        const struct rd_http_request *hr = req->x->req;
        int64_t t = rd_provider_max_tokens(req->dialect, hr->body.data, hr->body.len);
        max_tokens = t > 0 ? (uint64_t)t : 1;
    }
    struct rd_rl_verdict v, tv;
    if (rd_ratelimit_admit(rl, key, (size_t)key_len, rd_time_mono_ms(), max_tokens, &v, &tv) != 0)
        return RD_STAGE_ERROR;
    bool tokens_asked = rl->tokens && (tv.admitted || tv.retry_after_s > 0 || tv.exceeds_ceiling);
    add_headers(req, &v, &tv, tokens_asked);
    if (!v.admitted) {
        refuse(req, st, &v, &tv, tokens_asked, max_tokens);
        return RD_STAGE_DONE;
    }
    if (rl->tokens) {
        struct rl_req *r = rd_arena_alloc(&req->arena, sizeof *r);
        r->reserved = max_tokens;
        r->key_len = (size_t)key_len;
        memcpy(r->key, key, (size_t)key_len);
        req->stage_data[RD_STAGE_RATE_LIMIT] = r;
    }
    return RD_STAGE_NEXT;
}

/* The tokens a finished request used: what its usage reports (input plus
 * output), else its reservation when the source answered 2xx without
 * reporting usage (an OpenAI stream without include_usage), else nothing
 * (refused or failed later in the pipeline, upstream error, client gone
 * before an answer). */
static uint64_t used_tokens(struct rd_req *req, uint64_t reserved)
{
    const struct rd_usage *u = rd_req_usage(req);
    if (u->input >= 0 || u->output >= 0)
        return (uint64_t)(u->input > 0 ? u->input : 0) + (uint64_t)(u->output > 0 ? u->output : 0);
    if (req->status_upstream >= 200 && req->status_upstream < 300)
        return reserved;
    return 0;
}

static void on_done(struct rd_req *req, const void *state)
{
    const struct rl_state *st = state;
    const struct rl_req *r = req->stage_data[RD_STAGE_RATE_LIMIT];
    if (r == NULL)
        return;
    (void)rd_ratelimit_charge(&st->lim->rl, r->key, r->key_len, rd_time_mono_ms(), r->reserved,
                              used_tokens(req, r->reserved));
}

const struct rd_stage rd_stage_rate_limit = {
    .name = "rate_limit",
    .compile = compile,
    .release = release,
    .run = run,
    .on_done = on_done,
    .inherit = inherit,
};
