/* The tracer's state, shared by trace.c (the request path) and
 * trace_export.c (configuration and the exporter thread). Private to
 * src/obs/. */
#ifndef RD_OBS_TRACE_INT_H
#define RD_OBS_TRACE_INT_H

#include <curl/curl.h>
#include <pthread.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "obs/otlp.h"
#include "obs/trace.h"

#define RD_TRACE_MAX_ENDPOINT 2048
#define RD_TRACE_MAX_PAIRS 64
#define RD_TRACE_PAIR_MAX 4096

struct rd_tracer {
    /* configuration, read-only once started */
    char endpoint[RD_TRACE_MAX_ENDPOINT];
    char shown[RD_TRACE_MAX_ENDPOINT]; /* the endpoint for log lines (no user information) */
    struct curl_slist *headers; /* Content-Type + OTEL_EXPORTER_OTLP_HEADERS */
    uint64_t timeout_ms, delay_ms;
    size_t max_queue, max_batch; /* spans */
    struct rd_sampler sampler;
    char *res_keys[RD_TRACE_MAX_PAIRS], *res_values[RD_TRACE_MAX_PAIRS];
    size_t nres;

    /* the queue: a ring of records, bounded by the spans they make */
    pthread_mutex_t mu;
    pthread_cond_t cv;
    struct rd_trace_rec *ring;
    size_t cap, head, count; /* records */
    size_t spans;            /* spans queued */
    bool stop;
    struct rd_tracer_stats stats; /* under mu */
    pthread_t thread;
};

#endif
