/* One proxied request: build the upstream request (same method, path,
 * query, body bytes and end-to-end headers), start the source (curl or the
 * emulator), relay head and body chunks to the client as they come, pause
 * the source while the client is slow, abort the source when the client
 * goes away, and map upstream failures to 502/504 in the provider's format. */
#include "proxy/forward.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "providers/emulator/emulator.h"
#include "util/err.h"
#include "util/log.h"
#include "util/mem.h"

struct fwd {
    struct rd_http_exch *x;
    struct rd_proxy_snap *snap;
    /* Header lists reference strings owned elsewhere (the parsed request,
     * the source's response head, xff/url below), so nothing is copied. */
    struct rd_hdrs req_hdrs;  /* to the upstream */
    struct rd_hdrs resp_hdrs; /* to the client, used during on_head only */
    struct rd_buf xff;        /* X-Forwarded-For value */
    struct rd_buf url;
    struct rd_upstream_call up; /* while up_active */
    bool up_active;
    struct rd_emu_run *emu;
    bool head_sent;
    bool paused;
};

static void fwd_free(struct fwd *f)
{
    rd_hdrs_free(&f->req_hdrs);
    rd_hdrs_free(&f->resp_hdrs);
    rd_buf_free(&f->xff);
    rd_buf_free(&f->url);
    rd_proxy_snap_unref(f->snap);
    free(f);
}

void rd_forward_error_body(const struct rd_proxy_snap *snap, int status, const char *message, struct rd_buf *body)
{
    rd_provider_error_body(snap->provider, status, message, body);
}

static void respond_error(struct fwd *f, int status, const char *message)
{
    struct rd_buf body;
    rd_buf_init(&body, 0);
    rd_forward_error_body(f->snap, status, message, &body);
    struct rd_hdrs h;
    rd_hdrs_init(&h, NULL);
    rd_hdrs_add_ref(&h, "Content-Type", "application/json");
    rd_http_respond(f->x, status, &h, body.data, body.len);
    rd_hdrs_free(&h);
    rd_buf_free(&body);
}

/* ---- source callbacks ---- */

static int on_head(void *ud, int status, const struct rd_hdrs *hdrs)
{
    struct fwd *f = ud;
    int64_t content_length = -1;
    for (size_t i = 0; i < hdrs->n; i++) {
        const struct rd_hdr *h = &hdrs->v[i];
        if (rd_hdr_name_eq(h->name, h->name_len, "content-length")) {
            char *end = NULL;
            long long v = strtoll(h->value, &end, 10);
            if (end != h->value && *end == '\0' && v >= 0)
                content_length = v;
            continue;
        }
        if (rd_hdr_is_hop_by_hop(h->name, h->name_len) || rd_hdrs_connection_lists(hdrs, h->name, h->name_len))
            continue;
        rd_hdrs_add_ref(&f->resp_hdrs, h->name, h->value);
    }
    f->head_sent = true;
    if (rd_http_begin(f->x, status, &f->resp_hdrs, content_length) < 0)
        return RD_EABORTED;
    return 0;
}

static int on_data(void *ud, const char *p, size_t n)
{
    struct fwd *f = ud;
    if (rd_http_pending(f->x) > RD_HTTP_OUT_HIGH) {
        f->paused = true;
        return RD_SOURCE_PAUSE;
    }
    /* A failed write means the client is gone; its read side reports that
     * and the exchange is aborted from there. */
    (void)rd_http_write(f->x, p, n);
    return 0;
}

static void on_done(void *ud, int err, const char *detail)
{
    struct fwd *f = ud;
    f->up_active = false;
    f->emu = NULL;
    if (err == 0) {
        rd_http_finish(f->x);
    } else if (!f->head_sent) {
        int status = err == RD_ETIMEDOUT ? 504 : 502;
        char msg[512];
        snprintf(msg, sizeof msg, "%s: %s", err == RD_ETIMEDOUT ? "upstream timed out" : "upstream request failed",
                 detail && detail[0] ? detail : rd_strerror(err));
        rd_debug("proxy %s: %s", f->snap->name, msg);
        respond_error(f, status, msg);
    } else {
        rd_debug("proxy %s: upstream failed mid-response: %s", f->snap->name, detail ? detail : "");
        rd_http_abort(f->x);
    }
    fwd_free(f);
}

static const struct rd_source_cbs source_cbs = {.on_head = on_head, .on_data = on_data, .on_done = on_done};

/* ---- client callbacks ---- */

static void on_drain(void *ud)
{
    struct fwd *f = ud;
    if (!f->paused)
        return;
    f->paused = false;
    if (f->up_active)
        rd_upstream_resume(f->up);
    else if (f->emu)
        rd_emu_run_resume(f->emu);
}

static void on_gone(void *ud)
{
    struct fwd *f = ud;
    if (f->up_active)
        rd_upstream_abort(f->up);
    if (f->emu)
        rd_emu_run_abort(f->emu);
    f->up_active = false;
    f->emu = NULL;
    rd_http_abort(f->x);
    fwd_free(f);
}

/* ---- start ---- */

static void build_request_headers(struct fwd *f)
{
    const struct rd_http_request *req = f->x->req;
    const struct rd_hdrs *in = &req->headers;
    for (size_t i = 0; i < in->n; i++) {
        const struct rd_hdr *h = &in->v[i];
        if (rd_hdr_is_hop_by_hop(h->name, h->name_len) || rd_hdrs_connection_lists(in, h->name, h->name_len) ||
            rd_hdr_name_eq(h->name, h->name_len, "host") ||
            rd_hdr_name_eq(h->name, h->name_len, "content-length") ||
            rd_hdr_name_eq(h->name, h->name_len, "expect") ||
            rd_hdr_name_eq(h->name, h->name_len, "x-forwarded-for") ||
            rd_hdr_name_eq(h->name, h->name_len, "x-forwarded-proto"))
            continue;
        rd_hdrs_add_ref(&f->req_hdrs, h->name, h->value);
    }
    /* X-Forwarded-For: every incoming value in order, then this client. */
    struct rd_buf *v = &f->xff;
    for (size_t i = 0; i < in->n; i++) {
        const struct rd_hdr *h = &in->v[i];
        if (rd_hdr_name_eq(h->name, h->name_len, "x-forwarded-for") && h->value_len) {
            (void)rd_buf_append(v, h->value, h->value_len);
            (void)rd_buf_append(v, ", ", 2);
        }
    }
    (void)rd_buf_appends(v, f->x->client_ip);
    rd_hdrs_add_ref(&f->req_hdrs, "X-Forwarded-For", v->data);
    rd_hdrs_add_ref(&f->req_hdrs, "X-Forwarded-Proto", "http");
}

static const char *build_url(struct fwd *f)
{
    const struct rd_http_request *req = f->x->req;
    struct rd_buf *u = &f->url;
    (void)rd_buf_appends(u, f->snap->upstream_base);
    if (req->path[0] != '/')
        (void)rd_buf_append(u, "/", 1);
    (void)rd_buf_appends(u, req->path);
    if (req->query[0]) {
        (void)rd_buf_append(u, "?", 1);
        (void)rd_buf_appends(u, req->query);
    }
    return u->data;
}

static void start_emulator(struct fwd *f, uv_loop_t *loop)
{
    const struct rd_http_request *req = f->x->req;
    const struct rd_provider *p = f->snap->provider;
    struct rd_emu_request er = {
        .method = req->method,
        .path = req->path,
        .query = req->query,
        .headers = &req->headers,
        .body = req->body.data ? req->body.data : "",
        .body_len = req->body.len,
        .seed = f->snap->emu_seed,
    };
    struct rd_emu_reply reply;
    memset(&reply, 0, sizeof reply);
    p->emulate(p->emulator, &er, &reply);
    /* The runner takes the reply's contents over. */
    f->emu = rd_emu_run_start(loop, &reply, f->snap->emu_tps, &source_cbs, f);
}

void rd_forward_start(struct rd_http_exch *x, struct rd_proxy_snap *snap, struct rd_upstream_ctx *up,
                      uv_loop_t *loop)
{
    struct fwd *f = rd_calloc(1, sizeof *f);
    f->x = x;
    f->snap = rd_proxy_snap_ref(snap);
    rd_hdrs_init(&f->req_hdrs, NULL);
    rd_hdrs_init(&f->resp_hdrs, NULL);
    rd_buf_init(&f->xff, 0);
    rd_buf_init(&f->url, 0);
    rd_http_set_callbacks(x, on_drain, on_gone, f);
    if (snap->emulator) {
        start_emulator(f, loop);
        return;
    }
    build_request_headers(f);
    struct rd_upstream_req ur = {
        .method = x->req->method,
        .url = build_url(f),
        .headers = &f->req_hdrs,
        .body = x->req->body.data,
        .body_len = x->req->body.len,
        .connect_timeout_ms = snap->limits.connect_timeout_ms,
        .timeout_ms = snap->limits.upstream_timeout_ms,
        .force_curl = snap->force_curl,
        .ca_file = snap->ca_file,
    };
    f->up = rd_upstream_start(up, &ur, &source_cbs, f);
    f->up_active = true;
}
