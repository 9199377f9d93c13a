#include "providers/provider.h"

#include <string.h>

#include "util/json.h"

extern const struct rd_provider rd_provider_openai;
extern const struct rd_provider rd_provider_deepseek;

static const struct rd_provider *const registry[] = {
    &rd_provider_openai,
    &rd_provider_deepseek,
};

const struct rd_provider *rd_provider_find(const char *name)
{
    for (size_t i = 0; i < sizeof registry / sizeof registry[0]; i++)
        if (strcmp(registry[i]->name, name) == 0)
            return registry[i];
    return NULL;
}

const struct rd_provider *const *rd_provider_all(size_t *n)
{
    *n = sizeof registry / sizeof registry[0];
    return registry;
}

/* '*' matches exactly one non-empty path segment. */
static bool path_matches(const char *pattern, const char *path)
{
    while (*pattern && *path) {
        if (*pattern == '*') {
            if (*path == '/')
                return false;
            while (*path && *path != '/')
                path++;
            pattern++;
            continue;
        }
        if (*pattern != *path)
            return false;
        pattern++;
        path++;
    }
    return *pattern == '\0' && *path == '\0';
}

const struct rd_route *rd_provider_route(const struct rd_provider *p, const char *method, const char *path)
{
    for (size_t i = 0; i < p->nroutes; i++)
        if (strcmp(p->routes[i].method, method) == 0 && path_matches(p->routes[i].pattern, path))
            return &p->routes[i];
    return NULL;
}

/* OpenAI's type/code vocabulary for the statuses Rubberduck produces. */
static void openai_type_code(int status, const char **type, const char **code)
{
    switch (status) {
    case 400: *type = "invalid_request_error"; *code = NULL; break;
    case 401: *type = "invalid_request_error"; *code = "invalid_api_key"; break;
    case 403: *type = "invalid_request_error"; *code = "forbidden"; break;
    case 404: *type = "invalid_request_error"; *code = NULL; break;
    case 408: *type = "invalid_request_error"; *code = "request_timeout"; break;
    case 413: *type = "invalid_request_error"; *code = "request_too_large"; break;
    case 429: *type = "rate_limit_exceeded"; *code = "rate_limit_exceeded"; break;
    case 431: *type = "invalid_request_error"; *code = "headers_too_large"; break;
    case 502: *type = "api_error"; *code = "bad_gateway"; break;
    case 503: *type = "api_error"; *code = "service_unavailable"; break;
    case 504: *type = "api_error"; *code = "gateway_timeout"; break;
    default: *type = status >= 500 ? "api_error" : "invalid_request_error"; *code = NULL; break;
    }
}

void rd_provider_error_body(const struct rd_provider *p, int status, const char *message, struct rd_buf *out)
{
    const char *type = NULL, *code = NULL;
    struct json_object *err = json_object_new_object();
    switch (p->error_style) {
    case RD_ERRSTYLE_OPENAI:
    default:
        openai_type_code(status, &type, &code);
        json_object_object_add(err, "message", json_object_new_string(message));
        json_object_object_add(err, "type", json_object_new_string(type));
        json_object_object_add(err, "param", NULL);
        json_object_object_add(err, "code", code ? json_object_new_string(code) : NULL);
        break;
    }
    struct json_object *root = json_object_new_object();
    json_object_object_add(root, "error", err);
    size_t len;
    const char *s = rd_json_str(root, &len);
    (void)rd_buf_append(out, s, len);
    json_object_put(root);
}
