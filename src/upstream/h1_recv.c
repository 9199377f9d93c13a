/* Receiving side of the HTTP/1.1 upstream client (h1.c): the llhttp
 * callbacks, which parse the response and report it to the source
 * callbacks, and the read path that feeds them. */
#include "upstream/h1_int.h"

#include <llhttp.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>

#include "util/buf.h"
#include "util/err.h"

/* ---- response parsing (llhttp callbacks never end the request: they
 * record why they stopped and h1_feed() acts after llhttp_execute returns) ---- */

static struct conn *ll_conn(llhttp_t *ll)
{
    return ll->data;
}

static int stop(struct conn *c, int err, const char *msg)
{
    c->fail_err = err;
    c->fail_msg = msg;
    return HPE_USER;
}

static int count_head(struct conn *c, size_t n)
{
    if (n > MAX_RESP_HEAD - c->head_bytes)
        return stop(c, RD_EUPSTREAM, "response head from upstream too large");
    c->head_bytes += n;
    return 0;
}

static int on_status(llhttp_t *ll, const char *at, size_t n)
{
    (void)at;
    return count_head(ll_conn(ll), n);
}

static int on_header_field(llhttp_t *ll, const char *at, size_t n)
{
    struct conn *c = ll_conn(ll);
    if (count_head(c, n) != 0)
        return HPE_USER;
    /* Trailer fields (after the head was reported) are dropped. */
    if (!c->req->head_done && rd_buf_append(&c->field, at, n) < 0)
        return stop(c, RD_EUPSTREAM, "response head from upstream too large");
    return 0;
}

static int on_header_field_complete(llhttp_t *ll)
{
    struct conn *c = ll_conn(ll);
    c->name_len = c->field.len;
    return 0;
}

static int on_header_value(llhttp_t *ll, const char *at, size_t n)
{
    return on_header_field(ll, at, n);
}

static int on_header_value_complete(llhttp_t *ll)
{
    struct conn *c = ll_conn(ll);
    struct rd_h1 *r = c->req;
    if (!r->head_done && c->field.len > 0)
        rd_hdrs_add(&r->hdrs, c->field.data, c->name_len, c->field.data + c->name_len, c->field.len - c->name_len);
    rd_buf_reset(&c->field);
    c->name_len = 0;
    return 0;
}

static int on_headers_complete(llhttp_t *ll)
{
    struct conn *c = ll_conn(ll);
    struct rd_h1 *r = c->req;
    int status = ll->status_code;
    if (status == 101) {
        stop(c, RD_EUPSTREAM, "upstream switched protocols without being asked");
        return -1;
    }
    if (status < 200) {
        /* Interim response (100 Continue, 103 Early Hints): skipped, with
         * its fields; llhttp then parses the next response. */
        rd_hdrs_clear(&r->hdrs);
        return 1;
    }
    r->head_done = true;
    int rc = r->cbs->on_head(r->ud, status, &r->hdrs);
    if (c->state == C_CLOSING)
        return -1; /* the caller aborted the request in its callback: c is closing, r released */
    if (rc < 0) {
        stop(c, RD_EABORTED, "response refused by the caller");
        return -1;
    }
    /* 1 tells llhttp that there is no body whatever the fields say. */
    return r->is_head || status == 204 || status == 304 ? 1 : 0;
}

static int on_body(llhttp_t *ll, const char *at, size_t n)
{
    struct conn *c = ll_conn(ll);
    struct rd_h1 *r = c->req;
    /* llhttp flushes an empty body span when run on no input mid-chunk
     * (rd_h1_resume with nothing saved after the refused bytes). */
    if (n == 0)
        return 0;
    int rc = r->cbs->on_data(r->ud, at, n);
    if (c->state == C_CLOSING)
        return -1; /* aborted in the callback (the client went away): stop parsing */
    if (rc == RD_SOURCE_PAUSE) {
        c->hold_at = at;
        c->hold_len = n;
        return HPE_PAUSED;
    }
    return 0;
}

static int on_message_complete(llhttp_t *ll)
{
    struct conn *c = ll_conn(ll);
    if (ll->status_code < 200)
        return 0;
    c->msg_done = true;
    c->keep_alive = llhttp_should_keep_alive(ll) != 0;
    /* Stop here: whatever follows is not ours (h1_feed() checks for it). */
    return HPE_PAUSED;
}

const llhttp_settings_t h1_settings = {
    .on_status = on_status,
    .on_header_field = on_header_field,
    .on_header_field_complete = on_header_field_complete,
    .on_header_value = on_header_value,
    .on_header_value_complete = on_header_value_complete,
    .on_headers_complete = on_headers_complete,
    .on_body = on_body,
    .on_message_complete = on_message_complete,
};

/* ---- receiving ---- */

/* The response is complete: c goes back to the pool if the server allows
 * it, the request is fully written and no stray bytes followed. */
static void conn_complete(struct conn *c, bool leftover)
{
    struct rd_h1 *r = c->req;
    c->req = NULL;
    r->conn = NULL;
    if (c->keep_alive && !leftover && !c->writing)
        h1_pool_put(c);
    else
        h1_conn_close(c);
    h1_finish(r, 0, NULL);
}

/* on_data refused the chunk at c->hold_at: keep it and the unparsed rest of
 * the input (they are contiguous, ending at end) and stop reading. */
static void hold(struct conn *c, const char *end, bool from_saved)
{
    if (from_saved) {
        rd_buf_consume(&c->saved, (size_t)(c->hold_at - c->saved.data));
    } else {
        rd_buf_reset(&c->saved);
        /* saved has no cap below SIZE_MAX / 2 and gets at most one read. */
        (void)rd_buf_append(&c->saved, c->hold_at, (size_t)(end - c->hold_at));
    }
    c->held = c->hold_len;
    c->hold_at = NULL;
    c->paused = true;
    if (c->reading) {
        (void)uv_read_stop((uv_stream_t *)&c->tcp);
        c->reading = false;
    }
}

/* Parses n bytes of c's response. FEED_DONE means the request ended (c may
 * be pooled or closing, the request finished or deferred). */
enum feed_result h1_feed(struct conn *c, const char *p, size_t n, bool from_saved)
{
    struct rd_h1 *r = c->req;
    llhttp_errno_t e = llhttp_execute(&c->ll, p, n);
    if (c->state == C_CLOSING)
        return FEED_DONE; /* a callback aborted the request: c is closing, nothing more to do */
    if (e == HPE_OK)
        return FEED_MORE;
    if (e == HPE_PAUSED && c->msg_done) {
        conn_complete(c, llhttp_get_error_pos(&c->ll) != p + n);
        return FEED_DONE;
    }
    if (e == HPE_PAUSED && c->hold_at != NULL) {
        hold(c, p + n, from_saved);
        return FEED_PAUSED;
    }
    if (c->fail_err != 0) {
        h1_conn_fail(c, c->fail_err, c->fail_msg);
        return FEED_DONE;
    }
    const char *why = llhttp_get_error_reason(&c->ll);
    snprintf(r->detail, sizeof r->detail, "invalid response from upstream: %s", why ? why : llhttp_errno_name(e));
    h1_conn_fail(c, RD_EUPSTREAM, r->detail);
    return FEED_DONE;
}

static void on_eof(struct conn *c, int uverr)
{
    struct rd_h1 *r = c->req;
    /* With a write still queued, the tail of the request never left us. */
    if (h1_may_retry(c, r, !c->writing)) {
        h1_retry(c, r);
        return;
    }
    if (uverr == UV_EOF && r->got_bytes) {
        /* A close-delimited body ends here; llhttp_finish reports it
         * through on_message_complete. */
        (void)llhttp_finish(&c->ll);
        if (c->msg_done) {
            c->keep_alive = false;
            conn_complete(c, false);
            return;
        }
    }
    h1_conn_fail(c, RD_EUPSTREAM,
                 r->got_bytes ? "upstream closed the connection before the response ended"
                              : "upstream closed the connection before sending a response");
}

static void on_read(uv_stream_t *s, ssize_t nread, const uv_buf_t *buf)
{
    (void)buf;
    struct conn *c = s->data;
    if (nread == 0 || c->state == C_CLOSING)
        return;
    if (c->state != C_ACTIVE) {
        h1_conn_close(c); /* idle: the server closed it or sent stray bytes */
        return;
    }
    if (nread < 0) {
        on_eof(c, (int)nread);
        return;
    }
    c->req->got_bytes = true;
    (void)h1_feed(c, c->ctx->rbuf, (size_t)nread, false);
}

static void on_alloc(uv_handle_t *h, size_t suggested, uv_buf_t *buf)
{
    (void)suggested;
    struct conn *c = h->data;
    *buf = uv_buf_init(c->ctx->rbuf, READ_BUF_SIZE);
}

int h1_start_reading(struct conn *c)
{
    if (c->reading)
        return 0;
    int rc = uv_read_start((uv_stream_t *)&c->tcp, on_alloc, on_read);
    c->reading = rc == 0;
    return rc;
}
