/* libFuzzer target for the emulator: request bodies, paths and queries come
 * from clients, so any bytes must give a well-formed reply (a status, a
 * content type, and for plain replies one JSON document) without crashing,
 * leaking or looping, in every provider's dialect.
 *
 * Input: byte 0 picks the provider (of those rd_provider_all lists with an
 * emulator), byte 1 a route of its table (one past the last: a path no
 * table has), byte 2 the query (low 2 bits) and the length of the text put
 * in place of each '*' of the route's pattern (bits 2-6), which follows;
 * the rest is the body. The path is then routed by the provider's table
 * and the model found by its model hook, as the engine does. */
#include <json-c/json.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "providers/emulator/emulator.h"
#include "providers/provider.h"
#include "util/buf.h"
#include "util/json.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static const char *const QUERIES[] = {"", "alt=sse", "api-version=2024-10-21", "key=k&alt=sse"};

/* A configuration with a deployments block, for the Azure dialect. */
static const char CONFIG[] = "{\"deployments\":{\"prod-4o\":\"gpt-4o\",\"embed\":\"text-embedding-3-small\"}}";

#define MAX_CAPTURE 31
#define MAX_PATH 512

/* The providers with an emulator, in registry order. */
static const struct rd_provider *emulated(size_t pick)
{
    size_t n = 0, k = 0;
    const struct rd_provider *const *all = rd_provider_all(&n);
    for (size_t i = 0; i < n; i++)
        if (all[i]->emulate && all[i]->emulator)
            k++;
    if (k == 0)
        abort();
    pick %= k;
    for (size_t i = 0; i < n; i++)
        if (all[i]->emulate && all[i]->emulator && pick-- == 0)
            return all[i];
    abort();
}

/* pattern with each '*' replaced by cap (n bytes; "gpt-4o" when empty). */
static void build_path(const char *pattern, const uint8_t *cap, size_t n, char out[MAX_PATH])
{
    char text[MAX_CAPTURE + 1];
    if (n == 0) {
        memcpy(text, "gpt-4o", 7);
    } else {
        /* a capture never holds '/' (the pattern rule); '?' would start a
         * query and NUL end the string */
        for (size_t i = 0; i < n; i++)
            text[i] = (cap[i] == '/' || cap[i] == '?' || cap[i] == 0) ? 'x' : (char)cap[i];
        text[n] = '\0';
    }
    size_t w = 0;
    for (const char *p = pattern; *p && w < MAX_PATH - 1; p++) {
        if (*p != '*') {
            out[w++] = *p;
            continue;
        }
        for (const char *t = text; *t && w < MAX_PATH - 1; t++)
            out[w++] = *t;
    }
    out[w] = '\0';
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static struct json_object *config;
    if (config == NULL && rd_json_parse(CONFIG, sizeof CONFIG - 1, 1u << 16, &config, NULL) != 0)
        abort();
    if (size < 3)
        return 0;
    const struct rd_provider *p = emulated(data[0]);
    size_t ri = data[1] % (p->nroutes + 1);
    const char *query = QUERIES[data[2] & 3];
    size_t cap_len = (size_t)(data[2] >> 2) & MAX_CAPTURE;
    if (cap_len > size - 3)
        cap_len = size - 3;
    const char *method = ri < p->nroutes ? p->routes[ri].method : "POST";
    char path[MAX_PATH];
    build_path(ri < p->nroutes ? p->routes[ri].pattern : "/fuzz/*/unknown", data + 3, cap_len, path);
    const char *body = (const char *)data + 3 + cap_len;
    size_t body_len = size - 3 - cap_len;

    /* Routed by the real provider's table, the model by its hook, as the
     * engine does. */
    struct rd_route_match match;
    rd_provider_route(p, method, path, &match);
    struct rd_provider_req pr = {.method = method, .path = path, .query = query, .body = body, .body_len = body_len,
                                 .match = &match, .config = config};
    char model[256];
    size_t mlen = p->model ? p->model(p, &pr, model, sizeof model) : 0;
    if (mlen >= sizeof model)
        abort();
    struct rd_emu_request req = {
        .method = method,
        .path = path,
        .query = query,
        .body = body,
        .body_len = body_len,
        .seed = size,
        .match = &match,
        .model = mlen ? model : NULL,
        .config = config,
    };
    struct rd_emu_reply reply;
    if (p->emulate(p->emulator, &req, &reply) != 0)
        abort();
    if (reply.status < 200 || reply.status > 599 || reply.content_type == NULL || reply.n == 0)
        abort();
    struct rd_buf all;
    rd_buf_init(&all, 0);
    for (size_t i = 0; i < reply.n; i++)
        if (rd_buf_append(&all, reply.chunks[i].data, reply.chunks[i].len) != 0)
            abort();
    if (!reply.stream) {
        /* A plain reply is one JSON document, whatever the input was. */
        struct json_object *doc = NULL;
        if (rd_json_parse(all.data, all.len, SIZE_MAX, &doc, NULL) != 0)
            abort();
        json_object_put(doc);
    }
    rd_buf_free(&all);
    rd_emu_reply_free(&reply);
    return 0;
}
