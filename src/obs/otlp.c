/* See otlp.h. */
#include "obs/otlp.h"

#include <inttypes.h>
#include <stdio.h>
#include <string.h>

#include "util/json.h"

/* OTLP enum values (opentelemetry/proto/trace/v1/trace.proto). */
enum { KIND_INTERNAL = 1, KIND_SERVER = 2, KIND_CLIENT = 3 };
enum { STATUS_UNSET = 0, STATUS_ERROR = 2 };

static void hex64(uint64_t v, char out[17])
{
    snprintf(out, 17, "%016" PRIx64, v);
}

static struct json_object *u64_str(uint64_t v)
{
    char s[24];
    snprintf(s, sizeof s, "%" PRIu64, v);
    return json_object_new_string(s);
}

static void attr_add(struct json_object *arr, const char *key, const char *type, struct json_object *v)
{
    struct json_object *a = json_object_new_object(), *val = json_object_new_object();
    json_object_object_add(val, type, v);
    json_object_object_add(a, "key", json_object_new_string(key));
    json_object_object_add(a, "value", val);
    json_object_array_add(arr, a);
}

static void attr_str(struct json_object *arr, const char *key, const char *v)
{
    if (v && v[0])
        attr_add(arr, key, "stringValue", json_object_new_string(v));
}

static void attr_int(struct json_object *arr, const char *key, int64_t v)
{
    char s[24];
    snprintf(s, sizeof s, "%" PRId64, v);
    attr_add(arr, key, "intValue", json_object_new_string(s));
}

/* A span with the fields every one of ours has; attributes are added by
 * the caller to the returned array. */
static struct json_object *span_new(struct json_object *spans, const struct rd_trace_rec *r, const char *name,
                                    uint64_t id, uint64_t parent, int kind, uint64_t start, uint64_t end,
                                    struct json_object **attrs)
{
    char tid[33], sid[17];
    for (size_t i = 0; i < 16; i++)
        snprintf(tid + 2 * i, 3, "%02x", r->trace_id[i]);
    hex64(id, sid);
    struct json_object *s = json_object_new_object();
    json_object_object_add(s, "traceId", json_object_new_string(tid));
    json_object_object_add(s, "spanId", json_object_new_string(sid));
    if (parent) {
        char pid[17];
        hex64(parent, pid);
        json_object_object_add(s, "parentSpanId", json_object_new_string(pid));
    }
    json_object_object_add(s, "flags", json_object_new_int(r->flags));
    json_object_object_add(s, "name", json_object_new_string(name));
    json_object_object_add(s, "kind", json_object_new_int(kind));
    json_object_object_add(s, "startTimeUnixNano", u64_str(start));
    json_object_object_add(s, "endTimeUnixNano", u64_str(end < start ? start : end));
    *attrs = json_object_new_array();
    json_object_object_add(s, "attributes", *attrs);
    json_object_array_add(spans, s);
    return s;
}

static void set_error(struct json_object *span, const char *message)
{
    struct json_object *st = json_object_new_object();
    json_object_object_add(st, "code", json_object_new_int(STATUS_ERROR));
    if (message && message[0])
        json_object_object_add(st, "message", json_object_new_string(message));
    json_object_object_add(span, "status", st);
}

static void request_span(struct json_object *spans, const struct rd_trace_rec *r)
{
    struct json_object *a;
    struct json_object *s =
        span_new(spans, r, "process_llm_request", r->span_id, r->parent_span_id, KIND_SERVER, r->start_ns, r->end_ns, &a);
    attr_str(a, "llm.provider", r->provider);
    attr_str(a, "llm.model", r->model);
    attr_int(a, "request.size", (int64_t)r->request_size);
    attr_int(a, "response.status", r->status);
    attr_int(a, "response.size", (int64_t)r->response_size);
    attr_str(a, "gen_ai.system", r->provider);
    attr_str(a, "gen_ai.request.model", r->model);
    if (r->input_tokens >= 0)
        attr_int(a, "gen_ai.usage.input_tokens", r->input_tokens);
    if (r->output_tokens >= 0)
        attr_int(a, "gen_ai.usage.output_tokens", r->output_tokens);
    attr_str(a, "rubberduck.cache", r->cache);
    attr_str(a, "rubberduck.failure_type", r->failure);
    attr_int(a, "rubberduck.proxy_id", r->proxy_id);
    attr_str(a, "rubberduck.proxy_name", r->proxy_name);
    attr_str(a, "http.request.method", r->method);
    attr_str(a, "url.path", r->path);
    attr_int(a, "http.response.status_code", r->status);
    /* Server spans: only 5xx is an error (4xx is the client's, semantic
     * conventions for HTTP). */
    if (r->status >= 500)
        set_error(s, r->failure && r->failure[0] ? r->failure : NULL);
}

static void child_spans(struct json_object *spans, const struct rd_trace_rec *r)
{
    struct json_object *a;
    if (r->cache_start_ns) {
        (void)span_new(spans, r, "cache_lookup", r->cache_span_id, r->span_id, KIND_INTERNAL, r->cache_start_ns,
                       r->cache_end_ns, &a);
        attr_str(a, "rubberduck.cache", r->cache);
    }
    if (r->up_start_ns) {
        struct json_object *s = span_new(spans, r, "upstream_call", r->upstream_span_id, r->span_id, KIND_CLIENT,
                                         r->up_start_ns, r->up_end_ns, &a);
        attr_str(a, "llm.provider", r->provider);
        attr_str(a, "rubberduck.upstream", r->upstream_kind);
        attr_str(a, "http.request.method", r->method);
        if (r->upstream_status > 0)
            attr_int(a, "http.response.status_code", r->upstream_status);
        /* Client spans: no answer or a 4xx/5xx answer is an error. */
        if (r->upstream_status == 0 || r->upstream_status >= 400)
            set_error(s, r->upstream_status == 0 ? "no response" : NULL);
    }
}

size_t rd_otlp_rec_spans(const struct rd_trace_rec *rec)
{
    return 1u + (rec->cache_start_ns != 0 ? 1u : 0u) + (rec->up_start_ns != 0 ? 1u : 0u);
}

int rd_otlp_encode(const struct rd_otlp_resource *res, const struct rd_trace_rec *recs, size_t n,
                   struct rd_buf *out)
{
    struct json_object *root = json_object_new_object(), *rss = json_object_new_array();
    struct json_object *rs = json_object_new_object(), *resource = json_object_new_object();
    struct json_object *rattrs = json_object_new_array();
    for (size_t i = 0; i < res->n; i++)
        attr_add(rattrs, res->keys[i], "stringValue", json_object_new_string(res->values[i]));
    json_object_object_add(resource, "attributes", rattrs);
    json_object_object_add(rs, "resource", resource);
    struct json_object *sss = json_object_new_array(), *ss = json_object_new_object();
    struct json_object *scope = json_object_new_object(), *spans = json_object_new_array();
    json_object_object_add(scope, "name", json_object_new_string("rubberduck"));
#ifdef RD_VERSION
    json_object_object_add(scope, "version", json_object_new_string(RD_VERSION));
#endif
    json_object_object_add(ss, "scope", scope);
    for (size_t i = 0; i < n; i++) {
        request_span(spans, &recs[i]);
        child_spans(spans, &recs[i]);
    }
    json_object_object_add(ss, "spans", spans);
    json_object_array_add(sss, ss);
    json_object_object_add(rs, "scopeSpans", sss);
    json_object_array_add(rss, rs);
    json_object_object_add(root, "resourceSpans", rss);
    size_t len;
    const char *s = rd_json_str(root, &len);
    int rc = rd_buf_append(out, s, len);
    json_object_put(root);
    return rc;
}
