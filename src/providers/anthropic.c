/* Anthropic: https://api.anthropic.com. The Messages API (plain and SSE with
 * named events), token counting, models and the legacy text completions.
 * Auth is x-api-key (SDK 0.x) or Authorization: Bearer (SDK 1.x), both
 * forwarded untouched, as are anthropic-version and anthropic-beta: the
 * proxy never forces a version (the earlier Python proxy did, and broke
 * every beta feature). The hooks here are also the dialect of Claude on
 * Vertex AI and on Bedrock (their routes point .dialect at this provider). */
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include "providers/emulator/anthropic.h"
#include "providers/provider.h"
#include "util/json.h"
#include "util/json_scan.h"

#define CHAT_FLAGS (RD_ROUTE_CACHEABLE | RD_ROUTE_STREAMABLE)

/* The emulator answers by this table too (rd_emu_anthropic). */
static const struct rd_route routes[] = {
    {"POST", "/v1/messages", RD_REQ_CHAT, CHAT_FLAGS, RD_MODEL_IN_BODY, NULL},
    {"POST", "/v1/messages/count_tokens", RD_REQ_TOKENS, 0, RD_MODEL_IN_BODY, NULL},
    {"GET", "/v1/models", RD_REQ_MODELS, 0, RD_MODEL_IN_BODY, NULL},
    {"GET", "/v1/models/*", RD_REQ_MODELS, 0, 1, NULL},
    {"POST", "/v1/complete", RD_REQ_COMPLETION, CHAT_FLAGS, RD_MODEL_IN_BODY, NULL},
};

static const char *const auth_headers[] = {"x-api-key", "authorization", NULL};
/* Messages; the legacy /v1/complete names it max_tokens_to_sample. */
static const char *const max_tokens_fields[] = {"max_tokens", "max_tokens_to_sample", NULL};
/* "stream" is the caller's to keep apart (rd_cache_key_input.stream);
 * metadata.user_id only identifies the end user for abuse detection. */
static const char *const cache_ignore_fields[] = {"stream", "metadata.user_id", NULL};

static const struct rd_ratelimit_names ratelimit_names = {
    .limit = "anthropic-ratelimit-requests-limit",
    .remaining = "anthropic-ratelimit-requests-remaining",
    .reset = "anthropic-ratelimit-requests-reset",
    .reset_style = RD_RESET_RFC3339,
};

const struct rd_provider rd_provider_anthropic = {
    .name = "anthropic",
    .display_name = "Anthropic",
    .default_upstream = "https://api.anthropic.com",
    .auth_headers = auth_headers,
    .dialect_name = "anthropic",
    .sdk_base_path = "", /* the SDK appends /v1/messages itself */
    .model_field = "model",
    .max_tokens_fields = max_tokens_fields,
    .cache_ignore_fields = cache_ignore_fields,
    .cache_round_fields = rd_provider_cache_round_top,
    .routes = routes,
    .nroutes = sizeof routes / sizeof routes[0],
    .request_id_header = "request-id",
    .error_style = RD_ERRSTYLE_ANTHROPIC,
    .ratelimit_headers = &ratelimit_names,
    .framing = RD_FRAMING_SSE,
    .emulator = &rd_emu_dialect_anthropic,
    .emulate = rd_emu_anthropic,
    .model = rd_provider_model_default,
    .prepare = rd_provider_prepare_passthrough,
    .error = rd_provider_error_anthropic,
    .stream_event = rd_provider_stream_event_anthropic,
    .body_usage = rd_provider_body_usage_anthropic,
    .stream_error_event = "error", /* event: error, then the error body */
};

/* ---- errors ------------------------------------------------------------- */

/* Anthropic's error types (docs.anthropic.com/en/api/errors) for each status
 * Rubberduck may answer with. Statuses the documentation does not list get
 * the nearest documented type: 408 is a timeout like 504, 431 a request that
 * is too large like 413, 503 an overload like 529; other 4xx are
 * invalid_request_error ("we may also use this error type for other 4XX
 * status codes") and other 5xx api_error. */
static const struct {
    int status;
    const char *type;
} ERROR_TYPES[] = {
    {400, "invalid_request_error"},
    {401, "authentication_error"},
    {402, "billing_error"},
    {403, "permission_error"},
    {404, "not_found_error"},
    {408, "timeout_error"},
    {409, "conflict_error"},
    {413, "request_too_large"},
    {429, "rate_limit_error"},
    {431, "request_too_large"},
    {500, "api_error"},
    {502, "api_error"},
    {503, "overloaded_error"},
    {504, "timeout_error"},
    {529, "overloaded_error"},
};

const char *rd_anthropic_error_type(int status)
{
    for (size_t i = 0; i < sizeof ERROR_TYPES / sizeof ERROR_TYPES[0]; i++)
        if (ERROR_TYPES[i].status == status)
            return ERROR_TYPES[i].type;
    return status >= 500 ? "api_error" : "invalid_request_error";
}

void rd_provider_error_anthropic(const struct rd_provider *p, const struct rd_error_spec *e, struct rd_hdrs *hdrs,
                                 struct rd_buf *body)
{
    struct json_object *err = json_object_new_object();
    json_object_object_add(err, "type", json_object_new_string(rd_anthropic_error_type(e->status)));
    json_object_object_add(err, "message", json_object_new_string(e->message ? e->message : ""));
    struct json_object *root = json_object_new_object();
    json_object_object_add(root, "type", json_object_new_string("error"));
    json_object_object_add(root, "error", err);
    /* The API repeats the request-id header in the body. */
    if (e->request_id)
        json_object_object_add(root, "request_id", json_object_new_string(e->request_id));
    size_t len;
    const char *s = rd_json_str(root, &len);
    (void)rd_buf_append(body, s, len);
    json_object_put(root);

    rd_provider_error_headers("application/json", p && p->request_id_header ? p->request_id_header : "request-id", e,
                              hdrs);
}

/* ---- usage -------------------------------------------------------------- */

/* Anthropic's usage fields as they appear in one object; -1 when absent or
 * null. input_tokens excludes the cache reads and writes; thinking is
 * output_tokens_details.thinking_tokens (the part of output_tokens spent
 * reasoning, reported by current API versions; older ones do not, and
 * reasoning then stays -1). */
struct anth_usage {
    int64_t input, output, cache_read, cache_write, thinking;
    bool bad;
};

static bool key_is(const char *k, size_t n, bool esc, const char *want)
{
    return !esc && n == strlen(want) && memcmp(k, want, n) == 0;
}

static void read_count(struct anth_usage *a, struct rd_json_span v, int64_t *dst)
{
    int64_t x;
    if (rd_json_span_int64(v, &x) == 0 && x >= 0)
        *dst = x;
    else if (!(v.n == 4 && memcmp(v.p, "null", 4) == 0))
        a->bad = true; /* a negative, fractional or non-numeric count: distrust the object */
}

static int on_output_details(void *ud, const char *k, size_t n, bool esc, struct rd_json_span v)
{
    struct anth_usage *a = ud;
    if (key_is(k, n, esc, "thinking_tokens"))
        read_count(a, v, &a->thinking);
    return 0;
}

static int on_usage_member(void *ud, const char *k, size_t n, bool esc, struct rd_json_span v)
{
    struct anth_usage *a = ud;
    if (key_is(k, n, esc, "input_tokens"))
        read_count(a, v, &a->input);
    else if (key_is(k, n, esc, "output_tokens"))
        read_count(a, v, &a->output);
    else if (key_is(k, n, esc, "cache_read_input_tokens"))
        read_count(a, v, &a->cache_read);
    else if (key_is(k, n, esc, "cache_creation_input_tokens"))
        read_count(a, v, &a->cache_write);
    else if (key_is(k, n, esc, "output_tokens_details") && v.n > 0 && v.p[0] == '{' &&
             rd_json_scan_members(v.p, v.n, on_output_details, a) < 0)
        a->bad = true;
    /* "cache_creation" (the 5m/1h split of cache_creation_input_tokens),
     * "server_tool_use" and "service_tier" add nothing to the counts. */
    return 0;
}

static int64_t nonneg(int64_t v)
{
    return v < 0 ? 0 : v;
}

/* Merges one usage object into u. Counts are cumulative (message_delta
 * repeats or updates what message_start said), so each present field
 * replaces the previous value; input is rebuilt from the raw input_tokens
 * and the two cache counts so that nothing is added twice, whichever of the
 * three a later event carries. */
static void merge(struct rd_usage *u, const struct anth_usage *a)
{
    int64_t raw_in = u->input >= 0 ? u->input - nonneg(u->cached) - nonneg(u->cache_write) : -1;
    int64_t cached = a->cache_read >= 0 ? a->cache_read : u->cached;
    int64_t cache_write = a->cache_write >= 0 ? a->cache_write : u->cache_write;
    if (a->input >= 0)
        raw_in = a->input;
    int64_t input = u->input;
    if (a->input >= 0 || a->cache_read >= 0 || a->cache_write >= 0) {
        if (__builtin_add_overflow(nonneg(raw_in), nonneg(cached), &input) ||
            __builtin_add_overflow(input, nonneg(cache_write), &input))
            return; /* absurd counts from a hostile upstream: keep what we had */
    }
    u->input = input;
    u->cached = cached;
    u->cache_write = cache_write;
    if (a->output >= 0)
        u->output = a->output;
    if (a->thinking >= 0)
        u->reasoning = a->thinking;
}

static void read_usage(const char *obj, size_t n, struct rd_usage *u)
{
    struct anth_usage a = {-1, -1, -1, -1, -1, false};
    if (n == 0 || obj[0] != '{')
        return;
    if (rd_json_scan_members(obj, n, on_usage_member, &a) == 0 && !a.bad)
        merge(u, &a);
}

/* The usage object at path in doc, if any. */
static void usage_at(const char *doc, size_t len, const char *const *path, struct rd_usage *u)
{
    struct rd_json_span v;
    if (rd_json_scan_find(doc, len, path, &v) == 0)
        read_usage(v.p, v.n, u);
}

static bool name_is(const char *p, size_t n, const char *want)
{
    return n == strlen(want) && memcmp(p, want, n) == 0;
}

int rd_provider_stream_event_anthropic(const struct rd_provider *p, const struct rd_stream_event *ev,
                                       struct rd_usage *usage)
{
    (void)p;
    if (ev->type == RD_STREAM_MSG_EXCEPTION)
        return 0;
    const char *name = ev->name;
    size_t name_len = ev->name_len;
    char type[32];
    if (name_len == 0) {
        /* Unnamed events (Bedrock's invoke stream decodes to the bare JSON):
         * the payload's "type" says the same as the SSE event line. */
        static const char *const tpath[] = {"type", NULL};
        int n = rd_json_scan_string(ev->data, ev->data_len, tpath, type, sizeof type);
        if (n <= 0)
            return 0;
        name = type;
        name_len = (size_t)n;
    }
    if (name_is(name, name_len, "message_stop"))
        return 1;
    if (name_is(name, name_len, "message_start")) {
        static const char *const path[] = {"message", "usage", NULL};
        usage_at(ev->data, ev->data_len, path, usage);
    } else if (name_is(name, name_len, "message_delta")) {
        static const char *const path[] = {"usage", NULL};
        usage_at(ev->data, ev->data_len, path, usage);
    }
    return 0;
}

void rd_provider_body_usage_anthropic(const struct rd_provider *p, const char *body, size_t len, struct rd_usage *usage)
{
    (void)p;
    /* A Message has "usage"; count_tokens answers {"input_tokens":N} with
     * no usage object, which is deliberate: counting is free, nothing was
     * consumed, so it reports no usage. Legacy completions carry none. */
    struct rd_json_span v;
    if (rd_json_scan_find_top(body, len, "usage", &v) == 0) /* last in a Message: read from the tail */
        read_usage(v.p, v.n, usage);
}
