/* The Bedrock dialect: dispatch by route, Bedrock's errors and the event-
 * stream framing, and InvokeModel for Claude through the Anthropic
 * Messages builder (the stream wraps each Anthropic event in base64 inside
 * a "chunk" event, and the last one carries the invocation metrics). */
#include "providers/emulator/bedrock.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "providers/bedrock.h"
#include "providers/emulator/anthropic.h"
#include "providers/emulator/text.h"
#include "providers/provider.h"
#include "util/eventstream.h"
#include "util/json.h"
#include "util/mem.h"

#define ES_CONTENT_TYPE "application/vnd.amazon.eventstream"
#define ECHO_MAX 256 /* bytes of a model id quoted back in an error */

const struct rd_emu_dialect rd_emu_dialect_bedrock = {
    .owned_by = "bedrock",
    .models = NULL, /* the runtime API lists no models */
    .default_model = NULL,
};

/* ---- errors and frames -------------------------------------------------- */

static void error_body(struct rd_emu_reply *out, int status, const char *type, const char *msg, size_t len)
{
    struct json_object *root = json_object_new_object();
    json_object_object_add(root, "message", rd_json_new_strn(msg, len));
    size_t n = 0;
    const char *s = rd_json_str(root, &n);
    rd_emu_reply_free(out);
    out->status = status;
    out->content_type = rd_strdup("application/json");
    rd_emu_reply_add(out, s, n, 0);
    rd_emu_reply_header(out, "x-amzn-ErrorType", type ? type : rd_bedrock_error_type(status));
    json_object_put(root);
}

void rd_emu_bedrock_error(struct rd_emu_reply *out, int status, const char *type, const char *fmt, ...)
{
    char msg[1024];
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    size_t len = n < 0 ? 0 : (size_t)n < sizeof msg ? (size_t)n : sizeof msg - 1;
    error_body(out, status, type, msg, len);
}

void rd_emu_bedrock_from_anthropic_error(struct rd_emu_reply *out)
{
    if (out->status < 400 || out->n != 1)
        return;
    struct json_object *doc = NULL;
    const char *msg = "The request is invalid.";
    if (rd_json_parse(out->chunks[0].data, out->chunks[0].len, 1u << 20, &doc, NULL) == 0) {
        const char *m = rd_json_get_str(rd_json_get(doc, "error"), "message");
        if (m)
            msg = m;
    }
    /* Copied first: error_body frees the chunk doc was parsed from, not doc. */
    char *copy = rd_strdup(msg);
    error_body(out, out->status, NULL, copy, strlen(copy));
    free(copy);
    json_object_put(doc);
}

void rd_emu_bedrock_frame(struct rd_emu_reply *out, const char *event, const char *json, size_t len,
                          uint32_t tokens)
{
    struct rd_buf b;
    rd_buf_init(&b, 0);
    if (rd_es_encode_event(&b, false, event, "application/json", json, len) != 0)
        abort(); /* the emulator's own events are far below the caps */
    rd_emu_reply_add(out, b.data, b.len, tokens);
    rd_buf_free(&b);
}

/* ---- InvokeModel (Claude) ----------------------------------------------- */

struct invoke_ctx {
    int64_t input, output;
};

/* The deterministic latencies of the metrics: a first byte after 200 ms,
 * then 15 ms per output token. */
static int64_t latency_ms(int64_t output_tokens)
{
    return 200 + 15 * (output_tokens > 0 ? output_tokens : 0);
}

/* One Anthropic event as an invoke-stream chunk: {"bytes": base64(json)};
 * message_stop gains "amazon-bedrock-invocationMetrics" as on Bedrock. */
static void invoke_frame(struct rd_emu_reply *out, const char *event, const char *json, size_t len, uint32_t tokens,
                         void *ud)
{
    struct invoke_ctx *c = ud;
    struct json_object *ev = NULL;
    if (rd_json_parse(json, len, 1u << 24, &ev, NULL) != 0)
        abort(); /* the builder's own JSON */
    if (strcmp(event, "message_start") == 0)
        c->input = rd_json_get_int(rd_json_get(rd_json_get(ev, "message"), "usage"), "input_tokens", 0);
    else if (strcmp(event, "message_delta") == 0)
        c->output = rd_json_get_int(rd_json_get(ev, "usage"), "output_tokens", 0);
    else if (strcmp(event, "message_stop") == 0) {
        struct json_object *m = json_object_new_object();
        json_object_object_add(m, "inputTokenCount", json_object_new_int64(c->input));
        json_object_object_add(m, "outputTokenCount", json_object_new_int64(c->output));
        json_object_object_add(m, "invocationLatency", json_object_new_int64(latency_ms(c->output)));
        json_object_object_add(m, "firstByteLatency", json_object_new_int64(latency_ms(0)));
        json_object_object_add(ev, "amazon-bedrock-invocationMetrics", m);
    }
    size_t n = 0;
    const char *s = rd_json_str(ev, &n);
    size_t b64_len = 0;
    char *b64 = rd_emu_base64(s, n, &b64_len);
    struct json_object *payload = json_object_new_object();
    json_object_object_add(payload, "bytes", rd_json_new_strn(b64, b64_len));
    free(b64);
    size_t pn = 0;
    const char *ps = rd_json_str(payload, &pn);
    rd_emu_bedrock_frame(out, "chunk", ps, pn, tokens);
    json_object_put(payload);
    json_object_put(ev);
}

/* anthropic.* with an optional inference-profile prefix ("us.", "global."). */
static bool is_claude(const char *model)
{
    if (strncmp(model, "anthropic.", 10) == 0)
        return true;
    const char *dot = strchr(model, '.');
    return dot && (size_t)(dot - model) <= 7 && strncmp(dot + 1, "anthropic.", 10) == 0;
}

static void invoke(const struct rd_emu_request *req, const char *model, bool stream, struct rd_emu_reply *out)
{
    if (!is_claude(model)) {
        rd_emu_bedrock_error(out, 400, NULL,
                             "The emulator answers InvokeModel only for Anthropic Claude models (anthropic.*); "
                             "use the Converse API for %.*s.",
                             ECHO_MAX, model);
        return;
    }
    struct invoke_ctx c = {0, 0};
    rd_emu_anthropic_messages(req, model, stream, stream ? invoke_frame : NULL, &c, out);
    if (out->status >= 400) {
        rd_emu_bedrock_from_anthropic_error(out);
    } else if (out->stream) {
        free(out->content_type);
        out->content_type = rd_strdup(ES_CONTENT_TYPE);
    }
}

/* ---- entry point -------------------------------------------------------- */

int rd_emu_bedrock(const struct rd_emu_dialect *d, const struct rd_emu_request *req, struct rd_emu_reply *out)
{
    (void)d;
    memset(out, 0, sizeof *out);
    const struct rd_route_match *m = req->match;
    const struct rd_route *r = m ? m->route : NULL;
    char model[128] = "";
    if (r && m->ncap >= 1)
        (void)rd_bedrock_model_decode(m->cap[0].p, m->cap[0].n, model, sizeof model);
    if (r == NULL) {
        rd_emu_bedrock_error(out, 404, "UnknownOperationException", "Not Found");
    } else if (model[0] == '\0') {
        rd_emu_bedrock_error(out, 400, NULL, "The provided model identifier is invalid.");
    } else if (strcmp(r->pattern, RD_BEDROCK_CONVERSE) == 0) {
        rd_emu_bedrock_converse(req, model, false, out);
    } else if (strcmp(r->pattern, RD_BEDROCK_CONVERSE_STREAM) == 0) {
        rd_emu_bedrock_converse(req, model, true, out);
    } else if (strcmp(r->pattern, RD_BEDROCK_INVOKE) == 0) {
        invoke(req, model, false, out);
    } else if (strcmp(r->pattern, RD_BEDROCK_INVOKE_STREAM) == 0) {
        invoke(req, model, true, out);
    } else {
        rd_emu_bedrock_error(out, 404, "UnknownOperationException", "Not Found");
    }
    return 0;
}
