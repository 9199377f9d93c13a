/* Azure OpenAI: the OpenAI API under /openai on a customer's resource
 * (https://<resource>.openai.azure.com), so there is no default upstream:
 * the proxy's upstream_url names the resource. Two shapes are served:
 *
 *   /openai/deployments/{deployment}/chat/completions|completions|embeddings
 *       ?api-version=...   (the AzureOpenAI client of the openai SDK)
 *   /openai/v1/chat/completions|completions|embeddings|responses|models
 *       (the v1 API: the plain OpenAI SDK with baseURL .../openai/v1)
 *
 * plus /openai/responses and /openai/models with an api-version. The query
 * (api-version) and the credentials (api-key, or an Entra ID bearer token)
 * pass through untouched: prepare is the passthrough.
 *
 * The model of a request is its deployment (the path capture, or the body's
 * "model", which names the deployment in the v1 API), mapped through the
 * proxy's "deployments" block ({"my-gpt4o": "gpt-4o"}) when the deployment
 * is listed there, so logs, cache TTL rules and prices see the model the
 * deployment serves. */
#include <json-c/json.h>
#include <string.h>

#include "providers/openai_compat.h"
#include "util/json.h"

static const struct rd_route routes[] = {
    {"POST", "/openai/deployments/*/chat/completions", RD_REQ_CHAT, RD_OAI_GEN, 1, NULL},
    {"POST", "/openai/deployments/*/completions", RD_REQ_COMPLETION, RD_OAI_GEN, 1, NULL},
    {"POST", "/openai/deployments/*/embeddings", RD_REQ_EMBEDDING, RD_ROUTE_CACHEABLE, 1, NULL},
    RD_OAI_RESPONSES("/openai"),
    RD_OAI_MODELS("/openai"),
    RD_OAI_CHAT("/openai/v1"),
    RD_OAI_COMPLETIONS("/openai/v1"),
    RD_OAI_EMBEDDINGS("/openai/v1"),
    RD_OAI_RESPONSES("/openai/v1"),
    RD_OAI_MODELS("/openai/v1"),
};

static const char *const auth_headers[] = {"api-key", "authorization", NULL};
/* The API version picks the request and response schema. */
static const char *const cache_query_params[] = {"api-version", NULL};

/* The deployment (or the v1 body's model), then its entry in the proxy's
 * deployments map if it has one. A mapped name that does not fit out is
 * not used: the deployment name stays, rather than a truncated model. */
static size_t azure_model(const struct rd_provider *p, const struct rd_provider_req *r, char *out, size_t cap)
{
    size_t n = rd_provider_model_default(p, r, out, cap);
    if (n == 0 || r->config == NULL)
        return n;
    /* json-c's getters take non-const pointers; nothing is modified. */
    struct json_object *deps = rd_json_get((struct json_object *)r->config, "deployments");
    struct json_object *m = rd_json_get(deps, out);
    if (m == NULL || !json_object_is_type(m, json_type_string))
        return n;
    size_t len = (size_t)json_object_get_string_len(m);
    if (len == 0 || len >= cap)
        return n;
    memcpy(out, json_object_get_string(m), len + 1);
    return len;
}

/* OpenAI's error body (Azure's has the same shape); Azure answers with both
 * apim-request-id and x-request-id, and the openai SDK reads the latter. */
static void azure_error(const struct rd_provider *p, const struct rd_error_spec *e, struct rd_hdrs *hdrs,
                        struct rd_buf *body)
{
    rd_provider_error_openai(p, e, hdrs, body);
    if (e->request_id)
        rd_hdrs_add_ref(hdrs, "apim-request-id", e->request_id);
}

const struct rd_provider rd_provider_azure_openai = {
    .name = "azure_openai",
    .display_name = "Azure OpenAI",
    .default_upstream = NULL,
    .upstream_required = true,
    /* AzureOpenAI({endpoint}) appends /openai itself; the v1 API is
     * baseURL <proxy>/openai/v1 (docs/providers.md). */
    .sdk_base_path = "",
    .auth_headers = auth_headers,
    .cache_query_params = cache_query_params,
    .routes = routes,
    .nroutes = RD_NROUTES(routes),
    .emulator = &rd_emu_dialect_azure_openai,
    .model = azure_model,
    .error = azure_error,
    .ratelimit_headers = &rd_ratelimit_names_openai,
    RD_OAI_COMPAT_MEMBERS,
};
