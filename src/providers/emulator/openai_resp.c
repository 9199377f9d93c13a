/* POST /v1/responses: the Responses API, as one response object or as the
 * typed SSE event sequence (response.created ... response.completed). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "providers/emulator/openai_int.h"
#include "providers/emulator/text.h"
#include "util/mem.h"

/* The API rejects max_output_tokens below this. */
#define MIN_OUTPUT_TOKENS 16

struct resp {
    const char *model; /* borrowed from the body */
    char id[RD_EMU_ID_MAX];
    char msg_id[RD_EMU_ID_MAX];
    int64_t created;
    uint32_t input_tokens;
    struct rd_emu_text text;
    int seq; /* next sequence_number */
};

static void add(struct json_object *o, const char *k, struct json_object *v)
{
    json_object_object_add(o, k, v);
}

static struct json_object *jstr(const char *s)
{
    return json_object_new_string(s);
}

static struct json_object *jint(int64_t v)
{
    return json_object_new_int64(v);
}

/* The request's own value for key (shared reference), or dflt (consumed). */
static struct json_object *echo_or(struct rd_emu_ctx *c, const char *key, struct json_object *dflt)
{
    struct json_object *v = rd_json_get(c->body, key);
    if (v == NULL)
        return dflt;
    json_object_put(dflt);
    return json_object_get(v);
}

/* Adds one input item's tokens; a user message's text becomes the echo. */
static int input_item(struct rd_emu_ctx *c, struct json_object *it, size_t i, struct rd_buf *echo, uint64_t *tokens)
{
    char param[48];
    if (!json_object_is_type(it, json_type_object)) {
        snprintf(param, sizeof param, "input[%zu]", i);
        return rd_emu_oai_bad_type(c, param, "an object", it);
    }
    const char *role = rd_json_get_str(it, "role");
    struct json_object *content = rd_json_get(it, "content");
    if (role == NULL || content == NULL) {
        /* Tool outputs, reasoning items and the like: count their size. */
        size_t len = 0;
        rd_json_str(it, &len);
        *tokens += rd_emu_tokens_estimate(len);
        return 0;
    }
    struct rd_buf text;
    rd_buf_init(&text, 0);
    uint32_t extra = 0;
    rd_emu_oai_content_text(content, &text, &extra);
    *tokens += 3 + (uint64_t)rd_emu_tokens_estimate(text.len) + extra;
    if (strcmp(role, "user") == 0) {
        rd_buf_reset(echo);
        if (rd_buf_append(echo, text.data ? text.data : "", text.len) < 0)
            abort();
    }
    rd_buf_free(&text);
    return 0;
}

/* Input tokens: 3 + estimate per message (and for instructions), item size
 * estimate for other items, plus 3. */
static int read_input(struct rd_emu_ctx *c, struct rd_buf *echo, uint32_t *input_tokens)
{
    struct json_object *in = rd_json_get(c->body, "input");
    uint64_t tokens = 3;
    if (in == NULL)
        return rd_emu_oai_missing(c, "input");
    if (json_object_is_type(in, json_type_string)) {
        size_t len = (size_t)json_object_get_string_len(in);
        if (rd_buf_append(echo, json_object_get_string(in), len) < 0)
            abort();
        tokens += 3 + (uint64_t)rd_emu_tokens_estimate(len);
    } else if (json_object_is_type(in, json_type_array)) {
        for (size_t i = 0; i < json_object_array_length(in); i++)
            if (input_item(c, json_object_array_get_idx(in, i), i, echo, &tokens) < 0)
                return -1;
    } else {
        return rd_emu_oai_bad_type(c, "input", "a string or an array", in);
    }
    struct json_object *ins = rd_json_get(c->body, "instructions");
    if (ins != NULL && !json_object_is_type(ins, json_type_string))
        return rd_emu_oai_bad_type(c, "instructions", "a string", ins);
    if (ins != NULL)
        tokens += 3 + (uint64_t)rd_emu_tokens_estimate((size_t)json_object_get_string_len(ins));
    *input_tokens = tokens > UINT32_MAX ? UINT32_MAX : (uint32_t)tokens;
    return 0;
}

static struct json_object *text_part(const struct rd_emu_text *t, bool full)
{
    struct json_object *p = json_object_new_object();
    add(p, "type", jstr("output_text"));
    add(p, "annotations", json_object_new_array());
    add(p, "logprobs", json_object_new_array());
    add(p, "text", full ? rd_json_new_strn(t->s, t->len) : jstr(""));
    return p;
}

/* The output message; final false gives the in-progress shell with no content. */
static struct json_object *message_item(const struct resp *r, bool final)
{
    struct json_object *m = json_object_new_object();
    add(m, "id", jstr(r->msg_id));
    add(m, "type", jstr("message"));
    add(m, "status", jstr(!final ? "in_progress" : r->text.truncated ? "incomplete" : "completed"));
    struct json_object *content = json_object_new_array();
    if (final)
        json_object_array_add(content, text_part(&r->text, true));
    add(m, "content", content);
    add(m, "role", jstr("assistant"));
    return m;
}

static struct json_object *usage(const struct resp *r)
{
    struct json_object *u = json_object_new_object();
    add(u, "input_tokens", jint(r->input_tokens));
    struct json_object *id = json_object_new_object();
    add(id, "cached_tokens", jint(0));
    add(u, "input_tokens_details", id);
    add(u, "output_tokens", jint((int64_t)r->text.n));
    struct json_object *od = json_object_new_object();
    add(od, "reasoning_tokens", jint(0));
    add(u, "output_tokens_details", od);
    add(u, "total_tokens", jint((int64_t)r->input_tokens + (int64_t)r->text.n));
    return u;
}

static struct json_object *default_text_format(void)
{
    struct json_object *fmt = json_object_new_object();
    add(fmt, "type", jstr("text"));
    struct json_object *text = json_object_new_object();
    add(text, "format", fmt);
    return text;
}

static struct json_object *default_reasoning(void)
{
    struct json_object *o = json_object_new_object();
    add(o, "effort", NULL);
    add(o, "summary", NULL);
    return o;
}

/* The response object; final false is the in-progress snapshot that
 * response.created and response.in_progress carry. */
static struct json_object *response_object(struct rd_emu_ctx *c, const struct resp *r, bool final)
{
    bool cut = final && r->text.truncated;
    struct json_object *o = json_object_new_object();
    add(o, "id", jstr(r->id));
    add(o, "object", jstr("response"));
    add(o, "created_at", jint(r->created));
    add(o, "status", jstr(!final ? "in_progress" : cut ? "incomplete" : "completed"));
    add(o, "background", json_object_new_boolean(0));
    add(o, "error", NULL);
    struct json_object *inc = NULL;
    if (cut) {
        inc = json_object_new_object();
        add(inc, "reason", jstr("max_output_tokens"));
    }
    add(o, "incomplete_details", inc);
    add(o, "instructions", echo_or(c, "instructions", NULL));
    add(o, "max_output_tokens", echo_or(c, "max_output_tokens", NULL));
    add(o, "max_tool_calls", NULL);
    add(o, "model", jstr(r->model));
    struct json_object *output = json_object_new_array();
    if (final)
        json_object_array_add(output, message_item(r, true));
    add(o, "output", output);
    add(o, "parallel_tool_calls", echo_or(c, "parallel_tool_calls", json_object_new_boolean(1)));
    add(o, "previous_response_id", echo_or(c, "previous_response_id", NULL));
    add(o, "reasoning", echo_or(c, "reasoning", default_reasoning()));
    add(o, "service_tier", jstr("default"));
    add(o, "store", echo_or(c, "store", json_object_new_boolean(1)));
    add(o, "temperature", echo_or(c, "temperature", json_object_new_double(1.0)));
    add(o, "text", echo_or(c, "text", default_text_format()));
    add(o, "tool_choice", echo_or(c, "tool_choice", jstr("auto")));
    add(o, "tools", echo_or(c, "tools", json_object_new_array()));
    add(o, "top_logprobs", jint(0));
    add(o, "top_p", echo_or(c, "top_p", json_object_new_double(1.0)));
    add(o, "truncation", echo_or(c, "truncation", jstr("disabled")));
    add(o, "usage", final ? usage(r) : NULL);
    add(o, "user", echo_or(c, "user", NULL));
    add(o, "metadata", echo_or(c, "metadata", json_object_new_object()));
    return o;
}

/* Starts an event object {"type", "sequence_number"}. */
static struct json_object *event(struct resp *r, const char *type)
{
    struct json_object *e = json_object_new_object();
    add(e, "type", jstr(type));
    add(e, "sequence_number", jint(r->seq++));
    return e;
}

/* Starts an event about the text part: adds item_id, output_index, content_index. */
static struct json_object *part_event(struct resp *r, const char *type)
{
    struct json_object *e = event(r, type);
    add(e, "item_id", jstr(r->msg_id));
    add(e, "output_index", jint(0));
    add(e, "content_index", jint(0));
    return e;
}

static void emit(struct rd_emu_ctx *c, struct json_object *e, uint32_t tokens)
{
    rd_emu_oai_sse(c->out, json_object_get_string(rd_json_get(e, "type")), e, tokens);
}

static void stream_text(struct rd_emu_ctx *c, struct resp *r)
{
    struct json_object *e = part_event(r, "response.content_part.added");
    add(e, "part", text_part(&r->text, false));
    emit(c, e, 0);
    for (size_t k = 0; k < r->text.n; k++) {
        const char *p = NULL;
        size_t len = rd_emu_text_piece(&r->text, k, &p);
        e = part_event(r, "response.output_text.delta");
        add(e, "delta", rd_json_new_strn(p, len));
        add(e, "logprobs", json_object_new_array());
        emit(c, e, 1);
    }
    e = part_event(r, "response.output_text.done");
    add(e, "text", rd_json_new_strn(r->text.s, r->text.len));
    add(e, "logprobs", json_object_new_array());
    emit(c, e, 0);
    e = part_event(r, "response.content_part.done");
    add(e, "part", text_part(&r->text, true));
    emit(c, e, 0);
}

static void stream(struct rd_emu_ctx *c, struct resp *r)
{
    rd_emu_oai_sse_begin(c->out);
    struct json_object *e = event(r, "response.created");
    add(e, "response", response_object(c, r, false));
    emit(c, e, 0);
    e = event(r, "response.in_progress");
    add(e, "response", response_object(c, r, false));
    emit(c, e, 0);
    e = event(r, "response.output_item.added");
    add(e, "output_index", jint(0));
    add(e, "item", message_item(r, false));
    emit(c, e, 0);
    stream_text(c, r);
    e = event(r, "response.output_item.done");
    add(e, "output_index", jint(0));
    add(e, "item", message_item(r, true));
    emit(c, e, 0);
    e = event(r, r->text.truncated ? "response.incomplete" : "response.completed");
    add(e, "response", response_object(c, r, true));
    emit(c, e, 0);
}

void rd_emu_oai_responses(struct rd_emu_ctx *c)
{
    struct resp r = {0};
    struct rd_buf echo;
    rd_buf_init(&echo, 0);
    int64_t max_out = 0;

    r.model = rd_emu_oai_model(c);
    if (r.model == NULL || read_input(c, &echo, &r.input_tokens) < 0 ||
        rd_emu_oai_int_param(c, "max_output_tokens", MIN_OUTPUT_TOKENS, INT64_MAX, RD_EMU_MAX_GEN_TOKENS,
                             &max_out) < 0)
        goto out;
    uint32_t cap = max_out > RD_EMU_MAX_GEN_TOKENS ? RD_EMU_MAX_GEN_TOKENS : (uint32_t)max_out;
    rd_emu_oai_id(c, "resp_", "id", 24, r.id);
    rd_emu_oai_id(c, "msg_", "msg", 24, r.msg_id);
    r.created = rd_emu_oai_created(c);
    uint8_t seed[RD_SHA256_LEN];
    rd_emu_subseed(c->seed, "choice", 0, seed);
    rd_emu_text_generate(seed, echo.data, echo.len, cap, &r.text);
    if (rd_json_get_bool(c->body, "stream", false))
        stream(c, &r);
    else
        rd_emu_oai_json(c->out, response_object(c, &r, true), (uint32_t)r.text.n);
out:
    rd_emu_text_free(&r.text);
    rd_buf_free(&echo);
}
