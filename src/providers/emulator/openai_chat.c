/* POST /v1/chat/completions and POST /v1/completions: generated text,
 * plain JSON or SSE chunks, with OpenAI's field order and usage. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "providers/emulator/openai_int.h"
#include "providers/emulator/text.h"
#include "util/mem.h"

#define FINGERPRINT "fp_rubberduck"
/* The legacy completions API stops at 16 tokens unless told otherwise. */
#define COMPLETIONS_DEFAULT_MAX 16

static const char *const ROLES[] = {"system", "assistant", "user", "function", "tool", "developer", NULL};

static void add(struct json_object *o, const char *k, struct json_object *v)
{
    json_object_object_add(o, k, v);
}

static struct json_object *jint(int64_t v)
{
    return json_object_new_int64(v);
}

static struct json_object *jstr(const char *s)
{
    return json_object_new_string(s);
}

/* Answers shared by both routes: n generated texts plus the request facts
 * every chunk repeats. */
struct gen {
    const char *model; /* borrowed from the body */
    char id[RD_EMU_ID_MAX];
    int64_t created;
    size_t n;
    struct rd_emu_text *texts; /* owned, n entries */
    uint32_t prompt_tokens;
    uint32_t completion_tokens;
    bool stream;
    bool include_usage;
};

static void gen_free(struct gen *g)
{
    for (size_t i = 0; i < g->n; i++)
        rd_emu_text_free(&g->texts[i]);
    free(g->texts);
    g->texts = NULL;
    g->n = 0;
}

/* Reads n, the token limit (first of keys present, default dflt_max, clamped
 * to RD_EMU_MAX_GEN_TOKENS) and the stream flags. -1 with the 400 rendered. */
static int gen_params(struct rd_emu_ctx *c, struct gen *g, const char *const *max_keys, int64_t dflt_max,
                      int64_t *n, uint32_t *max_tokens)
{
    const char *key = max_keys[0];
    for (size_t i = 0; max_keys[i]; i++) {
        if (rd_json_get(c->body, max_keys[i]) != NULL) {
            key = max_keys[i];
            break;
        }
    }
    int64_t mt = 0;
    if (rd_emu_oai_int_param(c, "n", 1, RD_EMU_MAX_N, 1, n) < 0 ||
        rd_emu_oai_int_param(c, key, 1, INT64_MAX, dflt_max, &mt) < 0)
        return -1;
    *max_tokens = mt > RD_EMU_MAX_GEN_TOKENS ? RD_EMU_MAX_GEN_TOKENS : (uint32_t)mt;
    g->stream = rd_json_get_bool(c->body, "stream", false);
    g->include_usage = rd_json_get_bool(rd_json_get(c->body, "stream_options"), "include_usage", false);
    g->created = rd_emu_oai_created(c);
    return 0;
}

/* Choice i answers echo, seeded by the request hash and i. */
static void gen_choice(const struct rd_emu_ctx *c, struct gen *g, size_t i, const char *echo, size_t echo_len,
                       uint32_t max_tokens)
{
    uint8_t seed[RD_SHA256_LEN];
    rd_emu_subseed(c->seed, "choice", (uint32_t)i, seed);
    rd_emu_text_generate(seed, echo, echo_len, max_tokens, &g->texts[i]);
    g->completion_tokens += (uint32_t)g->texts[i].n;
}

static const char *finish_reason(const struct rd_emu_text *t)
{
    return t->truncated ? "length" : "stop";
}

/* ---- chat --------------------------------------------------------------- */

static bool known_role(const char *r)
{
    for (size_t i = 0; ROLES[i]; i++)
        if (strcmp(r, ROLES[i]) == 0)
            return true;
    return false;
}

/* Validates message i and adds its text and token count; the text of the
 * last user message is kept in echo. */
static int chat_message(struct rd_emu_ctx *c, struct json_object *m, size_t i, struct rd_buf *echo, uint64_t *tokens)
{
    char param[64];
    if (!json_object_is_type(m, json_type_object)) {
        snprintf(param, sizeof param, "messages[%zu]", i);
        return rd_emu_oai_bad_type(c, param, "an object", m);
    }
    snprintf(param, sizeof param, "messages[%zu].role", i);
    struct json_object *role = rd_json_get(m, "role");
    if (role == NULL)
        return rd_emu_oai_missing(c, param);
    if (!json_object_is_type(role, json_type_string))
        return rd_emu_oai_bad_type(c, param, "a string", role);
    const char *r = json_object_get_string(role);
    if (!known_role(r)) {
        rd_emu_oai_error(c->out, 400, param, "invalid_value",
                         "Invalid value: '%.64s'. Supported values are: 'system', 'assistant', 'user', 'function', "
                         "'tool', and 'developer'.",
                         r);
        return -1;
    }
    struct json_object *content = rd_json_get(m, "content");
    bool needs_content = strcmp(r, "user") == 0 || strcmp(r, "system") == 0 || strcmp(r, "developer") == 0;
    if (content == NULL && needs_content) {
        snprintf(param, sizeof param, "messages[%zu].content", i);
        return rd_emu_oai_missing(c, param);
    }
    struct rd_buf text;
    rd_buf_init(&text, 0);
    uint32_t extra = 0;
    if (content)
        rd_emu_oai_content_text(content, &text, &extra);
    *tokens += 3 + (uint64_t)rd_emu_tokens_estimate(text.len) + extra;
    if (strcmp(r, "user") == 0) {
        rd_buf_reset(echo);
        if (rd_buf_append(echo, text.data ? text.data : "", text.len) < 0)
            abort();
    }
    rd_buf_free(&text);
    return 0;
}

/* Prompt tokens: 3 per message plus its estimate, plus 3 to prime the reply. */
static int chat_messages(struct rd_emu_ctx *c, struct rd_buf *echo, uint32_t *prompt_tokens)
{
    struct json_object *msgs = rd_json_get(c->body, "messages");
    if (msgs == NULL)
        return rd_emu_oai_missing(c, "messages");
    if (!json_object_is_type(msgs, json_type_array))
        return rd_emu_oai_bad_type(c, "messages", "an array", msgs);
    size_t n = json_object_array_length(msgs);
    if (n == 0) {
        rd_emu_oai_error(c->out, 400, "messages", "empty_array",
                         "Invalid 'messages': empty array. Expected an array with minimum length 1, but got an "
                         "empty array instead.");
        return -1;
    }
    uint64_t tokens = 3;
    for (size_t i = 0; i < n; i++)
        if (chat_message(c, json_object_array_get_idx(msgs, i), i, echo, &tokens) < 0)
            return -1;
    *prompt_tokens = tokens > UINT32_MAX ? UINT32_MAX : (uint32_t)tokens;
    return 0;
}

static struct json_object *chat_usage(const struct gen *g)
{
    struct json_object *u = json_object_new_object();
    add(u, "prompt_tokens", jint(g->prompt_tokens));
    add(u, "completion_tokens", jint(g->completion_tokens));
    add(u, "total_tokens", jint((int64_t)g->prompt_tokens + g->completion_tokens));
    struct json_object *pd = json_object_new_object();
    add(pd, "cached_tokens", jint(0));
    add(pd, "audio_tokens", jint(0));
    add(u, "prompt_tokens_details", pd);
    struct json_object *cd = json_object_new_object();
    add(cd, "reasoning_tokens", jint(0));
    add(cd, "audio_tokens", jint(0));
    add(cd, "accepted_prediction_tokens", jint(0));
    add(cd, "rejected_prediction_tokens", jint(0));
    add(u, "completion_tokens_details", cd);
    return u;
}

static void chat_plain(struct rd_emu_ctx *c, const struct gen *g)
{
    struct json_object *choices = json_object_new_array();
    for (size_t i = 0; i < g->n; i++) {
        const struct rd_emu_text *t = &g->texts[i];
        struct json_object *msg = json_object_new_object();
        add(msg, "role", jstr("assistant"));
        add(msg, "content", rd_json_new_strn(t->s, t->len));
        add(msg, "refusal", NULL);
        add(msg, "annotations", json_object_new_array());
        struct json_object *ch = json_object_new_object();
        add(ch, "index", jint((int64_t)i));
        add(ch, "message", msg);
        add(ch, "logprobs", NULL);
        add(ch, "finish_reason", jstr(finish_reason(t)));
        json_object_array_add(choices, ch);
    }
    struct json_object *root = json_object_new_object();
    add(root, "id", jstr(g->id));
    add(root, "object", jstr("chat.completion"));
    add(root, "created", jint(g->created));
    add(root, "model", jstr(g->model));
    add(root, "choices", choices);
    add(root, "usage", chat_usage(g));
    add(root, "service_tier", jstr("default"));
    add(root, "system_fingerprint", jstr(FINGERPRINT));
    /* Tagged with every generated token: a paced non-stream answer arrives
     * after the time the whole generation would take. */
    rd_emu_oai_json(c->out, root, g->completion_tokens);
}

/* One chat.completion.chunk. choice NULL gives "choices":[] (usage chunk). */
static void chat_chunk(struct rd_emu_ctx *c, const struct gen *g, struct json_object *choice,
                       struct json_object *usage, uint32_t tokens)
{
    struct json_object *root = json_object_new_object();
    add(root, "id", jstr(g->id));
    add(root, "object", jstr("chat.completion.chunk"));
    add(root, "created", jint(g->created));
    add(root, "model", jstr(g->model));
    add(root, "service_tier", jstr("default"));
    add(root, "system_fingerprint", jstr(FINGERPRINT));
    struct json_object *choices = json_object_new_array();
    if (choice)
        json_object_array_add(choices, choice);
    add(root, "choices", choices);
    if (g->include_usage)
        add(root, "usage", usage);
    else
        json_object_put(usage);
    rd_emu_oai_sse(c->out, NULL, root, tokens);
}

static struct json_object *chat_delta_choice(size_t index, struct json_object *delta, const char *finish)
{
    struct json_object *ch = json_object_new_object();
    add(ch, "index", jint((int64_t)index));
    add(ch, "delta", delta);
    add(ch, "logprobs", NULL);
    add(ch, "finish_reason", finish ? jstr(finish) : NULL);
    return ch;
}

static void chat_stream(struct rd_emu_ctx *c, const struct gen *g)
{
    rd_emu_oai_sse_begin(c->out);
    for (size_t i = 0; i < g->n; i++) {
        const struct rd_emu_text *t = &g->texts[i];
        struct json_object *delta = json_object_new_object();
        add(delta, "role", jstr("assistant"));
        add(delta, "content", jstr(""));
        add(delta, "refusal", NULL);
        chat_chunk(c, g, chat_delta_choice(i, delta, NULL), NULL, 0);
        for (size_t k = 0; k < t->n; k++) {
            const char *p = NULL;
            size_t len = rd_emu_text_piece(t, k, &p);
            delta = json_object_new_object();
            add(delta, "content", rd_json_new_strn(p, len));
            chat_chunk(c, g, chat_delta_choice(i, delta, NULL), NULL, 1);
        }
        chat_chunk(c, g, chat_delta_choice(i, json_object_new_object(), finish_reason(t)), NULL, 0);
    }
    if (g->include_usage)
        chat_chunk(c, g, NULL, chat_usage(g), 0);
    rd_emu_oai_sse_done(c->out);
}

void rd_emu_oai_chat(struct rd_emu_ctx *c)
{
    static const char *const max_keys[] = {"max_completion_tokens", "max_tokens", NULL};
    struct gen g = {0};
    struct rd_buf echo;
    rd_buf_init(&echo, 0);
    int64_t n = 1;
    uint32_t max_tokens = 0;

    g.model = rd_emu_oai_model(c);
    if (g.model == NULL || chat_messages(c, &echo, &g.prompt_tokens) < 0 ||
        gen_params(c, &g, max_keys, RD_EMU_MAX_GEN_TOKENS, &n, &max_tokens) < 0)
        goto out;
    rd_emu_oai_id(c, "chatcmpl-", "id", 15, g.id);
    g.texts = rd_calloc((size_t)n, sizeof *g.texts);
    g.n = (size_t)n;
    for (size_t i = 0; i < g.n; i++)
        gen_choice(c, &g, i, echo.data, echo.len, max_tokens);
    if (g.stream)
        chat_stream(c, &g);
    else
        chat_plain(c, &g);
out:
    gen_free(&g);
    rd_buf_free(&echo);
}

/* ---- legacy completions ------------------------------------------------- */

/* One prompt: its text (echoed) and token count. Token arrays echo nothing. */
struct prompt {
    const char *text;
    size_t len;
    uint32_t tokens;
};

static bool is_token_array(struct json_object *v)
{
    if (!json_object_is_type(v, json_type_array))
        return false;
    size_t n = json_object_array_length(v);
    for (size_t i = 0; i < n; i++)
        if (!rd_json_is_int(json_object_array_get_idx(v, i)))
            return false;
    return true;
}

static int prompt_item(struct rd_emu_ctx *c, struct json_object *v, struct prompt *p)
{
    if (json_object_is_type(v, json_type_string)) {
        p->text = json_object_get_string(v);
        p->len = (size_t)json_object_get_string_len(v);
        p->tokens = rd_emu_tokens_estimate(p->len);
        return 0;
    }
    if (is_token_array(v)) {
        p->text = "";
        p->len = 0;
        p->tokens = (uint32_t)json_object_array_length(v);
        return 0;
    }
    return rd_emu_oai_bad_type(c, "prompt", "a string or an array", v);
}

/* Parses "prompt" into *ps (owned by the caller); absent means the API's
 * default "<|endoftext|>". */
static int prompts(struct rd_emu_ctx *c, struct prompt **ps, size_t *count)
{
    static const char endoftext[] = "<|endoftext|>";
    struct json_object *v = rd_json_get(c->body, "prompt");
    *ps = NULL;
    *count = 0;
    if (v == NULL) {
        *ps = rd_calloc(1, sizeof **ps);
        **ps = (struct prompt){endoftext, sizeof endoftext - 1, 1};
        *count = 1;
        return 0;
    }
    bool list = json_object_is_type(v, json_type_array) && !is_token_array(v);
    size_t n = list ? json_object_array_length(v) : 1;
    if (n == 0 || n > RD_EMU_MAX_N) {
        rd_emu_oai_error(c->out, 400, "prompt", "invalid_value",
                         "Invalid 'prompt': the emulator accepts 1 to %d prompts per request, got %zu.",
                         RD_EMU_MAX_N, n);
        return -1;
    }
    *ps = rd_calloc(n, sizeof **ps);
    *count = n;
    for (size_t i = 0; i < n; i++)
        if (prompt_item(c, list ? json_object_array_get_idx(v, i) : v, &(*ps)[i]) < 0)
            return -1;
    return 0;
}

static struct json_object *completion_usage(const struct gen *g)
{
    struct json_object *u = json_object_new_object();
    add(u, "prompt_tokens", jint(g->prompt_tokens));
    add(u, "completion_tokens", jint(g->completion_tokens));
    add(u, "total_tokens", jint((int64_t)g->prompt_tokens + g->completion_tokens));
    return u;
}

static struct json_object *completion_choice(size_t index, const char *text, size_t len, const char *finish)
{
    struct json_object *ch = json_object_new_object();
    add(ch, "text", rd_json_new_strn(text, len));
    add(ch, "index", jint((int64_t)index));
    add(ch, "logprobs", NULL);
    add(ch, "finish_reason", finish ? jstr(finish) : NULL);
    return ch;
}

/* One text_completion object; choices NULL gives "choices":[]. */
static struct json_object *completion_object(const struct gen *g, struct json_object *choices, bool with_usage)
{
    struct json_object *root = json_object_new_object();
    add(root, "id", jstr(g->id));
    add(root, "object", jstr("text_completion"));
    add(root, "created", jint(g->created));
    add(root, "model", jstr(g->model));
    add(root, "choices", choices ? choices : json_object_new_array());
    if (with_usage)
        add(root, "usage", completion_usage(g));
    else if (g->stream && g->include_usage)
        add(root, "usage", NULL);
    return root;
}

static void completion_send(struct rd_emu_ctx *c, const struct gen *g)
{
    if (!g->stream) {
        struct json_object *choices = json_object_new_array();
        for (size_t i = 0; i < g->n; i++)
            json_object_array_add(choices, completion_choice(i, g->texts[i].s, g->texts[i].len,
                                                             finish_reason(&g->texts[i])));
        rd_emu_oai_json(c->out, completion_object(g, choices, true), g->completion_tokens);
        return;
    }
    rd_emu_oai_sse_begin(c->out);
    for (size_t i = 0; i < g->n; i++) {
        const struct rd_emu_text *t = &g->texts[i];
        for (size_t k = 0; k < t->n; k++) {
            const char *p = NULL;
            size_t len = rd_emu_text_piece(t, k, &p);
            struct json_object *choices = json_object_new_array();
            json_object_array_add(choices, completion_choice(i, p, len, NULL));
            rd_emu_oai_sse(c->out, NULL, completion_object(g, choices, false), 1);
        }
        struct json_object *choices = json_object_new_array();
        json_object_array_add(choices, completion_choice(i, "", 0, finish_reason(t)));
        rd_emu_oai_sse(c->out, NULL, completion_object(g, choices, false), 0);
    }
    if (g->include_usage)
        rd_emu_oai_sse(c->out, NULL, completion_object(g, NULL, true), 0);
    rd_emu_oai_sse_done(c->out);
}

void rd_emu_oai_completions(struct rd_emu_ctx *c)
{
    static const char *const max_keys[] = {"max_tokens", NULL};
    struct gen g = {0};
    struct prompt *ps = NULL;
    size_t np = 0;
    int64_t n = 1;
    uint32_t max_tokens = 0;

    g.model = rd_emu_oai_model(c);
    if (g.model == NULL || prompts(c, &ps, &np) < 0 ||
        gen_params(c, &g, max_keys, COMPLETIONS_DEFAULT_MAX, &n, &max_tokens) < 0)
        goto out;
    if (np * (size_t)n > RD_EMU_MAX_N) {
        rd_emu_oai_error(c->out, 400, "n", "invalid_value",
                         "Invalid 'n': %zu prompts x n=%lld exceeds the emulator's limit of %d choices.", np,
                         (long long)n, RD_EMU_MAX_N);
        goto out;
    }
    rd_emu_oai_id(c, "cmpl-", "id", 15, g.id);
    g.n = np * (size_t)n;
    g.texts = rd_calloc(g.n, sizeof *g.texts);
    for (size_t i = 0; i < g.n; i++) {
        const struct prompt *p = &ps[i / (size_t)n];
        if (i % (size_t)n == 0)
            g.prompt_tokens += p->tokens;
        gen_choice(c, &g, i, p->text, p->len, max_tokens);
    }
    completion_send(c, &g);
out:
    gen_free(&g);
    free(ps);
}
