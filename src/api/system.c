/* /healthz and /api/v1/providers. */
#include <stdio.h>
#include <string.h>

#include "api/api.h"
#include "providers/provider.h"
#include "util/json.h"

static void get_health(struct rd_api *api, struct rd_http_exch *x, const char *param)
{
    (void)param;
    bool db_ok = rd_store_ping(api->store) == 0;
    struct json_object *o = json_object_new_object();
    json_object_object_add(o, "status", json_object_new_string(db_ok ? "ok" : "degraded"));
    json_object_object_add(o, "version", json_object_new_string(RD_VERSION));
    json_object_object_add(o, "database", json_object_new_string(db_ok ? "ok" : "error"));
    json_object_object_add(o, "proxies_running", json_object_new_int(rd_manager_running(api->manager)));
    rd_api_send_json(x, db_ok ? 200 : 503, o);
}

static const char *kind_name(enum rd_req_kind k)
{
    switch (k) {
    case RD_REQ_CHAT: return "chat";
    case RD_REQ_COMPLETION: return "completion";
    case RD_REQ_EMBEDDING: return "embedding";
    case RD_REQ_RESPONSES: return "responses";
    case RD_REQ_MODELS: return "models";
    case RD_REQ_TOKENS: return "tokens";
    case RD_REQ_OTHER:
    default: return "other";
    }
}

static void get_providers(struct rd_api *api, struct rd_http_exch *x, const char *param)
{
    (void)api;
    (void)param;
    size_t n = 0;
    const struct rd_provider *const *all = rd_provider_all(&n);
    struct json_object *arr = json_object_new_array();
    for (size_t i = 0; i < n; i++) {
        const struct rd_provider *p = all[i];
        struct json_object *o = json_object_new_object();
        json_object_object_add(o, "name", json_object_new_string(p->name));
        json_object_object_add(o, "display_name", json_object_new_string(p->display_name));
        json_object_object_add(o, "default_upstream",
                               p->default_upstream ? json_object_new_string(p->default_upstream) : NULL);
        json_object_object_add(o, "upstream_required", json_object_new_boolean(p->upstream_required));
        json_object_object_add(o, "dialect", json_object_new_string(p->dialect_name));
        json_object_object_add(o, "sdk_base_path", json_object_new_string(p->sdk_base_path));
        /* The proxy's URL (GET /api/v1/proxies/{id} "url") followed by
         * sdk_base_path is what the provider's SDK takes as its base URL. */
        char example[160];
        snprintf(example, sizeof example, "http://127.0.0.1:<port>%s", p->sdk_base_path);
        json_object_object_add(o, "sdk_base_url_example", json_object_new_string(example));
        json_object_object_add(o, "emulator", json_object_new_boolean(p->emulate != NULL));
        struct json_object *auth = json_object_new_array();
        for (const char *const *h = p->auth_headers; h && *h; h++)
            json_object_array_add(auth, json_object_new_string(*h));
        json_object_object_add(o, "auth_headers", auth);
        struct json_object *sq = json_object_new_array();
        for (const char *const *q = p->secret_query_params; q && *q; q++)
            json_object_array_add(sq, json_object_new_string(*q));
        json_object_object_add(o, "secret_query_params", sq);
        struct json_object *routes = json_object_new_array();
        for (size_t r = 0; r < p->nroutes; r++) {
            struct json_object *ro = json_object_new_object();
            json_object_object_add(ro, "method", json_object_new_string(p->routes[r].method));
            json_object_object_add(ro, "path", json_object_new_string(p->routes[r].pattern));
            json_object_object_add(ro, "kind", json_object_new_string(kind_name(p->routes[r].kind)));
            json_object_object_add(ro, "streamable",
                                   json_object_new_boolean((p->routes[r].flags & RD_ROUTE_STREAMABLE) != 0));
            json_object_array_add(routes, ro);
        }
        json_object_object_add(o, "routes", routes);
        json_object_array_add(arr, o);
    }
    struct json_object *root = json_object_new_object();
    json_object_object_add(root, "providers", arr);
    rd_api_send_json(x, 200, root);
}

const struct rd_api_route rd_api_system_routes[] = {
    {"GET", "/healthz", get_health, false},
    {"GET", "/api/v1/providers", get_providers, true},
};
const size_t rd_api_system_nroutes = sizeof rd_api_system_routes / sizeof rd_api_system_routes[0];
