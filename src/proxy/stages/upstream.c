/* The upstream stage: the request goes to its source (proxy/forward.c),
 * which answers it; the pipeline's request side ends here. A configured
 * response delay (stages/response_delay.c) runs first. */
#include "proxy/forward.h"
#include "proxy/stages/stages.h"

static enum rd_stage_rc run(struct rd_req *req, const void *state)
{
    (void)state;
    if (!rd_response_delay_hold(req, rd_forward_start))
        rd_forward_start(req);
    return RD_STAGE_DONE;
}

const struct rd_stage rd_stage_upstream = {
    .name = "upstream",
    .run = run,
};
