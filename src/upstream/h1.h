/* Lean HTTP/1.1 client for plain-http upstreams given by address
 * (http://<IPv4>, http://[<IPv6>] or http://localhost): libuv TCP plus
 * llhttp, with a keep-alive pool per (host, port) and no DNS, no TLS.
 * Private to the upstream module: upstream.c sends such URLs here and
 * everything else (https, host names) to libcurl. Responses are reported
 * through the source callbacks (upstream/source.h), with their contract:
 * on_head once, on_data as bytes arrive (de-chunked), on_done exactly once,
 * never from inside rd_h1_start/rd_h1_resume/rd_h1_abort, never after an
 * abort. Everything runs on the thread of the context's loop. */
#ifndef RD_UPSTREAM_H1_H
#define RD_UPSTREAM_H1_H

#include <stddef.h>
#include <stdint.h>
#include <uv.h>

#include "upstream/source.h"
#include "upstream/upstream.h"

struct rd_h1_ctx;
struct rd_h1;

/* Creates the client of one loop (its pool, free lists, deferral handle).
 * Never NULL. Loop thread only. */
struct rd_h1_ctx *rd_h1_ctx_new(uv_loop_t *loop);

/* A pooled connection idle at least this long is checked (a non-blocking
 * peek: FIN, reset or stray bytes) before it is reused. */
#define RD_H1_STALE_CHECK_MS 1000u
/* Changes that threshold (tests use 0: always check). */
void rd_h1_ctx_set_stale_check_ms(struct rd_h1_ctx *ctx, uint64_t ms);

/* Closes the pooled connections and the context's handles; memory is
 * released once the loop has run the close callbacks. Requests still in
 * flight should be aborted first: any left are closed silently (no callback
 * fires) and their handles become invalid. NULL-safe. */
void rd_h1_ctx_free(struct rd_h1_ctx *ctx);

/* Splits url if this client can serve it: "http://" (any case), then an
 * IPv4 literal, a bracketed IPv6 literal or "localhost", an optional
 * ":port" (1-65535, default 80), then an origin-form target of visible
 * ASCII without '#' (empty means "/"). Fills host (the address without
 * brackets, NUL-terminated, hostlen >= 46 is always enough), port and
 * target (borrowed: points into url, or at a static "/"). Returns 0, or
 * RD_EINVAL for anything else (https, host names, user info, zone ids),
 * which the caller sends through libcurl. Pure; any thread. */
int rd_h1_parse_url(const char *url, char *host, size_t hostlen, int *port, const char **target);

/* Starts req (borrowed for the call, except req->body which stays borrowed
 * until on_done or rd_h1_abort). Returns NULL, without calling anything,
 * when rd_h1_parse_url rejects req->url; otherwise a handle valid until
 * on_done has fired or rd_h1_abort was called. Errors reported through
 * on_done: RD_EUPSTREAM (connect failure, reset, early close, invalid
 * response), RD_ETIMEDOUT (connect_timeout_ms or timeout_ms passed; 0 means
 * none), RD_EABORTED (on_head returned < 0). A pooled connection found
 * closed by the server is not used. A reused connection that fails before
 * any response byte arrives is replaced once, transparently, if the method
 * is idempotent (GET, HEAD, OPTIONS, TRACE, PUT, DELETE) or the request was
 * not fully written; otherwise (a POST the server may have read) the call
 * fails with RD_EUPSTREAM. No callback fires inside this call. */
struct rd_h1 *rd_h1_start(struct rd_h1_ctx *ctx, const struct rd_upstream_req *req, const struct rd_source_cbs *cbs,
                          void *ud);

/* Continues after on_data returned RD_SOURCE_PAUSE: re-offers the refused
 * bytes, then parses what was already received, then reads again. on_data
 * may fire (and pause again) before this returns; on_done never does (it is
 * deferred to the loop). No-op if h is not paused. */
void rd_h1_resume(struct rd_h1 *h);

/* Cancels h: its connection is closed (never pooled mid-response) and no
 * callback fires any more. Must not be called from inside h's own
 * callbacks. NULL-safe. */
void rd_h1_abort(struct rd_h1 *h);

#endif
