/* POST /v1/complete, the legacy Text Completions API: a "\n\nHuman: ...
 * \n\nAssistant:" prompt, max_tokens_to_sample, and an answer of type
 * "completion" (stream: "event: completion" per piece after a ping). Still
 * served by the API for old clients (the 0.x SDK's completions.create). */
#include <stdlib.h>
#include <string.h>

#include "providers/emulator/anthropic_int.h"
#include "providers/emulator/text.h"
#include "util/mem.h"

static const char HUMAN[] = "\n\nHuman:";
static const char ASSISTANT[] = "\n\nAssistant:";

/* The last occurrence of needle in s[0..n), or NULL. */
static const char *last(const char *s, size_t n, const char *needle, size_t nl)
{
    const char *found = NULL;
    for (const char *p = s; (p = memmem(p, n - (size_t)(p - s), needle, nl)) != NULL; p++)
        found = p;
    return found;
}

struct completion {
    const char *model;
    char id[RD_EMU_ANTH_ID_MAX];
    struct rd_emu_text text;
    const char *stop_reason;
    const char *stop; /* the stop sequence met, NULL for max_tokens */
};

static struct json_object *object(const struct completion *c, const char *text, size_t n, bool final)
{
    struct json_object *o = json_object_new_object();
    json_object_object_add(o, "type", json_object_new_string("completion"));
    json_object_object_add(o, "id", json_object_new_string(c->id));
    json_object_object_add(o, "completion", rd_json_new_strn(text, n));
    json_object_object_add(o, "stop_reason", final ? json_object_new_string(c->stop_reason) : NULL);
    json_object_object_add(o, "model", json_object_new_string(c->model));
    json_object_object_add(o, "stop", final && c->stop ? json_object_new_string(c->stop) : NULL);
    json_object_object_add(o, "log_id", json_object_new_string(c->id));
    return o;
}

static void frame(struct rd_emu_reply *out, const char *event, struct json_object *obj, uint32_t tokens)
{
    size_t len = 0;
    const char *s = rd_json_str(obj, &len);
    rd_emu_anthropic_sse_frame(out, event, s, len, tokens, NULL);
    json_object_put(obj);
}

/* Validates the request; the prompt and its turn markers as the API checks
 * them. Returns -1 with the 400 rendered. */
static int validate(struct json_object *body, struct rd_emu_reply *out, const char **model, const char **prompt,
                    size_t *prompt_len, uint32_t *budget)
{
    struct json_object *m = rd_json_get(body, "model"), *p = rd_json_get(body, "prompt"),
                       *mt = rd_json_get(body, "max_tokens_to_sample");
    const char *msg = NULL;
    if (m == NULL)
        msg = "model: Field required";
    else if (!json_object_is_type(m, json_type_string))
        msg = "model: Input should be a valid string";
    else if (p == NULL)
        msg = "prompt: Field required";
    else if (!json_object_is_type(p, json_type_string))
        msg = "prompt: Input should be a valid string";
    else if (mt == NULL)
        msg = "max_tokens_to_sample: Field required";
    else if (!rd_json_is_int(mt))
        msg = "max_tokens_to_sample: Input should be a valid integer";
    else if (json_object_get_int64(mt) < 1)
        msg = "max_tokens_to_sample: Input should be greater than or equal to 1";
    if (msg) {
        rd_emu_anthropic_error(out, 400, "%s", msg);
        return -1;
    }
    *model = json_object_get_string(m);
    *prompt = json_object_get_string(p);
    *prompt_len = (size_t)json_object_get_string_len(p);
    if (memmem(*prompt, *prompt_len, HUMAN, sizeof HUMAN - 1) == NULL) {
        rd_emu_anthropic_error(out, 400,
                               "prompt must start with \"\\n\\nHuman:\" turn after an optional system prompt");
        return -1;
    }
    size_t al = sizeof ASSISTANT - 1;
    size_t end = *prompt_len;
    while (end > 0 && ((*prompt)[end - 1] == ' ' || (*prompt)[end - 1] == '\t'))
        end--;
    if (end < al || memcmp(*prompt + end - al, ASSISTANT, al) != 0) {
        rd_emu_anthropic_error(out, 400, "prompt must end with \"\\n\\nAssistant:\" turn");
        return -1;
    }
    int64_t x = json_object_get_int64(mt);
    *budget = x > RD_EMU_ANTH_MAX_GEN ? RD_EMU_ANTH_MAX_GEN : (uint32_t)x;
    return 0;
}

void rd_emu_anth_complete(const struct rd_emu_request *req, struct rd_emu_reply *out)
{
    struct json_object *body = NULL;
    if (rd_emu_anth_parse(req, out, &body) < 0)
        return;
    const char *prompt = NULL;
    size_t plen = 0;
    uint32_t budget = 0;
    struct completion c = {0};
    if (validate(body, out, &c.model, &prompt, &plen, &budget) < 0)
        goto out;
    /* The echo is the last Human turn, up to the final Assistant marker. */
    const char *h = last(prompt, plen, HUMAN, sizeof HUMAN - 1) + sizeof HUMAN - 1;
    const char *a = last(prompt, plen, ASSISTANT, sizeof ASSISTANT - 1);
    const char *e = a && a >= h ? a : prompt + plen;
    while (h < e && *h == ' ')
        h++;
    uint8_t seed[RD_SHA256_LEN], sub[RD_SHA256_LEN];
    rd_emu_anth_seed(c.model, body, req->seed, seed);
    rd_emu_anth_id(seed, "id", "compl_", c.id);
    rd_emu_subseed(seed, "text", 0, sub);
    rd_emu_text_generate(sub, h, (size_t)(e - h), budget, &c.text);
    /* A finished answer ends where the model would start the next Human
     * turn, which is a stop sequence of the API's own. */
    c.stop_reason = c.text.truncated ? "max_tokens" : "stop_sequence";
    c.stop = c.text.truncated ? NULL : HUMAN;
    bool stream = rd_json_get_bool(body, "stream", false);
    if (!stream) {
        rd_emu_anth_json(out, object(&c, c.text.s, c.text.len, true), (uint32_t)c.text.n);
    } else {
        rd_emu_reply_free(out);
        out->status = 200;
        out->content_type = rd_strdup("text/event-stream; charset=utf-8");
        out->stream = true;
        struct json_object *ping = json_object_new_object();
        json_object_object_add(ping, "type", json_object_new_string("ping"));
        frame(out, "ping", ping, 0);
        for (size_t i = 0; i < c.text.n; i++) {
            const char *p = NULL;
            size_t len = rd_emu_text_piece(&c.text, i, &p);
            frame(out, "completion", object(&c, p, len, false), 1);
        }
        frame(out, "completion", object(&c, "", 0, true), 0);
    }
    rd_emu_text_free(&c.text);
out:
    json_object_put(body);
}
