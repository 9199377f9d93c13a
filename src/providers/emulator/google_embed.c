/* Embeddings in Google's dialect: :embedContent and :batchEmbedContents
 * (Gemini API; Vertex's embedContent for gemini-embedding models) and
 * Vertex's :predict with text instances. Vectors come from the emulator's
 * shared generator (rd_emu_embedding), so they are deterministic and a
 * smaller outputDimensionality gives a renormalised prefix. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "providers/emulator/google_int.h"
#include "providers/emulator/text.h"
#include "util/buf.h"
#include "util/mem.h"

static void add(struct json_object *o, const char *k, struct json_object *v)
{
    json_object_object_add(o, k, v);
}

/* One text to embed: its bytes (borrowed or in text) and token count. */
struct item {
    struct rd_buf text;
    uint32_t tokens;
    uint32_t dims;
};

static void items_free(struct item *it, size_t n)
{
    for (size_t i = 0; i < n; i++)
        rd_buf_free(&it[i].text);
    free(it);
}

static struct json_object *values(const char *model, const struct item *it)
{
    float *v = rd_malloc((size_t)it->dims * sizeof *v);
    rd_emu_embedding(model, it->text.data ? it->text.data : "", it->text.len, it->dims, v);
    struct json_object *arr = json_object_new_array_ext((int)it->dims);
    for (uint32_t k = 0; k < it->dims; k++) {
        char num[32];
        snprintf(num, sizeof num, "%.9g", (double)v[k]);
        json_object_array_add(arr, json_object_new_double_s((double)v[k], num));
    }
    free(v);
    return arr;
}

/* outputDimensionality of obj (a request or Vertex's parameters): 1 up to
 * the model's size, which is also the default. */
static int dims_of(struct rd_gemu_ctx *c, struct json_object *obj, const char *field, uint32_t *dims)
{
    uint32_t full = rd_gemu_embed_dims(c->model);
    int64_t d = 0;
    if (rd_gemu_int(c, obj, "outputDimensionality", field, 1, full, full, &d) < 0)
        return -1;
    *dims = (uint32_t)d;
    return 0;
}

/* A Content to embed ({"parts":[{"text"}]}): non-empty text required. */
static int content_item(struct rd_gemu_ctx *c, struct json_object *content, const char *field, struct item *it)
{
    rd_buf_init(&it->text, 0);
    it->tokens = rd_gemu_content_tokens(content, &it->text);
    if (!json_object_is_type(content, json_type_object) || it->text.len == 0) {
        rd_gemu_error(c->out, 400, "* %s: content is not specified or has no text\n", field);
        return -1;
    }
    return 0;
}

static bool too_many(struct rd_gemu_ctx *c, const struct item *items, size_t n)
{
    uint64_t floats = 0;
    for (size_t i = 0; i < n; i++)
        floats += items[i].dims;
    if (floats <= RD_GEMU_MAX_EMBED_FLOATS)
        return false;
    rd_gemu_error(c->out, 400, "%zu inputs with these dimensions exceed the emulator's limit of %u values per request.",
                  n, RD_GEMU_MAX_EMBED_FLOATS);
    return true;
}

/* :embedContent: {"content", "outputDimensionality"} (Gemini) or
 * {"content", "embedContentConfig":{"outputDimensionality"}} (Vertex). */
void rd_gemu_embed(struct rd_gemu_ctx *c)
{
    struct item it;
    struct json_object *cfg = c->f->vertex ? rd_json_get(c->body, "embedContentConfig") : c->body;
    if (content_item(c, rd_json_get(c->body, "content"), "EmbedContentRequest.content", &it) < 0) {
        rd_buf_free(&it.text);
        return;
    }
    if (dims_of(c, cfg, "output_dimensionality", &it.dims) < 0) {
        rd_buf_free(&it.text);
        return;
    }
    struct json_object *emb = json_object_new_object();
    add(emb, "values", values(c->model, &it));
    struct json_object *root = json_object_new_object();
    add(root, "embedding", emb);
    if (c->f->vertex) {
        struct json_object *u = json_object_new_object();
        add(u, "promptTokenCount", json_object_new_int64(it.tokens));
        add(u, "totalTokenCount", json_object_new_int64(it.tokens));
        add(root, "usageMetadata", u);
        add(root, "truncated", json_object_new_boolean(0));
    }
    rd_gemu_json(c->out, root, 0);
    rd_buf_free(&it.text);
}

/* :batchEmbedContents: {"requests":[{"model","content","outputDimensionality"}]}. */
void rd_gemu_batch_embed(struct rd_gemu_ctx *c)
{
    struct json_object *reqs = rd_json_get(c->body, "requests");
    size_t n = json_object_is_type(reqs, json_type_array) ? json_object_array_length(reqs) : 0;
    if (n == 0 || n > RD_GEMU_MAX_EMBED_ITEMS) {
        rd_gemu_error(c->out, 400, "* BatchEmbedContentsRequest.requests: between 1 and %d requests are allowed\n",
                      RD_GEMU_MAX_EMBED_ITEMS);
        return;
    }
    struct item *items = rd_calloc(n, sizeof *items);
    size_t done = 0;
    for (; done < n; done++) {
        struct json_object *r = json_object_array_get_idx(reqs, done);
        char field[96];
        snprintf(field, sizeof field, "BatchEmbedContentsRequest.requests[%zu].content", done);
        if (content_item(c, rd_json_get(r, "content"), field, &items[done]) < 0 ||
            dims_of(c, r, "output_dimensionality", &items[done].dims) < 0) {
            items_free(items, done + 1);
            return;
        }
    }
    if (too_many(c, items, n)) {
        items_free(items, n);
        return;
    }
    struct json_object *list = json_object_new_array_ext((int)n);
    for (size_t i = 0; i < n; i++) {
        struct json_object *e = json_object_new_object();
        add(e, "values", values(c->model, &items[i]));
        json_object_array_add(list, e);
    }
    struct json_object *root = json_object_new_object();
    add(root, "embeddings", list);
    rd_gemu_json(c->out, root, 0);
    items_free(items, n);
}

/* Vertex :predict for text embedding models: {"instances":[{"content":
 * "text", "task_type", "title"}], "parameters":{"outputDimensionality"}}
 * -> {"predictions":[{"embeddings":{"statistics":{"truncated","token_count"},
 * "values"}}],"metadata":{"billableCharacterCount"}}. */
void rd_gemu_predict(struct rd_gemu_ctx *c)
{
    struct json_object *inst = rd_json_get(c->body, "instances");
    size_t n = json_object_is_type(inst, json_type_array) ? json_object_array_length(inst) : 0;
    if (n == 0 || n > RD_GEMU_MAX_EMBED_ITEMS) {
        rd_gemu_error(c->out, 400, "Invalid instances: between 1 and %d instances are allowed.",
                      RD_GEMU_MAX_EMBED_ITEMS);
        return;
    }
    uint32_t dims = 0;
    if (dims_of(c, rd_json_get(c->body, "parameters"), "parameters.outputDimensionality", &dims) < 0)
        return;
    struct item *items = rd_calloc(n, sizeof *items);
    for (size_t i = 0; i < n; i++) {
        struct json_object *text = rd_json_get(json_object_array_get_idx(inst, i), "content");
        rd_buf_init(&items[i].text, 0);
        items[i].dims = dims;
        if (!json_object_is_type(text, json_type_string) || json_object_get_string_len(text) == 0) {
            rd_gemu_error(c->out, 400, "Invalid instances[%zu]: \"content\" must be a non-empty string.", i);
            items_free(items, n);
            return;
        }
        size_t len = (size_t)json_object_get_string_len(text);
        if (rd_buf_append(&items[i].text, json_object_get_string(text), len) < 0)
            abort();
        items[i].tokens = rd_emu_tokens_estimate(len);
    }
    if (too_many(c, items, n)) {
        items_free(items, n);
        return;
    }
    struct json_object *preds = json_object_new_array_ext((int)n);
    uint64_t chars = 0;
    for (size_t i = 0; i < n; i++) {
        struct json_object *stats = json_object_new_object();
        add(stats, "truncated", json_object_new_boolean(0));
        add(stats, "token_count", json_object_new_int64(items[i].tokens));
        struct json_object *emb = json_object_new_object();
        add(emb, "statistics", stats);
        add(emb, "values", values(c->model, &items[i]));
        struct json_object *p = json_object_new_object();
        add(p, "embeddings", emb);
        json_object_array_add(preds, p);
        chars += items[i].text.len;
    }
    struct json_object *meta = json_object_new_object();
    add(meta, "billableCharacterCount", json_object_new_int64((int64_t)chars));
    struct json_object *root = json_object_new_object();
    add(root, "predictions", preds);
    add(root, "metadata", meta);
    rd_gemu_json(c->out, root, 0);
    items_free(items, n);
}
