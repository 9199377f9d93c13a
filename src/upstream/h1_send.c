/* Sending side of the HTTP/1.1 upstream client (h1.c): builds the request
 * head and writes it with the body to the connection. */
#include "upstream/h1_int.h"

#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "util/buf.h"
#include "util/err.h"
#include "util/mem.h"

/* ---- sending ---- */

static void write_failed(struct conn *c, int uverr)
{
    struct rd_h1 *r = c->req;
    /* The write did not complete, so the server never got the whole request. */
    if (h1_may_retry(c, r, false)) {
        h1_retry(c, r);
        return;
    }
    snprintf(r->detail, sizeof r->detail, "sending the request to upstream failed: %s", uv_strerror(uverr));
    h1_conn_fail(c, RD_EUPSTREAM, r->detail);
}

static void on_write(uv_write_t *w, int status)
{
    struct conn *c = w->handle->data;
    c->writing = false;
    free(c->wbuf);
    c->wbuf = NULL;
    /* Once response bytes arrived the read side decides how this ends. */
    if (status < 0 && c->state == C_ACTIVE && !c->req->got_bytes)
        write_failed(c, status);
}

/* Writes head and body with one writev when the socket takes it all (the
 * usual case); otherwise queues the rest. The body stays borrowed: if the
 * request ends while a write is queued the connection is closed, and libuv
 * cancels the write without touching the bytes again. */
void h1_send_request(struct conn *c)
{
    struct rd_h1 *r = c->req;
    uv_buf_t b[2] = {{.base = r->head.data, .len = r->head.len}, {.base = (char *)r->body, .len = r->body_len}};
    int n = uv_try_write((uv_stream_t *)&c->tcp, b, r->body_len > 0 ? 2 : 1);
    if (n == UV_EAGAIN)
        n = 0;
    if (n < 0) {
        write_failed(c, n);
        return;
    }
    size_t off = (size_t)n;
    if (off == r->head.len + r->body_len)
        return;
    uv_buf_t q[2];
    unsigned nq = 0;
    if (off < r->head.len) {
        c->wbuf = rd_malloc(r->head.len - off);
        memcpy(c->wbuf, r->head.data + off, r->head.len - off);
        q[nq++] = (uv_buf_t){.base = c->wbuf, .len = r->head.len - off};
        off = 0;
    } else {
        off -= r->head.len;
    }
    if (off < r->body_len)
        q[nq++] = (uv_buf_t){.base = (char *)r->body + off, .len = r->body_len - off};
    int rc = uv_write(&c->wreq, (uv_stream_t *)&c->tcp, q, nq, on_write);
    if (rc < 0) {
        free(c->wbuf);
        c->wbuf = NULL;
        write_failed(c, rc);
        return;
    }
    c->writing = true;
}

static bool is_field_value(const char *s, size_t n)
{
    /* Three memchr passes (vectorised) rather than a byte loop. */
    return memchr(s, '\r', n) == NULL && memchr(s, '\n', n) == NULL && memchr(s, '\0', n) == NULL;
}

static bool wants_length(const struct rd_upstream_req *req)
{
    const char *m = req->method;
    if (req->body_len > 0 || strcmp(m, "POST") == 0 || strcmp(m, "PUT") == 0 || strcmp(m, "PATCH") == 0)
        return true;
    return req->body != NULL && strcmp(m, "GET") != 0 && strcmp(m, "HEAD") != 0;
}

/* Request line, Host, the caller's fields, framing, blank line. */
int h1_build_head(struct rd_h1 *r, const struct rd_upstream_req *req, const char *target)
{
    struct rd_buf *b = &r->head;
    const struct rd_hdrs *h = req->headers;
    bool v6 = strchr(r->host, ':') != NULL;
    int rc = 0;
    if (req->method == NULL || !rd_http_is_token(req->method, strlen(req->method)))
        return RD_EINVAL;
    rd_buf_reset(b);
    rc |= rd_buf_appends(b, req->method);
    rc |= rd_buf_append(b, " ", 1);
    rc |= rd_buf_appends(b, target);
    rc |= rd_buf_appends(b, v6 ? " HTTP/1.1\r\nHost: [" : " HTTP/1.1\r\nHost: ");
    rc |= rd_buf_appends(b, r->host);
    rc |= rd_buf_appends(b, v6 ? "]" : "");
    if (r->port != 80) {
        rc |= rd_buf_append(b, ":", 1);
        rc |= rd_buf_append_u64(b, (uint64_t)r->port);
    }
    rc |= rd_buf_append(b, "\r\n", 2);
    for (size_t i = 0; h != NULL && i < h->n; i++) {
        const struct rd_hdr *f = &h->v[i];
        if (!rd_http_is_token(f->name, f->name_len) || !is_field_value(f->value, f->value_len))
            return RD_EINVAL;
        rc |= rd_buf_append(b, f->name, f->name_len);
        rc |= rd_buf_append(b, ": ", 2);
        rc |= rd_buf_append(b, f->value, f->value_len);
        rc |= rd_buf_append(b, "\r\n", 2);
    }
    if (wants_length(req)) {
        rc |= rd_buf_append(b, "Content-Length: ", 16);
        rc |= rd_buf_append_u64(b, (uint64_t)req->body_len);
        rc |= rd_buf_append(b, "\r\n", 2);
    }
    rc |= rd_buf_append(b, "\r\n", 2);
    return rc != 0 ? RD_ETOOBIG : 0;
}
