/* AWS event-stream framing (application/vnd.amazon.eventstream), the binary
 * framing Bedrock's streamed answers use. One message is
 *
 *   [total_len u32][headers_len u32][CRC32 of those 8 bytes u32]
 *   [headers: headers_len bytes][payload][CRC32 of everything before it u32]
 *
 * all integers big-endian, CRC32 the IEEE one (zlib's crc32). A header is
 * [name_len u8][name][type u8][value], the value's shape given by the type
 * (enum rd_es_type). Decoding never reads past what it was given and rejects
 * bad CRCs, lengths that do not add up, truncated or unknown header values,
 * and frames over the caps; it allocates only to carry a frame split across
 * feeds. Pure and thread-agnostic: one decoder per stream. */
#ifndef RD_UTIL_EVENTSTREAM_H
#define RD_UTIL_EVENTSTREAM_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "util/buf.h"

#define RD_ES_PRELUDE_LEN 12u                 /* total_len, headers_len, prelude CRC */
#define RD_ES_MIN_LEN 16u                     /* prelude + message CRC: no header, no payload */
#define RD_ES_MAX_TOTAL (16u * 1024u * 1024u) /* the SDKs' own cap on one message */
#define RD_ES_MAX_HEADERS_LEN (128u * 1024u)

enum rd_es_type {
    RD_ES_TRUE = 0,      /* no value bytes */
    RD_ES_FALSE = 1,     /* no value bytes */
    RD_ES_BYTE = 2,      /* int8 */
    RD_ES_SHORT = 3,     /* int16 BE */
    RD_ES_INT = 4,       /* int32 BE */
    RD_ES_LONG = 5,      /* int64 BE */
    RD_ES_BYTES = 6,     /* u16 BE length + bytes */
    RD_ES_STRING = 7,    /* u16 BE length + UTF-8 bytes */
    RD_ES_TIMESTAMP = 8, /* int64 BE milliseconds since the epoch */
    RD_ES_UUID = 9,      /* 16 bytes */
};

/* One decoded header; pointers into the message (borrowed). */
struct rd_es_header {
    const char *name;
    size_t name_len;
    enum rd_es_type type;
    int64_t i;        /* BYTE, SHORT, INT, LONG, TIMESTAMP; TRUE = 1, FALSE = 0 */
    const uint8_t *p; /* BYTES, STRING: value bytes; UUID: 16 bytes */
    size_t n;
};

/* A decoded message: views into the frame (valid for the callback only). */
struct rd_es_msg {
    const uint8_t *headers; /* the header block, already validated */
    size_t headers_len;
    const uint8_t *payload;
    size_t payload_len;
};

/* Decodes one complete message at the start of p[0..n): fills m and returns
 * its length (bytes consumed); RD_EAGAIN if p holds only part of a message;
 * RD_EPROTO if it is malformed (CRC, lengths, headers); RD_ETOOBIG over the
 * caps (total > max_total, or headers over RD_ES_MAX_HEADERS_LEN). max_total
 * 0 means RD_ES_MAX_TOTAL. */
int rd_es_decode(const uint8_t *p, size_t n, size_t max_total, struct rd_es_msg *m);

/* Iterates the headers of m: *off starts at 0. Returns 1 with h filled, 0
 * past the last, RD_EPROTO on a malformed header (never for a message from
 * rd_es_decode, which validated them). */
int rd_es_header_next(const struct rd_es_msg *m, size_t *off, struct rd_es_header *h);
/* The first string header called name (NUL-terminated): true with *v and
 * *n set, false when there is none (or it is not a string). */
bool rd_es_header_string(const struct rd_es_msg *m, const char *name, const char **v, size_t *n);

/* Called for each complete message; a non-zero return stops the feed, which
 * returns that value. */
typedef int (*rd_es_msg_fn)(void *ud, const struct rd_es_msg *m);

/* Incremental decoder: feed it the stream in any pieces. A message complete
 * within a piece is decoded in place; one split across pieces is carried in
 * buf (capped by max_total). After an error the decoder stays failed. */
struct rd_es_decoder {
    struct rd_buf buf; /* partial message carried over */
    size_t max_total;
    uint64_t messages; /* delivered */
    int err;           /* first error (RD_EPROTO, RD_ETOOBIG), 0 while healthy */
    /* While fn runs: the offset in the piece being fed just past the
     * message delivered (a stop, fn returning non-zero, leaves the feed
     * having consumed exactly that much). */
    size_t end;
};

/* max_total 0: RD_ES_MAX_TOTAL. */
void rd_es_decoder_init(struct rd_es_decoder *d, size_t max_total);
/* Decodes p[0..n). Returns 0, the first non-zero value fn returned, or the
 * decoder's error (now or from an earlier feed). */
int rd_es_decoder_feed(struct rd_es_decoder *d, const void *p, size_t n, rd_es_msg_fn fn, void *ud);
/* True if no partial message is pending (the stream ended on a boundary). */
bool rd_es_decoder_at_boundary(const struct rd_es_decoder *d);
/* Forgets everything (storage kept) for a new stream. */
void rd_es_decoder_reset(struct rd_es_decoder *d);
void rd_es_decoder_free(struct rd_es_decoder *d); /* NULL-safe */

/* ---- encoding ---- */

/* A header to encode: string values (RD_ES_STRING, RD_ES_BYTES) in p/n,
 * integers in i, booleans by type. */
struct rd_es_header_in {
    const char *name;
    enum rd_es_type type;
    int64_t i;
    const void *p;
    size_t n;
};

/* Appends one message with headers h[0..nh) and the payload to out.
 * Returns 0, RD_EINVAL for a header that cannot be encoded (name of 0 or
 * more than 255 bytes, value over 65535 bytes, unknown type), or RD_ETOOBIG
 * (message over RD_ES_MAX_TOTAL, headers over RD_ES_MAX_HEADERS_LEN, or out's
 * cap); out is unchanged on error. */
int rd_es_encode(struct rd_buf *out, const struct rd_es_header_in *h, size_t nh, const void *payload,
                 size_t payload_len);

/* The usual message of an AWS stream: string headers :event-type (or
 * :exception-type for an exception), :content-type and :message-type
 * ("event" or "exception"). content_type NULL leaves it out. */
int rd_es_encode_event(struct rd_buf *out, bool exception, const char *type, const char *content_type,
                       const void *payload, size_t payload_len);

#endif
