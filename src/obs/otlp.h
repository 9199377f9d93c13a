/* OTLP/HTTP JSON encoding of finished requests' spans
 * (https://opentelemetry.io/docs/specs/otlp/#json-protobuf-encoding): ids
 * are lower-case hex strings, times unix nanoseconds as decimal strings,
 * 64-bit integers as strings (the protobuf JSON mapping). One rd_trace_rec
 * per request holds what its spans need, copied off the request at DONE so
 * the exporter thread never touches a request. Pure: any thread. */
#ifndef RD_OBS_OTLP_H
#define RD_OBS_OTLP_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "util/buf.h"

/* Spans of one request: process_llm_request, then cache_lookup and
 * upstream_call when they happened. */
struct rd_trace_rec {
    uint8_t trace_id[16];
    uint64_t span_id, parent_span_id; /* parent 0: a root span */
    uint64_t cache_span_id, upstream_span_id;
    uint64_t start_ns, end_ns;             /* process_llm_request */
    uint64_t cache_start_ns, cache_end_ns; /* 0: no cache_lookup span */
    uint64_t up_start_ns, up_end_ns;       /* 0: no upstream_call span */
    uint8_t flags;                         /* W3C trace-flags sent on */
    const char *provider;                  /* static strings ("" when none) */
    const char *method;
    const char *cache;   /* "hit", "miss", "bypass" or NULL */
    const char *failure; /* rd_failure_name, "" for none */
    const char *upstream_kind; /* "emulator", "http", "cache" */
    char model[128];
    char path[256];      /* the path without query, cut to fit */
    char proxy_name[64];
    int64_t proxy_id;
    int status, upstream_status;
    uint64_t request_size, response_size;
    int64_t input_tokens, output_tokens; /* -1: not reported */
};

/* Resource attributes (key=value pairs, already decoded) and the scope. */
struct rd_otlp_resource {
    const char *const *keys; /* borrowed */
    const char *const *values;
    size_t n;
};

/* Appends the ExportTraceServiceRequest of recs[0..n) to out. Returns 0 or
 * RD_ENOMEM / RD_ETOOBIG from out. */
int rd_otlp_encode(const struct rd_otlp_resource *res, const struct rd_trace_rec *recs, size_t n,
                   struct rd_buf *out);
/* Number of spans rec makes (1 to 3). */
size_t rd_otlp_rec_spans(const struct rd_trace_rec *rec);

#endif
