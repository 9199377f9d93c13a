/* The upstream stage: the request goes to its source (proxy/forward.c),
 * which answers it; the pipeline's request side ends here. */
#include "proxy/forward.h"
#include "proxy/stages/stages.h"

static enum rd_stage_rc run(struct rd_req *req, const void *state)
{
    (void)state;
    rd_forward_start(req);
    return RD_STAGE_DONE;
}

const struct rd_stage rd_stage_upstream = {
    .name = "upstream",
    .run = run,
};
