/* Bedrock's usage and stream hooks. Converse answers carry Bedrock's own
 * usage object; invoke answers are the model's JSON (Anthropic's Messages
 * API for Claude, whose hooks are reused), and invoke streams wrap each of
 * the model's events in base64 inside a "chunk" event. */
#include <stdlib.h>
#include <string.h>

#include "providers/bedrock.h"
#include "util/err.h"
#include "util/eventstream.h"
#include "util/json_scan.h"
#include "util/mem.h"

/* ---- base64 ---- */

static int b64val(unsigned char c)
{
    if (c >= 'A' && c <= 'Z')
        return c - 'A';
    if (c >= 'a' && c <= 'z')
        return c - 'a' + 26;
    if (c >= '0' && c <= '9')
        return c - '0' + 52;
    return c == '+' ? 62 : c == '/' ? 63 : -1;
}

int rd_bedrock_base64_decode(const char *s, size_t n, struct rd_buf *out)
{
    while (n > 0 && s[n - 1] == '=')
        n--;
    if (n % 4 == 1)
        return RD_EPROTO;
    uint32_t acc = 0;
    unsigned bits = 0;
    unsigned char tmp[192];
    size_t t = 0;
    for (size_t i = 0; i < n; i++) {
        int v = b64val((unsigned char)s[i]);
        if (v < 0)
            return RD_EPROTO;
        acc = (acc << 6) | (uint32_t)v;
        bits += 6;
        if (bits >= 8) {
            bits -= 8;
            tmp[t++] = (unsigned char)(acc >> bits);
            acc &= (1u << bits) - 1;
            if (t == sizeof tmp) {
                if (rd_buf_append(out, tmp, t) < 0)
                    return RD_ETOOBIG;
                t = 0;
            }
        }
    }
    return t && rd_buf_append(out, tmp, t) < 0 ? RD_ETOOBIG : 0;
}

/* ---- Bedrock's usage objects ---- */

struct counts {
    int64_t input, output, cache_read, cache_write;
    bool bad;
};

static bool key_is(const char *k, size_t n, bool esc, const char *want)
{
    return !esc && n == strlen(want) && memcmp(k, want, n) == 0;
}

static void read_count(struct counts *c, struct rd_json_span v, int64_t *dst)
{
    int64_t x;
    if (rd_json_span_int64(v, &x) == 0 && x >= 0)
        *dst = x;
    else if (!(v.n == 4 && memcmp(v.p, "null", 4) == 0))
        c->bad = true;
}

/* Converse's names and the invocation metrics' (the same with "Count"). */
static int on_count(void *ud, const char *k, size_t n, bool esc, struct rd_json_span v)
{
    struct counts *c = ud;
    if (key_is(k, n, esc, "inputTokens") || key_is(k, n, esc, "inputTokenCount"))
        read_count(c, v, &c->input);
    else if (key_is(k, n, esc, "outputTokens") || key_is(k, n, esc, "outputTokenCount"))
        read_count(c, v, &c->output);
    else if (key_is(k, n, esc, "cacheReadInputTokens") || key_is(k, n, esc, "cacheReadInputTokenCount"))
        read_count(c, v, &c->cache_read);
    else if (key_is(k, n, esc, "cacheWriteInputTokens") || key_is(k, n, esc, "cacheWriteInputTokenCount"))
        read_count(c, v, &c->cache_write);
    return 0;
}

static int64_t nonneg(int64_t v)
{
    return v < 0 ? 0 : v;
}

void rd_bedrock_usage(const char *obj, size_t n, struct rd_usage *u)
{
    struct counts c = {-1, -1, -1, -1, false};
    if (n == 0 || obj[0] != '{' || rd_json_scan_members(obj, n, on_count, &c) != 0 || c.bad)
        return;
    if (c.input < 0 && c.output < 0)
        return;
    int64_t input;
    if (__builtin_add_overflow(nonneg(c.input), nonneg(c.cache_read), &input) ||
        __builtin_add_overflow(input, nonneg(c.cache_write), &input))
        return; /* absurd counts from a hostile upstream */
    u->input = input;
    u->output = c.output;
    u->cached = c.cache_read;
    u->cache_write = c.cache_write;
}

/* ---- bodies ---- */

/* Meta Llama's invoke body: top-level prompt_token_count and
 * generation_token_count. */
static void llama_usage(const char *body, size_t len, struct rd_usage *u)
{
    static const char *const in[] = {"prompt_token_count", NULL};
    static const char *const out[] = {"generation_token_count", NULL};
    struct rd_json_span v;
    int64_t a = -1, b = -1;
    if (rd_json_scan_find(body, len, in, &v) == 0 && (rd_json_span_int64(v, &a) != 0 || a < 0))
        return;
    if (rd_json_scan_find(body, len, out, &v) == 0 && (rd_json_span_int64(v, &b) != 0 || b < 0))
        return;
    if (a >= 0 || b >= 0) {
        u->input = a;
        u->output = b;
    }
}

void rd_bedrock_body_usage(const struct rd_provider *p, const char *body, size_t len, struct rd_usage *usage)
{
    (void)p;
    struct rd_json_span v;
    if (rd_json_scan_find_top(body, len, "usage", &v) == 0 && v.n > 0 && v.p[0] == '{') {
        /* Claude's Message (snake_case) or Converse and Nova (camelCase). */
        if (memmem(v.p, v.n, "\"input_tokens\"", 14) || memmem(v.p, v.n, "\"output_tokens\"", 15))
            rd_provider_body_usage_anthropic(&rd_provider_anthropic, body, len, usage);
        else
            rd_bedrock_usage(v.p, v.n, usage);
        return;
    }
    llama_usage(body, len, usage);
}

/* ---- streams ---- */

static bool name_is(const struct rd_stream_event *ev, const char *want)
{
    return ev->name_len == strlen(want) && memcmp(ev->name, want, ev->name_len) == 0;
}

/* One invoke-stream chunk: {"bytes":"<base64 of the model's event>"}. */
static int chunk_event(const char *data, size_t len, struct rd_usage *usage)
{
    static const char *const path[] = {"bytes", NULL};
    struct rd_json_span v;
    if (rd_json_scan_find(data, len, path, &v) != 0 || v.n < 2 || v.p[0] != '"')
        return 0;
    /* The string as it is in the payload, unescaped (an encoder may write
     * '/' as "\/"); base64 is never longer than its text. */
    char *b64 = rd_malloc(v.n);
    int n = rd_json_scan_string(data, len, path, b64, v.n);
    struct rd_buf json;
    rd_buf_init(&json, RD_ES_MAX_TOTAL);
    int rc = n < 0 ? n : rd_bedrock_base64_decode(b64, (size_t)n, &json);
    free(b64);
    int ended = 0;
    if (rc == 0 && json.len > 0) {
        struct rd_stream_event inner = {.type = RD_STREAM_MSG_EVENT, .name = "", .name_len = 0, .data = json.data, .data_len = json.len};
        bool anthropic = memmem(json.data, json.len, "\"type\"", 6) != NULL;
        if (anthropic)
            ended = rd_provider_stream_event_anthropic(&rd_provider_anthropic, &inner, usage);
        struct rd_json_span m;
        if (memmem(json.data, json.len, "\"amazon-bedrock-invocationMetrics\"", 34) &&
            rd_json_scan_find_top(json.data, json.len, "amazon-bedrock-invocationMetrics", &m) == 0) {
            /* The model's own counts, when it gave them, are the detailed
             * ones; the metrics stand in for models that stream none. */
            if (usage->input < 0 && usage->output < 0)
                rd_bedrock_usage(m.p, m.n, usage);
            ended = 1; /* Bedrock adds them to the last chunk */
        }
    }
    rd_buf_free(&json);
    return ended;
}

int rd_bedrock_stream_event(const struct rd_provider *p, const struct rd_stream_event *ev, struct rd_usage *usage)
{
    (void)p;
    if (ev->type != RD_STREAM_MSG_EVENT)
        return 0;
    if (name_is(ev, "chunk"))
        return chunk_event(ev->data, ev->data_len, usage);
    if (name_is(ev, "metadata")) {
        /* The last event of a converse stream, after messageStop. */
        static const char *const path[] = {"usage", NULL};
        struct rd_json_span v;
        if (rd_json_scan_find(ev->data, ev->data_len, path, &v) == 0)
            rd_bedrock_usage(v.p, v.n, usage);
        return 1;
    }
    return 0;
}
