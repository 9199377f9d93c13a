/* libFuzzer target for the HTTP/2 front end (src/http/h2.c, h2_stream.c).
 *
 * The input is what a client sends after the 24-byte connection preface.
 * The front end runs on an in-memory transport with a fake clock: the input
 * is fed in pseudo-random chunks (seeded from the input), the clock moves
 * between chunks and the deadline fires when it passes, the transport now and
 * then reports a full socket (so output waits in the streams' queues). The
 * handler answers at once, streams a reply that it ends later, or holds the
 * exchange; exchanges still held at the end hear on_gone. Besides memory
 * errors and leaks, the target traps when:
 *  - the transport's close is not called exactly once after rd_h2_gone();
 *  - an exchange outlives the connection (a handler never heard on_gone);
 *  - the front end writes after it closed the transport. */
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "http/h2.h"
#include "util/buf.h"
#include "check.h"


#define MAX_HELD 8

struct fx {
    uint64_t now, deadline, accepted, rng;
    size_t pending;
    int closes;
    struct rd_http_exch *held[MAX_HELD];
    int nheld;
};

static struct fx F;

static uint32_t next_rand(void)
{
    F.rng = F.rng * 6364136223846793005u + 1442695040888963407u;
    return (uint32_t)(F.rng >> 33);
}

static int tp_send(void *ud, const uv_buf_t *bufs, unsigned int nbufs)
{
    (void)ud;
    CHECK(F.closes == 0);
    for (unsigned int i = 0; i < nbufs; i++)
        F.accepted += bufs[i].len;
    /* Now and then the socket is full: the next flush waits. */
    F.pending = (next_rand() % 8 == 0) ? 128u * 1024u : 0;
    return 0;
}

static size_t tp_pending(const void *ud)
{
    (void)ud;
    return F.pending;
}

static uint64_t tp_accepted(const void *ud)
{
    (void)ud;
    return F.accepted;
}

static uint64_t tp_now(const void *ud)
{
    (void)ud;
    return F.now;
}

static void tp_set_deadline(void *ud, uint64_t at)
{
    (void)ud;
    F.deadline = at;
}

static void tp_close(void *ud)
{
    (void)ud;
    F.closes++;
}

static const struct rd_h2_transport tp = {tp_send, tp_pending, tp_accepted, tp_now, tp_set_deadline, tp_close};

static void forget(struct rd_http_exch *x)
{
    for (int i = 0; i < F.nheld; i++)
        if (F.held[i] == x) {
            F.held[i] = F.held[--F.nheld];
            return;
        }
}

static void on_gone(void *ud)
{
    struct rd_http_exch *x = ud;
    forget(x);
    rd_http_abort(x);
}

static void on_drain(void *ud)
{
    struct rd_http_exch *x = ud;
    (void)rd_http_write(x, "drained", 7);
}

static void handler(struct rd_http_exch *x, void *ud)
{
    (void)ud;
    const char *p = x->req->path;
    CHECK(x->req->method && p && x->req->query);
    static const char big[70000];
    switch (p[0] && p[1] ? p[1] : 'e') {
    case 'h': /* hold: ended at the end (on_gone) */
    case 's': /* stream: head and a chunk now, more on drain */
        if (F.nheld == MAX_HELD) {
            rd_http_respond(x, 503, NULL, "busy", 4);
            return;
        }
        rd_http_set_callbacks(x, on_drain, on_gone, x);
        F.held[F.nheld++] = x;
        if (p[1] == 's' && rd_http_begin(x, 200, NULL, -1) == 0)
            (void)rd_http_write(x, big, sizeof big);
        return;
    case 'l': /* announces more than it sends */
        if (rd_http_begin(x, 200, NULL, 100) == 0)
            (void)rd_http_write(x, "short", 5);
        rd_http_finish(x);
        return;
    default: rd_http_respond(x, 200, NULL, x->req->body.data ? x->req->body.data : "", x->req->body.len); return;
    }
}

static void limits(void *ud, struct rd_http_limits *out)
{
    (void)ud;
    *out = (struct rd_http_limits){
        .max_head = 2048, .max_body = 4096, .header_timeout_ms = 1000, .idle_timeout_ms = 3000};
}

static void error_cb(void *ud, const struct rd_http_error *e, struct rd_hdrs *hdrs, struct rd_buf *body,
                     const char **ctype)
{
    (void)ud;
    (void)ctype;
    CHECK(e->status >= 400 && e->status < 600 && e->message);
    rd_hdrs_add_ref(hdrs, "x-request-id", "req_fuzz");
    (void)rd_buf_appends(body, "{\"error\":\"fuzz\"}");
}

static const struct rd_http_listener_cfg cfg = {handler, limits, error_cb, NULL, NULL};

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    memset(&F, 0, sizeof F);
    F.now = 1000;
    F.rng = size * 0x9e3779b97f4a7c15u + 1;
    struct rd_h2 *h = rd_h2_new(&tp, NULL, &cfg, "127.0.0.1");
    rd_h2_feed(h, RD_H2_PREFACE, RD_H2_PREFACE_LEN);
    size_t off = 0;
    while (off < size && F.closes == 0) {
        size_t n = 1 + next_rand() % 512;
        if (n > size - off)
            n = size - off;
        /* exact-size copy: ASan sees any read past the chunk */
        char *chunk = malloc(n);
        memcpy(chunk, data + off, n);
        rd_h2_feed(h, chunk, n);
        free(chunk);
        off += n;
        F.now += next_rand() % 700;
        if (F.pending && next_rand() % 2) {
            F.pending = 0;
            rd_h2_written(h);
        }
        if (F.deadline && F.now >= F.deadline && F.closes == 0)
            rd_h2_timer(h);
        if (F.nheld && next_rand() % 4 == 0 && F.closes == 0) {
            struct rd_http_exch *x = F.held[0];
            forget(x);
            rd_http_finish(x);
        }
    }
    if (F.closes == 0 && next_rand() % 2)
        rd_h2_shutdown(h);
    if (F.closes == 0)
        rd_h2_gone(h);
    CHECK(F.closes == 1);
    CHECK(F.nheld == 0);
    rd_h2_free(h);
    return 0;
}
