/* AWS Signature Version 4 (header form), with OpenSSL's SHA-256 and
 * HMAC-SHA256. The steps of the AWS documentation ("Create a signed AWS API
 * request") are separate functions so each can be tested against the
 * published test suite:
 *
 *   canonical request = METHOD \n canonical URI \n canonical query \n
 *                       canonical headers \n signed headers \n payload hash
 *   string to sign    = "AWS4-HMAC-SHA256" \n amz-date \n scope \n hex(SHA-256(canonical request))
 *   signing key       = HMAC(HMAC(HMAC(HMAC("AWS4" secret, date), region), service), "aws4_request")
 *   Authorization     = "AWS4-HMAC-SHA256 Credential=AKID/scope, SignedHeaders=..., Signature=..."
 *
 * The canonical URI of a service other than S3 is the path as sent on the
 * wire, normalised (empty and "." segments dropped, ".." resolved, as the AWS
 * SDKs do) and URI-encoded once more: "/model/a%3A0/invoke" signs as
 * "/model/a%253A0/invoke". S3 signs the wire path as is. Pure functions; any
 * thread. Secrets are only read, never copied anywhere but the stack. */
#ifndef RD_UTIL_SIGV4_H
#define RD_UTIL_SIGV4_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "util/buf.h"

#define RD_SIGV4_MAX_HEADERS 128
#define RD_SIGV4_EMPTY_SHA256 "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"

struct rd_sigv4_header {
    const char *name; /* any case */
    size_t name_len;
    const char *value;
    size_t value_len;
};

/* The request as it will be sent. Borrowed. */
struct rd_sigv4_request {
    const char *method;
    const char *path;  /* as on the wire (percent-encoded), "" is "/" */
    const char *query; /* as on the wire without '?', "" when none */
    /* Every header to sign (host and x-amz-date among them; the same name
     * may repeat: values are joined with ','). */
    const struct rd_sigv4_header *headers;
    size_t nheaders;
    const char *payload_hash; /* lower-case hex SHA-256 of the body, or "UNSIGNED-PAYLOAD" */
    bool s3;                  /* S3's path rule (signed as is) */
};

struct rd_sigv4_creds {
    const char *access_key_id;
    const char *secret_access_key;
    const char *session_token; /* NULL when none; the caller sends and signs x-amz-security-token */
};

/* Appends the canonical request of r to out and, when signed is not NULL,
 * the signed-headers list ("host;x-amz-date") to signed. Returns 0,
 * RD_EINVAL (no headers, more than RD_SIGV4_MAX_HEADERS, a header name
 * that is empty) or RD_ETOOBIG (out's cap). */
int rd_sigv4_canonical_request(const struct rd_sigv4_request *r, struct rd_buf *out, struct rd_buf *signed_hdrs);

/* The canonical URI alone (see above), appended to out. */
int rd_sigv4_canonical_uri(const char *path, bool s3, struct rd_buf *out);
/* The canonical query alone: pairs split on '&', each name and value
 * percent-decoded then encoded with RFC 3986's unreserved set, sorted by
 * name then value. */
int rd_sigv4_canonical_query(const char *query, struct rd_buf *out);

/* Appends the string to sign. amz_date is "YYYYMMDDTHHMMSSZ"; the scope is
 * date/region/service/aws4_request. */
int rd_sigv4_string_to_sign(const char *amz_date, const char *region, const char *service, const char *creq,
                            size_t creq_len, struct rd_buf *out);

/* The signing key for the date (the first 8 characters of amz_date). */
void rd_sigv4_signing_key(const char *secret, const char *amz_date, const char *region, const char *service,
                          uint8_t key[32]);

/* Signs r: appends the value of the Authorization header to auth. Returns
 * 0 or the errors of rd_sigv4_canonical_request (RD_EINVAL also for missing
 * credentials or a malformed amz_date). */
int rd_sigv4_authorization(const struct rd_sigv4_request *r, const struct rd_sigv4_creds *c, const char *amz_date,
                           const char *region, const char *service, struct rd_buf *auth);

/* "YYYYMMDDTHHMMSSZ" for epoch milliseconds; out holds 17 bytes. */
void rd_sigv4_amz_date(int64_t epoch_ms, char out[17]);

/* Lower-case hex SHA-256 of p[0..n); out holds 65 bytes. */
void rd_sigv4_payload_hash(const void *p, size_t n, char out[65]);

#endif
