/* See rollup.h. STUB: the roll-up helper writes this file. */
#include "obs/rollup.h"

#include <stddef.h>

#include "util/err.h"

int rd_rollup_start(const char *store_url, unsigned nslots, struct rd_rollup **out, char *errbuf, size_t errlen)
{
    (void)store_url, (void)nslots;
    *out = NULL;
    rd_seterr(errbuf, errlen, "not built yet");
    return RD_ESTATE;
}

void rd_rollup_stop(struct rd_rollup *r)
{
    (void)r;
}

void rd_rollup_done(struct rd_rollup *r, unsigned slot, struct rd_req *req)
{
    (void)r, (void)slot, (void)req;
}
