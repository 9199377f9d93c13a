/* The source wrapper: pausing by the user on top of each implementation's
 * refuse-and-resume backpressure, and the bookkeeping of a running source. */
#include "upstream/source.h"

#include "util/err.h"

static int shim_head(void *ud, int status, const struct rd_hdrs *hdrs)
{
    struct rd_source *s = ud;
    return s->cbs->on_head(s->ud, status, hdrs);
}

static int shim_data(void *ud, const char *p, size_t n)
{
    struct rd_source *s = ud;
    if (s->held) {
        s->refused = true;
        return RD_SOURCE_PAUSE;
    }
    int rc = s->cbs->on_data(s->ud, p, n);
    if (rc == RD_SOURCE_PAUSE)
        s->refused = true;
    return rc;
}

static void shim_done(void *ud, int err, const char *detail)
{
    struct rd_source *s = ud;
    s->ops = NULL;
    s->h = NULL;
    s->cbs->on_done(s->ud, err, detail);
}

static const struct rd_source_cbs shim = {.on_head = shim_head, .on_data = shim_data, .on_done = shim_done};

int rd_source_start(struct rd_source *s, const struct rd_source_ops *ops, void *ctx, const struct rd_source_req *req,
                    const struct rd_source_cbs *cbs, void *ud)
{
    s->cbs = cbs;
    s->ud = ud;
    s->held = s->refused = false;
    s->h = ops->start(ctx, req, &shim, s);
    s->ops = s->h ? ops : NULL;
    return s->h ? 0 : RD_EINVAL;
}

void rd_source_pause(struct rd_source *s)
{
    s->held = true;
}

void rd_source_resume(struct rd_source *s)
{
    s->held = false;
    if (s->ops && s->refused) {
        s->refused = false;
        s->ops->resume(s->h);
    }
}

void rd_source_abort(struct rd_source *s)
{
    if (s->ops == NULL)
        return;
    const struct rd_source_ops *ops = s->ops;
    void *h = s->h;
    s->ops = NULL;
    s->h = NULL;
    ops->abort(h);
}
