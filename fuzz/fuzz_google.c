/* libFuzzer target for Google's dialect (src/providers/google.c, gemini.c,
 * vertex.c): everything that reads bytes from an upstream or a client.
 *  - streams: the stream hook sees the events of the input fed to the SSE
 *    scanner whole and split in two at a point the input picks, and must
 *    reach the same usage and the same end either way;
 *  - bodies: rd_provider_body_usage_google (objects, the alt-less JSON
 *    array, :predict statistics) and rd_google_usage on an exact-size copy;
 *    on an object body the two agree whenever usageMetadata was read;
 *  - hostile paths (and bodies): route matching, the model hook of both
 *    providers into buffers of several sizes (always NUL-terminated within
 *    the buffer, a copy of bytes of the path or the body), the route's
 *    dialect, the Vertex location rule (only [a-z0-9-] ever makes a host
 *    name) and the prepare hooks (the URL is the base plus the path and the
 *    query unchanged).
 * Usage invariants everywhere: counts are -1 or more, cached is a part of
 * input and reasoning a part of output. The first byte picks the mode. */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "http/headers.h"
#include "http/sse.h"
#include "providers/google.h"
#include "providers/provider.h"
#include "util/arena.h"
#include "util/buf.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define NO_USAGE {-1, -1, -1, -1, -1}

static void check_usage(const struct rd_usage *u)
{
    if (u->input < -1 || u->output < -1 || u->cached < -1 || u->cache_write < -1 || u->reasoning < -1)
        abort();
    if (u->input >= 0 && u->cached > u->input)
        abort(); /* cachedContentTokenCount is part of promptTokenCount */
    if (u->output >= 0 && u->reasoning > u->output)
        abort(); /* thoughts are part of output */
    if (u->cache_write != -1)
        abort(); /* Google reports no cache writes */
}

/* Exact-size copy, so a read past the end is caught. */
static char *copy_of(const char *s, size_t n)
{
    char *c = malloc(n ? n : 1);
    if (c == NULL)
        abort();
    memcpy(c, s, n);
    return c;
}

/* ---- streams ---- */

struct run {
    struct rd_usage u;
    int ended;
    size_t events;
};

static int on_event(void *ud, const struct rd_sse_event *ev)
{
    struct run *r = ud;
    struct rd_stream_event se = rd_stream_event_of_sse(ev);
    int rc = rd_provider_stream_event_google(&rd_provider_gemini, &se, &r->u);
    if (rc != 0 && rc != 1)
        abort();
    r->ended += rc;
    r->events++;
    /* an exception is never a proper end */
    se.type = RD_STREAM_MSG_EXCEPTION;
    struct rd_usage scratch = r->u;
    if (rd_provider_stream_event_google(&rd_provider_vertex_ai, &se, &scratch) != 0)
        abort();
    return 0;
}

static struct run feed(const char *s, size_t n, size_t at)
{
    struct run r = {.u = NO_USAGE, .ended = 0, .events = 0};
    struct rd_sse sse;
    rd_sse_init(&sse, 1u << 16);
    char *a = copy_of(s, at), *b = copy_of(s + at, n - at);
    (void)rd_sse_feed(&sse, a, at, on_event, &r);
    (void)rd_sse_feed(&sse, b, n - at, on_event, &r);
    free(a);
    free(b);
    rd_sse_free(&sse);
    return r;
}

static void fuzz_stream(const uint8_t *data, size_t size)
{
    const char *s = (const char *)data + 1;
    size_t n = size - 1;
    struct run whole = feed(s, n, n);
    struct run split = feed(s, n, n ? (size_t)data[0] * 977 % (n + 1) : 0);
    if (memcmp(&whole.u, &split.u, sizeof whole.u) != 0 || whole.ended != split.ended ||
        whole.events != split.events)
        abort();
    check_usage(&whole.u);
}

/* ---- bodies ---- */

static void fuzz_body(const uint8_t *data, size_t size)
{
    char *s = copy_of((const char *)data + 1, size - 1);
    size_t n = size - 1;
    struct rd_usage b = NO_USAGE, g = NO_USAGE;
    rd_provider_body_usage_google(&rd_provider_vertex_ai, s, n, &b);
    check_usage(&b);
    rd_google_usage(s, n, &g);
    check_usage(&g);
    size_t i = 0;
    while (i < n && (s[i] == ' ' || s[i] == '\t' || s[i] == '\r' || s[i] == '\n'))
        i++;
    /* An object's usageMetadata is what both read (the body hook adds
     * :predict statistics only when there is none). */
    if (g.input >= 0 && !(i < n && s[i] == '[') && memcmp(&g, &b, sizeof g) != 0)
        abort();
    /* the stream hook on the same bytes as one event: the same usage */
    struct rd_usage e = NO_USAGE;
    struct rd_stream_event se = {.type = RD_STREAM_MSG_EVENT, .name = "", .name_len = 0, .data = s, .data_len = n};
    int rc = rd_provider_stream_event_google(&rd_provider_gemini, &se, &e);
    if (rc != 0 && rc != 1)
        abort();
    check_usage(&e);
    if (g.input >= 0 && memcmp(&g, &e, sizeof g) != 0)
        abort();
    free(s);
}

/* ---- hostile paths ---- */

/* True if the n bytes at p occur in hay[0..len). */
static bool occurs_in(const char *p, size_t n, const char *hay, size_t len)
{
    return n == 0 || memmem(hay, len, p, n) != NULL;
}

static void check_model(const struct rd_provider *p, const struct rd_provider_req *r)
{
    static const size_t caps[] = {1, 2, 8, 64, 256};
    for (size_t k = 0; k < sizeof caps / sizeof caps[0]; k++) {
        char out[256];
        memset(out, 'X', sizeof out);
        size_t n = p->model(p, r, out, caps[k]);
        if (n >= caps[k] || out[n] != '\0')
            abort();
        /* a path capture is copied as is; a body's JSON string is decoded,
         * so only its length is bounded */
        const struct rd_route *route = r->match->route;
        if (route && route->model_from != RD_MODEL_IN_BODY && !occurs_in(out, n, r->path, strlen(r->path)))
            abort();
        for (size_t i = caps[k]; i < sizeof out; i++)
            if (out[i] != 'X')
                abort(); /* wrote past the buffer it was given */
    }
}

static void check_location(const char *path)
{
    const char *loc = NULL;
    size_t n = rd_vertex_location(path, &loc);
    if (n == 0)
        return;
    if (loc < path || loc + n > path + strlen(path) || n > RD_VERTEX_LOCATION_MAX || loc[0] == '-' ||
        loc[n - 1] == '-')
        abort();
    for (size_t i = 0; i < n; i++)
        if (!((loc[i] >= 'a' && loc[i] <= 'z') || (loc[i] >= '0' && loc[i] <= '9') || loc[i] == '-'))
            abort();
    char base[RD_VERTEX_BASE_MAX];
    size_t b = rd_vertex_base_for(loc, n, base, sizeof base);
    if (b == 0 || b >= sizeof base || strncmp(base, "https://", 8) != 0 ||
        strcmp(base + b - (sizeof "aiplatform.googleapis.com" - 1), "aiplatform.googleapis.com") != 0)
        abort();
}

static void check_prepare(const struct rd_provider *p, const struct rd_provider_req *r, bool is_default)
{
    struct rd_arena arena;
    rd_arena_init(&arena);
    struct rd_hdrs hdrs;
    rd_hdrs_init(&hdrs, &arena);
    struct rd_buf url;
    rd_buf_init(&url, 0);
    const char *base = is_default ? p->default_upstream : "http://127.0.0.1:9";
    struct rd_upstream_prep up = {
        .base = base, .base_is_default = is_default, .url = &url, .headers = &hdrs, .arena = &arena};
    if (p->prepare(p, r, &up) == 0) {
        /* the URL ends with the path and the query, unchanged */
        size_t pl = strlen(r->path), ql = strlen(r->query);
        size_t tail = pl + (ql ? ql + 1 : 0);
        if (url.len < tail + 8 || memcmp(url.data + url.len - tail, r->path, pl) != 0 ||
            (ql && (url.data[url.len - ql - 1] != '?' || memcmp(url.data + url.len - ql, r->query, ql) != 0)))
            abort();
        if (strncmp(url.data, is_default ? "https://" : base, is_default ? 8 : strlen(base)) != 0)
            abort();
    }
    rd_buf_free(&url);
    rd_hdrs_free(&hdrs);
    rd_arena_free(&arena);
}

static void fuzz_path(const uint8_t *data, size_t size)
{
    /* "path[?query]\nbody": the path is a C string, as the server gives it */
    const char *s = (const char *)data + 1;
    size_t n = size - 1;
    const char *nl = memchr(s, '\n', n);
    size_t head = nl ? (size_t)(nl - s) : n;
    char *target = malloc(head + 1);
    if (target == NULL)
        abort();
    memcpy(target, s, head);
    target[head] = '\0';
    char *q = strchr(target, '?');
    const char *query = "";
    if (q) {
        *q = '\0';
        query = q + 1;
    }
    const char *path = target;
    char *body = copy_of(nl ? nl + 1 : "", nl ? n - head - 1 : 0);
    size_t body_len = nl ? n - head - 1 : 0;
    static const char *const methods[] = {"POST", "GET"};
    const struct rd_provider *providers[] = {&rd_provider_gemini, &rd_provider_vertex_ai};
    for (size_t i = 0; i < 2; i++) {
        const struct rd_provider *p = providers[i];
        struct rd_route_match m;
        const struct rd_route *r = rd_provider_route(p, methods[data[0] & 1], path, &m);
        if (r != m.route)
            abort();
        if (r) {
            if (m.ncap > RD_ROUTE_MAX_CAPS)
                abort();
            for (unsigned c = 0; c < m.ncap; c++)
                if (m.cap[c].n == 0 || m.cap[c].p < path || m.cap[c].p + m.cap[c].n > path + strlen(path) ||
                    memchr(m.cap[c].p, '/', m.cap[c].n) != NULL)
                    abort(); /* a capture is a non-empty run of the path without '/' */
            /* only Claude's routes on Vertex speak another dialect */
            if (r->dialect != NULL && (p != &rd_provider_vertex_ai || r->dialect != &rd_provider_anthropic ||
                                       strstr(path, "/publishers/anthropic/models/") == NULL))
                abort();
        }
        struct rd_provider_req pr = {.method = methods[data[0] & 1],
                                     .path = path,
                                     .query = query,
                                     .body = body,
                                     .body_len = body_len,
                                     .match = &m};
        check_model(p, &pr);
        check_prepare(p, &pr, true);
        check_prepare(p, &pr, false);
    }
    check_location(path);
    free(body);
    free(target);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 1)
        return 0;
    switch (data[0] % 3) {
    case 0: fuzz_stream(data, size); break;
    case 1: fuzz_body(data, size); break;
    default: fuzz_path(data, size); break;
    }
    return 0;
}
