/* Google's generateContent dialect, written once for the two providers that
 * speak it: gemini (Google AI Studio, src/providers/gemini.c) and vertex_ai
 * (src/providers/vertex.c). They differ only in data (routes, auth headers,
 * default upstream) and in Vertex's host rule; the usage, stream and error
 * hooks below are shared. See docs/providers.md, "Gemini" and "Vertex AI". */
#ifndef RD_PROVIDERS_GOOGLE_H
#define RD_PROVIDERS_GOOGLE_H

#include <stddef.h>

#include "providers/provider.h"
#include "util/buf.h"

extern const struct rd_provider rd_provider_gemini;
extern const struct rd_provider rd_provider_vertex_ai;
/* max_tokens_fields of the dialect: generationConfig.maxOutputTokens. */
extern const char *const rd_google_max_tokens_fields[];
/* cache_round_fields of the dialect: generationConfig's temperature and
 * topP. */
extern const char *const rd_google_cache_round_fields[];
/* cache_query_params of the dialect: "alt" (alt=sse makes a stream SSE
 * rather than one JSON array). */
extern const char *const rd_google_cache_query_params[];

/* The canonical google.rpc status name for an HTTP status: 400
 * INVALID_ARGUMENT, 401 UNAUTHENTICATED, 403 PERMISSION_DENIED, 404
 * NOT_FOUND, 408 DEADLINE_EXCEEDED, 409 ABORTED, 429 RESOURCE_EXHAUSTED, 499
 * CANCELLED, 500 INTERNAL, 501 NOT_IMPLEMENTED, 503 UNAVAILABLE, 504
 * DEADLINE_EXCEEDED, anything else UNKNOWN. Static string. Pure. */
const char *rd_google_status(int code);

/* Appends Google's error object for e to body:
 * {"error":{"code":N,"message":"...","status":"CANONICAL"}}, with a
 * google.rpc.RetryInfo detail when e->retry_after_s >= 0. */
void rd_google_error_json(const struct rd_error_spec *e, struct rd_buf *body);

/* The error hook of both providers: the body above, Content-Type
 * "application/json; charset=UTF-8", the request id header, Retry-After. */
void rd_provider_error_google(const struct rd_provider *p, const struct rd_error_spec *e, struct rd_hdrs *hdrs,
                              struct rd_buf *body);

/* A mid-stream error as Google sends it on an alt=sse stream: one SSE data
 * line with the error object, "data: {"error":{...}}\r\n\r\n", after which
 * the stream ends (@google/genai raises ApiError with the code). Appended to
 * out; for the failure-simulation issue's stream faults. */
void rd_google_stream_error(const struct rd_error_spec *e, struct rd_buf *out);

/* Usage from one GenerateContentResponse object (or an embedContent
 * answer) with a usageMetadata member; leaves u unchanged when there is none
 * or it is malformed. The rule (docs/providers.md, "Gemini"):
 * input = promptTokenCount (which already includes cachedContentTokenCount)
 * + toolUsePromptTokenCount, cached = cachedContentTokenCount, output =
 * candidatesTokenCount + thoughtsTokenCount, reasoning = thoughtsTokenCount;
 * a field Google omits (proto3 leaves out zeros) counts 0, cache_write is
 * not reported (-1); a cachedContentTokenCount above the input is cut to the
 * input (cached is a part of it). Pure. */
void rd_google_usage(const char *doc, size_t len, struct rd_usage *u);

/* Stream hook: each data event is a GenerateContentResponse; its
 * usageMetadata (cumulative, the last wins) updates usage. Returns 1 for the
 * chunk that properly ends the stream: one whose candidates carry a
 * finishReason, or whose promptFeedback carries a blockReason (there is no
 * [DONE]); an error chunk does not end it properly. */
int rd_provider_stream_event_google(const struct rd_provider *p, const struct rd_stream_event *ev,
                                    struct rd_usage *usage);

/* Body hook: a GenerateContentResponse, an embedContent answer, or the JSON
 * array a streamGenerateContent without alt=sse answers (the last element
 * with usageMetadata wins); Vertex :predict embeddings sum their
 * statistics.token_count as input. */
void rd_provider_body_usage_google(const struct rd_provider *p, const char *body, size_t len, struct rd_usage *usage);

/* ---- Vertex AI ---- */

/* Longest location accepted from a path for the host rule. */
#define RD_VERTEX_LOCATION_MAX 63

/* The location segment of a Vertex path "/v1.../projects/{p}/locations/{l}/...":
 * returns its length with *loc pointing into path, or 0 when the path has
 * none or it is not a plausible location (lower-case letters, digits and
 * '-', at most RD_VERTEX_LOCATION_MAX bytes), so hostile paths never make a
 * host name. Pure. */
size_t rd_vertex_location(const char *path, const char **loc);

/* Room for the longest base URL rd_vertex_base_for writes. */
#define RD_VERTEX_BASE_MAX (sizeof "https://-aiplatform.googleapis.com" + RD_VERTEX_LOCATION_MAX)

/* Writes the Vertex AI base URL for location loc[0..n) into out
 * (NUL-terminated): "https://aiplatform.googleapis.com" for "global" (and
 * for n == 0), "https://{l}-aiplatform.googleapis.com" otherwise. Returns
 * its length, 0 if it does not fit in cap. Pure. */
size_t rd_vertex_base_for(const char *loc, size_t n, char *out, size_t cap);

/* Vertex's prepare hook: with no upstream_url (up->base_is_default) the host
 * follows the location in the path (rd_vertex_base_for); with one, the
 * configured base is used. Then path and query go on unchanged. */
int rd_vertex_prepare(const struct rd_provider *p, const struct rd_provider_req *r, struct rd_upstream_prep *up);

#endif
