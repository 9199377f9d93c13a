/* The OpenAI-compatible emulator: dispatch by the kind of the route the
 * engine matched in the provider's table, error bodies, the models routes and
 * the helpers the other route handlers share. Every answer is a pure function
 * of the dialect and the request. */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "providers/emulator/openai_int.h"
#include "providers/emulator/text.h"
#include "providers/provider.h"
#include "util/mem.h"

static const char PARSE_ERROR[] =
    "We could not parse the JSON body of your request. (HINT: This likely means you aren't using your HTTP library "
    "correctly. The OpenAI API expects a JSON payload, but what was sent was not valid JSON. If you have trouble "
    "figuring out how to fix this, please contact us through our help center at help.openai.com.)";

/* Longest path or model id quoted back in an error message. */
#define ECHO_PATH_MAX 512

enum feature { FEAT_ALWAYS, FEAT_EMBEDDINGS, FEAT_RESPONSES };

static void models(struct rd_emu_ctx *c);

/* What the emulator does with each kind of route. Which method and path make
 * a route is the provider's table (providers/openai.c), shared with the
 * forwarder; this table only says, per kind, whether the body must be a JSON
 * object, which dialect feature it needs, and who answers. */
struct kind_handler {
    enum rd_req_kind kind;
    bool json_body;
    enum feature feature;
    void (*handler)(struct rd_emu_ctx *c);
};

static const struct kind_handler HANDLERS[] = {
    {RD_REQ_CHAT, true, FEAT_ALWAYS, rd_emu_oai_chat},
    {RD_REQ_COMPLETION, true, FEAT_ALWAYS, rd_emu_oai_completions},
    {RD_REQ_EMBEDDING, true, FEAT_EMBEDDINGS, rd_emu_oai_embeddings},
    {RD_REQ_RESPONSES, true, FEAT_RESPONSES, rd_emu_oai_responses},
    {RD_REQ_MODELS, false, FEAT_ALWAYS, models},
};

/* ---- rendering ---------------------------------------------------------- */

static void add(struct json_object *o, const char *k, struct json_object *v)
{
    json_object_object_add(o, k, v);
}

static struct json_object *str_or_null(const char *s)
{
    return s ? json_object_new_string(s) : NULL;
}

void rd_emu_oai_error(struct rd_emu_reply *out, int status, const char *param, const char *code, const char *fmt, ...)
{
    /* Messages quote at most ECHO_PATH_MAX bytes of input, so 1 KiB holds
     * them; a longer one would be cut rather than grown. */
    char msg[1024];
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    size_t len = n < 0 ? 0 : (size_t)n < sizeof msg ? (size_t)n : sizeof msg - 1;

    struct json_object *err = json_object_new_object();
    add(err, "message", rd_json_new_strn(msg, len));
    add(err, "type", json_object_new_string("invalid_request_error"));
    add(err, "param", str_or_null(param));
    add(err, "code", str_or_null(code));
    struct json_object *root = json_object_new_object();
    add(root, "error", err);

    rd_emu_oai_json(out, root, 0);
    out->status = status;
}

void rd_emu_oai_json(struct rd_emu_reply *out, struct json_object *obj, uint32_t tokens)
{
    rd_emu_reply_json(out, obj, "application/json", tokens);
}

void rd_emu_oai_sse_begin(struct rd_emu_reply *out)
{
    rd_emu_reply_free(out);
    out->status = 200;
    out->content_type = rd_strdup("text/event-stream; charset=utf-8");
    out->stream = true;
}

void rd_emu_oai_sse(struct rd_emu_reply *out, const char *event, struct json_object *obj, uint32_t tokens)
{
    struct rd_buf b;
    rd_buf_init(&b, 0);
    size_t len = 0;
    const char *s = rd_json_str(obj, &len);
    int rc = 0;
    if (event)
        rc |= rd_buf_appends(&b, "event: ") | rd_buf_appends(&b, event) | rd_buf_appends(&b, "\n");
    rc |= rd_buf_appends(&b, "data: ") | rd_buf_append(&b, s, len) | rd_buf_appends(&b, "\n\n");
    if (rc != 0)
        abort(); /* the buffer is uncapped; only OOM could fail, and that aborts earlier */
    rd_emu_reply_add(out, b.data, b.len, tokens);
    rd_buf_free(&b);
    json_object_put(obj);
}

void rd_emu_oai_sse_done(struct rd_emu_reply *out)
{
    static const char done[] = "data: [DONE]\n\n";
    rd_emu_reply_add(out, done, sizeof done - 1, 0);
}

/* Copies at most ECHO_PATH_MAX bytes of s with anything but printable ASCII
 * replaced by '?', so error messages stay valid UTF-8 JSON strings. */
static char *printable(const char *s, size_t n)
{
    if (n > ECHO_PATH_MAX)
        n = ECHO_PATH_MAX;
    char *p = rd_strndup(s, n);
    for (size_t i = 0; i < n; i++)
        if ((unsigned char)p[i] < 0x20 || (unsigned char)p[i] >= 0x7f)
            p[i] = '?';
    return p;
}

/* ---- parameters --------------------------------------------------------- */

static const char *type_name(struct json_object *v)
{
    switch (json_object_get_type(v)) {
    case json_type_string: return "a string";
    case json_type_int: return "an integer";
    case json_type_double: return "a decimal";
    case json_type_boolean: return "a boolean";
    case json_type_object: return "an object";
    case json_type_array: return "an array";
    default: return "null";
    }
}

int rd_emu_oai_missing(struct rd_emu_ctx *c, const char *param)
{
    rd_emu_oai_error(c->out, 400, param, "missing_required_parameter", "Missing required parameter: '%s'.", param);
    return -1;
}

int rd_emu_oai_bad_type(struct rd_emu_ctx *c, const char *param, const char *expected, struct json_object *got)
{
    rd_emu_oai_error(c->out, 400, param, "invalid_type", "Invalid type for '%s': expected %s, but got %s instead.",
                     param, expected, type_name(got));
    return -1;
}

int rd_emu_oai_int_param(struct rd_emu_ctx *c, const char *key, int64_t min, int64_t max, int64_t dflt,
                         int64_t *val)
{
    struct json_object *v = rd_json_get(c->body, key);
    *val = dflt;
    if (v == NULL)
        return 0;
    if (!rd_json_is_int(v))
        return rd_emu_oai_bad_type(c, key, "an integer", v);
    int64_t x = json_object_get_int64(v);
    if (x < min) {
        rd_emu_oai_error(c->out, 400, key, "integer_below_min_value",
                         "Invalid '%s': integer below minimum value. Expected a value >= %lld, but got %lld instead.",
                         key, (long long)min, (long long)x);
        return -1;
    }
    if (x > max) {
        rd_emu_oai_error(c->out, 400, key, "integer_above_max_value",
                         "Invalid '%s': integer above maximum value. Expected a value <= %lld, but got %lld instead.",
                         key, (long long)max, (long long)x);
        return -1;
    }
    *val = x;
    return 0;
}

const char *rd_emu_oai_model(struct rd_emu_ctx *c)
{
    /* Azure: the deployment decides, whatever the body says. */
    if (c->d->model_from_request && c->req->model && c->req->model[0])
        return c->req->model;
    struct json_object *v = rd_json_get(c->body, "model");
    if (v != NULL && !json_object_is_type(v, json_type_string)) {
        rd_emu_oai_bad_type(c, "model", "a string", v);
        return NULL;
    }
    if (v != NULL && json_object_get_string_len(v) > 0)
        return json_object_get_string(v);
    if (c->d->default_model)
        return c->d->default_model;
    rd_emu_oai_missing(c, "model");
    return NULL;
}

/* ---- deterministic fields ----------------------------------------------- */

void rd_emu_oai_id(const struct rd_emu_ctx *c, const char *prefix, const char *label, size_t nbytes,
                   char out[RD_EMU_ID_MAX])
{
    uint8_t h[RD_SHA256_LEN];
    char hex[2 * RD_SHA256_LEN + 1];
    if (nbytes > RD_SHA256_LEN)
        nbytes = RD_SHA256_LEN;
    rd_emu_subseed(c->seed, label, 0, h);
    rd_hex(h, nbytes, hex);
    size_t pl = strlen(prefix);
    if (pl > RD_EMU_ID_MAX - 1 - 2 * nbytes)
        abort(); /* prefixes are short literals */
    memcpy(out, prefix, pl);
    memcpy(out + pl, hex, 2 * nbytes + 1);
}

int64_t rd_emu_oai_created(const struct rd_emu_ctx *c)
{
    uint8_t h[RD_SHA256_LEN];
    rd_emu_subseed(c->seed, "created", 0, h);
    uint32_t x = (uint32_t)h[0] << 24 | (uint32_t)h[1] << 16 | (uint32_t)h[2] << 8 | h[3];
    return RD_EMU_CREATED_BASE + (int64_t)(x % (365u * 24 * 3600));
}

/* The seed is SHA-256 over the path and every top-level field but "stream"
 * and "stream_options" (in request order, values re-serialised by json-c),
 * so a streamed and a plain request for the same thing get the same text. */
static void compute_seed(struct rd_emu_ctx *c)
{
    struct rd_buf b;
    rd_buf_init(&b, 0);
    int rc = rd_buf_appends(&b, c->req->path) | rd_buf_append(&b, "", 1);
    if (c->req->seed != 0) {
        uint8_t le[8];
        for (int i = 0; i < 8; i++)
            le[i] = (uint8_t)(c->req->seed >> (8 * i));
        rc |= rd_buf_append(&b, le, sizeof le);
    }
    json_object_object_foreach(c->body, key, val)
    {
        if (strcmp(key, "stream") == 0 || strcmp(key, "stream_options") == 0)
            continue;
        size_t len = 0;
        const char *s = val ? rd_json_str(val, &len) : "null";
        if (val == NULL)
            len = 4;
        rc |= rd_buf_appends(&b, key) | rd_buf_append(&b, "", 1) | rd_buf_append(&b, s, len) |
              rd_buf_append(&b, "", 1);
    }
    if (rc != 0)
        abort();
    rd_sha256(b.data, b.len, c->seed);
    rd_buf_free(&b);
}

void rd_emu_oai_content_text(struct json_object *content, struct rd_buf *buf, uint32_t *extra)
{
    int rc = 0;
    if (json_object_is_type(content, json_type_string)) {
        rc = rd_buf_append(buf, json_object_get_string(content), (size_t)json_object_get_string_len(content));
    } else if (json_object_is_type(content, json_type_array)) {
        size_t n = json_object_array_length(content);
        bool first = true;
        for (size_t i = 0; i < n; i++) {
            struct json_object *part = json_object_array_get_idx(content, i);
            struct json_object *text = rd_json_get(part, "text");
            const char *type = rd_json_get_str(part, "type");
            if (text && json_object_is_type(text, json_type_string)) {
                if (!first)
                    rc |= rd_buf_append(buf, "\n", 1);
                rc |= rd_buf_append(buf, json_object_get_string(text), (size_t)json_object_get_string_len(text));
                first = false;
            } else if (type && (strcmp(type, "image_url") == 0 || strcmp(type, "input_image") == 0)) {
                *extra += RD_EMU_IMAGE_TOKENS;
            }
        }
    }
    if (rc != 0)
        abort();
}

/* ---- models ------------------------------------------------------------- */

static struct json_object *model_object(const struct rd_emu_dialect *d, const char *id)
{
    struct json_object *m = json_object_new_object();
    add(m, "id", json_object_new_string(id));
    add(m, "object", json_object_new_string("model"));
    add(m, "created", json_object_new_int64(RD_EMU_MODEL_CREATED));
    add(m, "owned_by", json_object_new_string(d->owned_by));
    return m;
}

static void models_list(struct rd_emu_ctx *c)
{
    struct json_object *data = json_object_new_array();
    for (size_t i = 0; c->d->models[i]; i++)
        json_object_array_add(data, model_object(c->d, c->d->models[i]));
    if (c->d->models_bare_array) {
        rd_emu_oai_json(c->out, data, 0);
        return;
    }
    struct json_object *root = json_object_new_object();
    add(root, "object", json_object_new_string("list"));
    add(root, "data", data);
    rd_emu_oai_json(c->out, root, 0);
}

/* id is the route's capture: a pointer into the path, not NUL-terminated. */
static void models_get(struct rd_emu_ctx *c, const char *id, size_t n)
{
    for (size_t i = 0; c->d->models[i]; i++) {
        if (strlen(c->d->models[i]) == n && memcmp(id, c->d->models[i], n) == 0) {
            rd_emu_oai_json(c->out, model_object(c->d, c->d->models[i]), 0);
            return;
        }
    }
    char *shown = printable(id, n);
    rd_emu_oai_error(c->out, 404, NULL, "model_not_found",
                     "The model `%s` does not exist or you do not have access to it.", shown);
    free(shown);
}

/* GET /v1/models lists; GET /v1/models/{id} (a route whose model comes from
 * a capture, so the id is never empty and holds no '/') retrieves one. A
 * capture number past the match's captures would be a table bug: it lists. */
static void models(struct rd_emu_ctx *c)
{
    const struct rd_route_match *m = c->req->match;
    unsigned from = m->route->model_from;
    if (from == RD_MODEL_IN_BODY || from > m->ncap)
        models_list(c);
    else
        models_get(c, m->cap[from - 1].p, m->cap[from - 1].n);
}

/* ---- entry point -------------------------------------------------------- */

static bool has_feature(const struct rd_emu_dialect *d, enum feature f)
{
    return f == FEAT_ALWAYS || (f == FEAT_EMBEDDINGS && d->has_embeddings) || (f == FEAT_RESPONSES && d->has_responses);
}

/* The handler of the matched route, or NULL: no route (unknown path, or a
 * known path with another method), or a kind this dialect does not serve. */
static const struct kind_handler *find_handler(const struct rd_emu_dialect *d, const struct rd_route_match *m)
{
    if (m == NULL || m->route == NULL)
        return NULL;
    for (size_t i = 0; i < sizeof HANDLERS / sizeof HANDLERS[0]; i++)
        if (HANDLERS[i].kind == m->route->kind)
            return has_feature(d, HANDLERS[i].feature) ? &HANDLERS[i] : NULL;
    return NULL;
}

/* A fixed JSON error body (the dialect's own 404s). */
static void fixed_error(struct rd_emu_reply *out, int status, const char *body)
{
    rd_emu_reply_free(out);
    out->status = status;
    out->content_type = rd_strdup("application/json");
    rd_emu_reply_add(out, body, strlen(body), 0);
}

static bool is_listed(const char *const *names, const char *s, size_t n)
{
    for (size_t i = 0; names && names[i]; i++)
        if (strlen(names[i]) == n && memcmp(names[i], s, n) == 0)
            return true;
    return false;
}

/* Whether the deployment a route names exists (dialect deployments_checked):
 * a key of the configuration's deployments block, or a model of the list. */
static bool deployment_exists(const struct rd_emu_dialect *d, const struct rd_emu_request *req, const char *name,
                              size_t n)
{
    if (is_listed(d->models, name, n))
        return true;
    /* json-c's getters take non-const pointers; nothing is modified. */
    struct json_object *deps = rd_json_get((struct json_object *)req->config, "deployments");
    if (!json_object_is_type(deps, json_type_object))
        return false;
    json_object_object_foreach(deps, key, val)
    {
        (void)val;
        if (strlen(key) == n && memcmp(key, name, n) == 0)
            return true;
    }
    return false;
}

/* The deployment of a route whose model is a path capture, for dialects
 * that check them; false when the route names none (the models routes'
 * capture is a model id, and v1 routes name the model in the body). */
static bool names_missing_deployment(const struct rd_emu_dialect *d, const struct rd_emu_request *req)
{
    const struct rd_route_match *m = req->match;
    unsigned from = m->route->model_from;
    if (!d->deployments_checked || d->deployment_not_found_body == NULL || m->route->kind == RD_REQ_MODELS ||
        from == RD_MODEL_IN_BODY || from > m->ncap)
        return false;
    return !deployment_exists(d, req, m->cap[from - 1].p, m->cap[from - 1].n);
}

int rd_emu_openai(const struct rd_emu_dialect *d, const struct rd_emu_request *req, struct rd_emu_reply *out)
{
    memset(out, 0, sizeof *out);
    const struct kind_handler *r = find_handler(d, req->match);
    if (r == NULL && d->unknown_route_body) {
        fixed_error(out, 404, d->unknown_route_body);
        return 0;
    }
    if (r != NULL && names_missing_deployment(d, req)) {
        fixed_error(out, 404, d->deployment_not_found_body);
        return 0;
    }
    if (r == NULL) {
        /* OpenAI answers a wrong method on a known path the same way. */
        const char *method = req->method ? req->method : "";
        const char *path = req->path ? req->path : "";
        char *m = printable(method, strlen(method));
        char *p = printable(path, strlen(path));
        rd_emu_oai_error(out, 404, NULL, NULL, "Invalid URL (%s %s)", m, p);
        free(m);
        free(p);
        return 0;
    }
    struct rd_emu_ctx c = {.d = d, .req = req, .out = out};
    if (r->json_body) {
        struct rd_json_err jerr;
        const char *body = req->body ? req->body : "";
        size_t body_len = req->body ? req->body_len : 0;
        if (rd_json_parse(body, body_len, RD_EMU_MAX_BODY, &c.body, &jerr) < 0 ||
            !json_object_is_type(c.body, json_type_object)) {
            json_object_put(c.body);
            rd_emu_oai_error(out, 400, NULL, NULL, "%s", PARSE_ERROR);
            return 0;
        }
        compute_seed(&c);
    }
    r->handler(&c);
    json_object_put(c.body);
    return 0;
}
