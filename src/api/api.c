/* Router, authentication and the JSON helpers of the management API. */
#include "api/api.h"

#include <openssl/crypto.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>

#include "proxy/config.h"
#include "util/json.h"
#include "util/log.h"

#define API_MAX_BODY RD_CONFIG_MAX_DOC_BYTES /* a configuration document is the largest body */

void rd_api_send_json(struct rd_http_exch *x, int status, struct json_object *obj)
{
    struct rd_hdrs h;
    struct rd_arena a;
    rd_arena_init(&a);
    rd_hdrs_init(&h, &a);
    rd_hdrs_add_ref(&h, "Content-Type", "application/json");
    rd_hdrs_add_ref(&h, "Cache-Control", "no-store");
    size_t len = 0;
    const char *s = obj ? rd_json_str(obj, &len) : "";
    rd_http_respond(x, status, &h, s, len);
    json_object_put(obj);
    rd_hdrs_free(&h);
    rd_arena_free(&a);
}

static struct json_object *error_object(const char *code, const char *field, const char *message)
{
    struct json_object *err = json_object_new_object();
    json_object_object_add(err, "code", json_object_new_string(code));
    json_object_object_add(err, "message", json_object_new_string(message));
    if (field && field[0])
        json_object_object_add(err, "field", json_object_new_string(field));
    struct json_object *root = json_object_new_object();
    json_object_object_add(root, "error", err);
    return root;
}

void rd_api_send_error(struct rd_http_exch *x, int status, const char *code, const char *field, const char *fmt, ...)
{
    char msg[512];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    rd_api_send_json(x, status, error_object(code, field, msg));
}

struct json_object *rd_api_body_object(struct rd_http_exch *x)
{
    const struct rd_buf *b = &x->req->body;
    struct json_object *obj = NULL;
    struct rd_json_err jerr = {0};
    if (rd_json_parse(b->data ? b->data : "", b->len, API_MAX_BODY, &obj, &jerr) != 0) {
        rd_api_send_error(x, 400, "bad_json", NULL, "request body is not valid JSON: %s at byte %zu", jerr.msg,
                          jerr.pos);
        return NULL;
    }
    if (!json_object_is_type(obj, json_type_object)) {
        json_object_put(obj);
        rd_api_send_error(x, 400, "bad_json", NULL, "request body must be a JSON object");
        return NULL;
    }
    return obj;
}

const char *rd_api_query(const struct rd_http_exch *x, const char *name, char *buf, size_t len)
{
    size_t nlen = strlen(name);
    const char *p = x->req->query;
    while (p && *p) {
        const char *end = strchr(p, '&');
        size_t seg = end ? (size_t)(end - p) : strlen(p);
        if (seg > nlen && strncmp(p, name, nlen) == 0 && p[nlen] == '=') {
            size_t vlen = seg - nlen - 1;
            if (vlen >= len)
                vlen = len - 1;
            memcpy(buf, p + nlen + 1, vlen);
            buf[vlen] = '\0';
            return buf;
        }
        if (seg == nlen && strncmp(p, name, nlen) == 0) {
            buf[0] = '\0';
            return buf;
        }
        p = end ? end + 1 : NULL;
    }
    return NULL;
}

/* Matches path against pattern. Each "{...}" segment is copied into param,
 * NUL-terminated, one after the other (a second one follows the first's
 * NUL): the cache routes take a proxy id and an entry key. */
static bool match(const char *pattern, const char *path, char *param, size_t plen)
{
    size_t used = 0;
    while (*pattern && *path) {
        if (*pattern == '{') {
            const char *close = strchr(pattern, '}');
            const char *seg_end = strchr(path, '/');
            size_t n = seg_end ? (size_t)(seg_end - path) : strlen(path);
            if (n == 0 || n >= plen - used)
                return false;
            memcpy(param + used, path, n);
            param[used + n] = '\0';
            used += n + 1;
            path += n;
            pattern = close + 1;
            continue;
        }
        if (*pattern++ != *path++)
            return false;
    }
    return *pattern == '\0' && *path == '\0';
}

bool rd_api_bearer_matches(const struct rd_http_exch *x, const char *token)
{
    const char *auth = rd_hdrs_get(&x->req->headers, "authorization");
    if (token == NULL || auth == NULL || strncasecmp(auth, "Bearer ", 7) != 0)
        return false;
    const char *tok = auth + 7;
    size_t n = strlen(token);
    return strlen(tok) == n && CRYPTO_memcmp(tok, token, n) == 0;
}

static bool authorized(struct rd_api *api, struct rd_http_exch *x)
{
    return rd_api_bearer_matches(x, api->admin_token);
}

static const struct {
    const struct rd_api_route *routes;
    const size_t *n;
} tables[] = {
    {rd_api_system_routes, &rd_api_system_nroutes},
    {rd_api_health_routes, &rd_api_health_nroutes},
    {rd_api_proxy_routes, &rd_api_proxy_nroutes},
    {rd_api_cache_routes, &rd_api_cache_nroutes},
    {rd_api_log_stream_routes, &rd_api_log_stream_nroutes},
    {rd_api_logs_routes, &rd_api_logs_nroutes},
    {rd_api_prometheus_routes, &rd_api_prometheus_nroutes},
    {rd_api_metrics_routes, &rd_api_metrics_nroutes},
};

static void handle(struct rd_http_exch *x, void *ud)
{
    struct rd_api *api = ud;
    const char *method = x->req->method;
    const char *path = x->req->path;
    /* An id and a cache key text ("<model>:<hex>", percent-encoded). */
    char param[640];
    bool path_known = false;
    for (size_t t = 0; t < sizeof tables / sizeof tables[0]; t++) {
        for (size_t i = 0; i < *tables[t].n; i++) {
            const struct rd_api_route *r = &tables[t].routes[i];
            param[0] = '\0';
            if (!match(r->pattern, path, param, sizeof param))
                continue;
            path_known = true;
            if (strcmp(r->method, method) != 0)
                continue;
            if (r->auth && !authorized(api, x)) {
                rd_api_send_error(x, 401, "unauthorized", NULL, "missing or invalid admin token");
                return;
            }
            r->fn(api, x, param);
            return;
        }
    }
    if (path_known)
        rd_api_send_error(x, 405, "method_not_allowed", NULL, "%s is not allowed on %s", method, path);
    else
        rd_api_send_error(x, 404, "not_found", NULL, "no route for %s %s", method, path);
}

static void limits(void *ud, struct rd_http_limits *out)
{
    struct rd_api *api = ud;
    out->max_head = RD_HTTP_MAX_HEAD_DEFAULT;
    out->max_body = API_MAX_BODY;
    out->header_timeout_ms = api->header_timeout_ms;
    out->idle_timeout_ms = 60000;
}

static void error_body(void *ud, const struct rd_http_error *e, struct rd_hdrs *hdrs, struct rd_buf *body,
                       const char **ctype)
{
    (void)ud;
    (void)hdrs;
    int status = e->status;
    const char *message = e->message;
    const char *code = status == 413 ? "body_too_large" : status == 431 ? "headers_too_large"
                       : status == 408 ? "timeout" : "bad_request";
    struct json_object *obj = error_object(code, NULL, message);
    size_t len;
    const char *s = rd_json_str(obj, &len);
    (void)rd_buf_append(body, s, len);
    json_object_put(obj);
    *ctype = "application/json";
}

void rd_api_listener_cfg(struct rd_api *ctx, struct rd_http_listener_cfg *out)
{
    *out = (struct rd_http_listener_cfg){.handler = handle, .limits = limits, .error = error_body, .ud = ctx};
}
