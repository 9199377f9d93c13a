/* Google's generateContent dialect: errors, usage and stream hooks shared by
 * gemini.c and vertex.c, and Vertex's host rule. See google.h. */
#include "providers/google.h"

#include <json-c/json.h>
#include <stdio.h>
#include <string.h>

#include "util/err.h"
#include "util/json.h"
#include "util/json_scan.h"

/* ---- errors ---- */

static const struct {
    int code;
    const char *status;
} STATUSES[] = {
    {400, "INVALID_ARGUMENT"},  {401, "UNAUTHENTICATED"}, {403, "PERMISSION_DENIED"},  {404, "NOT_FOUND"},
    {408, "DEADLINE_EXCEEDED"}, {409, "ABORTED"},         {429, "RESOURCE_EXHAUSTED"}, {499, "CANCELLED"},
    {500, "INTERNAL"},          {501, "NOT_IMPLEMENTED"}, {503, "UNAVAILABLE"},        {504, "DEADLINE_EXCEEDED"},
};

const char *const rd_google_max_tokens_fields[] = {"generationConfig.maxOutputTokens", NULL};
const char *const rd_google_cache_round_fields[] = {"generationConfig.temperature", "generationConfig.topP", NULL};
const char *const rd_google_cache_query_params[] = {"alt", NULL};

const char *rd_google_status(int code)
{
    for (size_t i = 0; i < sizeof STATUSES / sizeof STATUSES[0]; i++)
        if (STATUSES[i].code == code)
            return STATUSES[i].status;
    return "UNKNOWN";
}

void rd_google_error_json(const struct rd_error_spec *e, struct rd_buf *body)
{
    struct json_object *err = json_object_new_object();
    json_object_object_add(err, "code", json_object_new_int(e->status));
    json_object_object_add(err, "message", json_object_new_string(e->message ? e->message : ""));
    json_object_object_add(err, "status", json_object_new_string(rd_google_status(e->status)));
    if (e->retry_after_s >= 0) {
        /* Google says when to retry in a RetryInfo detail, not a header. */
        char delay[24];
        snprintf(delay, sizeof delay, "%ds", e->retry_after_s);
        struct json_object *d = json_object_new_object();
        json_object_object_add(d, "@type", json_object_new_string("type.googleapis.com/google.rpc.RetryInfo"));
        json_object_object_add(d, "retryDelay", json_object_new_string(delay));
        struct json_object *details = json_object_new_array();
        json_object_array_add(details, d);
        json_object_object_add(err, "details", details);
    }
    struct json_object *root = json_object_new_object();
    json_object_object_add(root, "error", err);
    size_t len;
    const char *s = rd_json_str(root, &len);
    (void)rd_buf_append(body, s, len);
    json_object_put(root);
}

void rd_provider_error_google(const struct rd_provider *p, const struct rd_error_spec *e, struct rd_hdrs *hdrs,
                              struct rd_buf *body)
{
    rd_google_error_json(e, body);
    rd_provider_error_headers("application/json; charset=UTF-8", p->request_id_header, e, hdrs);
}

void rd_google_stream_error(const struct rd_error_spec *e, struct rd_buf *out)
{
    (void)rd_buf_appends(out, "data: ");
    rd_google_error_json(e, out);
    (void)rd_buf_appends(out, "\r\n\r\n");
}

/* ---- usage ---- */

struct meta {
    int64_t prompt, candidates, cached, thoughts, tool_use;
    bool bad;
};

static bool key_is(const char *k, size_t n, bool esc, const char *want)
{
    return !esc && n == strlen(want) && memcmp(k, want, n) == 0;
}

static void read_count(struct meta *m, struct rd_json_span v, int64_t *dst)
{
    int64_t x;
    if (rd_json_span_int64(v, &x) == 0 && x >= 0)
        *dst = x;
    else if (!(v.n == 4 && memcmp(v.p, "null", 4) == 0))
        m->bad = true;
}

static int on_meta(void *ud, const char *k, size_t n, bool esc, struct rd_json_span v)
{
    struct meta *m = ud;
    if (key_is(k, n, esc, "promptTokenCount"))
        read_count(m, v, &m->prompt);
    else if (key_is(k, n, esc, "candidatesTokenCount"))
        read_count(m, v, &m->candidates);
    else if (key_is(k, n, esc, "cachedContentTokenCount"))
        read_count(m, v, &m->cached);
    else if (key_is(k, n, esc, "thoughtsTokenCount"))
        read_count(m, v, &m->thoughts);
    else if (key_is(k, n, esc, "toolUsePromptTokenCount"))
        read_count(m, v, &m->tool_use);
    return 0;
}

/* Saturating sum: counts come from the upstream. */
static int64_t add_counts(int64_t a, int64_t b)
{
    int64_t s;
    return __builtin_add_overflow(a, b, &s) ? INT64_MAX : s;
}

void rd_google_usage(const char *doc, size_t len, struct rd_usage *u)
{
    struct rd_json_span v; /* near the end (before modelVersion): read from the tail */
    if (rd_json_scan_find_top(doc, len, "usageMetadata", &v) != 0 || v.n == 0 || v.p[0] != '{')
        return;
    struct meta m = {0};
    if (rd_json_scan_members(v.p, v.n, on_meta, &m) != 0 || m.bad)
        return;
    u->input = add_counts(m.prompt, m.tool_use);
    /* cachedContentTokenCount is a part of promptTokenCount; one above it
     * (a confused or hostile upstream, found by fuzzing) is taken as the
     * whole input, so a cost never counts a token twice nor goes negative. */
    u->cached = m.cached < u->input ? m.cached : u->input;
    u->output = add_counts(m.candidates, m.thoughts);
    u->reasoning = m.thoughts;
}

/* ---- stream ---- */

static int on_candidate(void *ud, size_t index, struct rd_json_span v)
{
    (void)index;
    static const char *const path[] = {"finishReason", NULL};
    struct rd_json_span f;
    if (v.n > 0 && v.p[0] == '{' && rd_json_scan_find(v.p, v.n, path, &f) == 0 && f.n > 2 && f.p[0] == '"')
        *(bool *)ud = true;
    return 0;
}

/* A chunk ends the stream when a candidate has a finishReason, or when the
 * prompt was blocked (promptFeedback.blockReason, no candidates follow). */
static bool chunk_finishes(const char *doc, size_t len)
{
    static const char *const cands[] = {"candidates", NULL};
    static const char *const block[] = {"promptFeedback", "blockReason", NULL};
    struct rd_json_span v;
    bool done = false;
    if (rd_json_scan_find(doc, len, cands, &v) == 0 && v.n > 0 && v.p[0] == '[')
        (void)rd_json_scan_elements(v.p, v.n, on_candidate, &done);
    if (!done && rd_json_scan_find(doc, len, block, &v) == 0 && v.n > 2 && v.p[0] == '"')
        done = true;
    return done;
}

int rd_provider_stream_event_google(const struct rd_provider *p, const struct rd_stream_event *ev,
                                    struct rd_usage *usage)
{
    (void)p;
    if (ev->type != RD_STREAM_MSG_EVENT || ev->data_len == 0)
        return 0;
    /* Most chunks carry usageMetadata; look before scanning all the same. */
    if (memmem(ev->data, ev->data_len, "\"usageMetadata\"", 15) != NULL)
        rd_google_usage(ev->data, ev->data_len, usage);
    if (memmem(ev->data, ev->data_len, "Reason\"", 7) == NULL)
        return 0;
    return chunk_finishes(ev->data, ev->data_len) ? 1 : 0;
}

/* ---- bodies ---- */

/* The alt-less stream: a JSON array of GenerateContentResponse objects whose
 * usageMetadata is cumulative, so the last element that has one wins. */
static int on_array_chunk(void *ud, size_t index, struct rd_json_span v)
{
    (void)index;
    if (v.n > 0 && v.p[0] == '{')
        rd_google_usage(v.p, v.n, ud);
    return 0;
}

/* Vertex :predict embeddings: predictions[].embeddings.statistics.token_count. */
struct predict_sum {
    int64_t tokens;
    bool any;
};

static int on_prediction(void *ud, size_t index, struct rd_json_span v)
{
    (void)index;
    static const char *const path[] = {"embeddings", "statistics", "token_count", NULL};
    struct predict_sum *s = ud;
    struct rd_json_span t;
    int64_t x;
    if (v.n > 0 && v.p[0] == '{' && rd_json_scan_find(v.p, v.n, path, &t) == 0) {
        /* Vertex prints it as a number, sometimes with a fraction (".0"). */
        if (rd_json_span_int64(t, &x) != 0) {
            size_t dot = 0;
            while (dot < t.n && t.p[dot] != '.')
                dot++;
            if (rd_json_span_int64((struct rd_json_span){t.p, dot}, &x) != 0)
                return 0;
        }
        if (x >= 0) {
            s->tokens = add_counts(s->tokens, x);
            s->any = true;
        }
    }
    return 0;
}

void rd_provider_body_usage_google(const struct rd_provider *p, const char *body, size_t len, struct rd_usage *usage)
{
    (void)p;
    size_t i = 0;
    while (i < len && (body[i] == ' ' || body[i] == '\t' || body[i] == '\r' || body[i] == '\n'))
        i++;
    if (i < len && body[i] == '[') {
        (void)rd_json_scan_elements(body + i, len - i, on_array_chunk, usage);
        return;
    }
    rd_google_usage(body, len, usage);
    static const char *const preds[] = {"predictions", NULL};
    struct rd_json_span v;
    if (usage->input < 0 && rd_json_scan_find(body, len, preds, &v) == 0 && v.n > 0 && v.p[0] == '[') {
        struct predict_sum s = {0, false};
        (void)rd_json_scan_elements(v.p, v.n, on_prediction, &s);
        if (s.any) {
            usage->input = s.tokens;
            usage->output = 0;
        }
    }
}

/* ---- Vertex host rule ---- */

/* Next segment of path after position *i (which is at a '/'): sets *seg and
 * returns its length, advancing *i to the '/' after it or the end. */
static size_t next_segment(const char *path, size_t *i, const char **seg)
{
    if (path[*i] != '/')
        return 0;
    size_t s = ++*i;
    while (path[*i] && path[*i] != '/')
        ++*i;
    *seg = path + s;
    return *i - s;
}

static bool seg_is(const char *seg, size_t n, const char *want)
{
    return n == strlen(want) && memcmp(seg, want, n) == 0;
}

size_t rd_vertex_location(const char *path, const char **loc)
{
    *loc = NULL;
    if (path == NULL)
        return 0;
    /* "/{version}/projects/{p}/locations/{l}/..." */
    const char *seg[5];
    size_t len[5], i = 0;
    for (int k = 0; k < 5; k++)
        if ((len[k] = next_segment(path, &i, &seg[k])) == 0)
            return 0;
    if (seg[0][0] != 'v' || !seg_is(seg[1], len[1], "projects") || !seg_is(seg[3], len[3], "locations"))
        return 0;
    const char *l = seg[4];
    size_t n = len[4];
    if (n > RD_VERTEX_LOCATION_MAX || l[0] == '-' || l[n - 1] == '-')
        return 0;
    for (size_t k = 0; k < n; k++)
        if (!((l[k] >= 'a' && l[k] <= 'z') || (l[k] >= '0' && l[k] <= '9') || l[k] == '-'))
            return 0;
    *loc = l;
    return n;
}

size_t rd_vertex_base_for(const char *loc, size_t n, char *out, size_t cap)
{
    int w = n == 0 || seg_is(loc, n, "global")
                ? snprintf(out, cap, "https://aiplatform.googleapis.com")
                : snprintf(out, cap, "https://%.*s-aiplatform.googleapis.com", (int)n, loc);
    return w < 0 || (size_t)w >= cap ? 0 : (size_t)w;
}

int rd_vertex_prepare(const struct rd_provider *p, const struct rd_provider_req *r, struct rd_upstream_prep *up)
{
    if (!up->base_is_default)
        return rd_provider_prepare_passthrough(p, r, up);
    const char *loc;
    size_t n = rd_vertex_location(r->path, &loc);
    char base[RD_VERTEX_BASE_MAX];
    if (rd_vertex_base_for(loc, n, base, sizeof base) == 0)
        return RD_ETOOBIG;
    /* The rest (path, query) is the passthrough's, from the location's host. */
    struct rd_upstream_prep located = *up;
    located.base = base;
    return rd_provider_prepare_passthrough(p, r, &located);
}
