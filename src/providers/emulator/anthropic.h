/* The Anthropic dialect of the emulator: the Messages API (plain and the
 * full SSE event sequence, text and tool use), token counting, models and
 * the legacy text completions, with Anthropic's error bodies. The Messages
 * builder is shared with the dialects that carry Anthropic's Messages API
 * inside another (Claude on Vertex AI's rawPredict, Bedrock's invoke), which
 * frame the events their own way. Everything here is a pure function of its
 * arguments and thread-safe. See docs/emulator.md. */
#ifndef RD_PROVIDERS_EMULATOR_ANTHROPIC_H
#define RD_PROVIDERS_EMULATOR_ANTHROPIC_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "providers/emulator/emulator.h"

/* Appends one event of an Anthropic answer to out in some framing: SSE
 * ("event: NAME\ndata: JSON\n\n") for the Anthropic API and Claude on Vertex,
 * AWS event-stream frames for Bedrock's invoke-with-response-stream. json is
 * a complete JSON object; tokens is what the event carries, for pacing. */
typedef void (*rd_emu_anthropic_frame_fn)(struct rd_emu_reply *out, const char *event, const char *json, size_t len,
                                          uint32_t tokens, void *ud);

/* The Anthropic Messages answer to req (body as the Messages API takes it;
 * model: the model to report, from the body or, when the body has none as on
 * Vertex and Bedrock, from the path). stream: false -> one JSON body; true ->
 * the events through frame (NULL frame: SSE). Fills out (status, content
 * type, chunks). Errors (malformed body, missing fields) are rendered in
 * Anthropic's error format. Returns 0.
 *
 * Details: model NULL reads the body's "model" (then required, as on the
 * Anthropic API). A body "stream" field is ignored: the caller says. A
 * streamed answer has out->stream set and content type
 * "text/event-stream; charset=utf-8" whatever frame is; a caller whose frames
 * are not SSE replaces out->content_type when out->stream is true (an error
 * is never streamed). The answer depends on the body and the model, not on
 * the path, so the same body gets the same text on every route that carries
 * it. "anthropic_version" in the body is accepted and ignored. */
int rd_emu_anthropic_messages(const struct rd_emu_request *req, const char *model, bool stream,
                              rd_emu_anthropic_frame_fn frame, void *ud, struct rd_emu_reply *out);

/* The SSE framing (the default of rd_emu_anthropic_messages): appends
 * "event: <event>\ndata: <json>\n\n" as one chunk tagged with tokens. ud is
 * unused. */
void rd_emu_anthropic_sse_frame(struct rd_emu_reply *out, const char *event, const char *json, size_t len,
                                uint32_t tokens, void *ud);

/* Replaces whatever out holds with an Anthropic error reply:
 * {"type":"error","error":{"type":<type for status>,"message":...}}, status
 * set, application/json. */
void rd_emu_anthropic_error(struct rd_emu_reply *out, int status, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/* Anthropic's error type for an HTTP status ("overloaded_error" for 529,
 * "invalid_request_error" for an unlisted 4xx, ...). Static string. Defined
 * with the provider (providers/anthropic.c) and shared with the emulator. */
const char *rd_anthropic_error_type(int status);

/* The Anthropic API's emulate function (struct rd_provider.emulate):
 * dispatches on req->match's route kind: messages (chat), count_tokens,
 * models list and retrieve, legacy completions; no route gets Anthropic's
 * 404. Returns 0. */
int rd_emu_anthropic(const struct rd_emu_dialect *d, const struct rd_emu_request *req, struct rd_emu_reply *out);

/* The Claude models the emulator lists (newest first), in d->models. */
extern const struct rd_emu_dialect rd_emu_dialect_anthropic;

#endif
