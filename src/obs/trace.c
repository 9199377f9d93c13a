/* See trace.h. STUB: the tracing helper writes this file. */
#include "obs/trace.h"

int rd_tracer_start(struct rd_tracer **out, char *errbuf, size_t errlen)
{
    (void)errbuf, (void)errlen;
    *out = NULL;
    return 0;
}

void rd_tracer_stop(struct rd_tracer *t)
{
    (void)t;
}

void rd_trace_begin(struct rd_tracer *t, struct rd_req *req)
{
    (void)t, (void)req;
}

void rd_trace_done(struct rd_tracer *t, unsigned slot, struct rd_req *req)
{
    (void)t, (void)slot, (void)req;
}
