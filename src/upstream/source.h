/* What produces a response for a proxied request: the real upstream
 * (upstream/upstream.c, libcurl) or the built-in emulator
 * (providers/emulator/run.c). Both report through these callbacks, on the
 * loop thread that started them, so the relay code is written once. */
#ifndef RD_UPSTREAM_SOURCE_H
#define RD_UPSTREAM_SOURCE_H

#include <stddef.h>

#include "http/headers.h"

/* Returned by on_data to refuse bytes for now: the source keeps them and
 * offers them again after its resume function is called (backpressure). */
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
     * RD_ETIMEDOUT with detail a static or short-lived description.
     * Fires exactly once, never from inside a start/resume/abort call's own
     * stack, and never after the source was aborted. */
    void (*on_done)(void *ud, int err, const char *detail);
};

#endif
