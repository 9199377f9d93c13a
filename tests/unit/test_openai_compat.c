/* Tests for the OpenAI-compatible providers of src/providers/azure_openai.c
 * and presets.c: each route an SDK sends through the proxy (with the base
 * URL docs/providers.md gives it) is known with the right kind, the model
 * of every route is right (Azure: the deployment, mapped through the
 * deployments block), the upstream URL keeps the api-version query, Azure's
 * errors carry both request-id headers, and the emulator answers as the
 * deployment. */
#include <json-c/json.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "http/headers.h"
#include "providers/emulator/dialects.h"
#include "providers/provider.h"
#include "util/arena.h"
#include "util/buf.h"
#include "util/json.h"

static struct json_object *parse_doc(const char *s)
{
    struct json_object *o = NULL;
    assert_int_equal(rd_json_parse(s, strlen(s), 1 << 20, &o, NULL), 0);
    return o;
}

static const struct rd_provider *prov(const char *name)
{
    const struct rd_provider *p = rd_provider_find(name);
    if (p == NULL) {
        print_error("no provider %s\n", name);
        fail();
    }
    return p;
}

static struct json_object *parse(const char *s)
{
    struct json_object *o = NULL;
    assert_int_equal(rd_json_parse(s, strlen(s), 1 << 20, &o, NULL), 0);
    return o;
}

/* The model the engine records for method + path + body under config
 * (a JSON document or NULL), as classify() in proxy/req.c asks for it. */
static const char *model_of(const char *provider, const char *method, const char *path, const char *body,
                            const char *config, char *out, size_t cap)
{
    const struct rd_provider *p = prov(provider);
    struct rd_route_match m;
    rd_provider_route(p, method, path, &m);
    struct json_object *cfg = config ? parse(config) : NULL;
    size_t len = body ? strlen(body) : 0;
    char *b = malloc(len ? len : 1); /* exact size: no NUL after the body */
    assert_non_null(b);
    memcpy(b, body ? body : "", len);
    struct rd_provider_req r = {
        .method = method, .path = path, .query = "", .body = b, .body_len = len, .match = &m, .config = cfg};
    size_t n = p->model(p, &r, out, cap);
    free(b);
    json_object_put(cfg);
    assert_int_equal(strlen(out), n);
    return out;
}

static void expect_route(const char *provider, const char *method, const char *path, enum rd_req_kind kind,
                         bool streamable)
{
    struct rd_route_match m;
    const struct rd_route *r = rd_provider_route(prov(provider), method, path, &m);
    if (r == NULL) {
        print_error("%s: %s %s has no route\n", provider, method, path);
        fail();
    }
    assert_int_equal(r->kind, kind);
    assert_int_equal((r->flags & RD_ROUTE_STREAMABLE) != 0, streamable);
    assert_null(r->dialect); /* OpenAI's hooks are their own */
}

static void expect_no_route(const char *provider, const char *method, const char *path)
{
    struct rd_route_match m;
    if (rd_provider_route(prov(provider), method, path, &m) != NULL) {
        print_error("%s: %s %s should not be a known route\n", provider, method, path);
        fail();
    }
}

/* What each SDK sends with the documented base URL (docs/providers.md). */
static void test_routes(void **state)
{
    (void)state;
    /* AzureOpenAI({endpoint, deployment}) and the v1 API */
    expect_route("azure_openai", "POST", "/openai/deployments/prod-4o/chat/completions", RD_REQ_CHAT, true);
    expect_route("azure_openai", "POST", "/openai/deployments/prod-4o/completions", RD_REQ_COMPLETION, true);
    expect_route("azure_openai", "POST", "/openai/deployments/emb/embeddings", RD_REQ_EMBEDDING, false);
    expect_route("azure_openai", "POST", "/openai/responses", RD_REQ_RESPONSES, true);
    expect_route("azure_openai", "GET", "/openai/models", RD_REQ_MODELS, false);
    expect_route("azure_openai", "GET", "/openai/models/gpt-4o", RD_REQ_MODELS, false);
    expect_route("azure_openai", "POST", "/openai/v1/chat/completions", RD_REQ_CHAT, true);
    expect_route("azure_openai", "POST", "/openai/v1/completions", RD_REQ_COMPLETION, true);
    expect_route("azure_openai", "POST", "/openai/v1/embeddings", RD_REQ_EMBEDDING, false);
    expect_route("azure_openai", "POST", "/openai/v1/responses", RD_REQ_RESPONSES, true);
    expect_route("azure_openai", "GET", "/openai/v1/models", RD_REQ_MODELS, false);
    expect_no_route("azure_openai", "POST", "/openai/deployments//chat/completions");
    expect_no_route("azure_openai", "POST", "/openai/deployments/a/b/chat/completions");
    expect_no_route("azure_openai", "POST", "/v1/chat/completions");
    expect_no_route("azure_openai", "GET", "/openai/deployments/d/chat/completions");
    /* presets: their SDK base URL's prefix */
    expect_route("groq", "POST", "/openai/v1/chat/completions", RD_REQ_CHAT, true);
    expect_route("groq", "POST", "/openai/v1/responses", RD_REQ_RESPONSES, true);
    expect_route("groq", "GET", "/openai/v1/models", RD_REQ_MODELS, false);
    expect_no_route("groq", "POST", "/v1/chat/completions");
    expect_no_route("groq", "POST", "/openai/v1/embeddings"); /* Groq has none: forwarded as unknown */
    expect_route("mistral", "POST", "/v1/chat/completions", RD_REQ_CHAT, true);
    expect_route("mistral", "POST", "/v1/embeddings", RD_REQ_EMBEDDING, false);
    expect_no_route("mistral", "POST", "/v1/fim/completions");
    expect_route("together", "POST", "/v1/completions", RD_REQ_COMPLETION, true);
    expect_route("together", "POST", "/v1/embeddings", RD_REQ_EMBEDDING, false);
    expect_route("openrouter", "POST", "/api/v1/chat/completions", RD_REQ_CHAT, true);
    expect_route("openrouter", "GET", "/api/v1/models", RD_REQ_MODELS, false);
    expect_no_route("openrouter", "POST", "/v1/chat/completions");
    expect_route("xai", "POST", "/v1/chat/completions", RD_REQ_CHAT, true);
    expect_route("xai", "POST", "/v1/responses", RD_REQ_RESPONSES, true);
    expect_route("ollama", "POST", "/v1/chat/completions", RD_REQ_CHAT, true);
    expect_route("ollama", "POST", "/v1/embeddings", RD_REQ_EMBEDDING, false);
    expect_route("openai_compatible", "POST", "/v1/chat/completions", RD_REQ_CHAT, true);
    expect_route("openai_compatible", "GET", "/v1/models/local-model", RD_REQ_MODELS, false);
}

/* Registry data: defaults, the providers needing an upstream, the SDK
 * path, and a route table that matches the SDK path. */
static void test_registry_data(void **state)
{
    (void)state;
    static const struct {
        const char *name, *upstream, *sdk_path;
        bool required;
    } want[] = {
        {"azure_openai", NULL, "", true},
        {"groq", "https://api.groq.com", "/openai/v1", false},
        {"mistral", "https://api.mistral.ai", "/v1", false},
        {"together", "https://api.together.xyz", "/v1", false},
        {"openrouter", "https://openrouter.ai/api", "/api/v1", false},
        {"xai", "https://api.x.ai", "/v1", false},
        {"ollama", "http://127.0.0.1:11434", "/v1", false},
        {"openai_compatible", NULL, "/v1", true},
    };
    for (size_t i = 0; i < sizeof want / sizeof want[0]; i++) {
        const struct rd_provider *p = prov(want[i].name);
        if (want[i].upstream)
            assert_string_equal(p->default_upstream, want[i].upstream);
        else
            assert_null(p->default_upstream);
        assert_int_equal(p->upstream_required, want[i].required);
        assert_string_equal(p->sdk_base_path, want[i].sdk_path);
        assert_string_equal(p->dialect_name, "openai");
        assert_non_null(p->emulator);
        assert_non_null(p->emulate);
        /* the default upstream + the SDK path is the provider's documented
         * base URL: every route lives under the SDK path */
        for (size_t r = 0; r < p->nroutes; r++)
            assert_true(strncmp(p->routes[r].pattern, p->sdk_base_path, strlen(p->sdk_base_path)) == 0 ||
                        strcmp(p->name, "azure_openai") == 0);
    }
}

static void test_model_every_route(void **state)
{
    (void)state;
    char m[128];
    const char *deps = "{\"deployments\":{\"prod-4o\":\"gpt-4o\",\"emb\":\"text-embedding-3-small\"}}";
    /* Azure deployments: the path decides, mapped when listed, the body's
     * model ignored */
    assert_string_equal(model_of("azure_openai", "POST", "/openai/deployments/prod-4o/chat/completions",
                                 "{\"model\":\"other\",\"messages\":[]}", deps, m, sizeof m),
                        "gpt-4o");
    assert_string_equal(model_of("azure_openai", "POST", "/openai/deployments/prod-4o/completions", "{}", deps, m,
                                 sizeof m),
                        "gpt-4o");
    assert_string_equal(model_of("azure_openai", "POST", "/openai/deployments/emb/embeddings", "{\"input\":\"x\"}",
                                 deps, m, sizeof m),
                        "text-embedding-3-small");
    assert_string_equal(model_of("azure_openai", "POST", "/openai/deployments/unlisted/chat/completions", "{}", deps,
                                 m, sizeof m),
                        "unlisted");
    assert_string_equal(model_of("azure_openai", "POST", "/openai/deployments/gpt-4o-mini/chat/completions", "{}",
                                 NULL, m, sizeof m),
                        "gpt-4o-mini");
    /* v1 API and responses: the body's model names the deployment */
    assert_string_equal(model_of("azure_openai", "POST", "/openai/v1/chat/completions", "{\"model\":\"prod-4o\"}",
                                 deps, m, sizeof m),
                        "gpt-4o");
    assert_string_equal(model_of("azure_openai", "POST", "/openai/responses", "{\"model\":\"prod-4o\"}", deps, m,
                                 sizeof m),
                        "gpt-4o");
    assert_string_equal(model_of("azure_openai", "POST", "/openai/v1/embeddings", "{\"model\":\"emb\"}", deps, m,
                                 sizeof m),
                        "text-embedding-3-small");
    assert_string_equal(model_of("azure_openai", "GET", "/openai/models/prod-4o", NULL, deps, m, sizeof m),
                        "gpt-4o");
    assert_string_equal(model_of("azure_openai", "GET", "/openai/models", NULL, deps, m, sizeof m), "");
    /* a mapping that is not a usable string leaves the deployment name */
    assert_string_equal(model_of("azure_openai", "POST", "/openai/deployments/d/chat/completions", "{}",
                                 "{\"deployments\":{\"d\":7}}", m, sizeof m),
                        "d");
    assert_string_equal(model_of("azure_openai", "POST", "/openai/deployments/d/chat/completions", "{}",
                                 "{\"deployments\":{\"d\":\"a-model-name-longer-than-the-buffer\"}}", m, 8),
                        "d");
    assert_string_equal(model_of("azure_openai", "POST", "/openai/deployments/d/chat/completions", "{}",
                                 "{\"deployments\":[]}", m, sizeof m),
                        "d");
    /* presets: the body's model, or the id of GET .../models/{id} */
    assert_string_equal(model_of("groq", "POST", "/openai/v1/chat/completions",
                                 "{\"model\":\"llama-3.3-70b-versatile\"}", deps, m, sizeof m),
                        "llama-3.3-70b-versatile");
    assert_string_equal(model_of("openrouter", "POST", "/api/v1/chat/completions",
                                 "{\"messages\":[],\"model\":\"openai/gpt-4o\"}", NULL, m, sizeof m),
                        "openai/gpt-4o");
    assert_string_equal(model_of("ollama", "GET", "/v1/models/llama3.1:8b", NULL, NULL, m, sizeof m),
                        "llama3.1:8b");
    /* the deployments block is Azure's: a preset ignores it */
    assert_string_equal(model_of("openai_compatible", "POST", "/v1/chat/completions", "{\"model\":\"prod-4o\"}",
                                 deps, m, sizeof m),
                        "prod-4o");
}

static void test_prepare_keeps_api_version(void **state)
{
    (void)state;
    const struct rd_provider *p = prov("azure_openai");
    struct rd_arena arena;
    struct rd_hdrs h;
    struct rd_buf url;
    rd_arena_init(&arena);
    rd_hdrs_init(&h, &arena);
    rd_buf_init(&url, 0);
    struct rd_provider_req r = {.method = "POST",
                                .path = "/openai/deployments/prod-4o/chat/completions",
                                .query = "api-version=2024-10-21",
                                .body = "",
                                .body_len = 0};
    struct rd_upstream_prep up = {.base = "https://myres.openai.azure.com", .url = &url, .headers = &h,
                                  .arena = &arena};
    assert_int_equal(p->prepare(p, &r, &up), 0);
    assert_string_equal(url.data,
                        "https://myres.openai.azure.com/openai/deployments/prod-4o/chat/completions?api-version="
                        "2024-10-21");
    assert_int_equal(h.n, 0);
    rd_buf_free(&url);
    rd_hdrs_free(&h);
    rd_arena_free(&arena);
}

static void test_azure_error(void **state)
{
    (void)state;
    const struct rd_provider *p = prov("azure_openai");
    struct rd_arena arena;
    struct rd_hdrs h;
    struct rd_buf body;
    rd_arena_init(&arena);
    rd_hdrs_init(&h, &arena);
    rd_buf_init(&body, 0);
    struct rd_error_spec e = {.status = 429, .message = "slow down", .request_id = "req_1", .retry_after_s = 3};
    rd_provider_error(p, &e, &h, &body);
    assert_string_equal(rd_hdrs_get(&h, "x-request-id"), "req_1");
    assert_string_equal(rd_hdrs_get(&h, "apim-request-id"), "req_1");
    assert_string_equal(rd_hdrs_get(&h, "retry-after"), "3");
    struct json_object *o = NULL;
    assert_int_equal(rd_json_parse(body.data, body.len, 1 << 16, &o, NULL), 0);
    assert_string_equal(rd_json_get_str(rd_json_get(o, "error"), "message"), "slow down");
    json_object_put(o);
    rd_buf_free(&body);
    rd_hdrs_free(&h);
    rd_arena_free(&arena);
}

/* The emulator answers as the deployment (the model the engine found),
 * with or without a model in the body. */
static void test_emulator_reports_deployment(void **state)
{
    (void)state;
    const struct rd_provider *p = prov("azure_openai");
    static const char *const bodies[] = {"{\"messages\":[{\"role\":\"user\",\"content\":\"hi\"}]}",
                                         "{\"model\":\"ignored\",\"messages\":[{\"role\":\"user\",\"content\":\"hi\"}]}"};
    struct json_object *cfg = parse_doc("{\"deployments\":{\"prod-4o\":\"gpt-4o\"}}");
    for (size_t i = 0; i < 2; i++) {
        struct rd_route_match m;
        const char *path = "/openai/deployments/prod-4o/chat/completions";
        rd_provider_route(p, "POST", path, &m);
        struct rd_emu_request req = {.method = "POST", .path = path, .query = "api-version=2024-10-21",
                                     .body = bodies[i], .body_len = strlen(bodies[i]), .match = &m,
                                     .model = "gpt-4o", .config = cfg};
        struct rd_emu_reply r;
        assert_int_equal(p->emulate(p->emulator, &req, &r), 0);
        assert_int_equal(r.status, 200);
        struct json_object *o = NULL;
        assert_int_equal(rd_json_parse(r.chunks[0].data, r.chunks[0].len, 1 << 20, &o, NULL), 0);
        assert_string_equal(rd_json_get_str(o, "model"), "gpt-4o");
        assert_non_null(rd_json_get(o, "usage"));
        json_object_put(o);
        rd_emu_reply_free(&r);
    }
    json_object_put(cfg);
    /* a preset reports the body's model, whatever the engine found */
    const struct rd_provider *g = prov("groq");
    struct rd_route_match m;
    const char *path = "/openai/v1/chat/completions";
    rd_provider_route(g, "POST", path, &m);
    const char *body = "{\"model\":\"llama-3.1-8b-instant\",\"messages\":[{\"role\":\"user\",\"content\":\"hi\"}]}";
    struct rd_emu_request req = {
        .method = "POST", .path = path, .query = "", .body = body, .body_len = strlen(body), .match = &m, .model = "x"};
    struct rd_emu_reply r;
    assert_int_equal(g->emulate(g->emulator, &req, &r), 0);
    struct json_object *o = NULL;
    assert_int_equal(rd_json_parse(r.chunks[0].data, r.chunks[0].len, 1 << 20, &o, NULL), 0);
    assert_string_equal(rd_json_get_str(o, "model"), "llama-3.1-8b-instant");
    json_object_put(o);
    rd_emu_reply_free(&r);
}

/* Runs the Azure emulator on method + path with config (NULL: none);
 * returns the status and the body's error object in *err (owned). */
static int azure_emulate(const char *method, const char *path, struct json_object *cfg, struct json_object **err)
{
    const struct rd_provider *p = prov("azure_openai");
    struct rd_route_match m;
    rd_provider_route(p, method, path, &m);
    const char *body = "{\"messages\":[{\"role\":\"user\",\"content\":\"hi\"}],\"input\":\"x\"}";
    struct rd_emu_request req = {.method = method, .path = path, .query = "api-version=2024-10-21", .body = body,
                                 .body_len = strlen(body), .match = &m, .model = "m", .config = cfg};
    struct rd_emu_reply r;
    assert_int_equal(p->emulate(p->emulator, &req, &r), 0);
    struct json_object *o = NULL;
    assert_int_equal(rd_json_parse(r.chunks[0].data, r.chunks[0].len, 1 << 20, &o, NULL), 0);
    *err = json_object_get(rd_json_get(o, "error"));
    json_object_put(o);
    int status = r.status;
    rd_emu_reply_free(&r);
    return status;
}

/* Azure's emulated resource has the deployments of the block plus one per
 * model of its list; others are Azure's DeploymentNotFound, and a path
 * Azure does not have is its "Resource not found", both with Azure's
 * {"error":{"code","message"}} shape. */
static void test_emulator_azure_not_found(void **state)
{
    (void)state;
    struct json_object *cfg = parse_doc("{\"deployments\":{\"prod-4o\":\"gpt-4o\",\"embed\":\"x\"}}");
    struct json_object *e = NULL;
    static const char *const found[] = {"/openai/deployments/prod-4o/chat/completions",
                                        "/openai/deployments/gpt-4o-mini/chat/completions",
                                        "/openai/deployments/embed/embeddings", "/openai/v1/chat/completions"};
    for (size_t i = 0; i < sizeof found / sizeof found[0]; i++) {
        assert_int_equal(azure_emulate("POST", found[i], cfg, &e), 200);
        assert_null(e);
    }
    static const char *const missing[] = {"/openai/deployments/nope/chat/completions",
                                          "/openai/deployments/prod-4/completions",
                                          "/openai/deployments/gpt-4o-minix/embeddings"};
    for (size_t i = 0; i < sizeof missing / sizeof missing[0]; i++) {
        assert_int_equal(azure_emulate("POST", missing[i], cfg, &e), 404);
        assert_string_equal(rd_json_get_str(e, "code"), "DeploymentNotFound");
        assert_non_null(strstr(rd_json_get_str(e, "message"), "The API deployment for this resource does not exist."));
        assert_null(rd_json_get(e, "type"));
        json_object_put(e);
    }
    /* no deployments block: only the deployments named after a model */
    assert_int_equal(azure_emulate("POST", "/openai/deployments/prod-4o/chat/completions", NULL, &e), 404);
    json_object_put(e);
    assert_int_equal(azure_emulate("POST", "/openai/deployments/gpt-4o/chat/completions", NULL, &e), 200);
    static const char *const unknown[][2] = {{"POST", "/openai/deployments/prod-4o/images/generations"},
                                             {"POST", "/openai/nothing"},
                                             {"GET", "/openai/deployments/prod-4o/chat/completions"}};
    for (size_t i = 0; i < sizeof unknown / sizeof unknown[0]; i++) {
        assert_int_equal(azure_emulate(unknown[i][0], unknown[i][1], cfg, &e), 404);
        assert_string_equal(rd_json_get_str(e, "code"), "404");
        assert_string_equal(rd_json_get_str(e, "message"), "Resource not found");
        json_object_put(e);
    }
    json_object_put(cfg);
}

/* Together's models list is a bare array (its API's shape); the other
 * presets answer OpenAI's {"object":"list","data":[...]}. */
static void test_emulator_models_shape(void **state)
{
    (void)state;
    static const char *const names[] = {"together", "groq", "mistral"};
    for (size_t i = 0; i < 3; i++) {
        const struct rd_provider *p = prov(names[i]);
        char path[64];
        snprintf(path, sizeof path, "%s/models", p->sdk_base_path);
        struct rd_route_match m;
        rd_provider_route(p, "GET", path, &m);
        struct rd_emu_request req = {.method = "GET", .path = path, .query = "", .body = "", .match = &m};
        struct rd_emu_reply r;
        assert_int_equal(p->emulate(p->emulator, &req, &r), 0);
        assert_int_equal(r.status, 200);
        struct json_object *o = NULL;
        assert_int_equal(rd_json_parse(r.chunks[0].data, r.chunks[0].len, 1 << 20, &o, NULL), 0);
        struct json_object *arr = i == 0 ? o : rd_json_get(o, "data");
        assert_true(json_object_is_type(arr, json_type_array));
        if (i > 0)
            assert_string_equal(rd_json_get_str(o, "object"), "list");
        assert_true(json_object_array_length(arr) > 0);
        struct json_object *first = json_object_array_get_idx(arr, 0);
        assert_string_equal(rd_json_get_str(first, "object"), "model");
        assert_string_equal(rd_json_get_str(first, "id"), p->emulator->models[0]);
        json_object_put(o);
        rd_emu_reply_free(&r);
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_routes),
        cmocka_unit_test(test_registry_data),
        cmocka_unit_test(test_model_every_route),
        cmocka_unit_test(test_prepare_keeps_api_version),
        cmocka_unit_test(test_azure_error),
        cmocka_unit_test(test_emulator_reports_deployment),
        cmocka_unit_test(test_emulator_azure_not_found),
        cmocka_unit_test(test_emulator_models_shape),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
