/* AWS Bedrock (the bedrock-runtime data plane): what the provider
 * (src/providers/bedrock.c) shares with its emulator dialect
 * (src/providers/emulator/bedrock*.c) and the tests. See docs/providers.md,
 * "AWS Bedrock". */
#ifndef RD_PROVIDERS_BEDROCK_H
#define RD_PROVIDERS_BEDROCK_H

#include <stddef.h>
#include <stdint.h>

#include "providers/provider.h"
#include "util/buf.h"

extern const struct rd_provider rd_provider_bedrock;

/* The four runtime routes; the one '*' is the URL-encoded modelId. The
 * emulator dispatches on these patterns, so they are written once here. */
#define RD_BEDROCK_CONVERSE "/model/*/converse"
#define RD_BEDROCK_CONVERSE_STREAM "/model/*/converse-stream"
#define RD_BEDROCK_INVOKE "/model/*/invoke"
#define RD_BEDROCK_INVOKE_STREAM "/model/*/invoke-with-response-stream"

/* Longest AWS region name accepted (from the configuration, the
 * environment or a client's credential scope). */
#define RD_BEDROCK_REGION_MAX 32

/* Percent-decodes the modelId p[0..n) of a path into out (NUL-terminated,
 * cap bytes): "anthropic.claude-3-5-sonnet-20240620-v1%3A0" is
 * "anthropic.claude-3-5-sonnet-20240620-v1:0". An ARN (an inference profile
 * or provisioned model: "arn:aws:bedrock:...:inference-profile/us.x") gives
 * what follows its last '/'. Returns the length, 0 when the id decodes to a
 * control character, a malformed escape, or does not fit. Pure. */
size_t rd_bedrock_model_decode(const char *p, size_t n, char *out, size_t cap);

/* The region of a client's SigV4 Authorization value
 * ("AWS4-HMAC-SHA256 Credential=AKID/20260101/us-west-2/bedrock/aws4_request, ...")
 * into out (NUL-terminated, cap bytes); returns its length, 0 when there is
 * none or it is not a plausible region (lower-case letters, digits, '-').
 * Pure. */
size_t rd_bedrock_scope_region(const char *auth, char *out, size_t cap);

/* The AWS error type for an HTTP status: 400 ValidationException, 403
 * AccessDeniedException, 404 ResourceNotFoundException, 408 and 504
 * ModelTimeoutException, 424 ModelErrorException, 429 ThrottlingException,
 * 500 and 502 InternalServerException, 503 ServiceUnavailableException;
 * other 4xx ValidationException, other 5xx InternalServerException. Static
 * string. Pure. */
const char *rd_bedrock_error_type(int status);

/* Appends {"message":"..."} for message to body. */
void rd_bedrock_error_json(const char *message, struct rd_buf *body);

/* A mid-stream error as Bedrock sends it: one event-stream exception frame
 * (":message-type: exception", ":exception-type" the error type with a
 * lower-case first letter, as the stream's union member is named:
 * "throttlingException"), payload {"message":...}. Appended to out. Returns
 * 0 or rd_es_encode's error. */
int rd_bedrock_stream_error(const struct rd_error_spec *e, struct rd_buf *out);

/* Decodes standard base64 (with or without padding) s[0..n) into out
 * (appended). Returns 0, RD_EPROTO for a character outside the alphabet or
 * a bad length, RD_ETOOBIG for out's cap. Pure. */
int rd_bedrock_base64_decode(const char *s, size_t n, struct rd_buf *out);

/* Reads a Bedrock usage object (Converse "usage": inputTokens,
 * outputTokens, cacheReadInputTokens, cacheWriteInputTokens; or invoke's
 * "amazon-bedrock-invocationMetrics": inputTokenCount, outputTokenCount,
 * cacheReadInputTokenCount, cacheWriteInputTokenCount) obj[0..n) into u,
 * normalised as struct rd_usage says (Bedrock's input counts exclude the
 * cache reads and writes, so they are added). Malformed: u unchanged. */
void rd_bedrock_usage(const char *obj, size_t n, struct rd_usage *u);

/* The provider's hooks (struct rd_provider), exported for the tests. */

/* Prepare (bedrock_sign.c). The URL is the base (with no upstream_url:
 * https://bedrock-runtime.{region}.amazonaws.com) + path + query. An
 * "Authorization: Bearer" (a Bedrock API key) goes on untouched; otherwise
 * the request is signed with SigV4 (service "bedrock") for the upstream
 * host at up->now_ms, with the credentials of the configuration's aws block
 * or, when it has none, AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY /
 * AWS_SESSION_TOKEN, replacing the client's Authorization, X-Amz-Date,
 * X-Amz-Security-Token and X-Amz-Content-Sha256. The region is aws.region,
 * else the client's credential scope, else AWS_REGION / AWS_DEFAULT_REGION.
 * Fails with RD_EINVAL and up->fail_message set (no credentials, no region,
 * incomplete credentials), RD_ETOOBIG for a URL or header over the caps.
 * Reads the process environment (getenv). */
int rd_bedrock_prepare(const struct rd_provider *p, const struct rd_provider_req *r, struct rd_upstream_prep *up);

/* Stream hook (bedrock_usage.c): converse-stream's "metadata" event gives
 * the usage, and "messageStop" followed by "metadata" ends the stream (the
 * metadata event is the last one, so it returns 1); an invoke stream's
 * "chunk" events carry the model's JSON in base64 "bytes": Anthropic's
 * events go to rd_provider_stream_event_anthropic (message_stop ends the
 * stream), and "amazon-bedrock-invocationMetrics" (in the last chunk of
 * every model) gives the usage and ends it. Exceptions end nothing. */
int rd_bedrock_stream_event(const struct rd_provider *p, const struct rd_stream_event *ev, struct rd_usage *usage);

/* Body hook: Converse's "usage" (inputTokens, ...), an invoke body's
 * Anthropic "usage" (input_tokens, ...), Amazon Nova's "usage" (inputTokens)
 * or Meta Llama's prompt_token_count / generation_token_count. */
void rd_bedrock_body_usage(const struct rd_provider *p, const char *body, size_t len, struct rd_usage *usage);

#endif
