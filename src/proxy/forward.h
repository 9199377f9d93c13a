/* Forwarding one request of a proxy to its upstream (libcurl) or to the
 * built-in emulator, relaying the response to the client as it arrives, with
 * backpressure both ways. Runs on the worker loop that accepted the request. */
#ifndef RD_PROXY_FORWARD_H
#define RD_PROXY_FORWARD_H

#include <uv.h>

#include "http/server.h"
#include "proxy/snapshot.h"
#include "upstream/upstream.h"

/* Takes over exchange x: answers it from snap's upstream. snap is borrowed
 * (a reference is taken for the request's lifetime). */
void rd_forward_start(struct rd_http_exch *x, struct rd_proxy_snap *snap, struct rd_upstream_ctx *up,
                      uv_loop_t *loop);

/* Renders snap's provider error for a status into body. */
void rd_forward_error_body(const struct rd_proxy_snap *snap, int status, const char *message, struct rd_buf *body);

#endif
