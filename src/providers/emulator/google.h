/* The emulator's Google dialect (generateContent and friends), for the
 * gemini and vertex_ai providers. Which paths it answers is the provider's
 * route table; the two providers differ only in the entry point (the
 * resource names and fields that the Gemini API and Vertex AI spell
 * differently). See docs/emulator.md, "Google dialect". */
#ifndef RD_PROVIDERS_EMULATOR_GOOGLE_H
#define RD_PROVIDERS_EMULATOR_GOOGLE_H

#include "providers/emulator/emulator.h"

/* Google's models served by the models routes (ids; the embedding models
 * are those whose id contains "embedding"). Read-only. */
extern const struct rd_emu_dialect rd_emu_dialect_google;

/* Builds the answer of the Gemini API (gemini) or of Vertex AI (vertex)
 * for req into *out (freed by the caller with rd_emu_reply_free).
 * Dispatches on req->match's route: generateContent, streamGenerateContent
 * (SSE with alt=sse in the query, else a progressively sent JSON array),
 * countTokens, embedContent, batchEmbedContents, predict (Vertex
 * embeddings), the models routes; Vertex's Claude routes answer in
 * Anthropic's dialect. Always produces a reply: no route gets Google's 404,
 * malformed JSON its 400 INVALID_ARGUMENT. Returns 0. Pure, thread-safe. */
int rd_emu_gemini(const struct rd_emu_dialect *d, const struct rd_emu_request *req, struct rd_emu_reply *out);
int rd_emu_vertex(const struct rd_emu_dialect *d, const struct rd_emu_request *req, struct rd_emu_reply *out);

#endif
