/* See metrics.h. STUB: the metrics helper writes this file. */
#include "obs/metrics.h"

#include <stddef.h>

struct rd_metrics *rd_metrics_new(unsigned nslots)
{
    (void)nslots;
    return NULL;
}

void rd_metrics_free(struct rd_metrics *m)
{
    (void)m;
}

void rd_metrics_begin(struct rd_metrics *m, unsigned slot)
{
    (void)m, (void)slot;
}

void rd_metrics_done(struct rd_metrics *m, unsigned slot, struct rd_req *req)
{
    (void)m, (void)slot, (void)req;
}

uint64_t rd_metrics_in_flight(struct rd_metrics *m)
{
    (void)m;
    return 0;
}

int rd_metrics_render(struct rd_metrics *m, const struct rd_metrics_extra *extra, struct rd_buf *out)
{
    (void)m, (void)extra, (void)out;
    return 0;
}
