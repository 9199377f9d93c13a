/* Private to src/upstream/h1*.c: the state shared by the HTTP/1.1 upstream
 * client's three files. h1.c owns requests, the pool, connections and the
 * public API (see its top comment for ownership); h1_send.c builds and
 * writes the request; h1_recv.c parses and reads the response. Everything
 * here runs on the thread of the context's loop. */
#ifndef RD_UPSTREAM_H1_INT_H
#define RD_UPSTREAM_H1_INT_H

#include <llhttp.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <uv.h>

#include "http/headers.h"
#include "upstream/h1.h"
#include "upstream/source.h"
#include "upstream/upstream.h"
#include "util/arena.h"
#include "util/buf.h"
#include "util/deadline.h"

#define READ_BUF_SIZE 65536
#define MAX_RESP_HEAD (64 * 1024) /* status line, fields and trailers */
#define HOST_MAX 46 /* INET6_ADDRSTRLEN */

enum cstate { C_CONNECTING, C_ACTIVE, C_IDLE, C_CLOSING };
enum feed_result { FEED_MORE, FEED_PAUSED, FEED_DONE };

struct pool {
    struct pool *next;
    struct conn *idle; /* most recently used first */
    size_t nidle;
    int port;
    char host[HOST_MAX];
};

struct conn {
    uv_tcp_t tcp;
    uv_timer_t timer;
    struct rd_deadline deadline; /* of the timer's current purpose */
    uint64_t idle_since; /* loop time it went back to the pool */
    uv_connect_t creq;
    uv_write_t wreq;
    struct rd_h1_ctx *ctx;
    struct pool *pool;                 /* NULL: never pooled */
    struct rd_h1 *req;                 /* bound request; NULL when idle or closing */
    struct conn *prev, *next;          /* pool->idle while idle */
    struct conn *all_prev, *all_next;  /* ctx->conns until freed */
    llhttp_t ll;
    struct rd_buf field;  /* "name" + "value" of the header being parsed */
    size_t name_len;
    size_t head_bytes;    /* counted against MAX_RESP_HEAD */
    struct rd_buf saved;  /* while paused: the refused chunk, then unparsed bytes */
    size_t held;          /* length of the refused chunk at the front of saved */
    const char *hold_at;  /* set by on_body when on_data refuses bytes */
    size_t hold_len;
    char *wbuf;           /* owned copy of the head's unsent part, queued */
    int fail_err;         /* set by a parser callback that stopped llhttp */
    const char *fail_msg;
    int nopen;            /* handles not closed yet */
    enum cstate state;
    bool reused, writing, reading, paused, msg_done, keep_alive, timer_is_deadline;
};

struct rd_h1 {
    struct rd_h1_ctx *ctx;
    struct conn *conn;       /* borrowed while bound */
    struct pool *pool;
    const struct rd_source_cbs *cbs;
    void *ud;
    const char *body;        /* borrowed until on_done or abort */
    size_t body_len;
    struct rd_buf head;      /* request head; storage kept across reuse */
    struct rd_arena arena;   /* response header strings */
    struct rd_hdrs hdrs;
    uint64_t deadline;       /* loop time; 0 means none */
    uint64_t connect_timeout_ms;
    struct rd_h1 *prev, *next; /* deferred list, or free list */
    int port;
    int err;
    bool in_call, deferred, head_done, got_bytes, retried, is_head, idempotent;
    char host[HOST_MAX];
    char detail[160];
};

struct rd_h1_ctx {
    uv_loop_t *loop;
    uv_idle_t defer;         /* delivers on_done outside start/resume */
    struct pool *pools;
    size_t npools;
    size_t nidle;
    struct conn *conns;
    struct rd_h1 *free_reqs;
    size_t nfree;
    struct rd_h1 *dhead, *dtail;
    size_t ndeferred;
    int nopen;               /* conns not freed yet + the defer handle */
    uint64_t stale_check_ms; /* peek at connections idle at least this long before reuse */
    char last_origin[128];   /* "http://host:port" of the last URL parsed (no trailing '/') */
    size_t last_origin_len;  /* 0: none */
    char last_host[HOST_MAX];
    int last_port;
    bool closing;
    /* One read buffer for all connections: libuv runs alloc and read
     * callbacks back to back per stream and the bytes are parsed before
     * on_read returns; what must outlive it (a paused tail) is copied. */
    char rbuf[READ_BUF_SIZE];
};

/* ---- h1.c ---- */

/* Closes c for good (never pooled again); memory goes in its close callbacks. */
void h1_conn_close(struct conn *c);

/* Closes c and ends its bound request with err and detail (copied). */
void h1_conn_fail(struct conn *c, int err, const char *detail);

/* Ends r with on_done, now or on the next loop pass when inside start/resume. */
void h1_finish(struct rd_h1 *r, int err, const char *detail);

/* Keeps c (its response complete) idle in its pool, or closes it. */
void h1_pool_put(struct conn *c);

/* True if r may go once more on a new connection after reused c failed
 * before any response byte: r is idempotent, or written is false (part of
 * the request never reached the socket, so the server cannot have acted on
 * it). See the comment above the definition. */
bool h1_may_retry(const struct conn *c, const struct rd_h1 *r, bool written);

/* Closes c and starts r again on a new connection. */
void h1_retry(struct conn *c, struct rd_h1 *r);

/* ---- h1_send.c ---- */

/* Builds r->head from req (borrowed); RD_EINVAL if not sendable, RD_ETOOBIG if too large. */
int h1_build_head(struct rd_h1 *r, const struct rd_upstream_req *req, const char *target);

/* Writes c's request; a failure ends (or retries) the request. */
void h1_send_request(struct conn *c);

/* ---- h1_recv.c ---- */

/* The llhttp callbacks for conn.ll, whose data must point at the struct conn. */
extern const llhttp_settings_t h1_settings;

/* Starts reading c unless it already is; 0 or a libuv error. */
int h1_start_reading(struct conn *c);

/* Parses n bytes of c's response; FEED_DONE means the request has ended. */
enum feed_result h1_feed(struct conn *c, const char *p, size_t n, bool from_saved);

#endif
