/* libFuzzer target for the emulator: request bodies come from clients, so
 * any bytes must give a well-formed reply (a status, a content type, and for
 * plain replies a JSON body) without crashing, leaking or looping. The first
 * byte picks the route so one corpus covers them all. */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "providers/emulator/emulator.h"
#include "providers/provider.h"
#include "util/buf.h"
#include "util/json.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static const struct {
    const char *method;
    const char *path;
} routes[] = {
    {"POST", "/v1/chat/completions"}, {"POST", "/v1/completions"}, {"POST", "/v1/embeddings"},
    {"POST", "/v1/responses"},        {"GET", "/v1/models"},       {"GET", "/v1/models/gpt-4o"},
    {"POST", "/chat/completions"},    {"POST", "/v1/unknown"},
};

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 1)
        return 0;
    size_t pick = data[0] % (sizeof routes / sizeof routes[0]);
    /* Routed by the real provider's table, as the engine does. */
    const struct rd_provider *p = rd_provider_find((data[0] & 0x80) ? "deepseek" : "openai");
    struct rd_route_match match;
    rd_provider_route(p, routes[pick].method, routes[pick].path, &match);
    struct rd_emu_request req = {
        .method = routes[pick].method,
        .path = routes[pick].path,
        .query = "",
        .body = (const char *)data + 1,
        .body_len = size - 1,
        .seed = size,
        .match = &match,
    };
    struct rd_emu_reply reply;
    if (p->emulate(p->emulator, &req, &reply) != 0)
        abort();
    if (reply.status < 200 || reply.status > 599 || reply.content_type == NULL || reply.n == 0)
        abort();
    if (!reply.stream) {
        /* A plain reply is one JSON document, whatever the input was. */
        struct rd_buf body;
        rd_buf_init(&body, 0);
        for (size_t i = 0; i < reply.n; i++)
            if (rd_buf_append(&body, reply.chunks[i].data, reply.chunks[i].len) != 0)
                abort();
        struct json_object *doc = NULL;
        if (rd_json_parse(body.data, body.len, SIZE_MAX, &doc, NULL) != 0)
            abort();
        json_object_put(doc);
        rd_buf_free(&body);
    }
    rd_emu_reply_free(&reply);
    return 0;
}
