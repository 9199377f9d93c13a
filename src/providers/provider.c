#include "providers/provider.h"

#include <json-c/json.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include "util/err.h"
#include "util/json_scan.h"

#include "util/json.h"
#include "util/arena.h"
#include "util/hash.h"
#include "util/time.h"

extern const struct rd_provider rd_provider_openai;
extern const struct rd_provider rd_provider_deepseek;
extern const struct rd_provider rd_provider_azure_openai;
extern const struct rd_provider rd_provider_groq;
extern const struct rd_provider rd_provider_mistral;
extern const struct rd_provider rd_provider_together;
extern const struct rd_provider rd_provider_openrouter;
extern const struct rd_provider rd_provider_xai;
extern const struct rd_provider rd_provider_ollama;
extern const struct rd_provider rd_provider_openai_compatible;
extern const struct rd_provider rd_provider_gemini;
extern const struct rd_provider rd_provider_vertex_ai;
extern const struct rd_provider rd_provider_bedrock;

static const struct rd_provider *const registry[] = {
    &rd_provider_openai,
    &rd_provider_anthropic,
    &rd_provider_deepseek,
    &rd_provider_azure_openai,
    &rd_provider_groq,
    &rd_provider_mistral,
    &rd_provider_together,
    &rd_provider_openrouter,
    &rd_provider_xai,
    &rd_provider_ollama,
    &rd_provider_openai_compatible,
    &rd_provider_gemini,
    &rd_provider_vertex_ai,
    &rd_provider_bedrock,
};

const struct rd_provider *rd_provider_find(const char *name)
{
    for (size_t i = 0; i < sizeof registry / sizeof registry[0]; i++)
        if (strcmp(registry[i]->name, name) == 0)
            return registry[i];
    return NULL;
}

const struct rd_provider *const *rd_provider_all(size_t *n)
{
    *n = sizeof registry / sizeof registry[0];
    return registry;
}

/* '*' matches a non-empty run of characters other than '/'; the text after
 * it in the pattern decides where the run ends (the shortest run for which
 * the rest of the pattern matches), so "models/ *:generate" (no space) and
 * "models/ *:streamGenerate" are different routes. Iterative except for one
 * level of backtracking per '*', bounded by the segment's length. */
bool rd_route_pattern_match(const char *pattern, const char *path, struct rd_route_match *m)
{
    unsigned ncap = 0;
    const char *pt = pattern, *ph = path;
    while (*pt) {
        if (*pt == '*') {
            pt++;
            const char *seg_end = ph;
            while (*seg_end && *seg_end != '/')
                seg_end++;
            if (seg_end == ph)
                return false; /* '*' needs at least one character */
            /* The literal that follows the '*' up to the next '*' or '/'
             * must match right after the run. */
            const char *lit_end = pt;
            while (*lit_end && *lit_end != '*' && *lit_end != '/')
                lit_end++;
            size_t lit = (size_t)(lit_end - pt);
            const char *end = NULL;
            for (const char *q = ph + 1; q + lit <= seg_end; q++) {
                if (memcmp(q, pt, lit) == 0 && (lit == 0 ? q == seg_end : (q + lit == seg_end || *lit_end == '*'))) {
                    end = q;
                    break;
                }
            }
            if (end == NULL)
                return false;
            if (m && ncap < RD_ROUTE_MAX_CAPS) {
                m->cap[ncap].p = ph;
                m->cap[ncap].n = (size_t)(end - ph);
            }
            ncap++;
            ph = end;
            continue;
        }
        if (*pt != *ph)
            return false;
        pt++;
        ph++;
    }
    if (*ph != '\0')
        return false;
    if (m)
        m->ncap = ncap < RD_ROUTE_MAX_CAPS ? ncap : RD_ROUTE_MAX_CAPS;
    return true;
}

const struct rd_route *rd_provider_route(const struct rd_provider *p, const char *method, const char *path,
                                         struct rd_route_match *m)
{
    m->route = NULL;
    m->ncap = 0;
    for (size_t i = 0; i < p->nroutes; i++) {
        if (strcmp(p->routes[i].method, method) == 0 && rd_route_pattern_match(p->routes[i].pattern, path, m)) {
            m->route = &p->routes[i];
            return m->route;
        }
    }
    m->ncap = 0;
    return NULL;
}

void rd_provider_error(const struct rd_provider *p, const struct rd_error_spec *e, struct rd_hdrs *hdrs,
                       struct rd_buf *body)
{
    p->error(p, e, hdrs, body);
    if (e->body == NULL)
        return;
    /* A configured body replaces the native one; the native headers (the
     * request id, Retry-After, Bedrock's x-amzn-ErrorType) stay. */
    rd_buf_reset(body);
    (void)rd_buf_append(body, e->body, e->body_len);
    rd_hdrs_remove(hdrs, "content-type");
    rd_hdrs_add_ref(hdrs, "Content-Type", "application/json");
}

const char *const rd_provider_max_tokens_openai[] = {"max_completion_tokens", "max_tokens", "max_output_tokens", NULL};

/* What never changes an OpenAI-style answer. "stream" is the caller's to
 * keep apart (rd_cache_key_input.stream). Not stream_options as a whole:
 * include_usage adds the final usage chunk (a stream without it is another
 * answer), while include_obfuscation only pads each delta with random
 * bytes. "store" only saves the completion on OpenAI's side; "user" and
 * its successor "safety_identifier" only identify the end user. */
const char *const rd_provider_cache_ignore_openai[] = {
    "stream", "stream_options.include_obfuscation", "user", "safety_identifier", "store", NULL,
};
const char *const rd_provider_cache_round_top[] = {"temperature", "top_p", NULL};

/* A JSON integer literal >= 0 (no fraction, no exponent), saturated. */
static int64_t span_uint(struct rd_json_span v)
{
    if (v.n == 0 || v.n > 64 || v.p[0] < '0' || v.p[0] > '9' || (v.p[0] == '0' && v.n > 1))
        return -1;
    int64_t n = 0;
    for (size_t i = 0; i < v.n; i++) {
        if (v.p[i] < '0' || v.p[i] > '9')
            return -1;
        if (__builtin_mul_overflow(n, 10, &n) || __builtin_add_overflow(n, v.p[i] - '0', &n))
            n = INT64_MAX;
    }
    return n;
}

#define MAX_TOKENS_DEPTH 4 /* keys in one max_tokens_fields path */

int64_t rd_provider_max_tokens(const struct rd_provider *p, const char *body, size_t len)
{
    if (p == NULL || p->max_tokens_fields == NULL || body == NULL || len == 0)
        return -1;
    for (size_t i = 0; p->max_tokens_fields[i]; i++) {
        /* "a.b.c" -> {"a", "b", "c", NULL}, in a stack copy. */
        char buf[128];
        const char *path[MAX_TOKENS_DEPTH + 1];
        int n = snprintf(buf, sizeof buf, "%s", p->max_tokens_fields[i]);
        if (n <= 0 || (size_t)n >= sizeof buf)
            continue;
        size_t depth = 0;
        for (char *k = buf; k && depth < MAX_TOKENS_DEPTH; depth++) {
            path[depth] = k;
            k = strchr(k, '.');
            if (k)
                *k++ = '\0';
        }
        path[depth] = NULL;
        struct rd_json_span v;
        if (rd_json_scan_find(body, len, path, &v) != 0)
            continue;
        int64_t t = span_uint(v);
        if (t >= 0)
            return t;
    }
    return -1;
}

int rd_provider_stream_error_sse(const struct rd_provider *p, const struct rd_error_spec *e, struct rd_buf *out)
{
    struct rd_arena arena;
    struct rd_hdrs hdrs;
    struct rd_buf body;
    rd_arena_init(&arena);
    rd_hdrs_init(&hdrs, &arena);
    rd_buf_init(&body, 0);
    p->error(p, e, &hdrs, &body);
    int rc = 0;
    if (p->stream_error_event)
        rc = rd_buf_printf(out, "event: %s\n", p->stream_error_event);
    /* The error hooks print JSON compactly, on one line; a data field must
     * not hold a raw line break, so one would be a bug here. */
    if (rc == 0 && memchr(body.data ? body.data : "", '\n', body.len) != NULL)
        rc = RD_EINVAL;
    if (rc == 0)
        rc = rd_buf_appends(out, "data: ");
    if (rc == 0)
        rc = rd_buf_append(out, body.data, body.len);
    if (rc == 0)
        rc = rd_buf_appends(out, "\n\n");
    rd_buf_free(&body);
    rd_hdrs_free(&hdrs);
    rd_arena_free(&arena);
    return rc;
}

int rd_provider_stream_error(const struct rd_provider *p, const struct rd_error_spec *e, struct rd_buf *out)
{
    return p->stream_error ? p->stream_error(p, e, out) : rd_provider_stream_error_sse(p, e, out);
}

size_t rd_provider_model_default(const struct rd_provider *p, const struct rd_provider_req *r, char *out, size_t cap)
{
    if (cap == 0)
        return 0;
    out[0] = '\0';
    const struct rd_route_match *m = r->match;
    unsigned from = m && m->route ? m->route->model_from : RD_MODEL_IN_BODY;
    if (from != RD_MODEL_IN_BODY) {
        if (from > m->ncap)
            return 0;
        size_t n = m->cap[from - 1].n < cap - 1 ? m->cap[from - 1].n : cap - 1;
        memcpy(out, m->cap[from - 1].p, n);
        out[n] = '\0';
        return n;
    }
    if (p->model_field == NULL || r->body_len == 0)
        return 0;
    const char *path[] = {p->model_field, NULL};
    int n = rd_json_scan_string(r->body, r->body_len, path, out, cap);
    if (n < 0) {
        out[0] = '\0';
        return 0;
    }
    return (size_t)n;
}

int rd_provider_prepare_passthrough(const struct rd_provider *p, const struct rd_provider_req *r,
                                    struct rd_upstream_prep *up)
{
    (void)p;
    int rc = rd_buf_appends(up->url, up->base);
    if (r->path[0] != '/')
        rc |= rd_buf_append(up->url, "/", 1);
    rc |= rd_buf_appends(up->url, r->path);
    if (r->query[0]) {
        rc |= rd_buf_append(up->url, "?", 1);
        rc |= rd_buf_appends(up->url, r->query);
    }
    return rc < 0 ? RD_ETOOBIG : 0;
}

/* OpenAI's type/code vocabulary for the statuses Rubberduck produces (and
 * injects): a 429 for a request rate is type "requests" with code
 * rate_limit_exceeded, server errors are "server_error", as the API sends
 * them. */
static void openai_type_code(int status, const char **type, const char **code)
{
    switch (status) {
    case 400: *type = "invalid_request_error"; *code = NULL; break;
    case 401: *type = "invalid_request_error"; *code = "invalid_api_key"; break;
    case 403: *type = "invalid_request_error"; *code = "forbidden"; break;
    case 404: *type = "invalid_request_error"; *code = NULL; break;
    case 408: *type = "invalid_request_error"; *code = "request_timeout"; break;
    case 413: *type = "invalid_request_error"; *code = "request_too_large"; break;
    case 429: *type = "requests"; *code = "rate_limit_exceeded"; break;
    case 431: *type = "invalid_request_error"; *code = "headers_too_large"; break;
    case 502: *type = "server_error"; *code = "bad_gateway"; break;
    case 503: *type = "server_error"; *code = "service_unavailable"; break;
    case 504: *type = "server_error"; *code = "gateway_timeout"; break;
    default: *type = status >= 500 ? "server_error" : "invalid_request_error"; *code = NULL; break;
    }
}

void rd_provider_error_headers(const char *content_type, const char *id_header, const struct rd_error_spec *e,
                               struct rd_hdrs *hdrs)
{
    rd_hdrs_add_ref(hdrs, "Content-Type", content_type);
    if (e->request_id && id_header)
        rd_hdrs_add_ref(hdrs, id_header, e->request_id);
    if (e->retry_after_s >= 0) {
        char v[24];
        int n = snprintf(v, sizeof v, "%d", e->retry_after_s);
        rd_hdrs_add(hdrs, "Retry-After", 11, v, (size_t)n);
    }
}

const struct rd_ratelimit_names rd_ratelimit_names_openai = {
    .limit = "x-ratelimit-limit-requests",
    .remaining = "x-ratelimit-remaining-requests",
    .reset = "x-ratelimit-reset-requests",
    .reset_style = RD_RESET_DURATION,
};

/* Seconds as Go's time.Duration prints whole seconds ("0s", "59s",
 * "6m0s", "1h2m3s"), which is how OpenAI writes its reset times. */
static int go_duration(uint64_t s, char *out, size_t cap)
{
    if (s < 60)
        return snprintf(out, cap, "%llus", (unsigned long long)s);
    if (s < 3600)
        return snprintf(out, cap, "%llum%llus", (unsigned long long)(s / 60), (unsigned long long)(s % 60));
    return snprintf(out, cap, "%lluh%llum%llus", (unsigned long long)(s / 3600), (unsigned long long)(s / 60 % 60),
                    (unsigned long long)(s % 60));
}

static void add_u64(struct rd_hdrs *hdrs, const char *name, uint64_t v)
{
    char text[24];
    int n = snprintf(text, sizeof text, "%llu", (unsigned long long)v);
    rd_hdrs_add(hdrs, name, strlen(name), text, (size_t)n);
}

void rd_provider_ratelimit_headers(const struct rd_provider *p, uint64_t limit, uint64_t remaining, uint64_t reset_s,
                                   int64_t now_ms, struct rd_hdrs *hdrs)
{
    const struct rd_ratelimit_names *names = p ? p->ratelimit_headers : NULL;
    if (names == NULL)
        return;
    add_u64(hdrs, names->limit, limit);
    add_u64(hdrs, names->remaining, remaining);
    char text[40];
    int n;
    if (names->reset_style == RD_RESET_DURATION) {
        n = go_duration(reset_s, text, sizeof text);
    } else {
        /* whole seconds, as Anthropic writes them ("2026-12-02T18:00:00Z") */
        int64_t at_s = now_ms / 1000 + (int64_t)(reset_s > INT32_MAX ? INT32_MAX : reset_s);
        rd_time_format(at_s * 1000, text, sizeof text);
        char *dot = strchr(text, '.');
        if (dot)
            memcpy(dot, "Z", 2);
        n = (int)strlen(text);
    }
    rd_hdrs_add(hdrs, names->reset, strlen(names->reset), text, (size_t)n);
}

void rd_provider_error_openai(const struct rd_provider *p, const struct rd_error_spec *e, struct rd_hdrs *hdrs,
                              struct rd_buf *body)
{
    const char *type = NULL, *code = NULL;
    openai_type_code(e->status, &type, &code);
    struct json_object *err = json_object_new_object();
    json_object_object_add(err, "message", json_object_new_string(e->message));
    json_object_object_add(err, "type", json_object_new_string(type));
    json_object_object_add(err, "param", NULL);
    json_object_object_add(err, "code", code ? json_object_new_string(code) : NULL);
    struct json_object *root = json_object_new_object();
    json_object_object_add(root, "error", err);
    size_t len;
    const char *s = rd_json_str(root, &len);
    (void)rd_buf_append(body, s, len);
    json_object_put(root);
    rd_provider_error_headers("application/json", p->request_id_header, e, hdrs);
}

/* Reads an OpenAI usage object (chat/completions or responses naming) in
 * one pass with the scanner: json-c would build a tree (and switch locales)
 * for six integers, which cost more than the rest of the relay. Strict: a
 * malformed object leaves usage unchanged. */
struct usage_read {
    struct rd_usage u;
    bool bad;
};

static bool key_is(const char *k, size_t n, bool esc, const char *want)
{
    return !esc && n == strlen(want) && memcmp(k, want, n) == 0;
}

static void read_int(struct usage_read *r, struct rd_json_span v, int64_t *dst)
{
    int64_t x;
    if (rd_json_span_int64(v, &x) == 0)
        *dst = x;
    else if (!(v.n == 4 && memcmp(v.p, "null", 4) == 0))
        r->bad = true;
}

static int on_details(void *ud, const char *k, size_t n, bool esc, struct rd_json_span v)
{
    struct usage_read *r = ud;
    if (key_is(k, n, esc, "cached_tokens"))
        read_int(r, v, &r->u.cached);
    else if (key_is(k, n, esc, "reasoning_tokens"))
        read_int(r, v, &r->u.reasoning);
    return 0;
}

static int on_usage(void *ud, const char *k, size_t n, bool esc, struct rd_json_span v)
{
    struct usage_read *r = ud;
    if (key_is(k, n, esc, "prompt_tokens") || key_is(k, n, esc, "input_tokens"))
        read_int(r, v, &r->u.input);
    else if (key_is(k, n, esc, "completion_tokens") || key_is(k, n, esc, "output_tokens"))
        read_int(r, v, &r->u.output);
    else if (key_is(k, n, esc, "prompt_cache_hit_tokens")) /* DeepSeek */
        read_int(r, v, &r->u.cached);
    else if ((key_is(k, n, esc, "prompt_tokens_details") || key_is(k, n, esc, "input_tokens_details") ||
              key_is(k, n, esc, "completion_tokens_details") || key_is(k, n, esc, "output_tokens_details")) &&
             v.n > 0 && v.p[0] == '{') {
        if (rd_json_scan_members(v.p, v.n, on_details, r) < 0)
            r->bad = true;
    }
    return 0;
}

static void read_usage(const char *p, size_t n, struct rd_usage *u)
{
    struct usage_read r = {.u = *u, .bad = false};
    if (rd_json_scan_members(p, n, on_usage, &r) == 0 && !r.bad)
        *u = r.u;
}

/* "usage" at the top level (chat, completions, embeddings, responses) or
 * under "response" (responses API stream events). */
static void find_usage(const char *doc, size_t len, struct rd_usage *u)
{
    static const char *const nested[] = {"response", "usage", NULL};
    struct rd_json_span v;
    /* "usage" comes last but one or two short fields: read from the tail. */
    if (rd_json_scan_find_top(doc, len, "usage", &v) == 0 || rd_json_scan_find(doc, len, nested, &v) == 0)
        if (v.n > 0 && v.p[0] == '{')
            read_usage(v.p, v.n, u);
}

int rd_provider_stream_event_openai(const struct rd_provider *p, const struct rd_stream_event *ev,
                                    struct rd_usage *usage)
{
    (void)p;
    if (ev->data_len == 6 && memcmp(ev->data, "[DONE]", 6) == 0)
        return 1;
    /* Most chunks carry no usage (or "usage":null): look before parsing. */
    if (memmem(ev->data, ev->data_len, "\"usage\"", 7) != NULL)
        find_usage(ev->data, ev->data_len, usage);
    /* The responses API ends with response.completed (and has no [DONE]). */
    if (ev->name_len == 18 && memcmp(ev->name, "response.completed", 18) == 0)
        return 1;
    return 0;
}

void rd_provider_body_usage_openai(const struct rd_provider *p, const char *body, size_t len,
                                   struct rd_usage *usage)
{
    (void)p;
    find_usage(body, len, usage); /* one pass: usage is in almost every body */
}


bool rd_provider_query_name_is(const char *p, size_t n, const char *want)
{
    size_t w = 0, wl = strlen(want);
    for (size_t i = 0; i < n; i++, w++) {
        char c = p[i];
        if (c == '%' && i + 2 < n && rd_hex_value(p[i + 1]) >= 0 && rd_hex_value(p[i + 2]) >= 0) {
            c = (char)(rd_hex_value(p[i + 1]) * 16 + rd_hex_value(p[i + 2]));
            i += 2;
        } else if (c == '+') {
            c = ' ';
        }
        if (w >= wl || c != want[w])
            return false;
    }
    return w == wl;
}

int rd_provider_redact_query(const struct rd_provider *p, const char *query, struct rd_buf *out)
{
    int rc = 0;
    const char *q = query ? query : "";
    while (*q) {
        const char *amp = strchr(q, '&');
        size_t n = amp ? (size_t)(amp - q) : strlen(q);
        const char *eq = memchr(q, '=', n);
        size_t name_len = eq ? (size_t)(eq - q) : n;
        bool secret = false;
        for (size_t i = 0; p && p->secret_query_params && p->secret_query_params[i] && !secret; i++)
            secret = rd_provider_query_name_is(q, name_len, p->secret_query_params[i]);
        if (secret && eq)
            rc |= rd_buf_append(out, q, name_len + 1) | rd_buf_appends(out, RD_REDACTED);
        else
            rc |= rd_buf_append(out, q, n);
        if (amp)
            rc |= rd_buf_append(out, "&", 1);
        q += n + (amp != NULL);
    }
    return rc < 0 ? RD_ETOOBIG : 0;
}
