/* Private to src/http: the connection and listener structs shared by
 * server.c (connections and the exchange API) and listener.c (sockets,
 * accepting, stopping). */
#ifndef RD_HTTP_SERVER_INT_H
#define RD_HTTP_SERVER_INT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <uv.h>

#include "http/parser.h"
#include "http/server.h"
#include "util/buf.h"

enum conn_state { C_IDLE, C_HEAD, C_BODY, C_HANDLER, C_LINGER };

struct conn {
    uv_tcp_t tcp;
    uv_timer_t timer;
    struct rd_http_listener *l;
    struct conn *prev, *next;
    struct rd_http_parser *parser;
    struct rd_http_limits limits;
    struct rd_buf in;
    struct rd_http_exch x;
    enum conn_state state;
    size_t pending_out; /* bytes handed to uv_write and not yet written */
    int open_handles;   /* tcp + timer, closed before free */
    /* response state */
    struct rd_buf head;  /* deferred status line + headers */
    int64_t resp_left;   /* -1: chunked/close-delimited */
    bool resp_chunked;
    bool resp_nobody; /* HEAD request or 1xx/204/304 status */
    bool resp_close;  /* close after this response */
    /* exchange callbacks */
    rd_http_exch_fn on_drain, on_gone;
    void *cb_ud;
    bool x_active, gone, gone_notified, above_high;
    bool processing, closing, reading, close_when_flushed, shut;
};

struct rd_http_listener {
    uv_tcp_t tcp;
    uv_timer_t deadline;
    uv_loop_t *loop;
    struct rd_http_listener_cfg cfg;
    struct conn *conns;
    size_t nconns;
    int open_handles;
    bool stopping, done_fired;
    enum rd_http_stop_mode mode;
    rd_http_stopped_fn done;
    void *done_ud;
    rd_http_stopped_fn unlisten;
    void *unlisten_ud;
};

/* server.c: accepts one connection from server (the uv_listen callback). */
void http_on_connection(uv_stream_t *server, int status);
/* server.c: closes c, or tells its handler first if an exchange runs. */
void http_conn_close(struct conn *c);
/* listener.c: a connection of l is gone; fires the stop callbacks when due. */
void http_listener_check_done(struct rd_http_listener *l);

#endif
