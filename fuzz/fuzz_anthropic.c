/* libFuzzer target for the anthropic provider, both halves that read
 * untrusted bytes:
 *  - the emulator (client bodies): any bytes give a well-formed reply (a
 *    status, a content type, a JSON body or SSE events whose data are JSON
 *    objects), and a streamed answer tags as many tokens as its
 *    message_delta reports;
 *  - the usage hooks (upstream bodies and streams): the stream hook sees the
 *    events of the input fed to the SSE scanner whole and split in two at a
 *    point the input picks, and must reach the same usage and end either way;
 *    counts never go negative.
 * The first byte picks the mode and route. */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "http/sse.h"
#include "providers/emulator/anthropic.h"
#include "providers/provider.h"
#include "util/buf.h"
#include "util/json.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static const struct {
    const char *method;
    const char *path;
    const char *query;
} ROUTES[] = {
    {"POST", "/v1/messages", ""},
    {"POST", "/v1/messages/count_tokens", ""},
    {"POST", "/v1/complete", ""},
    {"GET", "/v1/models", "limit=3&after_id=claude-opus-4-20250514"},
    {"GET", "/v1/models/claude-sonnet-4-5", ""},
    {"POST", "/v1/unknown", ""},
};
#define NROUTES (sizeof ROUTES / sizeof ROUTES[0])

static struct json_object *must_parse(const char *s, size_t n)
{
    struct json_object *doc = NULL;
    if (rd_json_parse(s, n, SIZE_MAX, &doc, NULL) != 0 || !json_object_is_type(doc, json_type_object))
        abort();
    return doc;
}

static void check_reply(const struct rd_emu_reply *r)
{
    if (r->status < 200 || r->status > 599 || r->content_type == NULL || r->n == 0)
        abort();
    if (!r->stream) {
        struct rd_buf body;
        rd_buf_init(&body, 0);
        for (size_t i = 0; i < r->n; i++)
            if (rd_buf_append(&body, r->chunks[i].data, r->chunks[i].len) != 0)
                abort();
        json_object_put(must_parse(body.data, body.len));
        rd_buf_free(&body);
        return;
    }
    uint64_t tagged = 0;
    int64_t reported = -1;
    for (size_t i = 0; i < r->n; i++) {
        const char *c = r->chunks[i].data;
        const char *nl = memchr(c, '\n', r->chunks[i].len);
        if (strncmp(c, "event: ", 7) != 0 || nl == NULL || strncmp(nl + 1, "data: ", 6) != 0)
            abort();
        const char *d = nl + 7;
        size_t dl = r->chunks[i].len - (size_t)(d - c);
        if (dl < 2 || memcmp(d + dl - 2, "\n\n", 2) != 0)
            abort();
        struct json_object *doc = must_parse(d, dl - 2);
        if (strcmp(rd_json_get_str(doc, "type") ? rd_json_get_str(doc, "type") : "", "message_delta") == 0)
            reported = rd_json_get_int(rd_json_get(doc, "usage"), "output_tokens", -1);
        json_object_put(doc);
        tagged += r->chunks[i].tokens;
    }
    /* Messages streams (legacy completions have no message_delta): the
     * pacing tags add up to the reported output tokens. */
    if (reported >= 0 && (uint64_t)reported != tagged)
        abort();
}

static void fuzz_emulator(const uint8_t *data, size_t size)
{
    const struct rd_provider *p = &rd_provider_anthropic;
    size_t pick = data[0] % NROUTES;
    struct rd_route_match m;
    rd_provider_route(p, ROUTES[pick].method, ROUTES[pick].path, &m);
    struct rd_emu_request req = {
        .method = ROUTES[pick].method,
        .path = ROUTES[pick].path,
        .query = ROUTES[pick].query,
        .body = (const char *)data + 1,
        .body_len = size - 1,
        .seed = size,
        .match = &m,
    };
    struct rd_emu_reply reply;
    if (p->emulate(p->emulator, &req, &reply) != 0)
        abort();
    check_reply(&reply);
    rd_emu_reply_free(&reply);
}

struct run {
    struct rd_usage u;
    int ended;
};

static int on_event(void *ud, const struct rd_sse_event *ev)
{
    struct run *r = ud;
    struct rd_stream_event se = rd_stream_event_of_sse(ev);
    r->ended += rd_provider_stream_event_anthropic(&rd_provider_anthropic, &se, &r->u);
    return 0;
}

static struct run feed(const char *s, size_t n, size_t at)
{
    struct run r = {.u = {-1, -1, -1, -1, -1}, .ended = 0};
    struct rd_sse sse;
    rd_sse_init(&sse, 1u << 16);
    /* Each piece in its own exact-size allocation: an overread is caught. */
    char *a = malloc(at ? at : 1), *b = malloc(n - at ? n - at : 1);
    if (a == NULL || b == NULL)
        abort();
    memcpy(a, s, at);
    memcpy(b, s + at, n - at);
    (void)rd_sse_feed(&sse, a, at, on_event, &r);
    (void)rd_sse_feed(&sse, b, n - at, on_event, &r);
    free(a);
    free(b);
    rd_sse_free(&sse);
    return r;
}

static void check_usage(const struct rd_usage *u)
{
    if (u->input < -1 || u->output < -1 || u->cached < -1 || u->cache_write < -1 || u->reasoning < -1)
        abort();
    if (u->input >= 0 && (u->cached > u->input || u->cache_write > u->input))
        abort(); /* cache counts are parts of input, never more */
}

static void fuzz_usage(const uint8_t *data, size_t size)
{
    const char *s = (const char *)data + 1;
    size_t n = size - 1;
    struct run whole = feed(s, n, n);
    struct run split = feed(s, n, n ? (size_t)data[0] * 977 % (n + 1) : 0);
    if (memcmp(&whole.u, &split.u, sizeof whole.u) != 0 || whole.ended != split.ended)
        abort();
    check_usage(&whole.u);
    /* the same bytes as a body */
    struct rd_usage b = {-1, -1, -1, -1, -1};
    char *copy = malloc(n ? n : 1);
    if (copy == NULL)
        abort();
    memcpy(copy, s, n);
    rd_provider_body_usage_anthropic(&rd_provider_anthropic, copy, n, &b);
    free(copy);
    check_usage(&b);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 1)
        return 0;
    if (data[0] & 0x80)
        fuzz_usage(data, size);
    else
        fuzz_emulator(data, size);
    return 0;
}
