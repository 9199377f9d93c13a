/* Entries to flat images and back (image.h). */
#include "cache/image.h"

#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>

#include "util/err.h"
#include "util/json.h"
#include "util/mem.h"

static const char *const kind_names[] = {
    [RD_REQ_OTHER] = "other",         [RD_REQ_CHAT] = "chat",           [RD_REQ_COMPLETION] = "completion",
    [RD_REQ_EMBEDDING] = "embedding", [RD_REQ_RESPONSES] = "responses", [RD_REQ_MODELS] = "models",
    [RD_REQ_TOKENS] = "tokens",
};
#define NKINDS (sizeof kind_names / sizeof kind_names[0])

const char *rd_cache_kind_name(enum rd_req_kind k)
{
    return (size_t)k < NKINDS && kind_names[k] ? kind_names[k] : "other";
}

bool rd_cache_kind_parse(const char *name, enum rd_req_kind *out)
{
    for (size_t i = 0; i < NKINDS; i++) {
        if (kind_names[i] && strcmp(kind_names[i], name) == 0) {
            *out = (enum rd_req_kind)i;
            return true;
        }
    }
    return false;
}

void rd_cache_image_of(const struct rd_cache_entry *e, struct rd_cache_image *im)
{
    memset(im, 0, sizeof *im);
    memcpy(im->key, e->key, sizeof im->key);
    im->model = e->model;
    im->method = e->method ? e->method : "";
    im->path = e->path ? e->path : "";
    im->kind = e->kind;
    im->status = e->status;
    im->stream = e->stream;
    im->hdrs = e->hdrs;
    im->nhdrs = e->nhdrs;
    /* A complete entry never changes its chunks, so they are read without its lock. */
    if (e->len > 0) {
        char *body = rd_malloc((size_t)e->len);
        size_t off = 0;
        for (const struct rd_cache_chunk *c = e->first; c != NULL && off < e->len; c = c->next) {
            size_t n = c->len < e->len - off ? c->len : (size_t)(e->len - off);
            memcpy(body + off, c->data, n);
            off += n;
        }
        im->body = body;
        im->body_len = off;
    }
    im->marks = e->marks;
    im->nmarks = e->nmarks;
    im->usage = e->usage;
    im->upstream_model = e->upstream_model;
    im->finish = e->finish;
    im->created_ms = e->created_ms;
    im->expires_ms = e->expires_ms;
    im->ttl_s = e->ttl_s;
    im->hits = atomic_load(&((struct rd_cache_entry *)e)->hits);
}

/* RFC 9110 tchar. */
static bool is_tchar(unsigned char c)
{
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
           (c != 0 && strchr("!#$%&'*+-.^_`|~", c) != NULL);
}

static bool is_token(const char *s, size_t n, size_t max)
{
    if (n == 0 || n > max)
        return false;
    for (size_t i = 0; i < n; i++) {
        if (!is_tchar((unsigned char)s[i]))
            return false;
    }
    return true;
}

/* No CR, LF or NUL (they would split or end a header on replay). */
static bool is_field_text(const char *s, size_t n, size_t max)
{
    if (n > max)
        return false;
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)s[i];
        if (c == '\r' || c == '\n' || c == '\0')
            return false;
    }
    return true;
}

static const char *check_head(const struct rd_cache_image *im)
{
    if (im->model == NULL || strlen(im->model) >= RD_CACHE_MODEL_MAX)
        return "model: missing or longer than 127 bytes";
    if (im->method == NULL || !is_token(im->method, strlen(im->method), RD_CACHE_IMAGE_MAX_METHOD))
        return "method: not an HTTP method";
    if (im->path == NULL || im->path[0] != '/' || !is_field_text(im->path, strlen(im->path), RD_CACHE_IMAGE_MAX_PATH))
        return "path: must start with '/', at most 8192 bytes, no CR, LF or NUL";
    if (im->status < 200 || im->status > 299)
        return "status: only 2xx responses are cached";
    if (im->nhdrs > RD_CACHE_IMAGE_MAX_HDRS)
        return "headers: more than 128";
    for (size_t i = 0; i < im->nhdrs; i++) {
        const struct rd_cache_hdr *h = &im->hdrs[i];
        if (!is_token(h->name, h->name_len, RD_CACHE_IMAGE_MAX_HDR_NAME))
            return "headers: a name is not an HTTP token (or is longer than 256 bytes)";
        if (!is_field_text(h->value, h->value_len, RD_CACHE_IMAGE_MAX_HDR_VALUE))
            return "headers: a value holds CR, LF or NUL (or is longer than 8192 bytes)";
    }
    if (im->upstream_model == NULL || strlen(im->upstream_model) >= RD_CACHE_MODEL_MAX)
        return "upstream_model: longer than 127 bytes";
    if (im->finish == NULL || strlen(im->finish) >= sizeof((struct rd_cache_entry *)0)->finish)
        return "finish: longer than 15 bytes";
    return NULL;
}

static const char *check_body(const struct rd_cache_image *im)
{
    if (im->body_len > RD_CACHE_IMAGE_MAX_BODY || (im->body == NULL && im->body_len > 0))
        return "body: larger than 1 GiB";
    if (!im->stream && im->nmarks > 0)
        return "marks: only a stream has events";
    if (im->nmarks > RD_CACHE_IMAGE_MAX_MARKS)
        return "marks: more than 1048576 events";
    uint64_t end = 0;
    uint32_t t = 0;
    for (size_t i = 0; i < im->nmarks; i++) {
        if (im->marks[i].end < end || im->marks[i].end > im->body_len)
            return "marks: event ends out of order or past the body";
        if (im->marks[i].t_ms < t)
            return "marks: event times go backwards";
        end = im->marks[i].end;
        t = im->marks[i].t_ms;
    }
    if (im->ttl_s == 0)
        return "ttl_s: must be at least 1";
    if (im->expires_ms <= im->created_ms)
        return "expires: not after created";
    /* -1: not reported (struct rd_usage) */
    if (im->usage.input < -1 || im->usage.output < -1 || im->usage.cached < -1 || im->usage.cache_write < -1 ||
        im->usage.reasoning < -1)
        return "usage: a count below -1 (-1 means not reported)";
    return NULL;
}

/* Appends the body, then a mark at each event's end. */
static int fill_body(struct rd_cache_entry *e, const struct rd_cache_image *im)
{
    int rc = im->body_len ? rd_cache_fill_data(e, im->body, im->body_len) : 0;
    for (size_t i = 0; i < im->nmarks && rc == 0; i++)
        rc = rd_cache_fill_mark(e, im->marks[i].end, im->marks[i].t_ms);
    return rc;
}

struct rd_cache_entry *rd_cache_image_build(const struct rd_cache_image *im, char *err, size_t errlen)
{
    const char *why = check_head(im);
    if (why == NULL)
        why = check_body(im);
    if (why != NULL) {
        rd_seterr(err, errlen, "%s", why);
        return NULL;
    }
    struct rd_cache_entry *e = rd_cache_entry_new(im->key, im->model, im->kind, im->method, im->path);
    int rc = rd_cache_fill_head(e, im->status, im->hdrs, im->nhdrs, im->stream);
    if (rc == 0)
        rc = fill_body(e, im);
    if (rc < 0) {
        rd_seterr(err, errlen, "body: %s", rd_strerror(rc));
        rd_cache_entry_unref(e);
        return NULL;
    }
    e->usage = im->usage;
    memcpy(e->upstream_model, im->upstream_model, strlen(im->upstream_model) + 1);
    memcpy(e->finish, im->finish, strlen(im->finish) + 1);
    e->created_ms = im->created_ms;
    e->expires_ms = im->expires_ms;
    e->ttl_s = im->ttl_s;
    atomic_store(&e->hits, im->hits);
    /* Nobody else holds e yet; the lock only keeps the state's one rule. */
    pthread_mutex_lock(&e->mu);
    e->state = RD_CACHE_COMPLETE;
    pthread_mutex_unlock(&e->mu);
    return e;
}

struct json_object *rd_cache_image_hdrs_json(const struct rd_cache_image *im)
{
    struct json_object *arr = json_object_new_array_ext((int)im->nhdrs);
    for (size_t i = 0; i < im->nhdrs; i++) {
        struct json_object *pair = json_object_new_array_ext(2);
        json_object_array_add(pair, rd_json_new_strn(im->hdrs[i].name, im->hdrs[i].name_len));
        json_object_array_add(pair, rd_json_new_strn(im->hdrs[i].value, im->hdrs[i].value_len));
        json_object_array_add(arr, pair);
    }
    return arr;
}

int rd_cache_image_hdrs_parse(struct json_object *arr, struct rd_cache_hdr **out, size_t *n, char *err, size_t errlen)
{
    *out = NULL;
    *n = 0;
    if (!json_object_is_type(arr, json_type_array)) {
        rd_seterr(err, errlen, "headers: not an array");
        return RD_EPROTO;
    }
    size_t count = json_object_array_length(arr);
    if (count > RD_CACHE_IMAGE_MAX_HDRS) {
        rd_seterr(err, errlen, "headers: more than %d", RD_CACHE_IMAGE_MAX_HDRS);
        return RD_EPROTO;
    }
    struct rd_cache_hdr *h = count ? rd_calloc(count, sizeof *h) : NULL;
    for (size_t i = 0; i < count; i++) {
        struct json_object *pair = json_object_array_get_idx(arr, i), *k = NULL, *v = NULL;
        /* json-c asserts on array calls with another type: check it first. */
        if (json_object_is_type(pair, json_type_array) && json_object_array_length(pair) == 2) {
            k = json_object_array_get_idx(pair, 0);
            v = json_object_array_get_idx(pair, 1);
        }
        if (!json_object_is_type(k, json_type_string) || !json_object_is_type(v, json_type_string)) {
            rd_seterr(err, errlen, "headers: entry %zu is not a [name, value] pair of strings", i);
            free(h);
            return RD_EPROTO;
        }
        h[i] = (struct rd_cache_hdr){.name = json_object_get_string(k),
                                     .name_len = (uint32_t)json_object_get_string_len(k),
                                     .value = json_object_get_string(v),
                                     .value_len = (uint32_t)json_object_get_string_len(v)};
    }
    *out = h;
    *n = count;
    return 0;
}
