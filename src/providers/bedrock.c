/* AWS Bedrock: the bedrock-runtime API at
 * https://bedrock-runtime.{region}.amazonaws.com. Four routes under
 * /model/{modelId}/ (converse, converse-stream, invoke,
 * invoke-with-response-stream), the modelId URL-encoded (':' as %3A) and
 * decoded for logs and prices. Streams are AWS event-stream frames.
 *
 * Auth: a Bedrock API key (Authorization: Bearer) passes through; a SigV4
 * signature was computed by the SDK for the proxy's host, so the request is
 * signed again for the upstream (bedrock_sign.c). Usage and stream hooks are
 * in bedrock_usage.c; this file holds the data, the model and the errors. */
#include "providers/bedrock.h"

#include <json-c/json.h>
#include <stdio.h>
#include <string.h>

#include "providers/emulator/bedrock.h"
#include "util/err.h"
#include "util/eventstream.h"
#include "util/json.h"
#include "util/hash.h"

#define STREAM (RD_ROUTE_CACHEABLE | RD_ROUTE_STREAMABLE)

/* The emulator answers by this table too (rd_emu_bedrock). Invoke bodies
 * are the model's own format; Claude's is Anthropic's Messages API, which
 * the usage hooks recognise by its content rather than by route. */
static const struct rd_route routes[] = {
    {"POST", RD_BEDROCK_CONVERSE, RD_REQ_CHAT, RD_ROUTE_CACHEABLE, 1, NULL},
    {"POST", RD_BEDROCK_CONVERSE_STREAM, RD_REQ_CHAT, STREAM, 1, NULL},
    {"POST", RD_BEDROCK_INVOKE, RD_REQ_CHAT, RD_ROUTE_CACHEABLE, 1, NULL},
    {"POST", RD_BEDROCK_INVOKE_STREAM, RD_REQ_CHAT, STREAM, 1, NULL},
};

static const char *const auth_headers[] = {"authorization", "x-amz-security-token", NULL};
/* Converse's inferenceConfig, then the model-native bodies of InvokeModel:
 * Anthropic's (max_tokens, legacy max_tokens_to_sample), Titan's and
 * Llama's. */
static const char *const max_tokens_fields[] = {"inferenceConfig.maxTokens", "max_tokens", "max_tokens_to_sample",
                                                "textGenerationConfig.maxTokenCount", "max_gen_len", NULL};

/* Converse's requestMetadata only tags invocation logs. Streaming is the
 * path (converse-stream, invoke-with-response-stream), nothing to drop. */
static const char *const cache_ignore_fields[] = {"requestMetadata", NULL};
/* Converse's inferenceConfig, then the InvokeModel bodies as above
 * (Anthropic's and Llama's top level, Titan's textGenerationConfig). */
static const char *const cache_round_fields[] = {
    "inferenceConfig.temperature",      "inferenceConfig.topP",      "temperature", "top_p",
    "textGenerationConfig.temperature", "textGenerationConfig.topP", NULL};

/* ---- model -------------------------------------------------------------- */


size_t rd_bedrock_model_decode(const char *p, size_t n, char *out, size_t cap)
{
    if (cap == 0)
        return 0;
    size_t w = 0;
    for (size_t i = 0; i < n; i++) {
        char c = p[i];
        if (c == '%') {
            if (i + 2 >= n)
                goto bad;
            int hi = rd_hex_value(p[i + 1]), lo = rd_hex_value(p[i + 2]);
            if (hi < 0 || lo < 0)
                goto bad;
            c = (char)(hi * 16 + lo);
            i += 2;
        }
        if ((unsigned char)c < 0x20 || c == 0x7f || w + 1 >= cap)
            goto bad;
        out[w++] = c;
    }
    out[w] = '\0';
    if (w > 4 && memcmp(out, "arn:", 4) == 0) {
        const char *slash = strrchr(out, '/');
        if (slash && slash[1]) {
            size_t rest = w - (size_t)(slash + 1 - out);
            memmove(out, slash + 1, rest + 1);
            w = rest;
        }
    }
    return w;
bad:
    out[0] = '\0';
    return 0;
}

static size_t bedrock_model(const struct rd_provider *p, const struct rd_provider_req *r, char *out, size_t cap)
{
    (void)p;
    const struct rd_route_match *m = r->match;
    if (cap)
        out[0] = '\0';
    if (m == NULL || m->route == NULL || m->ncap < 1)
        return 0;
    return rd_bedrock_model_decode(m->cap[0].p, m->cap[0].n, out, cap);
}

/* ---- errors ------------------------------------------------------------- */

static const struct {
    int status;
    const char *type;
} ERROR_TYPES[] = {
    {400, "ValidationException"},        {401, "UnrecognizedClientException"},
    {403, "AccessDeniedException"},      {404, "ResourceNotFoundException"},
    {408, "ModelTimeoutException"},      {424, "ModelErrorException"},
    {429, "ThrottlingException"},        {500, "InternalServerException"},
    {502, "InternalServerException"},    {503, "ServiceUnavailableException"},
    {504, "ModelTimeoutException"},
};

const char *rd_bedrock_error_type(int status)
{
    for (size_t i = 0; i < sizeof ERROR_TYPES / sizeof ERROR_TYPES[0]; i++)
        if (ERROR_TYPES[i].status == status)
            return ERROR_TYPES[i].type;
    return status >= 500 ? "InternalServerException" : "ValidationException";
}

void rd_bedrock_error_json(const char *message, struct rd_buf *body)
{
    struct json_object *root = json_object_new_object();
    json_object_object_add(root, "message", json_object_new_string(message ? message : ""));
    size_t len;
    const char *s = rd_json_str(root, &len);
    (void)rd_buf_append(body, s, len);
    json_object_put(root);
}

/* {"message"} with x-amzn-ErrorType (which the SDKs read to pick the
 * exception class), x-amzn-RequestId and Retry-After. */
static void bedrock_error(const struct rd_provider *p, const struct rd_error_spec *e, struct rd_hdrs *hdrs,
                          struct rd_buf *body)
{
    rd_bedrock_error_json(e->message, body);
    rd_hdrs_add_ref(hdrs, "x-amzn-ErrorType", rd_bedrock_error_type(e->status));
    rd_provider_error_headers("application/json", p->request_id_header, e, hdrs);
}

int rd_bedrock_stream_error(const struct rd_error_spec *e, struct rd_buf *out)
{
    const char *type = rd_bedrock_error_type(e->status);
    char member[48];
    int n = snprintf(member, sizeof member, "%s", type);
    if (n <= 0 || (size_t)n >= sizeof member)
        return RD_EINVAL;
    member[0] = (char)(member[0] - 'A' + 'a'); /* every type starts with a capital */
    struct rd_buf payload;
    rd_buf_init(&payload, 0);
    rd_bedrock_error_json(e->message, &payload);
    int rc = rd_es_encode_event(out, true, member, "application/json", payload.data, payload.len);
    rd_buf_free(&payload);
    return rc;
}

static int bedrock_stream_error(const struct rd_provider *p, const struct rd_error_spec *e, struct rd_buf *out)
{
    (void)p;
    return rd_bedrock_stream_error(e, out);
}

const struct rd_provider rd_provider_bedrock = {
    .name = "bedrock",
    .display_name = "AWS Bedrock",
    /* A template: with no upstream_url the host follows the region
     * (bedrock_sign.c), so nothing connects to this literal. */
    .default_upstream = "https://bedrock-runtime.{region}.amazonaws.com",
    .dialect_name = "bedrock",
    .sdk_base_path = "", /* the SDK's endpoint; it appends /model/... */
    .auth_headers = auth_headers,
    .model_field = NULL, /* the path names the model */
    .max_tokens_fields = max_tokens_fields,
    .cache_ignore_fields = cache_ignore_fields,
    .cache_round_fields = cache_round_fields,
    .request_id_header = "x-amzn-RequestId",
    .routes = routes,
    .nroutes = sizeof routes / sizeof routes[0],
    .error_style = RD_ERRSTYLE_BEDROCK,
    .framing = RD_FRAMING_EVENTSTREAM,
    .emulator = &rd_emu_dialect_bedrock,
    .emulate = rd_emu_bedrock,
    .model = bedrock_model,
    .prepare = rd_bedrock_prepare,
    .error = bedrock_error,
    .stream_event = rd_bedrock_stream_event,
    .body_usage = rd_bedrock_body_usage,
    .stream_error = bedrock_stream_error, /* an exception frame */
};
