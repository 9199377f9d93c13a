/* The Anthropic dialect: dispatch by the kind of the route the engine
 * matched in the provider's table (providers/anthropic.c), error bodies, the
 * models routes, token counting and the helpers the other files share. */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "providers/emulator/anthropic_int.h"
#include "providers/emulator/text.h"
#include "providers/provider.h"
#include "util/json_scan.h"
#include "util/mem.h"

/* Newest first, as GET /v1/models lists them. Display names and creation
 * dates are derived from the ids (model_info), so this list is the only
 * data to keep up to date. */
static const char *const CLAUDE_MODELS[] = {
    "claude-opus-4-5-20251101",   "claude-haiku-4-5-20251001",
    "claude-sonnet-4-5-20250929", "claude-opus-4-1-20250805",
    "claude-opus-4-20250514",     "claude-sonnet-4-20250514",
    "claude-3-7-sonnet-20250219", "claude-3-5-haiku-20241022",
    "claude-3-haiku-20240307",    NULL,
};

const struct rd_emu_dialect rd_emu_dialect_anthropic = {
    .owned_by = "anthropic",
    .models = CLAUDE_MODELS,
    .default_model = NULL, /* "model: Field required", as the API answers */
    .has_embeddings = false,
    .has_responses = false,
};

#define ECHO_MAX 256 /* bytes of a path or id quoted back in an error */
#define MODELS_LIMIT_DEFAULT 20
#define MODELS_LIMIT_MAX 1000

/* ---- rendering ---------------------------------------------------------- */

void rd_emu_anth_json(struct rd_emu_reply *out, struct json_object *obj, uint32_t tokens)
{
    rd_emu_reply_json(out, obj, "application/json", tokens);
}

void rd_emu_anthropic_error(struct rd_emu_reply *out, int status, const char *fmt, ...)
{
    /* Messages quote at most ECHO_MAX bytes of input: 1 KiB holds them. */
    char msg[1024];
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    size_t len = n < 0 ? 0 : (size_t)n < sizeof msg ? (size_t)n : sizeof msg - 1;
    struct json_object *err = json_object_new_object();
    json_object_object_add(err, "type", json_object_new_string(rd_anthropic_error_type(status)));
    json_object_object_add(err, "message", rd_json_new_strn(msg, len));
    struct json_object *root = json_object_new_object();
    json_object_object_add(root, "type", json_object_new_string("error"));
    json_object_object_add(root, "error", err);
    rd_emu_anth_json(out, root, 0);
    out->status = status;
}

void rd_emu_anthropic_sse_frame(struct rd_emu_reply *out, const char *event, const char *json, size_t len,
                                uint32_t tokens, void *ud)
{
    (void)ud;
    struct rd_buf b;
    rd_buf_init(&b, 0);
    int rc = rd_buf_appends(&b, "event: ") | rd_buf_appends(&b, event) | rd_buf_appends(&b, "\ndata: ") |
             rd_buf_append(&b, json, len) | rd_buf_appends(&b, "\n\n");
    if (rc != 0)
        abort(); /* uncapped buffer: only OOM fails, and that aborts first */
    rd_emu_reply_add(out, b.data, b.len, tokens);
    rd_buf_free(&b);
}

/* Copies at most ECHO_MAX bytes of s, anything but printable ASCII as '?'. */
static char *printable(const char *s, size_t n)
{
    if (n > ECHO_MAX)
        n = ECHO_MAX;
    char *p = rd_strndup(s, n);
    for (size_t i = 0; i < n; i++)
        if ((unsigned char)p[i] < 0x20 || (unsigned char)p[i] >= 0x7f)
            p[i] = '?';
    return p;
}

/* ---- request helpers ---------------------------------------------------- */

int rd_emu_anth_parse(const struct rd_emu_request *req, struct rd_emu_reply *out, struct json_object **body)
{
    const char *s = req->body ? req->body : "";
    size_t n = req->body ? req->body_len : 0;
    struct rd_json_err jerr = {0};
    *body = NULL;
    if (rd_json_parse(s, n, RD_EMU_ANTH_MAX_BODY, body, &jerr) < 0) {
        /* The API words it like Python's json module: position as line,
         * column and character offset. */
        size_t pos = jerr.pos < n ? jerr.pos : n, line = 1, col = 1;
        for (size_t i = 0; i < pos; i++) {
            if (s[i] == '\n') {
                line++;
                col = 1;
            } else {
                col++;
            }
        }
        rd_emu_anthropic_error(out, 400, "The request body is not valid JSON: %s: line %zu column %zu (char %zu)",
                               jerr.msg ? jerr.msg : "invalid JSON", line, col, pos);
        return -1;
    }
    if (!json_object_is_type(*body, json_type_object)) {
        json_object_put(*body);
        *body = NULL;
        rd_emu_anthropic_error(out, 400, "Input should be a valid dictionary or object to extract fields from");
        return -1;
    }
    return 0;
}

void rd_emu_anth_seed(const char *model, struct json_object *body, uint64_t proxy_seed, uint8_t out[RD_SHA256_LEN])
{
    struct rd_buf b;
    rd_buf_init(&b, 0);
    int rc = rd_buf_appends(&b, "anthropic") | rd_buf_append(&b, "", 1) | rd_buf_appends(&b, model ? model : "") |
             rd_buf_append(&b, "", 1);
    if (proxy_seed != 0) {
        uint8_t le[8];
        for (int i = 0; i < 8; i++)
            le[i] = (uint8_t)(proxy_seed >> (8 * i));
        rc |= rd_buf_append(&b, le, sizeof le);
    }
    json_object_object_foreach(body, key, val)
    {
        if (strcmp(key, "stream") == 0 || strcmp(key, "anthropic_version") == 0)
            continue;
        size_t len = 4;
        const char *v = val ? rd_json_str(val, &len) : "null";
        rc |= rd_buf_appends(&b, key) | rd_buf_append(&b, "", 1) | rd_buf_append(&b, v, len) | rd_buf_append(&b, "", 1);
    }
    if (rc != 0)
        abort();
    rd_sha256(b.data, b.len, out);
    rd_buf_free(&b);
}

void rd_emu_anth_id(const uint8_t seed[RD_SHA256_LEN], const char *label, const char *prefix,
                    char out[RD_EMU_ANTH_ID_MAX])
{
    static const char B62[] = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz";
    uint8_t h[RD_SHA256_LEN];
    rd_emu_subseed(seed, label, 0, h);
    size_t pl = strlen(prefix);
    if (pl + 2 + 22 + 1 > RD_EMU_ANTH_ID_MAX)
        abort(); /* prefixes are short literals */
    memcpy(out, prefix, pl);
    out[pl] = '0';
    out[pl + 1] = '1';
    for (size_t i = 0; i < 22; i++)
        out[pl + 2 + i] = B62[h[i] % 62];
    out[pl + 24] = '\0';
}

/* ---- models ------------------------------------------------------------- */

/* "claude-3-5-haiku-20241022" -> "Claude Haiku 3.5" and
 * "2024-10-22T00:00:00Z": the family words capitalised, then the version
 * numbers joined with dots, as Anthropic names them. */
static struct json_object *model_object(const char *id)
{
    char display[96] = "Claude";
    char version[32] = "";
    char created[32] = "2024-01-01T00:00:00Z";
    size_t dl = strlen(display), vl = 0;
    const char *p = id;
    while (*p) {
        const char *e = strchr(p, '-');
        size_t n = e ? (size_t)(e - p) : strlen(p);
        bool digits = n > 0 && strspn(p, "0123456789") >= n;
        if (digits && n == 8) {
            snprintf(created, sizeof created, "%.4s-%.2s-%.2sT00:00:00Z", p, p + 4, p + 6);
        } else if (digits && vl + n + 2 < sizeof version) {
            if (vl)
                version[vl++] = '.';
            memcpy(version + vl, p, n);
            vl += n;
            version[vl] = '\0';
        } else if (!digits && !(n == 6 && memcmp(p, "claude", 6) == 0) && dl + n + 2 < sizeof display) {
            display[dl++] = ' ';
            memcpy(display + dl, p, n);
            if (display[dl] >= 'a' && display[dl] <= 'z')
                display[dl] = (char)(display[dl] - 'a' + 'A');
            dl += n;
            display[dl] = '\0';
        }
        p += n;
        if (*p == '-')
            p++;
    }
    if (vl && dl + vl + 2 < sizeof display)
        snprintf(display + dl, sizeof display - dl, " %s", version);
    struct json_object *m = json_object_new_object();
    json_object_object_add(m, "type", json_object_new_string("model"));
    json_object_object_add(m, "id", json_object_new_string(id));
    json_object_object_add(m, "display_name", json_object_new_string(display));
    json_object_object_add(m, "created_at", json_object_new_string(created));
    return m;
}

/* The value of key in a query string ("a=1&b=2"), not decoded: model ids
 * and numbers need no decoding. NULL when absent. */
static const char *query_param(const char *q, const char *key, size_t *len)
{
    size_t kl = strlen(key);
    while (q && *q) {
        const char *amp = strchr(q, '&');
        size_t n = amp ? (size_t)(amp - q) : strlen(q);
        if (n > kl && memcmp(q, key, kl) == 0 && q[kl] == '=') {
            *len = n - kl - 1;
            return q + kl + 1;
        }
        q = amp ? amp + 1 : NULL;
    }
    return NULL;
}

/* Index of the model named id[0..n), or -1. */
static int model_index(const struct rd_emu_dialect *d, const char *id, size_t n)
{
    for (int i = 0; d->models[i]; i++)
        if (strlen(d->models[i]) == n && memcmp(d->models[i], id, n) == 0)
            return i;
    return -1;
}

static void models_list(const struct rd_emu_dialect *d, const struct rd_emu_request *req, struct rd_emu_reply *out)
{
    int count = 0;
    while (d->models[count])
        count++;
    long limit = MODELS_LIMIT_DEFAULT;
    size_t vl = 0;
    const char *v = query_param(req->query, "limit", &vl);
    if (v) {
        char tmp[16];
        char *end = NULL;
        snprintf(tmp, sizeof tmp, "%.*s", (int)(vl < 15 ? vl : 15), v);
        limit = strtol(tmp, &end, 10);
        if (vl == 0 || vl > 15 || *end != '\0' || limit < 1 || limit > MODELS_LIMIT_MAX) {
            rd_emu_anthropic_error(out, 400, "limit: Input should be between 1 and %d", MODELS_LIMIT_MAX);
            return;
        }
    }
    /* after_id pages forward (what the SDK's iterator sends), before_id
     * backward; an id the list does not have gives an empty page. */
    int from = 0, to = count;
    if ((v = query_param(req->query, "after_id", &vl)) != NULL) {
        int i = model_index(d, v, vl);
        from = i < 0 ? count : i + 1;
    }
    if ((v = query_param(req->query, "before_id", &vl)) != NULL) {
        int i = model_index(d, v, vl);
        to = i < 0 ? 0 : i;
        if (to - from > limit)
            from = to - (int)limit;
    }
    bool has_more = to - from > limit;
    if (has_more)
        to = from + (int)limit;
    struct json_object *data = json_object_new_array();
    for (int i = from; i < to; i++)
        json_object_array_add(data, model_object(d->models[i]));
    struct json_object *root = json_object_new_object();
    json_object_object_add(root, "data", data);
    json_object_object_add(root, "has_more", json_object_new_boolean(has_more));
    json_object_object_add(root, "first_id", from < to ? json_object_new_string(d->models[from]) : NULL);
    json_object_object_add(root, "last_id", from < to ? json_object_new_string(d->models[to - 1]) : NULL);
    rd_emu_anth_json(out, root, 0);
}

/* An id, or an alias: the id without its date ("claude-sonnet-4-5"), which
 * the API resolves to the dated model. */
static void models_get(const struct rd_emu_dialect *d, const char *id, size_t n, struct rd_emu_reply *out)
{
    for (size_t i = 0; d->models[i]; i++) {
        size_t ml = strlen(d->models[i]);
        bool alias = ml == n + 9 && memcmp(d->models[i], id, n) == 0 && d->models[i][n] == '-';
        if ((ml == n && memcmp(d->models[i], id, n) == 0) || alias) {
            rd_emu_anth_json(out, model_object(d->models[i]), 0);
            return;
        }
    }
    char *shown = printable(id, n);
    rd_emu_anthropic_error(out, 404, "model: %s", shown);
    free(shown);
}

static void models(const struct rd_emu_dialect *d, const struct rd_emu_request *req, struct rd_emu_reply *out)
{
    const struct rd_route_match *m = req->match;
    unsigned from = m->route->model_from;
    if (from == RD_MODEL_IN_BODY || from > m->ncap)
        models_list(d, req, out);
    else
        models_get(d, m->cap[from - 1].p, m->cap[from - 1].n, out);
}

/* ---- count_tokens ------------------------------------------------------- */

/* The count is the input_tokens the same body gets from /v1/messages. */
static void count_tokens(const struct rd_emu_request *req, struct rd_emu_reply *out)
{
    struct json_object *body = NULL;
    if (rd_emu_anth_parse(req, out, &body) < 0)
        return;
    struct json_object *model = rd_json_get(body, "model");
    struct rd_emu_anth_prompt p;
    if (model == NULL || !json_object_is_type(model, json_type_string)) {
        rd_emu_anthropic_error(out, 400, model ? "model: Input should be a valid string" : "model: Field required");
    } else if (rd_emu_anth_prompt(body, out, &p) == 0) {
        struct json_object *root = json_object_new_object();
        json_object_object_add(root, "input_tokens", json_object_new_int64(p.input_tokens));
        rd_emu_anth_json(out, root, 0);
        rd_emu_anth_prompt_free(&p);
    }
    json_object_put(body);
}

/* ---- entry point -------------------------------------------------------- */

/* The model a route names in its path (Claude on Vertex AI:
 * .../publishers/anthropic/models/{model}:rawPredict, whose body has no
 * "model"), as a printable copy the caller frees; NULL when the route takes
 * it from the body. */
static char *path_model(const struct rd_emu_request *req)
{
    const struct rd_route_match *m = req->match;
    unsigned from = m && m->route ? m->route->model_from : RD_MODEL_IN_BODY;
    if (from == RD_MODEL_IN_BODY || from > m->ncap)
        return NULL;
    return printable(m->cap[from - 1].p, m->cap[from - 1].n);
}

/* "stream" is found with the scanner (no second tree: the builder parses
 * the body); a value that is not a boolean is the API's 400. A malformed
 * body is left to the builder, which reports it. */
static void messages(const struct rd_emu_request *req, struct rd_emu_reply *out)
{
    static const char *const path[] = {"stream", NULL};
    struct rd_json_span v;
    bool stream = false;
    if (req->body && rd_json_scan_find(req->body, req->body_len, path, &v) == 0) {
        stream = v.n == 4 && memcmp(v.p, "true", 4) == 0;
        bool other =
            !stream && !(v.n == 5 && memcmp(v.p, "false", 5) == 0) && !(v.n == 4 && memcmp(v.p, "null", 4) == 0);
        if (other) {
            rd_emu_anthropic_error(out, 400, "stream: Input should be a valid boolean");
            return;
        }
    }
    char *model = path_model(req);
    rd_emu_anthropic_messages(req, model, stream, NULL, NULL, out);
    free(model);
}

int rd_emu_anthropic(const struct rd_emu_dialect *d, const struct rd_emu_request *req, struct rd_emu_reply *out)
{
    memset(out, 0, sizeof *out);
    const struct rd_route *r = req->match ? req->match->route : NULL;
    switch (r ? r->kind : RD_REQ_OTHER) {
    case RD_REQ_CHAT: messages(req, out); break;
    case RD_REQ_TOKENS: count_tokens(req, out); break;
    case RD_REQ_MODELS: models(d, req, out); break;
    case RD_REQ_COMPLETION: rd_emu_anth_complete(req, out); break;
    default:
        /* An unknown path, or a known one with another method. */
        rd_emu_anthropic_error(out, 404, "Not Found");
        break;
    }
    return 0;
}
