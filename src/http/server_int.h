/* Private to src/http: the connection and listener structs shared by
 * server.c (connections and the exchange API) and listener.c (sockets,
 * accepting, stopping). */
#ifndef RD_HTTP_SERVER_INT_H
#define RD_HTTP_SERVER_INT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <uv.h>

#include "http/h2.h"
#include "http/parser.h"
#include "http/server.h"
#include "util/buf.h"
#include "util/deadline.h"

/* The connection's state. It changes only through conn_set_state() (server.c),
 * which also sets the state's deadline, kept lazily on the connection's one
 * timer (util/deadline.h):
 *
 *   state     what happens                              deadline (then)
 *   IDLE      waiting for the next request             header_timeout for the first request of a
 *                                                      connection, else idle_timeout (close)
 *   HEAD      a request head is arriving               header_timeout from its first byte (408)
 *   BODY      its body is arriving                     idle_timeout without a byte (408)
 *   HANDLER   the handler owns the exchange            while output is queued: idle_timeout without
 *                                                      a byte accepted by the kernel (cut, on_gone)
 *   WRITING   response complete, output still queued;  idle_timeout without progress (close)
 *             keep-alive once it is written
 *   DRAINING  response complete or cut, output queued; idle_timeout without progress (close)
 *             close once it is written
 *   LINGER    error sent, write side shut, input       LINGER_MS (close)
 *             read and discarded
 *   H2        the connection began with the HTTP/2     set by the front end (h2.c: idle,
 *             preface: the HTTP/2 front end owns it    header and send deadlines)
 *   CLOSING   handles closing, freed in the callback   none
 */
enum conn_state { CS_IDLE, CS_HEAD, CS_BODY, CS_HANDLER, CS_WRITING, CS_DRAINING, CS_LINGER, CS_H2, CS_CLOSING };

struct conn {
    uv_tcp_t tcp;
    uv_timer_t timer;
    struct rd_http_listener *l;
    struct conn *prev, *next;
    struct rd_http_parser *parser;
    struct rd_http_limits limits;
    struct rd_buf in;
    struct rd_http_exch x;
    struct rd_h2 *h2; /* owned; the HTTP/2 front end, in CS_H2 */
    enum conn_state state;
    uint32_t nreq;         /* requests dispatched on this connection */
    size_t pending_out;    /* bytes handed to uv_write and not yet written */
    uint64_t queued_total; /* bytes ever handed to uv_write */
    uint64_t progress_mark; /* bytes accepted by the kernel when the send deadline was armed */
    struct rd_deadline deadline; /* the state's, on timer */
    int open_handles;      /* tcp + timer, closed before free */
    /* response state */
    struct rd_buf head;  /* deferred status line + headers */
    int64_t resp_left;   /* -1: chunked/close-delimited */
    bool resp_chunked;
    bool resp_nobody; /* HEAD request or 1xx/204/304 status */
    bool resp_close;  /* close after this response */
    bool gone_notified;
    bool processing; /* conn_process is on the stack */
    bool reading;    /* uv_read_start is in effect */
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
/* server.c: graceful stop of one connection: idle ones close now, complete
 * responses drain first, requests in progress close after their response. */
void http_conn_stop_gracefully(struct conn *c);
/* listener.c: a connection of l is gone; fires the stop callbacks when due. */
void http_listener_check_done(struct rd_http_listener *l);

#endif
