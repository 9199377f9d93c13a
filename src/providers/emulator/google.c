/* The emulator's Google dialect: dispatch by the route the engine matched,
 * Google's error bodies, the models routes, countTokens and the prompt
 * counting the handlers share. Every answer is a pure function of the
 * flavour, the dialect and the request. */
#include "providers/emulator/google.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "providers/emulator/google_int.h"
#include "providers/emulator/text.h"
#include "providers/google.h"
#include "providers/provider.h"
#include "util/buf.h"
#include "util/mem.h"

/* Longest path or id quoted back in an error message. */
#define ECHO_MAX 512

static const char *const GOOGLE_MODELS[] = {
    "gemini-2.5-pro",
    "gemini-2.5-flash",
    "gemini-2.5-flash-lite",
    "gemini-2.0-flash",
    "gemini-2.0-flash-lite",
    "gemini-1.5-pro",
    "gemini-1.5-flash",
    "gemini-embedding-001",
    "text-embedding-004",
    "text-embedding-005",
    "text-multilingual-embedding-002",
    NULL,
};

const struct rd_emu_dialect rd_emu_dialect_google = {
    .owned_by = "google",
    .models = GOOGLE_MODELS,
    .default_model = NULL,
    .has_embeddings = true,
    .has_responses = false,
};

static const struct rd_gemu_flavour GEMINI = {.vertex = false, .api_version = "v1beta"};
static const struct rd_gemu_flavour VERTEX = {.vertex = true, .api_version = "v1beta1"};

static void models(struct rd_gemu_ctx *c);

/* What answers each Google method, by the verb after the ':' of the route's
 * pattern (the route table is the provider's: providers/gemini.c, vertex.c). */
static const struct {
    const char *verb;
    void (*handler)(struct rd_gemu_ctx *c);
} METHODS[] = {
    {"generateContent", rd_gemu_generate},       {"streamGenerateContent", rd_gemu_stream},
    {"countTokens", rd_gemu_count_tokens},       {"embedContent", rd_gemu_embed},
    {"batchEmbedContents", rd_gemu_batch_embed}, {"predict", rd_gemu_predict},
};

/* ---- rendering ---------------------------------------------------------- */

static void add(struct json_object *o, const char *k, struct json_object *v)
{
    json_object_object_add(o, k, v);
}

void rd_gemu_json(struct rd_emu_reply *out, struct json_object *obj, uint32_t tokens)
{
    rd_emu_reply_json(out, obj, "application/json; charset=UTF-8", tokens);
}

void rd_gemu_error(struct rd_emu_reply *out, int status, const char *fmt, ...)
{
    char msg[1024];
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    if (n < 0)
        msg[0] = '\0';
    struct rd_error_spec e = {.status = status, .message = msg, .request_id = NULL, .retry_after_s = -1};
    struct rd_buf b;
    rd_buf_init(&b, 0);
    rd_google_error_json(&e, &b);
    rd_emu_reply_free(out);
    out->status = status;
    out->content_type = rd_strdup("application/json; charset=UTF-8");
    rd_emu_reply_add(out, b.data ? b.data : "", b.len, 0);
    rd_buf_free(&b);
}

/* s[0..n) cut to ECHO_MAX bytes, anything but printable ASCII as '?'. */
static void printable(const char *s, size_t n, char *out, size_t cap)
{
    size_t k = 0;
    for (size_t i = 0; i < n && i < ECHO_MAX && k + 1 < cap; i++)
        out[k++] = (unsigned char)s[i] < 0x20 || (unsigned char)s[i] >= 0x7f ? '?' : s[i];
    out[k] = '\0';
}

void rd_gemu_id(const struct rd_gemu_ctx *c, const char *label, char out[RD_GEMU_ID_MAX])
{
    uint8_t h[RD_SHA256_LEN];
    rd_emu_subseed(c->seed, label, 0, h);
    size_t len = 0;
    char *b = rd_emu_base64(h, 18, &len); /* 24 characters, no padding */
    for (size_t i = 0; i < len; i++)
        out[i] = b[i] == '+' ? '-' : b[i] == '/' ? '_' : b[i];
    out[len] = '\0';
    free(b);
}

/* ---- parameters and prompt ---------------------------------------------- */

int rd_gemu_int(struct rd_gemu_ctx *c, struct json_object *obj, const char *key, const char *field, int64_t min,
                int64_t max, int64_t dflt, int64_t *val)
{
    struct json_object *v = rd_json_get(obj, key);
    *val = dflt;
    if (v == NULL)
        return 0;
    if (!rd_json_is_int(v)) {
        rd_gemu_error(c->out, 400, "Invalid value at '%s' (TYPE_INT32), %.64s", field, json_object_to_json_string(v));
        return -1;
    }
    int64_t x = json_object_get_int64(v);
    if (x < min || x > max) {
        rd_gemu_error(c->out, 400, "* %s: must be between %lld and %lld, got %lld.", field, (long long)min,
                      (long long)max, (long long)x);
        return -1;
    }
    *val = x;
    return 0;
}

uint32_t rd_gemu_content_tokens(struct json_object *content, struct rd_buf *text)
{
    struct json_object *parts = rd_json_get(content, "parts");
    if (!json_object_is_type(parts, json_type_array))
        return 0;
    uint64_t tokens = 0;
    bool first = true;
    for (size_t i = 0; i < rd_gemu_len(parts); i++) {
        struct json_object *part = json_object_array_get_idx(parts, i);
        struct json_object *t = rd_json_get(part, "text");
        if (json_object_is_type(t, json_type_string)) {
            size_t n = (size_t)json_object_get_string_len(t);
            tokens += rd_emu_tokens_estimate(n);
            if (text) {
                if ((!first && rd_buf_append(text, "\n", 1) < 0) ||
                    rd_buf_append(text, json_object_get_string(t), n) < 0)
                    abort();
                first = false;
            }
        } else if (rd_json_get(part, "inlineData") || rd_json_get(part, "fileData")) {
            tokens += RD_GEMU_IMAGE_TOKENS;
        } else if (part != NULL) {
            size_t n = 0;
            (void)rd_json_str(part, &n);
            tokens += rd_emu_tokens_estimate(n);
        }
    }
    return tokens > UINT32_MAX ? UINT32_MAX : (uint32_t)tokens;
}

static bool role_ok(struct json_object *role)
{
    if (role == NULL)
        return true;
    const char *r = json_object_is_type(role, json_type_string) ? json_object_get_string(role) : "";
    return strcmp(r, "user") == 0 || strcmp(r, "model") == 0 || strcmp(r, "function") == 0;
}

int rd_gemu_prompt(struct rd_gemu_ctx *c, struct json_object *req, struct rd_buf *echo, uint32_t *tokens)
{
    struct json_object *contents = rd_json_get(req, "contents");
    if (contents == NULL || (json_object_is_type(contents, json_type_array) && rd_gemu_len(contents) == 0)) {
        rd_gemu_error(c->out, 400, "* GenerateContentRequest.contents: contents is not specified\n");
        return -1;
    }
    if (!json_object_is_type(contents, json_type_array)) {
        rd_gemu_error(c->out, 400,
                      "Invalid JSON payload received. Unknown name \"contents\": Proto field is not "
                      "repeating, cannot start list.");
        return -1;
    }
    uint64_t total = 0;
    struct rd_buf text;
    rd_buf_init(&text, 0);
    for (size_t i = 0; i < rd_gemu_len(contents); i++) {
        struct json_object *m = json_object_array_get_idx(contents, i);
        struct json_object *parts = rd_json_get(m, "parts");
        if (!json_object_is_type(m, json_type_object) || !role_ok(rd_json_get(m, "role"))) {
            rd_buf_free(&text);
            rd_gemu_error(c->out, 400, "Please use a valid role: user, model.");
            return -1;
        }
        if (!json_object_is_type(parts, json_type_array) || rd_gemu_len(parts) == 0) {
            rd_buf_free(&text);
            rd_gemu_error(c->out, 400,
                          "* GenerateContentRequest.contents[%zu].parts: contents.parts must not be empty.\n", i);
            return -1;
        }
        const char *role = rd_json_get_str(m, "role");
        bool user = role == NULL || strcmp(role, "user") == 0;
        rd_buf_reset(&text);
        total += rd_gemu_content_tokens(m, &text);
        if (user && text.len > 0 && echo) {
            rd_buf_reset(echo);
            if (rd_buf_append(echo, text.data, text.len) < 0)
                abort();
        }
    }
    rd_buf_free(&text);
    total += rd_gemu_content_tokens(rd_json_get(req, "systemInstruction"), NULL);
    struct json_object *tools = rd_json_get(req, "tools");
    if (tools) {
        size_t n = 0;
        (void)rd_json_str(tools, &n);
        total += rd_emu_tokens_estimate(n);
    }
    *tokens = total > UINT32_MAX ? UINT32_MAX : (uint32_t)total;
    return 0;
}

/* ---- countTokens -------------------------------------------------------- */

/* Counts what generateContent would count as promptTokenCount, so the two
 * agree: {"contents":...} or {"generateContentRequest":{...}}. */
void rd_gemu_count_tokens(struct rd_gemu_ctx *c)
{
    struct json_object *req = rd_json_get(c->body, "generateContentRequest");
    if (!json_object_is_type(req, json_type_object))
        req = c->body;
    uint32_t tokens = 0;
    struct rd_buf text;
    rd_buf_init(&text, 0);
    if (rd_gemu_prompt(c, req, &text, &tokens) < 0) {
        rd_buf_free(&text);
        return;
    }
    struct json_object *root = json_object_new_object();
    add(root, "totalTokens", json_object_new_int64(tokens));
    if (c->f->vertex)
        add(root, "totalBillableCharacters", json_object_new_int64((int64_t)text.len));
    struct json_object *d = json_object_new_object();
    add(d, "modality", json_object_new_string("TEXT"));
    add(d, "tokenCount", json_object_new_int64(tokens));
    struct json_object *details = json_object_new_array();
    json_object_array_add(details, d);
    add(root, "promptTokensDetails", details);
    rd_gemu_json(c->out, root, 0);
    rd_buf_free(&text);
}

/* ---- models ------------------------------------------------------------- */

uint32_t rd_gemu_embed_dims(const char *model)
{
    return strncmp(model, "gemini-embedding", 16) == 0 ? 3072 : 768;
}

static bool is_embedding(const char *id)
{
    return strstr(id, "embedding") != NULL;
}

/* "gemini-2.0-flash" -> "Gemini 2.0 Flash". */
static void display_name(const char *id, char *out, size_t cap)
{
    size_t k = 0;
    bool start = true;
    for (const char *p = id; *p && k + 1 < cap; p++) {
        char ch = *p == '-' ? ' ' : *p;
        if (start && ch >= 'a' && ch <= 'z')
            ch = (char)(ch - 'a' + 'A');
        start = ch == ' ';
        out[k++] = ch;
    }
    out[k] = '\0';
}

static struct json_object *str_array(const char *const *v)
{
    struct json_object *a = json_object_new_array();
    for (size_t i = 0; v[i]; i++)
        json_object_array_add(a, json_object_new_string(v[i]));
    return a;
}

/* A Gemini API Model resource. */
static struct json_object *gemini_model(const char *id)
{
    static const char *const gen_methods[] = {"generateContent", "countTokens", "createCachedContent",
                                              "batchGenerateContent", NULL};
    static const char *const embed_methods[] = {"embedContent", "countTextTokens", "countTokens",
                                                "asyncBatchEmbedContent", NULL};
    char name[128], shown[96];
    snprintf(name, sizeof name, "models/%s", id);
    display_name(id, shown, sizeof shown);
    bool embed = is_embedding(id);
    bool thinking = strncmp(id, "gemini-2.5", 10) == 0;
    struct json_object *m = json_object_new_object();
    add(m, "name", json_object_new_string(name));
    add(m, "version", json_object_new_string("001"));
    add(m, "displayName", json_object_new_string(shown));
    add(m, "description",
        json_object_new_string(embed ? "Obtain a distributed representation of a text." : "Emulated by Rubberduck."));
    add(m, "inputTokenLimit", json_object_new_int64(embed ? 2048 : 1048576));
    add(m, "outputTokenLimit", json_object_new_int64(embed ? 1 : thinking ? 65536 : 8192));
    add(m, "supportedGenerationMethods", str_array(embed ? embed_methods : gen_methods));
    if (!embed) {
        add(m, "temperature", json_object_new_int64(1));
        add(m, "topP", json_object_new_double(0.95));
        add(m, "topK", json_object_new_int64(64));
        add(m, "maxTemperature", json_object_new_int64(2));
        if (thinking)
            add(m, "thinking", json_object_new_boolean(1));
    }
    return m;
}

/* A Vertex AI PublisherModel resource. */
static struct json_object *vertex_model(const char *id)
{
    char name[128], tmpl[192];
    snprintf(name, sizeof name, "publishers/google/models/%s", id);
    snprintf(tmpl, sizeof tmpl, "projects/{project}/locations/{location}/publishers/google/models/%s@001", id);
    struct json_object *m = json_object_new_object();
    add(m, "name", json_object_new_string(name));
    add(m, "versionId", json_object_new_string("001"));
    add(m, "openSourceCategory", json_object_new_string("PROPRIETARY"));
    add(m, "launchStage", json_object_new_string("GA"));
    add(m, "versionState", json_object_new_string("VERSION_STATE_STABLE"));
    add(m, "publisherModelTemplate", json_object_new_string(tmpl));
    return m;
}

static void models(struct rd_gemu_ctx *c)
{
    struct json_object *(*one)(const char *) = c->f->vertex ? vertex_model : gemini_model;
    const struct rd_route_match *m = c->req->match;
    unsigned from = m->route->model_from;
    if (from == RD_MODEL_IN_BODY || from > m->ncap) {
        struct json_object *list = json_object_new_array();
        for (size_t i = 0; c->d->models[i]; i++)
            json_object_array_add(list, one(c->d->models[i]));
        struct json_object *root = json_object_new_object();
        add(root, c->f->vertex ? "publisherModels" : "models", list);
        rd_gemu_json(c->out, root, 0);
        return;
    }
    for (size_t i = 0; c->d->models[i]; i++) {
        if (strcmp(c->model, c->d->models[i]) == 0) {
            rd_gemu_json(c->out, one(c->d->models[i]), 0);
            return;
        }
    }
    if (c->f->vertex)
        rd_gemu_error(c->out, 404, "Publisher Model `publishers/google/models/%s` not found.", c->model);
    else
        rd_gemu_error(c->out, 404,
                      "models/%s is not found for API version %s, or is not supported for get. Call ListModels to "
                      "see the list of available models and their supported methods.",
                      c->model, c->f->api_version);
}

/* ---- entry points ------------------------------------------------------- */

/* The verb after the last ':' of the route's pattern ("generateContent"). */
static const char *route_verb(const struct rd_route *r)
{
    const char *colon = strrchr(r->pattern, ':');
    return colon ? colon + 1 : "";
}

/* The seed is SHA-256 over the model, the request's emulator seed and every
 * top-level body member in request order (values re-serialised by json-c):
 * generateContent and streamGenerateContent of the same request get the
 * same text. */
static void compute_seed(struct rd_gemu_ctx *c)
{
    struct rd_buf b;
    rd_buf_init(&b, 0);
    int rc = rd_buf_appends(&b, "google\n") | rd_buf_appends(&b, c->model) | rd_buf_append(&b, "", 1);
    uint8_t le[8];
    for (int i = 0; i < 8; i++)
        le[i] = (uint8_t)(c->req->seed >> (8 * i));
    rc |= rd_buf_append(&b, le, sizeof le);
    json_object_object_foreach(c->body, key, val)
    {
        size_t len = 4;
        const char *s = val ? rd_json_str(val, &len) : "null";
        rc |= rd_buf_appends(&b, key) | rd_buf_append(&b, "", 1) | rd_buf_append(&b, s, len) | rd_buf_append(&b, "", 1);
    }
    if (rc != 0)
        abort();
    rd_sha256(b.data, b.len, c->seed);
    rd_buf_free(&b);
}

static void not_found(const struct rd_emu_request *req, struct rd_emu_reply *out)
{
    char path[ECHO_MAX + 1];
    printable(req->path ? req->path : "", req->path ? strlen(req->path) : 0, path, sizeof path);
    rd_gemu_error(out, 404, "The requested URL %s was not found on this server.", path);
}

static int emulate(const struct rd_gemu_flavour *f, const struct rd_emu_dialect *d, const struct rd_emu_request *req,
                   struct rd_emu_reply *out)
{
    memset(out, 0, sizeof *out);
    const struct rd_route_match *m = req->match;
    const struct rd_route *r = m ? m->route : NULL;
    if (r != NULL && r->dialect != NULL && r->dialect->emulate != NULL) {
        /* A route that speaks another provider's dialect (Claude on Vertex:
         * Anthropic's Messages API behind rawPredict) is answered by that
         * provider's emulator, which reads the model from the route's
         * capture when the route names it in the path. */
        return r->dialect->emulate(r->dialect->emulator, req, out);
    }
    if (r == NULL || r->dialect != NULL) {
        not_found(req, out);
        return 0;
    }
    struct rd_gemu_ctx c = {.f = f, .d = d, .req = req, .out = out};
    if (r->model_from != RD_MODEL_IN_BODY && r->model_from <= m->ncap)
        printable(m->cap[r->model_from - 1].p, m->cap[r->model_from - 1].n, c.model, sizeof c.model);
    if (r->kind == RD_REQ_MODELS) {
        models(&c);
        return 0;
    }
    void (*handler)(struct rd_gemu_ctx *) = NULL;
    for (size_t i = 0; i < sizeof METHODS / sizeof METHODS[0]; i++)
        if (strcmp(route_verb(r), METHODS[i].verb) == 0)
            handler = METHODS[i].handler;
    if (handler == NULL) {
        not_found(req, out);
        return 0;
    }
    struct rd_json_err jerr = {.msg = NULL, .pos = 0};
    if (rd_json_parse(req->body ? req->body : "", req->body ? req->body_len : 0, RD_GEMU_MAX_BODY, &c.body, &jerr) <
            0 ||
        !json_object_is_type(c.body, json_type_object)) {
        json_object_put(c.body);
        rd_gemu_error(out, 400, "Invalid JSON payload received. Unexpected token at byte %zu.", jerr.pos);
        return 0;
    }
    compute_seed(&c);
    handler(&c);
    json_object_put(c.body);
    return 0;
}

int rd_emu_gemini(const struct rd_emu_dialect *d, const struct rd_emu_request *req, struct rd_emu_reply *out)
{
    return emulate(&GEMINI, d, req, out);
}

int rd_emu_vertex(const struct rd_emu_dialect *d, const struct rd_emu_request *req, struct rd_emu_reply *out)
{
    return emulate(&VERTEX, d, req, out);
}
