/* Private to src/providers/emulator: what the OpenAI-compatible route
 * handlers (openai_chat.c, openai_embed.c, openai_resp.c) share with the
 * router and error renderer in openai.c. */
#ifndef RD_PROVIDERS_EMULATOR_OPENAI_INT_H
#define RD_PROVIDERS_EMULATOR_OPENAI_INT_H

#include <stdbool.h>
#include <stdint.h>

#include "providers/emulator/emulator.h"
#include "util/buf.h"
#include "util/hash.h"
#include "util/json.h"

/* Caps on sizes that come from the request (the body itself is capped by the
 * server before it reaches the emulator; RD_EMU_MAX_BODY is a second fence). */
#define RD_EMU_MAX_BODY (64u << 20)
#define RD_EMU_MAX_N 128               /* choices per request, like OpenAI */
#define RD_EMU_MAX_GEN_TOKENS 4096     /* max_tokens above this is clamped */
#define RD_EMU_MAX_DIMENSIONS 8192     /* embeddings: 400 above */
#define RD_EMU_MAX_EMBED_INPUTS 2048   /* embeddings: items per request, like OpenAI */
#define RD_EMU_MAX_EMBED_FLOATS (1u << 21) /* items x dimensions per request */
#define RD_EMU_IMAGE_TOKENS 85         /* prompt tokens counted per image part */
/* "created" timestamps are this epoch second plus an offset (< 1 year)
 * taken from the request hash: plausible, and deterministic. */
#define RD_EMU_CREATED_BASE 1735689600
#define RD_EMU_MODEL_CREATED 1715367049

/* One request being answered. All pointers are borrowed. */
struct rd_emu_ctx {
    const struct rd_emu_dialect *d;
    const struct rd_emu_request *req;
    struct json_object *body; /* parsed JSON object (POST routes), else NULL */
    uint8_t seed[RD_SHA256_LEN]; /* SHA-256 of the canonical request */
    struct rd_emu_reply *out;
};

/* Replaces whatever out holds with an OpenAI error body:
 * {"error":{"message","type":"invalid_request_error","param","code"}}.
 * param and code may be NULL (rendered as null). */
void rd_emu_oai_error(struct rd_emu_reply *out, int status, const char *param, const char *code, const char *fmt, ...)
    __attribute__((format(printf, 5, 6)));

/* Sets out to a 200 application/json reply whose single chunk is obj
 * serialised; obj is consumed (released). tokens tags the chunk for pacing. */
void rd_emu_oai_json(struct rd_emu_reply *out, struct json_object *obj, uint32_t tokens);

/* Marks out as a 200 SSE reply (content type set, no chunk yet). */
void rd_emu_oai_sse_begin(struct rd_emu_reply *out);
/* Appends "data: <obj>\n\n" ("event: <event>\n" first when event is not
 * NULL); obj is consumed. */
void rd_emu_oai_sse(struct rd_emu_reply *out, const char *event, struct json_object *obj, uint32_t tokens);
/* Appends "data: [DONE]\n\n". */
void rd_emu_oai_sse_done(struct rd_emu_reply *out);

/* Reads body[key] as an optional integer in [min, max]: *val is dflt when the
 * key is absent or null. On a wrong type or range renders OpenAI's 400 into
 * c->out and returns -1; returns 0 otherwise. */
int rd_emu_oai_int_param(struct rd_emu_ctx *c, const char *key, int64_t min, int64_t max, int64_t dflt,
                         int64_t *val);

/* Reads the "model" field: a non-empty string, else dialect default, else
 * the 400 "Missing required parameter" is rendered and NULL returned. */
const char *rd_emu_oai_model(struct rd_emu_ctx *c);

/* Renders the 400 for a missing required parameter. Returns -1. */
int rd_emu_oai_missing(struct rd_emu_ctx *c, const char *param);
/* Renders the 400 for a parameter of the wrong JSON type. Returns -1. */
int rd_emu_oai_bad_type(struct rd_emu_ctx *c, const char *param, const char *expected, struct json_object *got);

/* Deterministic fields derived from the seed: an id made of prefix + hex of
 * nbytes (at most 32) seed-derived bytes, written to out (label tells apart
 * the ids of one request; prefix is a short literal), and the "created"
 * second. */
#define RD_EMU_ID_MAX 96
void rd_emu_oai_id(const struct rd_emu_ctx *c, const char *prefix, const char *label, size_t nbytes,
                   char out[RD_EMU_ID_MAX]);
int64_t rd_emu_oai_created(const struct rd_emu_ctx *c);

/* Appends the text of a message content (a string, or an array of parts with
 * a "text" string, joined by '\n') to buf; *extra gets RD_EMU_IMAGE_TOKENS
 * per image part. Other shapes add nothing. */
void rd_emu_oai_content_text(struct json_object *content, struct rd_buf *buf, uint32_t *extra);

/* Route handlers: each renders a complete reply (success or error) into c->out. */
void rd_emu_oai_chat(struct rd_emu_ctx *c);
void rd_emu_oai_completions(struct rd_emu_ctx *c);
void rd_emu_oai_embeddings(struct rd_emu_ctx *c);
void rd_emu_oai_responses(struct rd_emu_ctx *c);

#endif
