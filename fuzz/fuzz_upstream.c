/* libFuzzer target for the native upstream client's response handling:
 * upstreams are untrusted too. Each input is split in two: the first byte
 * chooses how the response bytes are cut into writes and whether the
 * consumer pauses; the rest is what a loopback "upstream" sends back before
 * closing. The client must end every request exactly once (on_done) with a
 * documented code, never deliver body bytes before the head, and leave no
 * handle or allocation behind. */
#include <netinet/in.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>
#include <uv.h>

#include "upstream/h1.h"
#include "util/err.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

struct run {
    uv_loop_t loop;
    uv_tcp_t server, peer;
    uv_timer_t resume;
    struct rd_h1_ctx *ctx;
    struct rd_h1 *h;
    const uint8_t *resp;
    size_t resp_len, piece;
    bool pause_once, paused, head, done;
    int done_err;
    size_t peer_reads;
};

static int on_head(void *ud, int status, const struct rd_hdrs *hdrs)
{
    struct run *r = ud;
    if (r->head || r->done || status < 100 || status > 999 || hdrs == NULL)
        abort();
    r->head = true;
    return 0;
}

static void on_resume(uv_timer_t *t)
{
    struct run *r = t->data;
    if (r->paused && !r->done) {
        r->paused = false;
        rd_h1_resume(r->h);
    }
}

static int on_data(void *ud, const char *p, size_t n)
{
    struct run *r = ud;
    if (!r->head || r->done || (n > 0 && p == NULL))
        abort();
    if (r->pause_once) {
        r->pause_once = false;
        r->paused = true;
        uv_timer_start(&r->resume, on_resume, 0, 0);
        return RD_SOURCE_PAUSE;
    }
    return 0;
}

static void on_done(void *ud, int err, const char *detail)
{
    struct run *r = ud;
    (void)detail;
    if (r->done || (err != 0 && err != RD_EUPSTREAM && err != RD_ETIMEDOUT))
        abort();
    r->done = true;
    r->done_err = err;
    uv_close((uv_handle_t *)&r->server, NULL);
    uv_close((uv_handle_t *)&r->resume, NULL);
    rd_h1_ctx_free(r->ctx);
    r->ctx = NULL;
}

static const struct rd_source_cbs cbs = {on_head, on_data, on_done};

static void on_peer_closed(uv_handle_t *h)
{
    (void)h;
}

/* Sends the scripted response in pieces of r->piece bytes, then closes. */
static void peer_send(struct run *r)
{
    size_t off = 0;
    while (off < r->resp_len) {
        size_t n = r->resp_len - off < r->piece ? r->resp_len - off : r->piece;
        uv_buf_t b = uv_buf_init((char *)r->resp + off, (unsigned int)n);
        if (uv_try_write((uv_stream_t *)&r->peer, &b, 1) < 0)
            break;
        off += n;
    }
    uv_close((uv_handle_t *)&r->peer, on_peer_closed);
}

static void peer_alloc(uv_handle_t *h, size_t s, uv_buf_t *b)
{
    static char buf[4096];
    (void)h;
    (void)s;
    *b = uv_buf_init(buf, sizeof buf);
}

static void peer_read(uv_stream_t *s, ssize_t n, const uv_buf_t *b)
{
    struct run *r = s->data;
    (void)b;
    /* Answer once the request head has arrived (one read is enough here). */
    if (n > 0 && r->peer_reads++ == 0) {
        uv_read_stop(s);
        peer_send(r);
    } else if (n < 0) {
        uv_read_stop(s);
        if (!uv_is_closing((uv_handle_t *)s))
            uv_close((uv_handle_t *)s, on_peer_closed);
    }
}

static void on_conn(uv_stream_t *srv, int status)
{
    struct run *r = srv->data;
    if (status < 0 || r->peer_reads || uv_is_active((uv_handle_t *)&r->peer))
        return;
    uv_tcp_init(&r->loop, &r->peer);
    r->peer.data = r;
    if (uv_accept(srv, (uv_stream_t *)&r->peer) == 0)
        uv_read_start((uv_stream_t *)&r->peer, peer_alloc, peer_read);
    else
        uv_close((uv_handle_t *)&r->peer, on_peer_closed);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 1 || size > 65536)
        return 0;
    struct run *r = calloc(1, sizeof *r);
    uv_loop_init(&r->loop);
    r->resp = data + 1;
    r->resp_len = size - 1;
    r->piece = (size_t)(data[0] & 0x3f) + 1;
    r->pause_once = (data[0] & 0x40) != 0;
    uv_tcp_init(&r->loop, &r->server);
    r->server.data = r;
    uv_timer_init(&r->loop, &r->resume);
    r->resume.data = r;
    struct sockaddr_in addr;
    uv_ip4_addr("127.0.0.1", 0, &addr);
    uv_tcp_bind(&r->server, (const struct sockaddr *)&addr, 0);
    uv_listen((uv_stream_t *)&r->server, 8, on_conn);
    int len = sizeof addr;
    uv_tcp_getsockname(&r->server, (struct sockaddr *)&addr, &len);
    char url[64];
    snprintf(url, sizeof url, "http://127.0.0.1:%d/v1/x?y=1", ntohs(addr.sin_port));
    r->ctx = rd_h1_ctx_new(&r->loop);
    const char *method = (data[0] & 0x80) ? "HEAD" : "POST";
    struct rd_upstream_req req = {.method = method, .url = url, .body = "{}", .body_len = 2,
                                  .connect_timeout_ms = 2000, .timeout_ms = 2000};
    r->h = rd_h1_start(r->ctx, &req, &cbs, r);
    if (r->h == NULL)
        abort();
    uv_run(&r->loop, UV_RUN_DEFAULT);
    if (!r->done)
        abort();
    if (uv_loop_close(&r->loop) != 0)
        abort(); /* a handle was left open */
    free(r);
    return 0;
}
