/* The Messages answer (rd_emu_anthropic_messages): validation as the API
 * does it, the extended-thinking block when "thinking" is enabled, the
 * generated text or tool call, and its rendering as one Message or as the
 * event sequence message_start, content_block_start, ping,
 * content_block_delta..., content_block_stop, message_delta, message_stop,
 * through a framing callback shared with Vertex and Bedrock.
 * The output tokens the events are tagged with add up to usage.output_tokens,
 * so pacing and usage agree. */
#include <stdlib.h>
#include <string.h>

#include "providers/emulator/anthropic_int.h"
#include "providers/emulator/text.h"
#include "util/mem.h"

#define JSON_PIECE_MAX 12     /* bytes of tool input per input_json_delta */
#define THINK_MIN_BUDGET 1024 /* thinking.budget_tokens: the API's minimum */
#define THINK_MAX_TOKENS 48   /* tokens of emulated thinking, at most */

struct answer {
    const char *model; /* borrowed (caller or body) */
    char id[RD_EMU_ANTH_ID_MAX];
    struct rd_emu_text think; /* the thinking block's text; empty: no block */
    char *signature;          /* its signature (owned), NULL: no thinking block */
    struct rd_emu_text text;  /* may be empty */
    /* The tool call, when there is one. */
    const char *tool_name; /* borrowed from the body */
    char tool_id[RD_EMU_ANTH_ID_MAX];
    struct json_object *tool_input; /* owned */
    uint32_t tool_name_tokens;
    uint32_t tool_tokens; /* of the input JSON, as streamed */
    const char *stop_reason;
    const char *stop_sequence; /* borrowed from the body, NULL unless stop_reason is stop_sequence */
    uint32_t input_tokens, output_tokens;
};

static struct json_object *jstr(const char *s)
{
    return json_object_new_string(s);
}

static struct json_object *jint(int64_t v)
{
    return json_object_new_int64(v);
}

static void add(struct json_object *o, const char *k, struct json_object *v)
{
    json_object_object_add(o, k, v);
}

/* ---- validation --------------------------------------------------------- */

static int max_tokens(struct json_object *body, struct rd_emu_reply *out, uint32_t *budget)
{
    struct json_object *v = rd_json_get(body, "max_tokens");
    if (v == NULL) {
        rd_emu_anthropic_error(out, 400, "max_tokens: Field required");
        return -1;
    }
    if (!rd_json_is_int(v)) {
        rd_emu_anthropic_error(out, 400, "max_tokens: Input should be a valid integer");
        return -1;
    }
    int64_t x = json_object_get_int64(v);
    if (x < 1) {
        rd_emu_anthropic_error(out, 400, "max_tokens: Input should be greater than or equal to 1");
        return -1;
    }
    *budget = x > RD_EMU_ANTH_MAX_GEN ? RD_EMU_ANTH_MAX_GEN : (uint32_t)x;
    return 0;
}

static int stop_sequences(struct json_object *body, struct rd_emu_reply *out, struct json_object **list)
{
    struct json_object *v = rd_json_get(body, "stop_sequences");
    *list = NULL;
    if (v == NULL)
        return 0;
    if (!json_object_is_type(v, json_type_array)) {
        rd_emu_anthropic_error(out, 400, "stop_sequences: Input should be a valid list");
        return -1;
    }
    size_t n = json_object_array_length(v);
    for (size_t i = 0; i < n; i++) {
        if (!json_object_is_type(json_object_array_get_idx(v, i), json_type_string)) {
            rd_emu_anthropic_error(out, 400, "stop_sequences.%zu: Input should be a valid string", i);
            return -1;
        }
    }
    *list = v;
    return 0;
}

/* "thinking": absent or {"type":"disabled"} leaves *on false;
 * {"type":"enabled","budget_tokens":N} needs 1024 <= N < max_tokens and no
 * forced tool call, as the API checks. */
static int thinking(struct json_object *body, const struct rd_emu_anth_prompt *p, struct rd_emu_reply *out, bool *on)
{
    *on = false;
    struct json_object *v = rd_json_get(body, "thinking");
    if (v == NULL)
        return 0;
    const char *type = json_object_is_type(v, json_type_object) ? rd_json_get_str(v, "type") : NULL;
    if (type == NULL) {
        rd_emu_anthropic_error(out, 400,
                               "thinking: Input should be a valid dictionary or object to extract fields from");
        return -1;
    }
    if (strcmp(type, "disabled") == 0)
        return 0;
    if (strcmp(type, "enabled") != 0) {
        rd_emu_anthropic_error(out, 400,
                               "thinking: Input tag '%s' found using 'type' does not match any of the expected tags: "
                               "'enabled', 'disabled'",
                               type);
        return -1;
    }
    struct json_object *b = rd_json_get(v, "budget_tokens");
    if (b == NULL || !rd_json_is_int(b)) {
        rd_emu_anthropic_error(out, 400,
                               b ? "thinking.enabled.budget_tokens: Input should be a valid integer"
                                 : "thinking.enabled.budget_tokens: Field required");
        return -1;
    }
    int64_t n = json_object_get_int64(b);
    if (n < THINK_MIN_BUDGET) {
        rd_emu_anthropic_error(out, 400, "thinking.enabled.budget_tokens: Input should be greater than or equal to %d",
                               THINK_MIN_BUDGET);
        return -1;
    }
    if (n >= json_object_get_int64(rd_json_get(body, "max_tokens"))) {
        rd_emu_anthropic_error(out, 400, "`max_tokens` must be greater than `thinking.budget_tokens`");
        return -1;
    }
    if (p->tool_forced) {
        rd_emu_anthropic_error(out, 400, "Thinking may not be enabled when tool_choice forces tool use.");
        return -1;
    }
    *on = true;
    return 0;
}

/* ---- generation --------------------------------------------------------- */

/* The thinking block: a short deterministic text and a signature (base64
 * of 96 seed-derived bytes, the shape of the API's opaque signatures). */
static void think(struct answer *a, const struct rd_emu_anth_prompt *p, const uint8_t seed[RD_SHA256_LEN])
{
    uint8_t sub[RD_SHA256_LEN], sig[3 * RD_SHA256_LEN];
    rd_emu_subseed(seed, "thinking", 0, sub);
    rd_emu_text_generate(sub, p->echo.data, p->echo.len, THINK_MAX_TOKENS, &a->think);
    for (uint32_t i = 0; i < 3; i++)
        rd_emu_subseed(seed, "signature", i, sig + i * RD_SHA256_LEN);
    size_t n = 0;
    a->signature = rd_emu_base64(sig, sizeof sig, &n);
}

/* Cuts t just before its first stop sequence; returns the sequence or NULL. */
static const char *apply_stop(struct rd_emu_text *t, struct json_object *stops)
{
    if (stops == NULL || t->len == 0)
        return NULL;
    size_t best = SIZE_MAX;
    const char *which = NULL;
    size_t n = json_object_array_length(stops);
    for (size_t i = 0; i < n; i++) {
        struct json_object *s = json_object_array_get_idx(stops, i);
        size_t sl = (size_t)json_object_get_string_len(s);
        if (sl == 0)
            continue;
        const char *hit = memmem(t->s, t->len, json_object_get_string(s), sl);
        if (hit && (size_t)(hit - t->s) < best) {
            best = (size_t)(hit - t->s);
            which = json_object_get_string(s);
        }
    }
    if (which == NULL)
        return NULL;
    size_t pieces = 0;
    while (pieces < t->n && (pieces == 0 ? 0 : t->ends[pieces - 1]) < best)
        pieces++;
    t->n = pieces;
    if (pieces)
        t->ends[pieces - 1] = best;
    t->len = best;
    t->s[best] = '\0';
    t->truncated = false;
    return which;
}

/* A fixed sentence as a text whose pieces are its words (each with its
 * leading space), at most max of them. */
static void sentence(const char *a, const char *b, const char *c, uint32_t max, struct rd_emu_text *t)
{
    struct rd_buf buf;
    rd_buf_init(&buf, 0);
    if (rd_buf_appends(&buf, a) < 0 || rd_buf_appends(&buf, b) < 0 || rd_buf_appends(&buf, c) < 0)
        abort();
    size_t cap = 8;
    size_t *ends = rd_malloc(cap * sizeof *ends), n = 0;
    bool truncated = false;
    for (size_t i = 1; i <= buf.len; i++) {
        if (i < buf.len && buf.data[i] != ' ')
            continue;
        if (n == max) {
            truncated = true;
            break;
        }
        if (n == cap) {
            cap *= 2;
            ends = rd_realloc(ends, cap * sizeof *ends);
        }
        ends[n++] = i;
    }
    size_t len = n ? ends[n - 1] : 0;
    t->s = rd_buf_steal(&buf, &t->len);
    t->len = len;
    t->s[len] = '\0';
    t->ends = ends;
    t->n = n;
    t->truncated = truncated;
}

static uint32_t json_tokens(const char *s, size_t n)
{
    uint32_t t = 0;
    for (size_t off = 0; off < n;) {
        size_t len = n - off < JSON_PIECE_MAX ? n - off : JSON_PIECE_MAX;
        while (off + len < n && ((unsigned char)s[off + len] & 0xC0) == 0x80)
            len++;
        t += rd_emu_tokens_estimate(len);
        off += len;
    }
    return t;
}

static void generate(struct answer *a, const struct rd_emu_anth_prompt *p, struct json_object *stops,
                     const uint8_t seed[RD_SHA256_LEN], uint32_t budget, bool thinking_on)
{
    uint8_t sub[RD_SHA256_LEN];
    rd_emu_anth_id(seed, "id", "msg_", a->id);
    a->stop_reason = "end_turn";
    uint32_t thought = 0;
    if (thinking_on) {
        think(a, p, seed);
        thought = (uint32_t)a->think.n; /* budget_tokens < max_tokens: always room */
        budget -= thought < budget ? thought : budget - 1;
    }
    if (p->tool == NULL) {
        rd_emu_subseed(seed, "text", 0, sub);
        rd_emu_text_generate(sub, p->echo.data, p->echo.len, budget, &a->text);
        a->stop_sequence = apply_stop(&a->text, stops);
        if (a->stop_sequence)
            a->stop_reason = "stop_sequence";
        else if (a->text.truncated)
            a->stop_reason = "max_tokens";
        a->output_tokens = thought + (uint32_t)a->text.n;
        return;
    }
    const char *name = rd_json_get_str(p->tool, "name");
    /* Forced calls (tool_choice any/tool) come without a preamble, as the
     * API prefills the call. */
    if (p->tool_forced)
        sentence("", "", "", 0, &a->text);
    else
        sentence("I'll use the ", name, " tool.", budget, &a->text);
    a->output_tokens = thought + (uint32_t)a->text.n;
    if (a->text.truncated) {
        a->stop_reason = "max_tokens";
        return;
    }
    rd_emu_subseed(seed, "tool", 0, sub);
    struct json_object *input = rd_emu_anth_tool_input(p->tool, sub, p->echo.data, p->echo.len);
    size_t len = 0;
    const char *js = rd_json_str(input, &len);
    uint32_t name_tokens = 1 + rd_emu_tokens_estimate(strlen(name));
    uint32_t tokens = json_tokens(js, len);
    if ((uint64_t)a->output_tokens - thought + name_tokens + tokens > budget) {
        /* No room for the whole call: the answer stops where the budget
         * ends, before the tool_use block. */
        json_object_put(input);
        a->stop_reason = "max_tokens";
        return;
    }
    a->tool_name = name;
    a->tool_input = input;
    a->tool_name_tokens = name_tokens;
    a->tool_tokens = tokens;
    a->output_tokens += name_tokens + tokens;
    rd_emu_anth_id(seed, "tool-id", "toolu_", a->tool_id);
    a->stop_reason = "tool_use";
}

static void answer_free(struct answer *a)
{
    rd_emu_text_free(&a->text);
    rd_emu_text_free(&a->think);
    free(a->signature);
    a->signature = NULL;
    json_object_put(a->tool_input);
    a->tool_input = NULL;
}

/* ---- rendering ---------------------------------------------------------- */

static struct json_object *usage(const struct answer *a, uint32_t output_tokens)
{
    struct json_object *u = json_object_new_object();
    add(u, "input_tokens", jint(a->input_tokens));
    add(u, "cache_creation_input_tokens", jint(0));
    add(u, "cache_read_input_tokens", jint(0));
    struct json_object *cc = json_object_new_object();
    add(cc, "ephemeral_5m_input_tokens", jint(0));
    add(cc, "ephemeral_1h_input_tokens", jint(0));
    add(u, "cache_creation", cc);
    add(u, "output_tokens", jint(output_tokens));
    add(u, "service_tier", jstr("standard"));
    return u;
}

static struct json_object *tool_block(const struct answer *a, struct json_object *input)
{
    struct json_object *b = json_object_new_object();
    add(b, "type", jstr("tool_use"));
    add(b, "id", jstr(a->tool_id));
    add(b, "name", jstr(a->tool_name));
    add(b, "input", input);
    return b;
}

static struct json_object *thinking_block(const char *s, size_t n, const char *signature)
{
    struct json_object *b = json_object_new_object();
    add(b, "type", jstr("thinking"));
    add(b, "thinking", rd_json_new_strn(s, n));
    add(b, "signature", jstr(signature));
    return b;
}

static struct json_object *text_block(const char *s, size_t n)
{
    struct json_object *b = json_object_new_object();
    add(b, "type", jstr("text"));
    add(b, "text", rd_json_new_strn(s, n));
    return b;
}

/* The Message object; final false gives message_start's version (no
 * content, no stop reason yet, one output token). */
static struct json_object *message(const struct answer *a, bool final)
{
    struct json_object *content = json_object_new_array();
    if (final && a->signature)
        json_object_array_add(content, thinking_block(a->think.s, a->think.len, a->signature));
    if (final && a->text.len)
        json_object_array_add(content, text_block(a->text.s, a->text.len));
    if (final && a->tool_input) {
        struct json_object *in = NULL;
        if (json_object_deep_copy(a->tool_input, &in, NULL) != 0)
            abort();
        json_object_array_add(content, tool_block(a, in));
    }
    struct json_object *m = json_object_new_object();
    add(m, "id", jstr(a->id));
    add(m, "type", jstr("message"));
    add(m, "role", jstr("assistant"));
    add(m, "model", jstr(a->model));
    add(m, "content", content);
    add(m, "stop_reason", final ? jstr(a->stop_reason) : NULL);
    add(m, "stop_sequence", final && a->stop_sequence ? jstr(a->stop_sequence) : NULL);
    add(m, "usage", usage(a, final ? a->output_tokens : 1));
    return m;
}

struct emitter {
    rd_emu_anthropic_frame_fn frame;
    void *ud;
    struct rd_emu_reply *out;
};

/* Frames one event: {"type":event, ...fields of obj} (obj consumed). */
static void emit(struct emitter *e, const char *event, struct json_object *obj, uint32_t tokens)
{
    size_t len = 0;
    const char *s = rd_json_str(obj, &len);
    e->frame(e->out, event, s, len, tokens, e->ud);
    json_object_put(obj);
}

static struct json_object *event(const char *type)
{
    struct json_object *o = json_object_new_object();
    add(o, "type", jstr(type));
    return o;
}

static void block_start(struct emitter *e, int index, struct json_object *block, uint32_t tokens)
{
    struct json_object *o = event("content_block_start");
    add(o, "index", jint(index));
    add(o, "content_block", block);
    emit(e, "content_block_start", o, tokens);
}

static void block_delta(struct emitter *e, int index, const char *type, const char *field, const char *s, size_t n,
                        uint32_t tokens)
{
    struct json_object *d = json_object_new_object();
    add(d, "type", jstr(type));
    add(d, field, rd_json_new_strn(s, n));
    struct json_object *o = event("content_block_delta");
    add(o, "index", jint(index));
    add(o, "delta", d);
    emit(e, "content_block_delta", o, tokens);
}

static void block_stop(struct emitter *e, int index)
{
    struct json_object *o = event("content_block_stop");
    add(o, "index", jint(index));
    emit(e, "content_block_stop", o, 0);
}

static void stream_tool(struct emitter *e, const struct answer *a, int index)
{
    block_start(e, index, tool_block(a, json_object_new_object()), a->tool_name_tokens);
    size_t n = 0;
    const char *js = rd_json_str(a->tool_input, &n);
    block_delta(e, index, "input_json_delta", "partial_json", "", 0, 0);
    for (size_t off = 0; off < n;) {
        size_t len = n - off < JSON_PIECE_MAX ? n - off : JSON_PIECE_MAX;
        while (off + len < n && ((unsigned char)js[off + len] & 0xC0) == 0x80)
            len++;
        block_delta(e, index, "input_json_delta", "partial_json", js + off, len, rd_emu_tokens_estimate(len));
        off += len;
    }
    block_stop(e, index);
}

static void stream(struct emitter *e, const struct answer *a)
{
    struct json_object *start = event("message_start");
    add(start, "message", message(a, false));
    emit(e, "message_start", start, 0);
    int index = 0;
    bool pinged = false;
    if (a->signature) {
        /* thinking_delta per piece, then the signature, as the API does */
        block_start(e, index, thinking_block("", 0, ""), 0);
        emit(e, "ping", event("ping"), 0);
        pinged = true;
        for (size_t i = 0; i < a->think.n; i++) {
            const char *p = NULL;
            size_t len = rd_emu_text_piece(&a->think, i, &p);
            block_delta(e, index, "thinking_delta", "thinking", p, len, 1);
        }
        block_delta(e, index, "signature_delta", "signature", a->signature, strlen(a->signature), 0);
        block_stop(e, index++);
    }
    if (a->text.len) {
        block_start(e, index, text_block("", 0), 0);
        if (!pinged)
            emit(e, "ping", event("ping"), 0);
        pinged = true;
        for (size_t i = 0; i < a->text.n; i++) {
            const char *p = NULL;
            size_t len = rd_emu_text_piece(&a->text, i, &p);
            block_delta(e, index, "text_delta", "text", p, len, 1);
        }
        block_stop(e, index++);
    }
    if (!pinged)
        emit(e, "ping", event("ping"), 0);
    if (a->tool_input)
        stream_tool(e, a, index);
    struct json_object *d = json_object_new_object();
    add(d, "stop_reason", jstr(a->stop_reason));
    add(d, "stop_sequence", a->stop_sequence ? jstr(a->stop_sequence) : NULL);
    struct json_object *md = event("message_delta");
    add(md, "delta", d);
    struct json_object *u = json_object_new_object();
    add(u, "output_tokens", jint(a->output_tokens));
    add(md, "usage", u);
    emit(e, "message_delta", md, 0);
    emit(e, "message_stop", event("message_stop"), 0);
}

/* ---- entry point -------------------------------------------------------- */

int rd_emu_anthropic_messages(const struct rd_emu_request *req, const char *model, bool stream_it,
                              rd_emu_anthropic_frame_fn frame, void *ud, struct rd_emu_reply *out)
{
    memset(out, 0, sizeof *out);
    struct json_object *body = NULL, *stops = NULL;
    struct rd_emu_anth_prompt p = {0};
    struct answer a = {0};
    uint32_t budget = 0;
    bool have_prompt = false;
    if (rd_emu_anth_parse(req, out, &body) < 0)
        return 0;
    if (model == NULL || model[0] == '\0') {
        struct json_object *m = rd_json_get(body, "model");
        if (m == NULL || !json_object_is_type(m, json_type_string)) {
            rd_emu_anthropic_error(out, 400, m ? "model: Input should be a valid string" : "model: Field required");
            goto out;
        }
        model = json_object_get_string(m);
    }
    if (max_tokens(body, out, &budget) < 0 || rd_emu_anth_prompt(body, out, &p) < 0)
        goto out;
    have_prompt = true;
    bool thinking_on = false;
    if (stop_sequences(body, out, &stops) < 0 || thinking(body, &p, out, &thinking_on) < 0)
        goto out;
    uint8_t seed[RD_SHA256_LEN];
    rd_emu_anth_seed(model, body, req->seed, seed);
    a.model = model;
    a.input_tokens = p.input_tokens;
    generate(&a, &p, stops, seed, budget, thinking_on);
    if (stream_it) {
        rd_emu_reply_free(out);
        out->status = 200;
        out->content_type = rd_strdup("text/event-stream; charset=utf-8");
        out->stream = true;
        struct emitter e = {.frame = frame ? frame : rd_emu_anthropic_sse_frame, .ud = ud, .out = out};
        stream(&e, &a);
    } else {
        /* Tagged with every output token: a paced plain answer arrives
         * after the time the generation would take. */
        rd_emu_anth_json(out, message(&a, true), a.output_tokens);
    }
out:
    answer_free(&a);
    if (have_prompt)
        rd_emu_anth_prompt_free(&p);
    json_object_put(body);
    return 0;
}
