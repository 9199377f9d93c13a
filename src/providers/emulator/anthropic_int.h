/* Private to src/providers/emulator: what the Anthropic dialect's files
 * (anthropic.c, anthropic_prompt.c, anthropic_msg.c, anthropic_tool.c,
 * anthropic_complete.c) share. */
#ifndef RD_PROVIDERS_EMULATOR_ANTHROPIC_INT_H
#define RD_PROVIDERS_EMULATOR_ANTHROPIC_INT_H

#include <stdbool.h>
#include <stdint.h>

#include "providers/emulator/anthropic.h"
#include "util/buf.h"
#include "util/hash.h"
#include "util/json.h"

#define RD_EMU_ANTH_MAX_BODY (32u << 20)  /* the API's own request limit */
#define RD_EMU_ANTH_MAX_GEN 4096          /* max_tokens above this generates this much */
#define RD_EMU_ANTH_IMAGE_TOKENS 1600     /* an image or binary document, about 1.1 megapixels */
#define RD_EMU_ANTH_TOOLS_AUTO_TOKENS 346 /* tool use system prompt, tool_choice auto/none */
#define RD_EMU_ANTH_TOOLS_ANY_TOKENS 313  /* tool_choice any/tool */
#define RD_EMU_ANTH_ID_MAX 48

/* What the prompt of a Messages request amounts to. */
struct rd_emu_anth_prompt {
    uint32_t input_tokens;
    struct rd_buf echo;       /* text of the last user turn (owned) */
    bool answers_tool;        /* the last user turn carries tool_result blocks */
    struct json_object *tool; /* the tool to call (borrowed from the body), NULL: answer in text */
    bool tool_forced;         /* tool_choice any/tool: no text before the call */
};

/* Parses req's body as a JSON object. On failure renders Anthropic's 400
 * ("The request body is not valid JSON: ...") and returns -1. *body is a
 * new reference on success. */
int rd_emu_anth_parse(const struct rd_emu_request *req, struct rd_emu_reply *out, struct json_object **body);

/* Sets out to a 200 application/json reply whose one chunk is obj
 * serialised; obj is consumed. */
void rd_emu_anth_json(struct rd_emu_reply *out, struct json_object *obj, uint32_t tokens);

/* The request seed: SHA-256 over the model, the proxy seed and every body
 * field but "stream" and "anthropic_version", in request order. */
void rd_emu_anth_seed(const char *model, struct json_object *body, uint64_t proxy_seed, uint8_t out[RD_SHA256_LEN]);

/* prefix + "01" + 22 base62 characters from SHA-256(seed || label), the
 * shape of Anthropic's ids (msg_01..., toolu_01..., compl_01...). */
void rd_emu_anth_id(const uint8_t seed[RD_SHA256_LEN], const char *label, const char *prefix,
                    char out[RD_EMU_ANTH_ID_MAX]);

/* Validates the prompt fields of a Messages or count_tokens body (messages,
 * system, tools, tool_choice) and counts the input tokens. On an invalid
 * body renders the API's 400 into out and returns -1; else fills p (free
 * it with rd_emu_anth_prompt_free) and returns 0. */
int rd_emu_anth_prompt(struct json_object *body, struct rd_emu_reply *out, struct rd_emu_anth_prompt *p);
void rd_emu_anth_prompt_free(struct rd_emu_anth_prompt *p);

/* A tool's input generated from its input_schema: required properties (all
 * properties when none are listed) filled with plausible values by type.
 * text is what string values are made from. Returns a new object. */
struct json_object *rd_emu_anth_tool_input(struct json_object *tool, const uint8_t seed[RD_SHA256_LEN],
                                           const char *text, size_t text_len);

/* Route handlers of rd_emu_anthropic. */
void rd_emu_anth_complete(const struct rd_emu_request *req, struct rd_emu_reply *out);

#endif
