/* Observability: the request log, metrics, roll-ups and traces
 * (docs/observability.md). One process-wide set of them, made by the
 * server before the workers take requests and stopped after the workers are
 * joined; the request path reaches them through rd_obs, read-only while
 * requests flow.
 *
 *   rd_obs_begin(req)  once a request is created and classified: trace
 *                      context, in-flight gauge
 *   rd_obs_done(req)   once it is DONE, from req_release: the request log
 *                      record (unless the proxy's logging stage is off),
 *                      metrics, roll-ups, spans */
#ifndef RD_OBS_OBS_H
#define RD_OBS_OBS_H

#include <stddef.h>
#include <stdint.h>

struct rd_req;

struct rd_obs {
    struct rd_log_writer *log; /* NULL: no request log (its store could not be opened) */
    struct rd_metrics *metrics;
    struct rd_rollup *rollup;
    struct rd_tracer *tracer; /* NULL: tracing not configured */
    char node_id[64];
    uint32_t log_retention_days; /* 0: keep; the purge runs on the control loop (api/logs.c) */
};

extern struct rd_obs rd_obs;

struct rd_obs_cfg {
    const char *store_url;    /* the database the log and roll-ups are written to */
    unsigned nslots;          /* I/O workers */
    uint64_t log_buffer_bytes;
    uint32_t log_retention_days; /* 0: keep */
    const char *node_id;      /* NULL or "": RUBBERDUCK_NODE_ID, else the host name */
};

/* Starts what can start; a part that cannot is warned about and left NULL
 * (the server runs without it). Returns 0, or a negative rd_err for a bad
 * setting (an invalid OTEL_* value), with a reason in errbuf. Control
 * thread, before the workers take requests. */
int rd_obs_start(const struct rd_obs_cfg *cfg, char *errbuf, size_t errlen);
/* Flushes and stops every part. After the workers are joined. */
void rd_obs_stop(void);

void rd_obs_begin(struct rd_req *req);
void rd_obs_done(struct rd_req *req);

#endif
