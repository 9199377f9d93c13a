/* The emulator behind the source ops table: build the reply, then let the
 * runner (run.c) play it through the source callbacks. */
#include <string.h>

#include "providers/emulator/emulator.h"

static void *emu_start(void *ctx, const struct rd_source_req *req, const struct rd_source_cbs *cbs, void *ud)
{
    const struct rd_emu_setup *setup = ctx;
    struct rd_emu_request er = {
        .method = req->method,
        .path = req->path,
        .query = req->query,
        .headers = req->headers,
        .body = req->body ? req->body : "",
        .body_len = req->body_len,
        .seed = setup->seed,
        .match = req->arg, /* the route the engine matched (emulator.h) */
        .model = req->model,
        .config = setup->config,
    };
    struct rd_emu_reply reply;
    memset(&reply, 0, sizeof reply);
    setup->emulate(setup->dialect, &er, &reply);
    /* The runner takes the reply's contents over. */
    return rd_emu_run_start(req->loop, &reply, setup->tokens_per_second, cbs, ud);
}

static void emu_resume(void *h)
{
    rd_emu_run_resume(h);
}

static void emu_abort(void *h)
{
    rd_emu_run_abort(h);
}

const struct rd_source_ops rd_emu_source_ops = {
    .name = "emulator", .start = emu_start, .resume = emu_resume, .abort = emu_abort};
