/* See trace.h. The worker's part (ids, the sampling decision, one record
 * per request into the queue) is a few hundred nanoseconds and takes one
 * mutex that the exporter holds only to copy records out; the exporter
 * thread does the encoding and the HTTP. */
#include "obs/trace.h"

#include <errno.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/random.h>
#include <time.h>

#include "http/headers.h"
#include "obs/otlp.h"
#include "obs/trace_int.h"
#include "proxy/req.h"
#include "util/err.h"
#include "util/log.h"
#include "util/mem.h"

/* ---- ids ---- */

static const char hexdig[] = "0123456789abcdef";

static int hexval(char c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    if (c >= 'a' && c <= 'f')
        return c - 'a' + 10;
    return -1; /* upper case is invalid in traceparent (W3C 3.2.2) */
}

static bool hex_bytes(const char *s, size_t nbytes, uint8_t *out)
{
    for (size_t i = 0; i < nbytes; i++) {
        int hi = hexval(s[2 * i]), lo = hexval(s[2 * i + 1]);
        if (hi < 0 || lo < 0)
            return false;
        out[i] = (uint8_t)(hi << 4 | lo);
    }
    return true;
}

static void to_hex(const uint8_t *b, size_t n, char *out)
{
    for (size_t i = 0; i < n; i++) {
        out[2 * i] = hexdig[b[i] >> 4];
        out[2 * i + 1] = hexdig[b[i] & 15];
    }
    out[2 * n] = '\0';
}

static void u64_hex(uint64_t v, char out[17])
{
    for (int i = 15; i >= 0; i--, v >>= 4)
        out[i] = hexdig[v & 15];
    out[16] = '\0';
}

static uint64_t be64(const uint8_t *b)
{
    uint64_t v = 0;
    for (int i = 0; i < 8; i++)
        v = v << 8 | b[i];
    return v;
}

static void put_be64(uint8_t *b, uint64_t v)
{
    for (int i = 7; i >= 0; i--, v >>= 8)
        b[i] = (uint8_t)v;
}

static uint64_t mix64(uint64_t z)
{
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
    return z ^ (z >> 31);
}

/* Ids need to be unique, not secret: splitmix64 per thread, seeded once
 * from getrandom so that workers and restarts never share a sequence. */
static _Thread_local uint64_t rng_state;
static _Thread_local bool rng_seeded;

static uint64_t next_id(void)
{
    if (!rng_seeded) {
        uint64_t seed = 0;
        if (getrandom(&seed, sizeof seed, 0) != (ssize_t)sizeof seed) {
            struct timespec ts;
            clock_gettime(CLOCK_REALTIME, &ts);
            seed = (uint64_t)ts.tv_nsec ^ ((uint64_t)ts.tv_sec << 32) ^ (uint64_t)(uintptr_t)&rng_state;
        }
        rng_state = seed;
        rng_seeded = true;
    }
    uint64_t v;
    do
        v = mix64(rng_state += 0x9e3779b97f4a7c15ULL);
    while (v == 0); /* an all-zero id is invalid */
    return v;
}

/* The child spans' ids are derived from the request's span id, so forward.c
 * can name the upstream_call span in traceparent without more state on the
 * request. */
enum { CHILD_CACHE = 1, CHILD_UPSTREAM = 2 };
static uint64_t child_id(uint64_t span, unsigned which)
{
    uint64_t v = mix64(span ^ (0x6475636b00000000ULL | which));
    return v ? v : which;
}

static uint64_t parse_u64_hex(const char *s)
{
    uint8_t b[8];
    return strlen(s) == 16 && hex_bytes(s, 8, b) ? be64(b) : 0;
}

/* ---- parsing ---- */

bool rd_traceparent_parse(const char *v, size_t n, struct rd_traceparent *out)
{
    /* version "-" trace-id "-" parent-id "-" flags: 2+1+32+1+16+1+2 */
    if (n < 55 || v[2] != '-' || v[35] != '-' || v[52] != '-')
        return false;
    uint8_t ver;
    if (!hex_bytes(v, 1, &ver) || ver == 0xff)
        return false;
    /* Version 00 has exactly four fields; a later version may add fields
     * after another dash, which this version's parser skips (W3C 4.3). */
    if (ver == 0 ? n != 55 : n > 55 && v[55] != '-')
        return false;
    uint8_t pid[8];
    if (!hex_bytes(v + 3, 16, out->trace_id) || !hex_bytes(v + 36, 8, pid) || !hex_bytes(v + 53, 1, &out->flags))
        return false;
    uint8_t any = 0;
    for (size_t i = 0; i < 16; i++)
        any |= out->trace_id[i];
    out->parent_id = be64(pid);
    out->version = ver;
    return any != 0 && out->parent_id != 0;
}

static bool pct_decode(char *s)
{
    char *w = s;
    for (const char *p = s; *p; p++) {
        if (*p != '%') {
            *w++ = *p;
            continue;
        }
        int hi = p[1] ? hexval((char)(p[1] | 0x20)) : -1, lo = hi >= 0 && p[2] ? hexval((char)(p[2] | 0x20)) : -1;
        if (hi < 0 || lo < 0)
            return false;
        *w++ = (char)(hi << 4 | lo);
        p += 2;
    }
    *w = '\0';
    return true;
}

static void trim(char **s)
{
    while (**s == ' ' || **s == '\t')
        (*s)++;
    size_t n = strlen(*s);
    while (n && ((*s)[n - 1] == ' ' || (*s)[n - 1] == '\t'))
        (*s)[--n] = '\0';
}

int rd_otel_parse_pairs(const char *s, bool (*fn)(const char *k, const char *v, void *ud), void *ud)
{
    char item[RD_TRACE_PAIR_MAX + 1];
    while (s && *s) {
        const char *end = strchr(s, ',');
        size_t n = end ? (size_t)(end - s) : strlen(s);
        if (n > RD_TRACE_PAIR_MAX)
            return RD_ETOOBIG;
        memcpy(item, s, n);
        item[n] = '\0';
        s = end ? end + 1 : NULL;
        char *k = item;
        trim(&k);
        if (*k == '\0') /* "a=1,,b=2" or a trailing comma */
            continue;
        char *eq = strchr(k, '=');
        if (eq == NULL)
            return RD_EINVAL;
        *eq = '\0';
        char *v = eq + 1;
        trim(&k);
        trim(&v);
        if (*k == '\0' || !pct_decode(k) || !pct_decode(v) || !fn(k, v, ud))
            return RD_EINVAL;
    }
    return 0;
}

int rd_sampler_parse(const char *name, const char *arg, struct rd_sampler *out)
{
    *out = (struct rd_sampler){.root = RD_SAMPLE_ALWAYS_ON, .parent_based = true, .ratio = 1.0};
    if (name == NULL || name[0] == '\0')
        return 0;
    const char *root = name;
    out->parent_based = strncmp(name, "parentbased_", 12) == 0;
    if (out->parent_based)
        root += 12;
    if (strcmp(root, "always_on") == 0)
        out->root = RD_SAMPLE_ALWAYS_ON;
    else if (strcmp(root, "always_off") == 0)
        out->root = RD_SAMPLE_ALWAYS_OFF;
    else if (strcmp(root, "traceidratio") == 0)
        out->root = RD_SAMPLE_RATIO;
    else
        return RD_EINVAL;
    if (out->root == RD_SAMPLE_RATIO && arg && arg[0]) {
        char *end;
        errno = 0;
        double r = strtod(arg, &end);
        if (errno || *end || !(r >= 0.0 && r <= 1.0))
            return RD_EINVAL;
        out->ratio = r;
    }
    return 0;
}

bool rd_sampler_decide(const struct rd_sampler *s, const uint8_t trace_id[16], bool has_parent, bool parent_sampled)
{
    if (s->parent_based && has_parent)
        return parent_sampled;
    switch (s->root) {
    case RD_SAMPLE_ALWAYS_ON: return true;
    case RD_SAMPLE_ALWAYS_OFF: return false;
    case RD_SAMPLE_RATIO:
        /* The trace id's last 8 bytes as the random part (W3C level 2
         * makes the right-most 7 random; 8 of ours are): a trace is kept
         * by every service that samples with the same ratio. */
        if (s->ratio >= 1.0)
            return true;
        return (double)(be64(trace_id + 8) >> 11) < s->ratio * (double)(1ULL << 53);
    }
    return false;
}

/* ---- the request path ---- */

void rd_trace_begin(struct rd_tracer *t, struct rd_req *req)
{
    struct rd_traceparent tp = {0};
    bool has_parent = false;
    if (req->x && req->x->req) {
        const struct rd_hdrs *h = &req->x->req->headers;
        const struct rd_hdr *f = rd_hdrs_find(h, "traceparent");
        /* Two fields would combine into an invalid value: a new trace. */
        has_parent = f && rd_hdrs_count(h, "traceparent") == 1 && rd_traceparent_parse(f->value, f->value_len, &tp);
    }
    if (!has_parent) {
        put_be64(tp.trace_id, next_id());
        put_be64(tp.trace_id + 8, next_id());
        tp.flags = 0;
        req->parent_span_id[0] = '\0';
    } else {
        u64_hex(tp.parent_id, req->parent_span_id);
    }
    to_hex(tp.trace_id, 16, req->trace_id);
    u64_hex(next_id(), req->span_id);
    /* Without an exporter nothing is recorded here: a continued trace keeps
     * its parent's flag for the services after us, a new one is unsampled. */
    bool sampled = t ? rd_sampler_decide(&t->sampler, tp.trace_id, has_parent, tp.flags & 1)
                     : has_parent && (tp.flags & 1);
    req->trace_flags = sampled ? 1 : 0;
}

bool rd_trace_traceparent(const struct rd_req *req, char *out, size_t len)
{
    uint64_t span = parse_u64_hex(req->span_id);
    if (req->trace_id[0] == '\0' || span == 0 || len < 56) {
        if (len)
            out[0] = '\0';
        return false;
    }
    char up[17];
    u64_hex(child_id(span, CHILD_UPSTREAM), up);
    snprintf(out, len, "00-%s-%s-%02x", req->trace_id, up, req->trace_flags & 1);
    return true;
}

/* Printable ASCII only: the collector gets valid UTF-8 whatever the client
 * sent. */
static void copy_clean(char *dst, size_t cap, const char *src, char stop)
{
    size_t i = 0;
    for (; src && src[i] && src[i] != stop && i + 1 < cap; i++)
        dst[i] = (src[i] >= 0x20 && src[i] < 0x7f) ? src[i] : '?';
    dst[i] = '\0';
}

static const char *gen_ai_system(const char *provider)
{
    /* OpenTelemetry GenAI semantic conventions' names where they differ. */
    static const char *const map[][2] = {
        {"bedrock", "aws.bedrock"}, {"vertex_ai", "gcp.vertex_ai"}, {"gemini", "gcp.gemini"},
        {"azure_openai", "az.ai.openai"}, {"mistral", "mistral_ai"}, {"xai", "xai"},
    };
    for (size_t i = 0; i < sizeof map / sizeof map[0]; i++)
        if (strcmp(provider, map[i][0]) == 0)
            return map[i][1];
    return provider;
}

static void fill_rec(struct rd_trace_rec *r, struct rd_req *req)
{
    memset(r, 0, sizeof *r);
    uint8_t tid[16];
    (void)hex_bytes(req->trace_id, 16, tid);
    memcpy(r->trace_id, tid, 16);
    r->span_id = parse_u64_hex(req->span_id);
    r->parent_span_id = parse_u64_hex(req->parent_span_id);
    r->flags = req->trace_flags;
    /* Monotonic microseconds to wall-clock nanoseconds, from the receipt. */
    uint64_t base = (uint64_t)(req->wall_ms > 0 ? req->wall_ms : 0) * 1000000u;
    uint64_t t0 = req->t_received, done = req->t_done ? req->t_done : rd_req_now_us();
#define WALL(t) (base + ((t) > t0 ? ((t) - t0) * 1000u : 0))
    r->start_ns = base;
    r->end_ns = WALL(done);
    if (req->t_cache_start) {
        r->cache_span_id = child_id(r->span_id, CHILD_CACHE);
        r->cache_start_ns = WALL(req->t_cache_start);
        r->cache_end_ns = WALL(req->t_cache_end ? req->t_cache_end : req->t_cache_start);
    }
    if (req->t_upstream && req->cache != RD_CACHE_HIT) {
        r->upstream_span_id = child_id(r->span_id, CHILD_UPSTREAM);
        r->up_start_ns = WALL(req->t_upstream);
        r->up_end_ns = WALL(done);
        r->upstream_kind = req->snap && req->snap->source == RD_SNAP_SRC_EMULATOR ? "emulator" : "http";
    }
#undef WALL
    r->provider = req->provider ? gen_ai_system(req->provider->name) : "";
    r->method = req->method ? req->method : "";
    static const char *const cache_names[] = {NULL, "bypass", "miss", "hit"};
    r->cache = cache_names[req->cache];
    r->failure = rd_failure_name(req->failure);
    copy_clean(r->model, sizeof r->model, req->model, '\0');
    copy_clean(r->path, sizeof r->path, req->path, '?');
    if (req->snap) {
        copy_clean(r->proxy_name, sizeof r->proxy_name, req->snap->name, '\0');
        r->proxy_id = req->snap->id;
    }
    r->status = req->status_sent;
    r->upstream_status = req->status_upstream;
    r->request_size = req->bytes_in;
    r->response_size = req->bytes_out;
    const struct rd_usage *u = rd_req_usage(req);
    r->input_tokens = u->input;
    r->output_tokens = u->output;
}

void rd_trace_done(struct rd_tracer *t, unsigned slot, struct rd_req *req)
{
    (void)slot; /* one queue: its lock is held for a copy only */
    if (t == NULL || !(req->trace_flags & 1) || req->trace_id[0] == '\0')
        return;
    struct rd_trace_rec rec;
    fill_rec(&rec, req);
    size_t n = rd_otlp_rec_spans(&rec);
    pthread_mutex_lock(&t->mu);
    if (t->spans + n > t->max_queue || t->count == t->cap) {
        t->stats.dropped += n;
    } else {
        t->ring[(t->head + t->count) % t->cap] = rec;
        t->count++;
        t->spans += n;
        t->stats.queued += n;
        if (t->spans >= t->max_batch)
            pthread_cond_signal(&t->cv);
    }
    pthread_mutex_unlock(&t->mu);
}

void rd_tracer_stats(struct rd_tracer *t, struct rd_tracer_stats *out)
{
    memset(out, 0, sizeof *out);
    if (t == NULL)
        return;
    pthread_mutex_lock(&t->mu);
    *out = t->stats;
    pthread_mutex_unlock(&t->mu);
}
