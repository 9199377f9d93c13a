/* HTTP/1.1 server on a libuv loop: listeners, connections, keep-alive,
 * pipelining (one request at a time), limits, timeouts, graceful stop, and a
 * response writer with backpressure. Used for the admin API (control loop)
 * and for every proxy port (one listener per worker loop).
 *
 * Threading: every function here must be called on the loop thread that owns
 * the listener/exchange. */
#ifndef RD_HTTP_SERVER_H
#define RD_HTTP_SERVER_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <uv.h>

#include "http/headers.h"
#include "http/parser.h"
#include "util/buf.h"

/* Output above this many queued bytes makes rd_http_pending() report
 * backpressure; the drain callback fires when it falls below the low mark. */
#define RD_HTTP_OUT_HIGH (256u * 1024u)
#define RD_HTTP_OUT_LOW (64u * 1024u)
/* listen() backlog: bursts of thousands of connects must not overflow it
 * (a dropped SYN costs the client a 1 s retransmission). The kernel caps it
 * at net.core.somaxconn. */
#define RD_HTTP_BACKLOG 4096

struct rd_http_limits {
    size_t max_head;            /* request line + headers; 431 beyond */
    uint64_t max_body;          /* decoded body; 413 beyond */
    uint64_t header_timeout_ms; /* slowloris: time to receive complete headers */
    uint64_t idle_timeout_ms;   /* keep-alive idle time between requests */
};

struct rd_http_exch;
typedef void (*rd_http_exch_fn)(void *ud);

/* What a front end (HTTP/1.1 here, HTTP/2 later) implements for one
 * exchange, so handlers never assume a protocol. The rd_http_* wrappers
 * below are the API; handlers do not call these directly. */
struct rd_http_exch_ops {
    int (*begin)(struct rd_http_exch *x, int status, const struct rd_hdrs *hdrs, int64_t content_length);
    int (*write)(struct rd_http_exch *x, const char *p, size_t n);
    void (*finish)(struct rd_http_exch *x);
    void (*abort)(struct rd_http_exch *x);
    size_t (*pending)(const struct rd_http_exch *x);
};

/* One request/response exchange. The handler owns it from the handler call
 * until it calls rd_http_respond, rd_http_finish or rd_http_abort; after that
 * the pointer is invalid. */
struct rd_http_exch {
    const struct rd_http_exch_ops *ops; /* the front end's */
    struct rd_http_request *req;        /* borrowed; valid until the exchange ends */
    char client_ip[64];                 /* textual peer address */
    void *user;                         /* free for the handler */
    /* Set with rd_http_set_callbacks; fired by the front end. */
    rd_http_exch_fn on_drain, on_gone;
    void *cb_ud;
    bool gone; /* the client disconnected or was cut; writes fail */
};

typedef void (*rd_http_handler_fn)(struct rd_http_exch *x, void *ud);
/* Fills the limits to apply; called at accept and at each request head (so
 * a live configuration change applies to the next request). */
typedef void (*rd_http_limits_fn)(void *ud, struct rd_http_limits *out);

/* An error the server answers itself (400, 408, 413, 431, 501, 505), as the
 * listener's owner sees it: to render the body and count the request. */
struct rd_http_error {
    int status;
    const char *message;                /* static, fit for a log line */
    const char *client_ip;
    const struct rd_http_request *req;  /* what was parsed so far (method and
                                         * path may be NULL or empty); borrowed */
};
/* Renders the error response for e in the listener's format (provider or
 * API): appends the body to body, sets *content_type (static) and may add
 * headers to hdrs (strings must live until the call returns: use its arena
 * or static strings). */
typedef void (*rd_http_error_fn)(void *ud, const struct rd_http_error *e, struct rd_hdrs *hdrs, struct rd_buf *body,
                                 const char **content_type);
typedef void (*rd_http_stopped_fn)(void *ud);

struct rd_http_listener_cfg {
    rd_http_handler_fn handler;
    rd_http_limits_fn limits;
    rd_http_error_fn error;
    void *ud; /* passed to the three callbacks */
    /* Optional (NULL: none): a gauge of the listener's open connections,
     * added to and taken from with relaxed atomics as connections are made
     * and freed; several listeners may share one (a worker's). Borrowed:
     * must outlive the listener. */
    atomic_size_t *open_conns;
};

struct rd_http_listener;

/* Starts serving on an already bound and listening socket fd (ownership of
 * fd passes to the listener). Returns 0 and *out, or a negative code. */
int rd_http_listener_start(uv_loop_t *loop, int fd, const struct rd_http_listener_cfg *cfg,
                           struct rd_http_listener **out);

enum rd_http_stop_mode {
    RD_HTTP_STOP_GRACEFUL, /* stop accepting; idle connections close; active ones after their response */
    RD_HTTP_STOP_FORCE,    /* stop accepting and close every connection now */
};

/* Stops the listener. done fires (from the loop, never inside this call)
 * when the listening socket is closed and every
 * connection is gone: GRACEFUL turns into FORCE after deadline_ms (0 means
 * no deadline). Memory is released after done. Calling stop again with FORCE
 * while a graceful stop runs escalates it, and with GRACEFUL and a sooner
 * deadline brings the deadline forward (done and ud of the first call stay;
 * done fires once). */
void rd_http_listener_stop(struct rd_http_listener *l, enum rd_http_stop_mode mode, uint64_t deadline_ms,
                           rd_http_stopped_fn done, void *ud);

/* Registers fn to fire once the listening socket is closed after a stop
 * (new connections are refused from then on), before connections drain. */
void rd_http_listener_on_unlisten(struct rd_http_listener *l, rd_http_stopped_fn fn, void *ud);

/* Number of open connections and of exchanges in progress. */
size_t rd_http_listener_connections(const struct rd_http_listener *l);

/* Whole response in one call; ends the exchange. hdrs may be NULL. body is
 * copied. Content-Length is added. */
void rd_http_respond(struct rd_http_exch *x, int status, const struct rd_hdrs *hdrs, const char *body, size_t len);

/* Starts a response: status line and headers. content_length >= 0 sends
 * Content-Length, < 0 uses chunked encoding (or close-delimited for HTTP/1.0
 * clients). Hop-by-hop framing headers in hdrs must already be removed.
 * Returns 0 or a negative code if the client is gone. */
static inline int rd_http_begin(struct rd_http_exch *x, int status, const struct rd_hdrs *hdrs, int64_t content_length)
{
    return x->ops->begin(x, status, hdrs, content_length);
}
/* Queues body bytes (copied). Returns 0 or a negative code if the client is gone. */
static inline int rd_http_write(struct rd_http_exch *x, const char *p, size_t n)
{
    return x->ops->write(x, p, n);
}
/* Ends the body (chunked terminator); ends the exchange. The connection is
 * kept for the next request when allowed. */
static inline void rd_http_finish(struct rd_http_exch *x)
{
    x->ops->finish(x);
}
/* Ends the exchange without completing the response: the connection is
 * closed once queued bytes are written (the client sees a truncated body). */
static inline void rd_http_abort(struct rd_http_exch *x)
{
    x->ops->abort(x);
}
/* Bytes queued for the client and not yet accepted by the kernel. */
static inline size_t rd_http_pending(const struct rd_http_exch *x)
{
    return x->ops->pending(x);
}
/* on_drain fires each time pending output falls below RD_HTTP_OUT_LOW from
 * at or above it (derived from the queued bytes: a handler that refused
 * bytes because rd_http_pending() was above RD_HTTP_OUT_HIGH always hears
 * back); on_gone fires once if the client disconnects or the connection is
 * cut before the exchange ends (the handler must then end the exchange,
 * typically with rd_http_abort). Either may be NULL. */
static inline void rd_http_set_callbacks(struct rd_http_exch *x, rd_http_exch_fn on_drain, rd_http_exch_fn on_gone,
                                         void *ud)
{
    x->on_drain = on_drain;
    x->on_gone = on_gone;
    x->cb_ud = ud;
}
static inline bool rd_http_client_gone(const struct rd_http_exch *x)
{
    return x->gone;
}

/* Creates a listening TCP socket bound to host:port with SO_REUSEADDR and,
 * if reuseport, SO_REUSEPORT; non-blocking, close-on-exec, listen(backlog).
 * Returns the fd or a negative -errno (e.g. -EADDRINUSE). */
int rd_http_bind(const char *host, int port, bool reuseport, int backlog);

/* Reason phrase for a status code ("OK", "Not Found", ...). */
const char *rd_http_reason(int status);

#endif
