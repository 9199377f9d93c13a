/* The management API (/api/v1, /healthz, /health), served on the control loop.
 * Routes are a table of {method, pattern, handler, auth}; each resource lives
 * in its own file (proxies.c, system.c, health.c, cache.c). */
#ifndef RD_API_API_H
#define RD_API_API_H

#include <json-c/json.h>
#include <stdbool.h>

#include "http/server.h"
#include "proxy/manager.h"
#include "store/store.h"

struct rd_api {
    struct rd_manager *manager; /* borrowed */
    struct rd_store *store;     /* borrowed */
    const char *admin_token;    /* borrowed */
    /* RUBBERDUCK_METRICS_TOKEN: when set, /health/detailed wants it (or the
     * admin token). Borrowed; NULL or "" leaves it open. */
    const char *metrics_token;
    const char *data_dir; /* borrowed; the disk_space check's directory */
    uint64_t header_timeout_ms;
    struct rd_api_health *health; /* owned; upstream probe cache, made on first use */
    struct rd_api_retention *retention; /* owned; the request log's retention timer (logs.c) */
    /* Owned: the live stream's subscribers (log_stream.c). */
    struct rd_api_log_stream *log_stream;
};

/* Frees the health check's cache. Call once the loop has drained (no probe
 * in flight). */
void rd_api_health_free(struct rd_api *api);

/* The request log's retention (logs.c): purges the records older than
 * retention_days now (before returning: the chunked purge of what a long
 * stop left behind), then every hour on loop, logged at info with the
 * count (an hourly run that purged nothing at debug). 0 days keeps everything (nothing started). Control thread, once
 * api->store is set. The timer does not keep the loop alive. */
void rd_api_logs_start(struct rd_api *api, uv_loop_t *loop, uint32_t retention_days);
/* Stops the retention timer (its memory is released by the loop's close
 * callback: run the loop once more). NULL-safe; idempotent. */
void rd_api_logs_stop(struct rd_api *api);
/* The live stream (GET /api/v1/logs/stream): registers for the request
 * log writer's notification (rd_obs.log, which may be NULL: the stream then
 * answers 503) on loop. Once, on the control thread, before requests flow. */
void rd_api_log_stream_init(struct rd_api *api, uv_loop_t *loop);
/* On the stop signal: ends every open stream with a complete body (so the
 * listener's graceful stop need not wait for them), answers 503 to new
 * ones and drops the writer's notification. Idempotent. */
void rd_api_log_stream_stop(struct rd_api *api);
/* Frees what init made (stopping first if needed). After the loop drained. */
void rd_api_log_stream_free(struct rd_api *api);

/* Listener configuration that serves the API with ctx as user data. */
void rd_api_listener_cfg(struct rd_api *ctx, struct rd_http_listener_cfg *out);

/* ---- shared by the resource files ---- */

/* A route handler. param is the first path parameter ({id}), "" if none;
 * a second one ({key}) follows the first's NUL: param + strlen(param) + 1.
 * Parameters are as sent (not percent-decoded). */
typedef void (*rd_api_fn)(struct rd_api *api, struct rd_http_exch *x, const char *param);

struct rd_api_route {
    const char *method;
    const char *pattern; /* each "{name}" matches one path segment; at most two */
    rd_api_fn fn;
    bool auth;
};

/* Sends obj (reference taken over) as JSON with status. */
void rd_api_send_json(struct rd_http_exch *x, int status, struct json_object *obj);
/* Sends {"error":{"code","message","field"?}}. field may be NULL or "". */
void rd_api_send_error(struct rd_http_exch *x, int status, const char *code, const char *field,
                       const char *fmt, ...) __attribute__((format(printf, 5, 6)));
/* Parses the request body as a JSON object; on failure answers 400 and
 * returns NULL. The result is owned by the caller. */
struct json_object *rd_api_body_object(struct rd_http_exch *x);
/* True when the request carries "Authorization: Bearer <token>" (constant-
 * time comparison). */
bool rd_api_bearer_matches(const struct rd_http_exch *x, const char *token);
/* Value of a query parameter (no percent-decoding; our parameters are plain
 * tokens), copied into buf; NULL if absent. */
const char *rd_api_query(const struct rd_http_exch *x, const char *name, char *buf, size_t len);

extern const struct rd_api_route rd_api_proxy_routes[];
extern const size_t rd_api_proxy_nroutes;
extern const struct rd_api_route rd_api_system_routes[];
extern const size_t rd_api_system_nroutes;
extern const struct rd_api_route rd_api_health_routes[];
extern const size_t rd_api_health_nroutes;
extern const struct rd_api_route rd_api_cache_routes[];
extern const size_t rd_api_cache_nroutes;
extern const struct rd_api_route rd_api_log_stream_routes[]; /* log_stream.c: before logs.c's {id} */
extern const size_t rd_api_log_stream_nroutes;
extern const struct rd_api_route rd_api_logs_routes[]; /* logs.c */
extern const size_t rd_api_logs_nroutes;
extern const struct rd_api_route rd_api_prometheus_routes[]; /* prometheus.c: GET /metrics */
extern const size_t rd_api_prometheus_nroutes;
extern const struct rd_api_route rd_api_metrics_routes[]; /* metrics.c: /api/v1/metrics/... */
extern const size_t rd_api_metrics_nroutes;

#endif
