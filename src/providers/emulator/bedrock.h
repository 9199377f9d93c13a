/* The Bedrock dialect of the emulator (bedrock.c, bedrock_converse.c):
 * Converse and ConverseStream for any model id, InvokeModel and
 * InvokeModelWithResponseStream for Claude (anthropic.* ids, with or
 * without an inference-profile prefix), with Bedrock's errors
 * ({"message"} and x-amzn-ErrorType). Both APIs are answered by the
 * Anthropic Messages builder (anthropic.h): Converse bodies are translated
 * into a Messages body and the answer back, so the same prompt gets the
 * same text on every route. Streams are AWS event-stream frames. Pure and
 * thread-safe. See docs/emulator.md, "Bedrock". */
#ifndef RD_PROVIDERS_EMULATOR_BEDROCK_H
#define RD_PROVIDERS_EMULATOR_BEDROCK_H

#include <stdbool.h>

#include "providers/emulator/emulator.h"

extern const struct rd_emu_dialect rd_emu_dialect_bedrock;

/* struct rd_provider.emulate of bedrock: dispatches on the route's pattern;
 * no route answers 404 UnknownOperationException. Returns 0. */
int rd_emu_bedrock(const struct rd_emu_dialect *d, const struct rd_emu_request *req, struct rd_emu_reply *out);

/* Replaces out with a Bedrock error: status, {"message":...},
 * x-amzn-ErrorType type (NULL: the type for the status). */
void rd_emu_bedrock_error(struct rd_emu_reply *out, int status, const char *type, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

/* An Anthropic error reply of the Messages builder (status >= 400) turned
 * into the same error in Bedrock's format; other replies are left alone. */
void rd_emu_bedrock_from_anthropic_error(struct rd_emu_reply *out);

/* Appends one event-stream event frame (":event-type" event,
 * application/json) carrying json to out as one chunk tagged with tokens. */
void rd_emu_bedrock_frame(struct rd_emu_reply *out, const char *event, const char *json, size_t len,
                          uint32_t tokens);

/* Converse (stream false) and ConverseStream (true) for model. */
void rd_emu_bedrock_converse(const struct rd_emu_request *req, const char *model, bool stream,
                             struct rd_emu_reply *out);

#endif
