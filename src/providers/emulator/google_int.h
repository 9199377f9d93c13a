/* Private to src/providers/emulator: what the Google dialect's handlers
 * (google_gen.c, google_embed.c) share with its router (google.c). */
#ifndef RD_PROVIDERS_EMULATOR_GOOGLE_INT_H
#define RD_PROVIDERS_EMULATOR_GOOGLE_INT_H

#include <stdbool.h>
#include <stdint.h>

#include "providers/emulator/emulator.h"
#include "util/buf.h"
#include "util/hash.h"
#include "util/json.h"

#define RD_GEMU_MAX_BODY (64u << 20)        /* second fence: the server caps bodies first */
#define RD_GEMU_MAX_CANDIDATES 8            /* generationConfig.candidateCount, like Gemini */
#define RD_GEMU_MAX_GEN_TOKENS 8192         /* maxOutputTokens above this is lowered */
#define RD_GEMU_IMAGE_TOKENS 258            /* prompt tokens per inline image, as Gemini counts them */
#define RD_GEMU_STREAM_TOKENS 4             /* text pieces per streamed chunk */
#define RD_GEMU_MAX_EMBED_ITEMS 250         /* batchEmbedContents / predict instances per request */
#define RD_GEMU_MAX_EMBED_FLOATS (1u << 20) /* items x dimensions per request */
#define RD_GEMU_ID_MAX 48

/* How the Gemini API and Vertex AI differ in what the emulator writes. */
struct rd_gemu_flavour {
    bool vertex;             /* Vertex: createTime, trafficType, resource names under publishers/google */
    const char *api_version; /* for messages: "v1beta" */
};

/* Length of v if it is an array, else 0 (json-c asserts on other types). */
static inline size_t rd_gemu_len(struct json_object *v)
{
    return json_object_is_type(v, json_type_array) ? json_object_array_length(v) : 0;
}

/* One request being answered. All pointers are borrowed. */
struct rd_gemu_ctx {
    const struct rd_gemu_flavour *f;
    const struct rd_emu_dialect *d;
    const struct rd_emu_request *req;
    struct json_object *body; /* parsed JSON object (POST routes), else NULL */
    char model[160];          /* the path's model id, printable ASCII */
    uint8_t seed[RD_SHA256_LEN];
    struct rd_emu_reply *out;
};

/* Replaces whatever out holds with Google's error body for status, with the
 * canonical status name (providers/google.h). */
void rd_gemu_error(struct rd_emu_reply *out, int status, const char *fmt, ...) __attribute__((format(printf, 3, 4)));

/* Sets out to a 200 JSON reply whose single chunk is obj (consumed), tagged
 * with tokens for pacing. */
void rd_gemu_json(struct rd_emu_reply *out, struct json_object *obj, uint32_t tokens);

/* Token estimate of a Content's parts ({"parts":[...]}): text bytes / 4
 * rounded up, RD_GEMU_IMAGE_TOKENS per inlineData/fileData part, the
 * serialised form of functionCall/functionResponse parts. The text (parts
 * joined by '\n') is appended to text when it is not NULL. */
uint32_t rd_gemu_content_tokens(struct json_object *content, struct rd_buf *text);

/* Validates body.contents (a non-empty array of Content with role "user",
 * "model" or absent, each with parts) and counts the prompt: contents,
 * systemInstruction and tools. The last user text goes to echo when not
 * NULL. Renders the 400 and returns -1 when invalid. */
int rd_gemu_prompt(struct rd_gemu_ctx *c, struct json_object *req, struct rd_buf *echo, uint32_t *tokens);

/* Reads an optional integer member of obj in [min, max] (dflt when absent);
 * on a wrong type or range renders the 400 naming field and returns -1. */
int rd_gemu_int(struct rd_gemu_ctx *c, struct json_object *obj, const char *key, const char *field, int64_t min,
                int64_t max, int64_t dflt, int64_t *val);

/* A deterministic id of nbytes seed bytes in base64url (responseId). */
void rd_gemu_id(const struct rd_gemu_ctx *c, const char *label, char out[RD_GEMU_ID_MAX]);

/* Default (and largest) output dimensionality of an embedding model id. */
uint32_t rd_gemu_embed_dims(const char *model);

/* Handlers: each renders a complete reply (success or error) into c->out. */
void rd_gemu_generate(struct rd_gemu_ctx *c);     /* :generateContent */
void rd_gemu_stream(struct rd_gemu_ctx *c);       /* :streamGenerateContent */
void rd_gemu_count_tokens(struct rd_gemu_ctx *c); /* :countTokens */
void rd_gemu_embed(struct rd_gemu_ctx *c);        /* :embedContent */
void rd_gemu_batch_embed(struct rd_gemu_ctx *c);  /* :batchEmbedContents */
void rd_gemu_predict(struct rd_gemu_ctx *c);      /* Vertex :predict (embedding instances) */

#endif
