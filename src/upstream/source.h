/* What produces a response for a proxied request, behind one ops table: the
 * native HTTP/1.1 client (h1.c), libcurl (curl.c), the built-in emulator
 * (providers/emulator/source.c) and, later, a cache replay. The request
 * chooses one implementation once (rd_source_start) and drives it through
 * rd_source_pause/resume/abort; every implementation reports through the
 * same callbacks, on the loop thread that started it, so the relay code is
 * written once. */
#ifndef RD_UPSTREAM_SOURCE_H
#define RD_UPSTREAM_SOURCE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <uv.h>

#include "http/headers.h"

/* Returned by on_data to refuse bytes for now: the source keeps them and
 * offers them again after it is resumed (backpressure). */
#define RD_SOURCE_PAUSE 1

struct rd_source_cbs {
    /* Response status and headers (borrowed for the call). Called once,
     * before any on_data. Returns 0, or a negative code to abort the source
     * (on_done then fires with RD_EABORTED). */
    int (*on_head)(void *ud, int status, const struct rd_hdrs *hdrs);
    /* Body bytes (borrowed). Returns 0 when consumed, RD_SOURCE_PAUSE to
     * refuse them until resumed. */
    int (*on_data)(void *ud, const char *p, size_t n);
    /* The response is over: err is 0 on success, else RD_EUPSTREAM or
     * RD_ETIMEDOUT with detail a static or short-lived description (for the
     * log, never for the client). Fires exactly once, never from inside a
     * start/resume/abort call's own stack, and never after an abort. */
    void (*on_done)(void *ud, int err, const char *detail);
};

/* A request as every source sees it (borrowed for the start call, except
 * body, borrowed until on_done or abort). */
struct rd_source_req {
    uv_loop_t *loop;    /* the loop the request runs on */
    const char *method; /* any token; HEAD gets no body back */
    const char *url;    /* upstreams: absolute http(s) URL with path and query */
    const char *path;   /* as the client sent it (the emulator answers by route) */
    const char *query;  /* "" when absent */
    const struct rd_hdrs *headers; /* upstreams: end-to-end headers to send (no Host, no framing) */
    const char *body;   /* may be NULL */
    size_t body_len;
    uint64_t connect_timeout_ms; /* 0: none */
    uint64_t timeout_ms;         /* whole transfer; 0: none (the proxy keeps its own deadline) */
    const char *ca_file;         /* TLS: CA bundle instead of the system one; NULL for the default */
    const void *arg;             /* implementation-specific; see each ops table (the emulator: the route match) */
    const char *model;           /* the request's model as classified; NULL or "" when unknown (the emulator) */
};

struct rd_source_ops {
    const char *name; /* "h1", "curl", "emulator" */
    /* Starts req with the implementation's context ctx. Returns the handle,
     * or NULL if this implementation declines req (without any callback).
     * Callbacks fire later on the loop, never inside this call. */
    void *(*start)(void *ctx, const struct rd_source_req *req, const struct rd_source_cbs *cbs, void *ud);
    /* Continues after on_data returned RD_SOURCE_PAUSE. May deliver data
     * (on_data) before returning, never on_done. */
    void (*resume)(void *h);
    /* Cancels: no callback fires any more; an unfinished upstream transfer
     * is never reused. Must not be called from inside h's own callbacks. */
    void (*abort)(void *h);
};

/* A started source as its user holds it (embed it; no allocation). Besides
 * the implementation's own backpressure (on_data refusing bytes), a user
 * may pause it at any time: the next delivery is then refused and offered
 * again after rd_source_resume. */
struct rd_source {
    const struct rd_source_ops *ops; /* NULL when not started or finished */
    void *h;
    const struct rd_source_cbs *cbs; /* the user's */
    void *ud;
    bool held;    /* paused by rd_source_pause */
    bool refused; /* a delivery was refused: resume must re-offer it */
};

/* Starts req on ops/ctx. Returns 0, or RD_EINVAL if the implementation
 * declined (nothing started, no callback). */
int rd_source_start(struct rd_source *s, const struct rd_source_ops *ops, void *ctx, const struct rd_source_req *req,
                    const struct rd_source_cbs *cbs, void *ud);
void rd_source_pause(struct rd_source *s);
void rd_source_resume(struct rd_source *s);
/* Cancels a running source; no callback afterwards. NULL-safe when not started. */
void rd_source_abort(struct rd_source *s);
static inline bool rd_source_running(const struct rd_source *s)
{
    return s->ops != NULL;
}

#endif
