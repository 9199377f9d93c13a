/* POST /v1/embeddings: deterministic unit vectors, as float arrays or as
 * base64 of little-endian float32 (what the openai SDKs ask for by default). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "providers/emulator/openai_int.h"
#include "providers/emulator/text.h"
#include "util/mem.h"

/* Items x dimensions a request may ask for. Float arrays cost a json-c
 * object per value (~80 bytes while the reply is built), base64 four bytes,
 * hence two caps. */
#define MAX_FLOATS_JSON (1u << 20)
#define MAX_FLOATS_BASE64 (1u << 22)

static const char INVALID_INPUT[] =
    "'$.input' is invalid. Please check the API reference: https://platform.openai.com/docs/api-reference.";

struct item {
    const char *p; /* bytes hashed into the vector (borrowed from the body) */
    size_t len;
    uint32_t tokens;
};

static void add(struct json_object *o, const char *k, struct json_object *v)
{
    json_object_object_add(o, k, v);
}

static int invalid_input(struct rd_emu_ctx *c)
{
    rd_emu_oai_error(c->out, 400, NULL, NULL, "%s", INVALID_INPUT);
    return -1;
}

/* A non-empty array of integers is one tokenised input. */
static bool is_tokens(struct json_object *v)
{
    if (!json_object_is_type(v, json_type_array) || json_object_array_length(v) == 0)
        return false;
    for (size_t i = 0; i < json_object_array_length(v); i++)
        if (!rd_json_is_int(json_object_array_get_idx(v, i)))
            return false;
    return true;
}

/* One input item: a non-empty string, or a token array (hashed through its
 * serialisation). */
static int item_of(struct rd_emu_ctx *c, struct json_object *v, struct item *it)
{
    if (json_object_is_type(v, json_type_string) && json_object_get_string_len(v) > 0) {
        it->p = json_object_get_string(v);
        it->len = (size_t)json_object_get_string_len(v);
        it->tokens = rd_emu_tokens_estimate(it->len);
        return 0;
    }
    if (is_tokens(v)) {
        it->p = rd_json_str(v, &it->len);
        it->tokens = (uint32_t)json_object_array_length(v);
        return 0;
    }
    return invalid_input(c);
}

/* Parses "input" (string, token array, array of strings, array of token
 * arrays) into *items, owned by the caller. */
static int items_of(struct rd_emu_ctx *c, struct item **items, size_t *n)
{
    struct json_object *in = rd_json_get(c->body, "input");
    *items = NULL;
    *n = 0;
    if (in == NULL)
        return rd_emu_oai_missing(c, "input");
    bool single = json_object_is_type(in, json_type_string) || is_tokens(in);
    if (!single && !json_object_is_type(in, json_type_array))
        return invalid_input(c);
    size_t count = single ? 1 : json_object_array_length(in);
    if (count == 0 || count > RD_EMU_MAX_EMBED_INPUTS)
        return invalid_input(c);
    *items = rd_calloc(count, sizeof **items);
    *n = count;
    for (size_t i = 0; i < count; i++)
        if (item_of(c, single ? in : json_object_array_get_idx(in, i), &(*items)[i]) < 0)
            return -1;
    return 0;
}

/* The vector as the API encodes it. Floats print with 9 significant digits,
 * enough to read back the exact float32 the base64 form carries. */
static struct json_object *encode(const float *v, uint32_t dims, bool base64)
{
    if (base64) {
        uint8_t *bytes = rd_malloc((size_t)dims * 4);
        for (uint32_t k = 0; k < dims; k++) {
            uint32_t u;
            memcpy(&u, &v[k], 4);
            for (int j = 0; j < 4; j++)
                bytes[4 * k + (uint32_t)j] = (uint8_t)(u >> (8 * j));
        }
        size_t len = 0;
        char *s = rd_emu_base64(bytes, (size_t)dims * 4, &len);
        struct json_object *o = rd_json_new_strn(s, len);
        free(s);
        free(bytes);
        return o;
    }
    struct json_object *arr = json_object_new_array_ext((int)dims);
    for (uint32_t k = 0; k < dims; k++) {
        char num[32];
        snprintf(num, sizeof num, "%.9g", (double)v[k]);
        json_object_array_add(arr, json_object_new_double_s((double)v[k], num));
    }
    return arr;
}

/* Reads dimensions and encoding_format. -1 with the 400 rendered. */
static int embed_params(struct rd_emu_ctx *c, const char *model, size_t n, int64_t *dims, bool *base64)
{
    int64_t dflt = strcmp(model, "text-embedding-3-large") == 0 ? 3072 : 1536;
    if (strcmp(model, "text-embedding-ada-002") == 0 && rd_json_get(c->body, "dimensions") != NULL) {
        rd_emu_oai_error(c->out, 400, NULL, NULL, "This model does not support specifying dimensions.");
        return -1;
    }
    if (rd_emu_oai_int_param(c, "dimensions", 1, RD_EMU_MAX_DIMENSIONS, dflt, dims) < 0)
        return -1;
    struct json_object *fmt = rd_json_get(c->body, "encoding_format");
    const char *f = fmt && json_object_is_type(fmt, json_type_string) ? json_object_get_string(fmt) : NULL;
    if (fmt != NULL && (f == NULL || (strcmp(f, "float") != 0 && strcmp(f, "base64") != 0))) {
        rd_emu_oai_error(c->out, 400, "encoding_format", "invalid_value",
                         "Invalid value: '%.64s'. Supported values are: 'float' and 'base64'.", f ? f : "");
        return -1;
    }
    *base64 = f != NULL && strcmp(f, "base64") == 0;
    if ((uint64_t)n * (uint64_t)*dims > (*base64 ? MAX_FLOATS_BASE64 : MAX_FLOATS_JSON)) {
        rd_emu_oai_error(c->out, 400, "input", "invalid_value",
                         "Invalid 'input': %zu inputs x %lld dimensions exceeds the emulator's limit of %u values "
                         "per request with encoding_format '%s'.",
                         n, (long long)*dims, *base64 ? MAX_FLOATS_BASE64 : MAX_FLOATS_JSON,
                         *base64 ? "base64" : "float");
        return -1;
    }
    return 0;
}

void rd_emu_oai_embeddings(struct rd_emu_ctx *c)
{
    struct item *items = NULL;
    size_t n = 0;
    int64_t dims = 0;
    bool base64 = false;
    float *v = NULL;

    const char *model = rd_emu_oai_model(c);
    if (model == NULL || items_of(c, &items, &n) < 0 || embed_params(c, model, n, &dims, &base64) < 0)
        goto out;
    v = rd_malloc((size_t)dims * sizeof *v);
    struct json_object *data = json_object_new_array_ext((int)n);
    uint64_t tokens = 0;
    for (size_t i = 0; i < n; i++) {
        rd_emu_embedding(model, items[i].p, items[i].len, (uint32_t)dims, v);
        struct json_object *e = json_object_new_object();
        add(e, "object", json_object_new_string("embedding"));
        add(e, "index", json_object_new_int64((int64_t)i));
        add(e, "embedding", encode(v, (uint32_t)dims, base64));
        json_object_array_add(data, e);
        tokens += items[i].tokens;
    }
    struct json_object *usage = json_object_new_object();
    add(usage, "prompt_tokens", json_object_new_int64((int64_t)tokens));
    add(usage, "total_tokens", json_object_new_int64((int64_t)tokens));
    struct json_object *root = json_object_new_object();
    add(root, "object", json_object_new_string("list"));
    add(root, "data", data);
    add(root, "model", json_object_new_string(model));
    add(root, "usage", usage);
    rd_emu_oai_json(c->out, root, 0);
out:
    free(v);
    free(items);
}
