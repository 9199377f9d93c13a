/* See obs.h. */
#include "obs/obs.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "obs/logwriter.h"
#include "obs/metrics.h"
#include "obs/record.h"
#include "obs/rollup.h"
#include "obs/trace.h"
#include "proxy/pipeline.h"
#include "proxy/req.h"
#include "util/log.h"

struct rd_obs rd_obs;

/* Rows the live stream can resume from by Last-Event-ID. */
#define HISTORY_ROWS 4096

int rd_obs_start(const struct rd_obs_cfg *cfg, char *errbuf, size_t errlen)
{
    memset(&rd_obs, 0, sizeof rd_obs);
    const char *node = cfg->node_id && cfg->node_id[0] ? cfg->node_id : getenv("RUBBERDUCK_NODE_ID");
    if (node && node[0])
        snprintf(rd_obs.node_id, sizeof rd_obs.node_id, "%s", node);
    else if (gethostname(rd_obs.node_id, sizeof rd_obs.node_id - 1) != 0)
        snprintf(rd_obs.node_id, sizeof rd_obs.node_id, "node");
    rd_obs.log_retention_days = cfg->log_retention_days;
    int rc = rd_tracer_start(&rd_obs.tracer, errbuf, errlen);
    if (rc < 0)
        return rc;
    char why[256] = "";
    struct rd_log_writer_cfg lc = {.nslots = cfg->nslots, .buffer_bytes = cfg->log_buffer_bytes,
                                   .node_id = rd_obs.node_id,
                                   .history = HISTORY_ROWS};
    if (rd_log_writer_start(cfg->store_url, &lc, &rd_obs.log, why, sizeof why) != 0) {
        rd_warn("the request log is off: %s", why);
        rd_obs.log = NULL;
    }
    if (rd_rollup_start(cfg->store_url, cfg->nslots, &rd_obs.rollup, why, sizeof why) != 0) {
        rd_warn("metric roll-ups are off: %s", why);
        rd_obs.rollup = NULL;
    }
    rd_obs.metrics = rd_metrics_new(cfg->nslots);
    return 0;
}

void rd_obs_stop(void)
{
    rd_tracer_stop(rd_obs.tracer);
    rd_log_writer_stop(rd_obs.log);
    rd_rollup_stop(rd_obs.rollup);
    rd_metrics_free(rd_obs.metrics);
    memset(&rd_obs, 0, sizeof rd_obs);
}

void rd_obs_begin(struct rd_req *req)
{
    rd_trace_begin(rd_obs.tracer, req);
    rd_metrics_begin(rd_obs.metrics, req->env->index);
}

void rd_obs_done(struct rd_req *req)
{
    unsigned slot = req->env->index;
    rd_metrics_done(rd_obs.metrics, slot, req);
    rd_rollup_done(rd_obs.rollup, slot, req);
    if (rd_obs.log && rd_pipeline_logs(&req->snap->pipeline)) {
        struct rd_log_rec *r = rd_log_reserve(rd_obs.log, slot); /* filled where the writer reads it */
        if (r) {
            rd_log_rec_from_req(r, req);
            rd_log_commit(rd_obs.log, slot);
        }
    }
    rd_trace_done(rd_obs.tracer, slot, req);
}
