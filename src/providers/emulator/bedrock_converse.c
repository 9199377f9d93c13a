/* Converse and ConverseStream: the Converse body becomes an Anthropic
 * Messages body (messages, system, inferenceConfig, toolConfig), the
 * Messages builder answers it, and its answer becomes Converse's: the
 * output message, stopReason, usage and metrics, or the stream events
 * messageStart, contentBlockStart (tool use only, as Bedrock sends them),
 * contentBlockDelta, contentBlockStop, messageStop and metadata. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "providers/emulator/anthropic.h"
#include "providers/emulator/bedrock.h"
#include "util/json.h"
#include "util/mem.h"

#define MAX_BODY (20u << 20)
#define DEFAULT_MAX_TOKENS 4096

static void add(struct json_object *o, const char *k, struct json_object *v)
{
    json_object_object_add(o, k, v);
}

static struct json_object *ref(struct json_object *v)
{
    return json_object_get(v);
}

static struct json_object *typed(const char *type)
{
    struct json_object *o = json_object_new_object();
    add(o, "type", json_object_new_string(type));
    return o;
}

/* ---- request: Converse -> Messages --------------------------------------- */

/* One Converse content block as an Anthropic block. Blocks the Messages
 * API has no equivalent for (documents, guard content, ...) count as text
 * of their JSON, which is what they cost in the prompt. */
static struct json_object *block_in(struct json_object *b)
{
    struct json_object *v;
    if ((v = rd_json_get(b, "text")) != NULL && json_object_is_type(v, json_type_string)) {
        struct json_object *o = typed("text");
        add(o, "text", ref(v));
        return o;
    }
    if ((v = rd_json_get(b, "toolUse")) != NULL) {
        struct json_object *o = typed("tool_use");
        add(o, "id", ref(rd_json_get(v, "toolUseId")));
        add(o, "name", ref(rd_json_get(v, "name")));
        struct json_object *in = rd_json_get(v, "input");
        add(o, "input", in ? ref(in) : json_object_new_object());
        return o;
    }
    if ((v = rd_json_get(b, "toolResult")) != NULL) {
        struct json_object *o = typed("tool_result");
        add(o, "tool_use_id", ref(rd_json_get(v, "toolUseId")));
        size_t len = 0;
        const char *s = rd_json_str(rd_json_get(v, "content"), &len);
        struct json_object *t = typed("text");
        add(t, "text", rd_json_new_strn(s, len));
        struct json_object *content = json_object_new_array();
        json_object_array_add(content, t);
        add(o, "content", content);
        return o;
    }
    if ((v = rd_json_get(b, "image")) != NULL) {
        struct json_object *src = typed("base64");
        const char *fmt = rd_json_get_str(v, "format");
        char media[32];
        snprintf(media, sizeof media, "image/%s", fmt && strlen(fmt) < 16 ? fmt : "png");
        add(src, "media_type", json_object_new_string(media));
        add(src, "data", ref(rd_json_get(rd_json_get(v, "source"), "bytes")));
        struct json_object *o = typed("image");
        add(o, "source", src);
        return o;
    }
    size_t len = 0;
    const char *s = rd_json_str(b, &len);
    struct json_object *o = typed("text");
    add(o, "text", rd_json_new_strn(s, len));
    return o;
}

static struct json_object *messages_in(struct json_object *msgs)
{
    if (!json_object_is_type(msgs, json_type_array))
        return ref(msgs); /* the builder words the error */
    struct json_object *arr = json_object_new_array();
    size_t n = json_object_array_length(msgs);
    for (size_t i = 0; i < n; i++) {
        struct json_object *m = json_object_array_get_idx(msgs, i);
        struct json_object *content = rd_json_get(m, "content");
        struct json_object *o = json_object_new_object();
        add(o, "role", ref(rd_json_get(m, "role")));
        if (json_object_is_type(content, json_type_array)) {
            struct json_object *blocks = json_object_new_array();
            size_t k = json_object_array_length(content);
            for (size_t j = 0; j < k; j++)
                json_object_array_add(blocks, block_in(json_object_array_get_idx(content, j)));
            add(o, "content", blocks);
        } else {
            add(o, "content", ref(content));
        }
        json_object_array_add(arr, o);
    }
    return arr;
}

static struct json_object *tools_in(struct json_object *tools)
{
    struct json_object *arr = json_object_new_array();
    size_t n = json_object_is_type(tools, json_type_array) ? json_object_array_length(tools) : 0;
    for (size_t i = 0; i < n; i++) {
        struct json_object *spec = rd_json_get(json_object_array_get_idx(tools, i), "toolSpec");
        if (spec == NULL)
            continue;
        struct json_object *t = json_object_new_object();
        add(t, "name", ref(rd_json_get(spec, "name")));
        if (rd_json_get(spec, "description"))
            add(t, "description", ref(rd_json_get(spec, "description")));
        struct json_object *schema = rd_json_get(rd_json_get(spec, "inputSchema"), "json");
        add(t, "input_schema", schema ? ref(schema) : typed("object"));
        json_object_array_add(arr, t);
    }
    return arr;
}

static struct json_object *tool_choice_in(struct json_object *c)
{
    struct json_object *v;
    if (rd_json_get(c, "any"))
        return typed("any");
    if ((v = rd_json_get(c, "tool")) != NULL) {
        struct json_object *o = typed("tool");
        add(o, "name", ref(rd_json_get(v, "name")));
        return o;
    }
    return typed("auto");
}

/* The Messages body for a Converse body (both objects). */
static struct json_object *to_messages(struct json_object *body)
{
    struct json_object *o = json_object_new_object();
    struct json_object *cfg = rd_json_get(body, "inferenceConfig"), *v;
    struct json_object *mt = rd_json_get(cfg, "maxTokens");
    add(o, "max_tokens", mt ? ref(mt) : json_object_new_int(DEFAULT_MAX_TOKENS));
    if ((v = rd_json_get(cfg, "stopSequences")) != NULL)
        add(o, "stop_sequences", ref(v));
    if ((v = rd_json_get(cfg, "temperature")) != NULL)
        add(o, "temperature", ref(v));
    if ((v = rd_json_get(cfg, "topP")) != NULL)
        add(o, "top_p", ref(v));
    struct json_object *sys = rd_json_get(body, "system");
    if (json_object_is_type(sys, json_type_array)) {
        struct json_object *arr = json_object_new_array();
        size_t n = json_object_array_length(sys);
        for (size_t i = 0; i < n; i++) {
            struct json_object *t = rd_json_get(json_object_array_get_idx(sys, i), "text");
            if (t && json_object_is_type(t, json_type_string)) {
                struct json_object *b = typed("text");
                add(b, "text", ref(t));
                json_object_array_add(arr, b);
            }
        }
        if (json_object_array_length(arr) > 0)
            add(o, "system", arr);
        else
            json_object_put(arr);
    }
    add(o, "messages", messages_in(rd_json_get(body, "messages")));
    struct json_object *tc = rd_json_get(body, "toolConfig");
    if (tc && rd_json_get(tc, "tools")) {
        add(o, "tools", tools_in(rd_json_get(tc, "tools")));
        if ((v = rd_json_get(tc, "toolChoice")) != NULL)
            add(o, "tool_choice", tool_choice_in(v));
    }
    return o;
}

/* ---- answer: Messages -> Converse ---------------------------------------- */

/* Bedrock's tool use ids: "tooluse_" and 22 characters, from Anthropic's. */
static struct json_object *tool_id(const char *anthropic_id)
{
    char id[64];
    const char *tail = anthropic_id && strlen(anthropic_id) > 8 ? anthropic_id + 8 : "0000000000000000000000";
    snprintf(id, sizeof id, "tooluse_%s", tail);
    return json_object_new_string(id);
}

static int64_t latency_ms(int64_t output_tokens)
{
    return 200 + 15 * (output_tokens > 0 ? output_tokens : 0);
}

static struct json_object *usage_obj(int64_t in, int64_t out)
{
    struct json_object *u = json_object_new_object();
    add(u, "inputTokens", json_object_new_int64(in));
    add(u, "outputTokens", json_object_new_int64(out));
    add(u, "totalTokens", json_object_new_int64(in + out));
    add(u, "cacheReadInputTokens", json_object_new_int64(0));
    add(u, "cacheWriteInputTokens", json_object_new_int64(0));
    return u;
}

static struct json_object *metrics_obj(int64_t out)
{
    struct json_object *m = json_object_new_object();
    add(m, "latencyMs", json_object_new_int64(latency_ms(out)));
    return m;
}

/* The Converse answer for a Message. */
static struct json_object *from_message(struct json_object *msg)
{
    struct json_object *content = json_object_new_array();
    struct json_object *blocks = rd_json_get(msg, "content");
    size_t n = json_object_is_type(blocks, json_type_array) ? json_object_array_length(blocks) : 0;
    for (size_t i = 0; i < n; i++) {
        struct json_object *b = json_object_array_get_idx(blocks, i);
        const char *type = rd_json_get_str(b, "type");
        struct json_object *o = json_object_new_object();
        if (type && strcmp(type, "tool_use") == 0) {
            struct json_object *tu = json_object_new_object();
            add(tu, "toolUseId", tool_id(rd_json_get_str(b, "id")));
            add(tu, "name", ref(rd_json_get(b, "name")));
            add(tu, "input", ref(rd_json_get(b, "input")));
            add(o, "toolUse", tu);
        } else {
            add(o, "text", ref(rd_json_get(b, "text")));
        }
        json_object_array_add(content, o);
    }
    struct json_object *m = json_object_new_object();
    add(m, "role", json_object_new_string("assistant"));
    add(m, "content", content);
    struct json_object *output = json_object_new_object();
    add(output, "message", m);
    struct json_object *u = rd_json_get(msg, "usage");
    int64_t in = rd_json_get_int(u, "input_tokens", 0), out = rd_json_get_int(u, "output_tokens", 0);
    struct json_object *root = json_object_new_object();
    add(root, "output", output);
    add(root, "stopReason", ref(rd_json_get(msg, "stop_reason")));
    add(root, "usage", usage_obj(in, out));
    add(root, "metrics", metrics_obj(out));
    return root;
}

struct stream_ctx {
    int64_t input, output;
    struct json_object *stop_reason; /* owned */
};

static void emit(struct rd_emu_reply *out, const char *event, struct json_object *obj, uint32_t tokens)
{
    size_t n = 0;
    const char *s = rd_json_str(obj, &n);
    rd_emu_bedrock_frame(out, event, s, n, tokens);
    json_object_put(obj);
}

static struct json_object *indexed(struct json_object *ev)
{
    struct json_object *o = json_object_new_object();
    add(o, "contentBlockIndex", json_object_new_int64(rd_json_get_int(ev, "index", 0)));
    return o;
}

/* One Anthropic event as the Converse stream's events. */
static void converse_frame(struct rd_emu_reply *out, const char *event, const char *json, size_t len,
                           uint32_t tokens, void *ud)
{
    struct stream_ctx *c = ud;
    struct json_object *ev = NULL;
    if (rd_json_parse(json, len, 1u << 24, &ev, NULL) != 0)
        abort(); /* the builder's own JSON */
    if (strcmp(event, "message_start") == 0) {
        c->input = rd_json_get_int(rd_json_get(rd_json_get(ev, "message"), "usage"), "input_tokens", 0);
        struct json_object *o = json_object_new_object();
        add(o, "role", json_object_new_string("assistant"));
        emit(out, "messageStart", o, tokens);
    } else if (strcmp(event, "content_block_start") == 0) {
        struct json_object *b = rd_json_get(ev, "content_block");
        const char *type = rd_json_get_str(b, "type");
        if (type && strcmp(type, "tool_use") == 0) {
            struct json_object *tu = json_object_new_object();
            add(tu, "toolUseId", tool_id(rd_json_get_str(b, "id")));
            add(tu, "name", ref(rd_json_get(b, "name")));
            struct json_object *start = json_object_new_object();
            add(start, "toolUse", tu);
            struct json_object *o = indexed(ev);
            add(o, "start", start);
            emit(out, "contentBlockStart", o, tokens);
        }
    } else if (strcmp(event, "content_block_delta") == 0) {
        struct json_object *d = rd_json_get(ev, "delta"), *delta = json_object_new_object();
        const char *type = rd_json_get_str(d, "type");
        if (type && strcmp(type, "input_json_delta") == 0) {
            const char *pj = rd_json_get_str(d, "partial_json");
            if (pj == NULL || pj[0] == '\0') {
                json_object_put(delta);
                json_object_put(ev);
                return; /* Bedrock sends no empty first piece */
            }
            struct json_object *tu = json_object_new_object();
            add(tu, "input", json_object_new_string(pj));
            add(delta, "toolUse", tu);
        } else {
            add(delta, "text", ref(rd_json_get(d, "text")));
        }
        struct json_object *o = indexed(ev);
        add(o, "delta", delta);
        emit(out, "contentBlockDelta", o, tokens);
    } else if (strcmp(event, "content_block_stop") == 0) {
        emit(out, "contentBlockStop", indexed(ev), tokens);
    } else if (strcmp(event, "message_delta") == 0) {
        c->output = rd_json_get_int(rd_json_get(ev, "usage"), "output_tokens", 0);
        json_object_put(c->stop_reason);
        c->stop_reason = ref(rd_json_get(rd_json_get(ev, "delta"), "stop_reason"));
    } else if (strcmp(event, "message_stop") == 0) {
        struct json_object *o = json_object_new_object();
        add(o, "stopReason", c->stop_reason ? ref(c->stop_reason) : json_object_new_string("end_turn"));
        emit(out, "messageStop", o, tokens);
        struct json_object *md = json_object_new_object();
        add(md, "usage", usage_obj(c->input, c->output));
        add(md, "metrics", metrics_obj(c->output));
        emit(out, "metadata", md, 0);
    }
    /* ping has no Converse counterpart. */
    json_object_put(ev);
}

/* ---- entry point -------------------------------------------------------- */

void rd_emu_bedrock_converse(const struct rd_emu_request *req, const char *model, bool stream,
                             struct rd_emu_reply *out)
{
    struct json_object *body = NULL;
    struct rd_json_err jerr = {0};
    if (rd_json_parse(req->body ? req->body : "", req->body_len, MAX_BODY, &body, &jerr) != 0 ||
        !json_object_is_type(body, json_type_object)) {
        json_object_put(body);
        rd_emu_bedrock_error(out, 400, NULL, "Malformed input request, please reformat your input and try again.");
        return;
    }
    struct json_object *msgs = to_messages(body);
    size_t len = 0;
    const char *s = rd_json_str(msgs, &len);
    struct rd_emu_request inner = *req;
    inner.body = s;
    inner.body_len = len;
    struct stream_ctx c = {0, 0, NULL};
    rd_emu_anthropic_messages(&inner, model, stream, stream ? converse_frame : NULL, &c, out);
    json_object_put(c.stop_reason);
    if (out->status >= 400) {
        rd_emu_bedrock_from_anthropic_error(out);
    } else if (out->stream) {
        free(out->content_type);
        out->content_type = rd_strdup("application/vnd.amazon.eventstream");
    } else {
        /* One Message chunk, tagged with its output tokens for pacing. */
        struct json_object *msg = NULL;
        if (out->n != 1 || rd_json_parse(out->chunks[0].data, out->chunks[0].len, 1u << 26, &msg, NULL) != 0)
            abort(); /* the builder's own JSON */
        uint32_t tokens = out->chunks[0].tokens;
        struct json_object *conv = from_message(msg);
        size_t n = 0;
        const char *cs = rd_json_str(conv, &n);
        free(out->chunks[0].data);
        out->n = 0;
        rd_emu_reply_add(out, cs, n, tokens);
        json_object_put(conv);
        json_object_put(msg);
    }
    json_object_put(msgs);
    json_object_put(body);
}
