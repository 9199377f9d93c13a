/* The prompt side of a Messages request (messages, system, tools,
 * tool_choice): validated with the API's messages, counted in tokens, and
 * reduced to what the answer needs (the text to echo, the tool to call).
 * Shared by /v1/messages and /v1/messages/count_tokens, so the two agree on
 * input_tokens for the same body. */
#include <stdlib.h>
#include <string.h>

#include "providers/emulator/anthropic_int.h"
#include "providers/emulator/text.h"

static uint32_t add_sat(uint32_t a, uint64_t b)
{
    uint64_t s = (uint64_t)a + b;
    return s > UINT32_MAX ? UINT32_MAX : (uint32_t)s;
}

static uint32_t est_json(struct json_object *v)
{
    size_t len = 0;
    if (v == NULL)
        return 1;
    (void)rd_json_str(v, &len);
    return rd_emu_tokens_estimate(len);
}

/* Adds one piece of text to b, after a '\n' when b has some already. */
static void append(struct rd_buf *b, const char *s, size_t n)
{
    if (b == NULL || n == 0)
        return;
    if ((b->len && rd_buf_append(b, "\n", 1) < 0) || rd_buf_append(b, s, n) < 0)
        abort(); /* uncapped: the body is capped before it gets here */
}

/* Text of a string or of the text blocks of a list, joined with '\n'
 * (into text when not NULL), and the tokens of the whole content. */
static uint32_t content_tokens(struct json_object *content, struct rd_buf *text, int depth);

static uint32_t block_tokens(struct json_object *b, struct rd_buf *text, int depth)
{
    const char *type = rd_json_get_str(b, "type");
    struct json_object *v;
    if (type == NULL)
        return est_json(b);
    if (strcmp(type, "text") == 0 && (v = rd_json_get(b, "text")) && json_object_is_type(v, json_type_string)) {
        size_t n = (size_t)json_object_get_string_len(v);
        append(text, json_object_get_string(v), n);
        return rd_emu_tokens_estimate(n);
    }
    if (strcmp(type, "image") == 0)
        return RD_EMU_ANTH_IMAGE_TOKENS;
    if (strcmp(type, "document") == 0) {
        struct json_object *src = rd_json_get(b, "source");
        const char *st = rd_json_get_str(src, "type");
        if (st && strcmp(st, "text") == 0 && (v = rd_json_get(src, "data")) && json_object_is_type(v, json_type_string))
            return rd_emu_tokens_estimate((size_t)json_object_get_string_len(v));
        return RD_EMU_ANTH_IMAGE_TOKENS;
    }
    if (strcmp(type, "tool_result") == 0 && depth < 2)
        return 3 + content_tokens(rd_json_get(b, "content"), text, depth + 1);
    if (strcmp(type, "thinking") == 0 && (v = rd_json_get(b, "thinking")) && json_object_is_type(v, json_type_string))
        return rd_emu_tokens_estimate((size_t)json_object_get_string_len(v));
    /* tool_use and anything newer: its JSON. */
    return est_json(b);
}

static uint32_t content_tokens(struct json_object *content, struct rd_buf *text, int depth)
{
    if (content == NULL)
        return 0;
    if (json_object_is_type(content, json_type_string)) {
        size_t n = (size_t)json_object_get_string_len(content);
        append(text, json_object_get_string(content), n);
        return rd_emu_tokens_estimate(n);
    }
    if (!json_object_is_type(content, json_type_array))
        return est_json(content);
    uint32_t t = 0;
    size_t n = json_object_array_length(content);
    for (size_t i = 0; i < n; i++)
        t = add_sat(t, block_tokens(json_object_array_get_idx(content, i), text, depth));
    return t;
}

static bool has_block(struct json_object *content, const char *type)
{
    if (!json_object_is_type(content, json_type_array))
        return false;
    size_t n = json_object_array_length(content);
    for (size_t i = 0; i < n; i++) {
        const char *t = rd_json_get_str(json_object_array_get_idx(content, i), "type");
        if (t && strcmp(t, type) == 0)
            return true;
    }
    return false;
}

static int bad(struct rd_emu_reply *out, const char *msg)
{
    rd_emu_anthropic_error(out, 400, "%s", msg);
    return -1;
}

static int message(struct json_object *m, size_t i, struct rd_emu_reply *out, struct rd_emu_anth_prompt *p)
{
    if (!json_object_is_type(m, json_type_object)) {
        rd_emu_anthropic_error(out, 400, "messages.%zu: Input should be a valid dictionary", i);
        return -1;
    }
    struct json_object *role = rd_json_get(m, "role");
    if (role == NULL) {
        rd_emu_anthropic_error(out, 400, "messages.%zu.role: Field required", i);
        return -1;
    }
    const char *r = json_object_is_type(role, json_type_string) ? json_object_get_string(role) : "";
    if (strcmp(r, "system") == 0)
        return bad(out, "messages: Unexpected role \"system\". The Messages API accepts a top-level `system` "
                        "parameter, not \"system\" as an input message role.");
    bool user = strcmp(r, "user") == 0;
    if (!user && strcmp(r, "assistant") != 0) {
        rd_emu_anthropic_error(out, 400, "messages.%zu.role: Input should be 'user' or 'assistant'", i);
        return -1;
    }
    struct json_object *content = rd_json_get(m, "content");
    if (content == NULL) {
        rd_emu_anthropic_error(out, 400, "messages.%zu.content: Field required", i);
        return -1;
    }
    if (!json_object_is_type(content, json_type_string) && !json_object_is_type(content, json_type_array)) {
        rd_emu_anthropic_error(out, 400, "messages.%zu.content: Input should be a valid list", i);
        return -1;
    }
    if (user) {
        rd_buf_reset(&p->echo);
        p->answers_tool = has_block(content, "tool_result");
    }
    p->input_tokens = add_sat(p->input_tokens, 3 + (uint64_t)content_tokens(content, user ? &p->echo : NULL, 0));
    return 0;
}

static int messages(struct json_object *body, struct rd_emu_reply *out, struct rd_emu_anth_prompt *p)
{
    struct json_object *msgs = rd_json_get(body, "messages");
    if (msgs == NULL)
        return bad(out, "messages: Field required");
    if (!json_object_is_type(msgs, json_type_array))
        return bad(out, "messages: Input should be a valid list");
    size_t n = json_object_array_length(msgs);
    if (n == 0)
        return bad(out, "messages: at least one message is required");
    for (size_t i = 0; i < n; i++)
        if (message(json_object_array_get_idx(msgs, i), i, out, p) < 0)
            return -1;
    return 0;
}

static int system_prompt(struct json_object *body, struct rd_emu_reply *out, struct rd_emu_anth_prompt *p)
{
    struct json_object *sys = rd_json_get(body, "system");
    if (sys == NULL)
        return 0;
    if (!json_object_is_type(sys, json_type_string) && !json_object_is_type(sys, json_type_array))
        return bad(out, "system: Input should be a valid list");
    p->input_tokens = add_sat(p->input_tokens, 3 + (uint64_t)content_tokens(sys, NULL, 0));
    return 0;
}

/* A client tool has an input_schema; server tools (web search, code
 * execution, ...) have a versioned "type" and none, and are never the one
 * the emulator calls. */
static int tools(struct json_object *body, struct rd_emu_reply *out, struct rd_emu_anth_prompt *p)
{
    struct json_object *list = rd_json_get(body, "tools");
    struct json_object *choice = rd_json_get(body, "tool_choice");
    const char *ctype = rd_json_get_str(choice, "type");
    if (choice && (!json_object_is_type(choice, json_type_object) || ctype == NULL))
        return bad(out, "tool_choice: Input should be a valid dictionary with a \"type\"");
    if (ctype && strcmp(ctype, "auto") != 0 && strcmp(ctype, "any") != 0 && strcmp(ctype, "tool") != 0 &&
        strcmp(ctype, "none") != 0)
        return bad(out, "tool_choice.type: Input should be 'auto', 'any', 'tool' or 'none'");
    if (list == NULL || (json_object_is_type(list, json_type_array) && json_object_array_length(list) == 0)) {
        if (choice && strcmp(ctype, "none") != 0)
            return bad(out, "tool_choice may only be specified while providing tools.");
        return 0;
    }
    if (!json_object_is_type(list, json_type_array))
        return bad(out, "tools: Input should be a valid list");
    const char *want = ctype && strcmp(ctype, "tool") == 0 ? rd_json_get_str(choice, "name") : NULL;
    if (ctype && strcmp(ctype, "tool") == 0 && want == NULL)
        return bad(out, "tool_choice.name: Field required");
    struct json_object *pick = NULL;
    size_t n = json_object_array_length(list);
    for (size_t i = 0; i < n; i++) {
        struct json_object *t = json_object_array_get_idx(list, i);
        if (!json_object_is_type(t, json_type_object)) {
            rd_emu_anthropic_error(out, 400, "tools.%zu: Input should be a valid dictionary", i);
            return -1;
        }
        const char *name = rd_json_get_str(t, "name");
        const char *type = rd_json_get_str(t, "type");
        bool custom = type == NULL || strcmp(type, "custom") == 0;
        if (name == NULL) {
            rd_emu_anthropic_error(out, 400, "tools.%zu.name: Field required", i);
            return -1;
        }
        struct json_object *schema = rd_json_get(t, "input_schema");
        if (custom && (schema == NULL || !json_object_is_type(schema, json_type_object))) {
            rd_emu_anthropic_error(out, 400, "tools.%zu.custom.input_schema: Field required", i);
            return -1;
        }
        if (custom && pick == NULL && (want == NULL || strcmp(want, name) == 0))
            pick = t;
    }
    if (want && pick == NULL)
        return bad(out, "tool_choice.name: the named tool is not in tools");
    bool forced = ctype && (strcmp(ctype, "any") == 0 || strcmp(ctype, "tool") == 0);
    p->input_tokens = add_sat(p->input_tokens, (uint64_t)est_json(list) + (forced ? RD_EMU_ANTH_TOOLS_ANY_TOKENS
                                                                                  : RD_EMU_ANTH_TOOLS_AUTO_TOKENS));
    p->tool_forced = forced;
    /* With auto, a turn that hands back tool results gets a text answer, so
     * an agent loop ends; a forced choice always calls. */
    if (ctype && strcmp(ctype, "none") == 0)
        pick = NULL;
    else if (!forced && p->answers_tool)
        pick = NULL;
    p->tool = pick;
    return 0;
}

int rd_emu_anth_prompt(struct json_object *body, struct rd_emu_reply *out, struct rd_emu_anth_prompt *p)
{
    memset(p, 0, sizeof *p);
    rd_buf_init(&p->echo, 0);
    if (messages(body, out, p) < 0 || system_prompt(body, out, p) < 0 || tools(body, out, p) < 0) {
        rd_emu_anth_prompt_free(p);
        return -1;
    }
    return 0;
}

void rd_emu_anth_prompt_free(struct rd_emu_anth_prompt *p)
{
    if (p == NULL)
        return;
    rd_buf_free(&p->echo);
    p->tool = NULL;
}
