/* An entry's content as flat data (src/cache/image.c): what persistence
 * (persist.c) and cassettes (cassette.c) write and read back. Taking the
 * image of a complete entry copies its body into one block; building an
 * entry from an image checks every field first, because images come from
 * a database file or a cassette a user may have edited.
 *
 * Pure; any thread. */
#ifndef RD_CACHE_IMAGE_H
#define RD_CACHE_IMAGE_H

#include <json-c/json.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "cache/cache.h"

/* Caps on what an image may hold (a stored response never comes near them;
 * a hostile file is refused at them rather than allocating without bound). */
#define RD_CACHE_IMAGE_MAX_HDRS 128
#define RD_CACHE_IMAGE_MAX_HDR_NAME 256
#define RD_CACHE_IMAGE_MAX_HDR_VALUE 8192
#define RD_CACHE_IMAGE_MAX_METHOD 16
#define RD_CACHE_IMAGE_MAX_PATH 8192
#define RD_CACHE_IMAGE_MAX_BODY ((size_t)1 << 30)
#define RD_CACHE_IMAGE_MAX_MARKS ((size_t)1 << 20)

struct rd_cache_image {
    uint8_t key[RD_CACHE_KEY_LEN];
    const char *model, *method, *path; /* borrowed, NUL-terminated */
    enum rd_req_kind kind;
    int status;
    bool stream;
    const struct rd_cache_hdr *hdrs; /* borrowed */
    size_t nhdrs;
    const char *body; /* borrowed, or owned by rd_cache_image_of's caller */
    size_t body_len;
    const struct rd_cache_mark *marks; /* borrowed */
    size_t nmarks;
    struct rd_usage usage;
    const char *upstream_model, *finish; /* borrowed, NUL-terminated */
    int64_t created_ms, expires_ms;
    uint32_t ttl_s;
    uint64_t hits;
};

/* The image of a complete entry: pointers into e (which must outlive im)
 * but for the body, copied into one block that the caller frees with
 * free(im->body) (cast away const; NULL for an empty body). */
void rd_cache_image_of(const struct rd_cache_entry *e, struct rd_cache_image *im);

/* A new complete entry (refs 1, in no cache) built from im, which is
 * copied. NULL with the offending field and why in err when a field is out
 * of range: an empty or over-long method, a path not starting with '/', a
 * model too long, a status outside 200..299, a header name or value that
 * is not one (see RD_CACHE_IMAGE_MAX_*; no CR, LF or NUL), marks out of
 * order or past the body, marks on a non-stream, ttl_s 0 or expires before
 * created. */
struct rd_cache_entry *rd_cache_image_build(const struct rd_cache_image *im, char *err, size_t errlen);

/* The request type's name ("chat", "completion", "embedding", "responses",
 * "models", "tokens", "other") and back; parse returns false for another name. */
const char *rd_cache_kind_name(enum rd_req_kind k);
bool rd_cache_kind_parse(const char *name, enum rd_req_kind *out);

/* im's headers as a new JSON array of [name, value] pairs. */
struct json_object *rd_cache_image_hdrs_json(const struct rd_cache_image *im);
/* Reads such an array: *out is a malloc'd array of *n headers (free() it)
 * pointing into arr's strings (arr must outlive it). Checks the shape and
 * RD_CACHE_IMAGE_MAX_HDRS only (rd_cache_image_build checks the rest).
 * Returns 0 or RD_EPROTO with the reason in err. */
int rd_cache_image_hdrs_parse(struct json_object *arr, struct rd_cache_hdr **out, size_t *n, char *err, size_t errlen);

#endif
