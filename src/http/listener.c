/* Listening sockets: binding, serving an fd on a loop, and stopping
 * (graceful with a deadline, or forced). Connections themselves live in
 * server.c. */
#include <errno.h>
#include <netinet/in.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "http/server.h"
#include "http/server_int.h"
#include "util/log.h"
#include "util/mem.h"

static void on_listener_handle_closed(uv_handle_t *h);


int rd_http_bind(const char *host, int port, bool reuseport, int backlog)
{
    struct sockaddr_storage ss;
    memset(&ss, 0, sizeof ss);
    int family = AF_INET;
    if (uv_ip4_addr(host, port, (struct sockaddr_in *)&ss) != 0) {
        if (uv_ip6_addr(host, port, (struct sockaddr_in6 *)&ss) != 0)
            return -EINVAL;
        family = AF_INET6;
    }
    int fd = socket(family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd < 0)
        return -errno;
    int one = 1, rc = 0;
    if (setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one) != 0 ||
        (reuseport && setsockopt(fd, SOL_SOCKET, SO_REUSEPORT, &one, sizeof one) != 0)) {
        rc = -errno;
        goto fail;
    }
    if (family == AF_INET6 && setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &one, sizeof one) != 0) {
        rc = -errno;
        goto fail;
    }
    socklen_t len = family == AF_INET ? sizeof(struct sockaddr_in) : sizeof(struct sockaddr_in6);
    if (bind(fd, (struct sockaddr *)&ss, len) != 0 || listen(fd, backlog) != 0) {
        rc = -errno;
        goto fail;
    }
    return fd;
fail:
    close(fd);
    return rc;
}

int rd_http_listener_start(uv_loop_t *loop, int fd, const struct rd_http_listener_cfg *cfg,
                           struct rd_http_listener **out)
{
    struct rd_http_listener *l = rd_calloc(1, sizeof *l);
    l->loop = loop;
    l->cfg = *cfg;
    uv_tcp_init(loop, &l->tcp);
    l->tcp.data = l;
    uv_timer_init(loop, &l->deadline);
    l->deadline.data = l;
    l->open_handles = 2;
    int rc = uv_tcp_open(&l->tcp, fd);
    if (rc < 0)
        close(fd); /* not owned by the handle yet */
    else
        rc = uv_listen((uv_stream_t *)&l->tcp, RD_HTTP_BACKLOG, http_on_connection);
    if (rc < 0) {
        rd_warn("listener start failed: %s", uv_strerror(rc));
        l->done_fired = true;
        l->stopping = true;
        uv_close((uv_handle_t *)&l->tcp, on_listener_handle_closed);
        *out = NULL;
        return rc;
    }
    *out = l;
    return 0;
}

size_t rd_http_listener_connections(const struct rd_http_listener *l)
{
    return l->nconns;
}

void rd_http_listener_on_unlisten(struct rd_http_listener *l, rd_http_stopped_fn fn, void *ud)
{
    l->unlisten = fn;
    l->unlisten_ud = ud;
}

static void on_listener_handle_closed(uv_handle_t *h)
{
    struct rd_http_listener *l = h->data;
    l->open_handles--;
    if (l->unlisten) {
        rd_http_stopped_fn fn = l->unlisten;
        l->unlisten = NULL;
        fn(l->unlisten_ud);
    }
    http_listener_check_done(l);
}

static void on_deadline_closed(uv_handle_t *h)
{
    free(h->data);
}

void http_listener_check_done(struct rd_http_listener *l)
{
    if (!l->stopping)
        return;
    bool tcp_closed = l->open_handles <= 1; /* the deadline timer closes last */
    if (tcp_closed && !l->done_fired && l->nconns == 0) {
        l->done_fired = true;
        if (l->done)
            l->done(l->done_ud);
    }
    if (tcp_closed && l->nconns == 0 && l->open_handles == 1) {
        l->open_handles = -1; /* closing the timer; freed in its callback */
        uv_close((uv_handle_t *)&l->deadline, on_deadline_closed);
    }
}

static void force_close_all(struct rd_http_listener *l)
{
    struct conn *c = l->conns;
    while (c) {
        struct conn *next = c->next;
        http_conn_close(c);
        c = next;
    }
}

static void on_deadline(uv_timer_t *t)
{
    struct rd_http_listener *l = t->data;
    rd_warn("stop deadline passed with %zu connection(s) open: closing them", l->nconns);
    l->mode = RD_HTTP_STOP_FORCE;
    force_close_all(l);
}

void rd_http_listener_stop(struct rd_http_listener *l, enum rd_http_stop_mode mode, uint64_t deadline_ms,
                           rd_http_stopped_fn done, void *ud)
{
    if (l->stopping) {
        if (mode == RD_HTTP_STOP_FORCE && l->mode != RD_HTTP_STOP_FORCE) {
            l->mode = RD_HTTP_STOP_FORCE;
            force_close_all(l);
        } else if (mode == RD_HTTP_STOP_GRACEFUL && l->mode == RD_HTTP_STOP_GRACEFUL && deadline_ms > 0 &&
                   !l->done_fired &&
                   (!uv_is_active((uv_handle_t *)&l->deadline) || uv_timer_get_due_in(&l->deadline) > deadline_ms)) {
            /* A second graceful stop may only bring the deadline forward. */
            uv_timer_start(&l->deadline, on_deadline, deadline_ms, 0);
        }
        return;
    }
    l->stopping = true;
    l->mode = mode;
    l->done = done;
    l->done_ud = ud;
    uv_close((uv_handle_t *)&l->tcp, on_listener_handle_closed);
    if (mode == RD_HTTP_STOP_FORCE) {
        force_close_all(l);
        return;
    }
    /* Idle connections go now; busy ones close after their response
     * (end_exchange checks l->stopping). */
    struct conn *c = l->conns;
    while (c) {
        struct conn *next = c->next;
        http_conn_stop_gracefully(c);
        c = next;
    }
    if (mode == RD_HTTP_STOP_GRACEFUL && deadline_ms > 0)
        uv_timer_start(&l->deadline, on_deadline, deadline_ms, 0);
}
