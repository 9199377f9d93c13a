/* libFuzzer target for the bedrock provider, every half that reads
 * untrusted bytes:
 *  - the emulator (client bodies) on each route: any bytes give a
 *    well-formed reply: a status, a JSON body with "message" and an
 *    x-amzn-ErrorType for errors, or a stream whose every chunk is exactly
 *    one valid event-stream message, the stream hook ending it on the last
 *    one and never before;
 *  - the stream hook (upstream event streams): the input decoded whole and
 *    split in two at a point the input picks must give the same usage and
 *    end; counts never go below -1;
 *  - the body hook and the base64 decoder on raw bytes.
 * The first byte picks the mode and route; in stream mode the next two the
 * split point. */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "providers/bedrock.h"
#include "providers/provider.h"
#include "util/buf.h"
#include "util/eventstream.h"
#include "util/json.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static const char *const PATHS[] = {
    "/model/anthropic.claude-3-haiku-20240307-v1%3A0/converse",
    "/model/us.amazon.nova-pro-v1%3A0/converse-stream",
    "/model/anthropic.claude-3-haiku-20240307-v1%3A0/invoke",
    "/model/anthropic.claude-3-haiku-20240307-v1%3A0/invoke-with-response-stream",
    "/model/anthropic.claude-3-haiku-20240307-v1%3A0/converse-stream",
    "/model/x/unknown",
};
#define NPATHS (sizeof PATHS / sizeof PATHS[0])

static bool usage_ok(const struct rd_usage *u)
{
    return u->input >= -1 && u->output >= -1 && u->cached >= -1 && u->cache_write >= -1;
}

struct feed {
    struct rd_usage u;
    int ended;     /* events that ended the stream */
    uint64_t seen; /* events after the end */
};

static int on_msg(void *ud, const struct rd_es_msg *m)
{
    struct feed *f = ud;
    const char *mt = NULL, *name = "";
    size_t mt_len = 0, name_len = 0;
    (void)rd_es_header_string(m, ":message-type", &mt, &mt_len);
    bool event = mt == NULL || (mt_len == 5 && memcmp(mt, "event", 5) == 0);
    if (!rd_es_header_string(m, ":event-type", &name, &name_len))
        (void)rd_es_header_string(m, ":exception-type", &name, &name_len);
    struct rd_stream_event ev = {.type = event ? RD_STREAM_MSG_EVENT : RD_STREAM_MSG_EXCEPTION,
                                 .name = name,
                                 .name_len = name_len,
                                 .data = (const char *)m->payload,
                                 .data_len = m->payload_len};
    if (f->ended)
        f->seen++;
    f->ended += rd_bedrock_stream_event(&rd_provider_bedrock, &ev, &f->u);
    if (!usage_ok(&f->u))
        abort();
    return 0;
}

static void feed_stream(const uint8_t *p, size_t n, size_t split, struct feed *f)
{
    struct rd_es_decoder d;
    rd_es_decoder_init(&d, 0);
    *f = (struct feed){.u = {-1, -1, -1, -1, -1}};
    if (split > n)
        split = n;
    /* Each piece in its own heap block, so a read past it is caught. */
    uint8_t *a = malloc(split ? split : 1), *b = malloc(n - split ? n - split : 1);
    if (a == NULL || b == NULL)
        abort();
    memcpy(a, p, split);
    memcpy(b, p + split, n - split);
    if (rd_es_decoder_feed(&d, a, split, on_msg, f) == 0)
        (void)rd_es_decoder_feed(&d, b, n - split, on_msg, f);
    free(a);
    free(b);
    rd_es_decoder_free(&d);
}

static void fuzz_upstream_stream(const uint8_t *data, size_t size)
{
    if (size < 2)
        return;
    size_t split = ((size_t)data[0] << 8 | data[1]) % (size - 1);
    struct feed whole, parts;
    feed_stream(data + 2, size - 2, size - 2, &whole);
    feed_stream(data + 2, size - 2, split, &parts);
    if (memcmp(&whole.u, &parts.u, sizeof whole.u) != 0 || whole.ended != parts.ended)
        abort();
}

static void check_error(const struct rd_emu_reply *r)
{
    bool typed = false;
    for (size_t i = 0; i < r->nheaders; i++)
        typed |= strcmp(r->headers[i].name, "x-amzn-ErrorType") == 0 && r->headers[i].value[0] != '\0';
    struct json_object *doc = NULL;
    if (!typed || r->stream || r->n != 1 ||
        rd_json_parse(r->chunks[0].data, r->chunks[0].len, SIZE_MAX, &doc, NULL) != 0 ||
        rd_json_get_str(doc, "message") == NULL)
        abort();
    json_object_put(doc);
}

static void check_stream(const struct rd_emu_reply *r)
{
    struct feed f = {.u = {-1, -1, -1, -1, -1}};
    for (size_t i = 0; i < r->n; i++) {
        struct rd_es_msg m;
        int n = rd_es_decode((const uint8_t *)r->chunks[i].data, r->chunks[i].len, 0, &m);
        if (n < 0 || (size_t)n != r->chunks[i].len)
            abort(); /* one frame per chunk, whole */
        if (f.ended)
            abort(); /* the hook ended the stream before its last frame */
        (void)on_msg(&f, &m);
    }
    if (f.ended != 1 || f.u.input < 0 || f.u.output < 0)
        abort();
}

static void fuzz_emulator(const uint8_t *data, size_t size, size_t pick)
{
    const struct rd_provider *p = &rd_provider_bedrock;
    struct rd_route_match m;
    rd_provider_route(p, "POST", PATHS[pick], &m);
    struct rd_emu_request req = {
        .method = "POST",
        .path = PATHS[pick],
        .query = "",
        .body = (const char *)data,
        .body_len = size,
        .seed = size,
        .match = &m,
    };
    struct rd_emu_reply reply;
    if (p->emulate(p->emulator, &req, &reply) != 0 || reply.status < 200 || reply.status > 599 ||
        reply.content_type == NULL || reply.n == 0)
        abort();
    if (reply.status >= 400)
        check_error(&reply);
    else if (reply.stream)
        check_stream(&reply);
    rd_emu_reply_free(&reply);
}

static void fuzz_bodies(const uint8_t *data, size_t size)
{
    struct rd_usage u = {-1, -1, -1, -1, -1};
    rd_bedrock_body_usage(&rd_provider_bedrock, (const char *)data, size, &u);
    if (!usage_ok(&u))
        abort();
    struct rd_buf b;
    rd_buf_init(&b, 0);
    if (rd_bedrock_base64_decode((const char *)data, size, &b) == 0 && b.len > size)
        abort();
    rd_buf_free(&b);
    char model[128];
    (void)rd_bedrock_model_decode((const char *)data, size, model, sizeof model);
    if (strlen(model) >= sizeof model)
        abort();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 1)
        return 0;
    unsigned mode = data[0] % (NPATHS + 2);
    if (mode < NPATHS)
        fuzz_emulator(data + 1, size - 1, mode);
    else if (mode == NPATHS)
        fuzz_upstream_stream(data + 1, size - 1);
    else
        fuzz_bodies(data + 1, size - 1);
    return 0;
}
