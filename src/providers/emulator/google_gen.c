/* :generateContent and :streamGenerateContent: generated text or a function
 * call per candidate, as one GenerateContentResponse, as SSE chunks
 * (alt=sse) or as a JSON array sent element by element (no alt=sse), with
 * Google's field names and cumulative usageMetadata. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include "providers/emulator/google_int.h"
#include "providers/emulator/text.h"
#include "util/buf.h"
#include "util/mem.h"

/* Deepest parameter schema a generated function call follows. */
#define SCHEMA_DEPTH_MAX 8
/* createTime (Vertex) is this epoch second plus an offset below a year from
 * the request hash: plausible, and deterministic. */
#define CREATE_TIME_BASE 1735689600

struct cand {
    struct rd_emu_text text;  /* text answer (empty when call is set) */
    struct json_object *call; /* {"name","args"}: a functionCall part's value, owned; NULL: text */
    uint32_t tokens;          /* output tokens of this candidate */
};

struct answer {
    struct cand *c; /* owned, n entries */
    size_t n;
    uint32_t prompt_tokens, output_tokens;
    char id[RD_GEMU_ID_MAX];
    char create_time[40];
};

static void add(struct json_object *o, const char *k, struct json_object *v)
{
    json_object_object_add(o, k, v);
}

static void answer_free(struct answer *a)
{
    for (size_t i = 0; i < a->n; i++) {
        rd_emu_text_free(&a->c[i].text);
        json_object_put(a->c[i].call);
    }
    free(a->c);
    memset(a, 0, sizeof *a);
}

/* ---- function calls ----------------------------------------------------- */

static const char *schema_type(struct json_object *schema)
{
    const char *t = rd_json_get_str(schema, "type");
    return t ? t : "";
}

static bool type_is(const char *t, const char *want)
{
    return strcasecmp(t, want) == 0;
}

/* A value that fits schema (Gemini's OpenAPI subset, upper- or lower-case
 * types, or JSON Schema): the first enum value, else a fixed value per type,
 * nested objects and one-element arrays followed to SCHEMA_DEPTH_MAX. */
static struct json_object *value_for(struct json_object *schema, const uint8_t seed[RD_SHA256_LEN], int depth)
{
    struct json_object *en = rd_json_get(schema, "enum");
    if (json_object_is_type(en, json_type_array) && rd_gemu_len(en) > 0)
        return json_object_get(json_object_array_get_idx(en, 0));
    const char *t = schema_type(schema);
    if (type_is(t, "integer"))
        return json_object_new_int64(1 + seed[0] % 10);
    if (type_is(t, "number"))
        return json_object_new_double(1.5);
    if (type_is(t, "boolean"))
        return json_object_new_boolean(1);
    if (type_is(t, "array")) {
        struct json_object *a = json_object_new_array();
        if (depth < SCHEMA_DEPTH_MAX)
            json_object_array_add(a, value_for(rd_json_get(schema, "items"), seed, depth + 1));
        return a;
    }
    if (type_is(t, "object") || rd_json_get(schema, "properties")) {
        struct json_object *o = json_object_new_object();
        struct json_object *props = rd_json_get(schema, "properties");
        struct json_object *req = rd_json_get(schema, "required");
        if (depth >= SCHEMA_DEPTH_MAX || !json_object_is_type(props, json_type_object))
            return o;
        bool only_required = json_object_is_type(req, json_type_array) && rd_gemu_len(req) > 0;
        json_object_object_foreach(props, name, sub)
        {
            bool wanted = !only_required;
            for (size_t i = 0; only_required && i < rd_gemu_len(req); i++) {
                const char *r = json_object_get_string(json_object_array_get_idx(req, i));
                wanted = wanted || (r && strcmp(r, name) == 0);
            }
            if (wanted)
                add(o, name, value_for(sub, seed, depth + 1));
        }
        return o;
    }
    return json_object_new_string("rubberduck");
}

static bool name_allowed(struct json_object *allowed, const char *name)
{
    if (!json_object_is_type(allowed, json_type_array) || rd_gemu_len(allowed) == 0)
        return true;
    for (size_t i = 0; i < rd_gemu_len(allowed); i++) {
        const char *a = json_object_get_string(json_object_array_get_idx(allowed, i));
        if (a && strcmp(a, name) == 0)
            return true;
    }
    return false;
}

/* True when the last content answers a function call: the model should then
 * reply with text, or an agent loop would never end. */
static bool last_is_function_response(struct json_object *body)
{
    struct json_object *contents = rd_json_get(body, "contents");
    size_t n = rd_gemu_len(contents);
    struct json_object *parts = rd_json_get(json_object_array_get_idx(contents, n - 1), "parts");
    for (size_t i = 0; i < rd_gemu_len(parts); i++)
        if (rd_json_get(json_object_array_get_idx(parts, i), "functionResponse"))
            return true;
    return false;
}

/* The function to call: the first declared one the toolConfig allows, unless
 * functionCallingConfig.mode is NONE or the last turn was a function
 * response. NULL: answer with text. Borrowed from the body. */
static struct json_object *pick_function(struct json_object *body)
{
    struct json_object *cfg = rd_json_get(rd_json_get(body, "toolConfig"), "functionCallingConfig");
    const char *mode = rd_json_get_str(cfg, "mode");
    if ((mode && strcasecmp(mode, "NONE") == 0) || last_is_function_response(body))
        return NULL;
    struct json_object *allowed = rd_json_get(cfg, "allowedFunctionNames");
    struct json_object *tools = rd_json_get(body, "tools");
    for (size_t i = 0; i < rd_gemu_len(tools); i++) {
        struct json_object *decls = rd_json_get(json_object_array_get_idx(tools, i), "functionDeclarations");
        for (size_t k = 0; k < rd_gemu_len(decls); k++) {
            struct json_object *d = json_object_array_get_idx(decls, k);
            const char *name = rd_json_get_str(d, "name");
            if (name && name[0] && name_allowed(allowed, name))
                return d;
        }
    }
    return NULL;
}

static struct json_object *make_call(struct json_object *decl, const uint8_t seed[RD_SHA256_LEN], uint32_t *tokens)
{
    struct json_object *schema = rd_json_get(decl, "parameters");
    if (schema == NULL)
        schema = rd_json_get(decl, "parametersJsonSchema");
    struct json_object *call = json_object_new_object();
    add(call, "name", json_object_new_string(rd_json_get_str(decl, "name")));
    add(call, "args", schema ? value_for(schema, seed, 0) : json_object_new_object());
    size_t n = 0;
    (void)rd_json_str(call, &n);
    *tokens = rd_emu_tokens_estimate(n);
    return call;
}

/* ---- the answer --------------------------------------------------------- */

static void create_time(const struct rd_gemu_ctx *c, char *out, size_t cap)
{
    uint8_t h[RD_SHA256_LEN];
    rd_emu_subseed(c->seed, "createTime", 0, h);
    uint32_t x = (uint32_t)h[0] << 24 | (uint32_t)h[1] << 16 | (uint32_t)h[2] << 8 | h[3];
    time_t t = (time_t)(CREATE_TIME_BASE + (int64_t)(x % (365u * 24 * 3600)));
    struct tm tm;
    if (gmtime_r(&t, &tm) == NULL || strftime(out, cap, "%Y-%m-%dT%H:%M:%S", &tm) == 0)
        abort();
    size_t n = strlen(out);
    snprintf(out + n, cap - n, ".%06uZ", (unsigned)(x % 1000000u));
}

/* Reads generationConfig and builds every candidate. -1 with the 400 rendered. */
static int answer_build(struct rd_gemu_ctx *c, struct answer *a)
{
    struct rd_buf echo;
    rd_buf_init(&echo, 0);
    struct json_object *gc = rd_json_get(c->body, "generationConfig");
    int64_t max = 0, count = 1;
    if (rd_gemu_prompt(c, c->body, &echo, &a->prompt_tokens) < 0 ||
        rd_gemu_int(c, gc, "maxOutputTokens", "generation_config.max_output_tokens", 1, INT32_MAX, 0, &max) < 0 ||
        rd_gemu_int(c, gc, "candidateCount", "generation_config.candidate_count", 1, RD_GEMU_MAX_CANDIDATES, 1,
                    &count) < 0) {
        rd_buf_free(&echo);
        return -1;
    }
    uint32_t max_tokens = max == 0 || max > RD_GEMU_MAX_GEN_TOKENS ? RD_GEMU_MAX_GEN_TOKENS : (uint32_t)max;
    struct json_object *decl = pick_function(c->body);
    a->n = (size_t)count;
    a->c = rd_calloc(a->n, sizeof *a->c);
    for (size_t i = 0; i < a->n; i++) {
        uint8_t seed[RD_SHA256_LEN];
        rd_emu_subseed(c->seed, "candidate", (uint32_t)i, seed);
        if (decl) {
            a->c[i].call = make_call(decl, seed, &a->c[i].tokens);
        } else {
            rd_emu_text_generate(seed, echo.data, echo.len, max_tokens, &a->c[i].text);
            a->c[i].tokens = (uint32_t)a->c[i].text.n;
        }
        a->output_tokens += a->c[i].tokens;
    }
    rd_gemu_id(c, "responseId", a->id);
    if (c->f->vertex)
        create_time(c, a->create_time, sizeof a->create_time);
    rd_buf_free(&echo);
    return 0;
}

static const char *finish_reason(const struct cand *k)
{
    return k->call == NULL && k->text.truncated ? "MAX_TOKENS" : "STOP";
}

/* {"content":{"parts":[part],"role":"model"},"finishReason"?,"index":i}. */
static struct json_object *candidate(size_t index, struct json_object *part, const char *finish)
{
    struct json_object *parts = json_object_new_array();
    json_object_array_add(parts, part);
    struct json_object *content = json_object_new_object();
    add(content, "parts", parts);
    add(content, "role", json_object_new_string("model"));
    struct json_object *cand = json_object_new_object();
    add(cand, "content", content);
    if (finish)
        add(cand, "finishReason", json_object_new_string(finish));
    add(cand, "index", json_object_new_int64((int64_t)index));
    return cand;
}

static struct json_object *text_part(const char *s, size_t n)
{
    struct json_object *p = json_object_new_object();
    add(p, "text", rd_json_new_strn(s, n));
    return p;
}

static struct json_object *call_part(struct json_object *call)
{
    struct json_object *p = json_object_new_object();
    add(p, "functionCall", json_object_get(call));
    return p;
}

static struct json_object *modality(uint32_t tokens)
{
    struct json_object *d = json_object_new_object();
    add(d, "modality", json_object_new_string("TEXT"));
    add(d, "tokenCount", json_object_new_int64(tokens));
    struct json_object *a = json_object_new_array();
    json_object_array_add(a, d);
    return a;
}

/* One GenerateContentResponse: candidates (consumed), usage with output
 * tokens so far, modelVersion, responseId (and Vertex's createTime). */
static struct json_object *response(const struct rd_gemu_ctx *c, const struct answer *a, struct json_object *cands,
                                    uint32_t output)
{
    struct json_object *u = json_object_new_object();
    add(u, "promptTokenCount", json_object_new_int64(a->prompt_tokens));
    add(u, "candidatesTokenCount", json_object_new_int64(output));
    add(u, "totalTokenCount", json_object_new_int64((int64_t)a->prompt_tokens + output));
    if (c->f->vertex)
        add(u, "trafficType", json_object_new_string("ON_DEMAND"));
    add(u, "promptTokensDetails", modality(a->prompt_tokens));
    if (c->f->vertex)
        add(u, "candidatesTokensDetails", modality(output));
    struct json_object *root = json_object_new_object();
    add(root, "candidates", cands);
    add(root, "usageMetadata", u);
    add(root, "modelVersion", json_object_new_string(c->model));
    if (c->f->vertex)
        add(root, "createTime", json_object_new_string(a->create_time));
    add(root, "responseId", json_object_new_string(a->id));
    return root;
}

void rd_gemu_generate(struct rd_gemu_ctx *c)
{
    struct answer a = {0};
    if (answer_build(c, &a) == 0) {
        struct json_object *cands = json_object_new_array();
        for (size_t i = 0; i < a.n; i++) {
            struct cand *k = &a.c[i];
            struct json_object *part = k->call ? call_part(k->call) : text_part(k->text.s, k->text.len);
            json_object_array_add(cands, candidate(i, part, finish_reason(k)));
        }
        /* Tagged with every generated token: a paced answer arrives after the
         * time the whole generation would take. */
        rd_gemu_json(c->out, response(c, &a, cands, a.output_tokens), a.output_tokens);
    }
    answer_free(&a);
}

/* ---- streaming ---------------------------------------------------------- */

/* alt=sse among the query's parameters. */
static bool wants_sse(const char *q)
{
    for (const char *p = q ? q : ""; *p;) {
        const char *e = strchr(p, '&');
        size_t n = e ? (size_t)(e - p) : strlen(p);
        if (n == 7 && memcmp(p, "alt=sse", 7) == 0)
            return true;
        p += n + (e != NULL);
    }
    return false;
}

struct framing {
    bool sse;
    size_t sent; /* chunks sent, for the array's separators */
};

/* One chunk: "data: <obj>\r\n\r\n" (SSE), or the array's next element. */
static void emit(struct rd_emu_reply *out, struct framing *fr, struct json_object *obj, uint32_t tokens)
{
    struct rd_buf b;
    rd_buf_init(&b, 0);
    size_t len = 0;
    const char *s = rd_json_str(obj, &len);
    int rc;
    if (fr->sse)
        rc = rd_buf_appends(&b, "data: ") | rd_buf_append(&b, s, len) | rd_buf_appends(&b, "\r\n\r\n");
    else
        rc = rd_buf_appends(&b, fr->sent == 0 ? "[" : ",\r\n") | rd_buf_append(&b, s, len);
    if (rc != 0)
        abort();
    rd_emu_reply_add(out, b.data, b.len, tokens);
    rd_buf_free(&b);
    json_object_put(obj);
    fr->sent++;
}

/* Chunk k carries, for each candidate still generating, its next
 * RD_GEMU_STREAM_TOKENS text pieces (or its whole function call), with the
 * finishReason on the candidate's last chunk and usage cumulative on every
 * chunk, as Gemini streams. */
void rd_gemu_stream(struct rd_gemu_ctx *c)
{
    struct answer a = {0};
    if (answer_build(c, &a) < 0) {
        answer_free(&a);
        return;
    }
    struct framing fr = {.sse = wants_sse(c->req->query), .sent = 0};
    rd_emu_reply_free(c->out);
    c->out->status = 200;
    c->out->content_type = rd_strdup(fr.sse ? "text/event-stream" : "application/json; charset=UTF-8");
    c->out->stream = true;
    uint32_t output = 0;
    for (size_t step = 0;; step++) {
        struct json_object *cands = json_object_new_array();
        uint32_t tokens = 0;
        for (size_t i = 0; i < a.n; i++) {
            struct cand *k = &a.c[i];
            size_t from = step * RD_GEMU_STREAM_TOKENS;
            size_t pieces = k->call ? 1 : k->text.n;
            if (from >= pieces && !(from == 0 && pieces == 0))
                continue;
            size_t to = from + RD_GEMU_STREAM_TOKENS < pieces ? from + RD_GEMU_STREAM_TOKENS : pieces;
            struct json_object *part;
            uint32_t t;
            if (k->call) {
                part = call_part(k->call);
                t = k->tokens;
            } else {
                const char *p0 = k->text.s, *p1 = k->text.s;
                if (to > from) {
                    (void)rd_emu_text_piece(&k->text, from, &p0);
                    size_t last = rd_emu_text_piece(&k->text, to - 1, &p1);
                    p1 += last;
                }
                part = text_part(p0, (size_t)(p1 - p0));
                t = (uint32_t)(to - from);
            }
            json_object_array_add(cands, candidate(i, part, to >= pieces ? finish_reason(k) : NULL));
            tokens += t;
        }
        if (rd_gemu_len(cands) == 0) {
            json_object_put(cands);
            break;
        }
        output += tokens;
        emit(c->out, &fr, response(c, &a, cands, output), tokens);
    }
    if (!fr.sse)
        rd_emu_reply_add(c->out, "]", 1, 0);
    answer_free(&a);
}
