/* Bedrock's prepare hook: the upstream URL (the region's host unless
 * upstream_url is set) and the request's credentials. An SDK pointed at the
 * proxy signs SigV4 for the proxy's host and port, which the upstream would
 * reject, so the request is signed again here for the host it goes to; a
 * Bedrock API key (Authorization: Bearer) is not tied to a host and passes
 * through. Secrets are read from the configuration or the environment and
 * written only into the Authorization header the upstream gets: never to a
 * log line or an error message. */
#include <json-c/json.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "providers/bedrock.h"
#include "util/arena.h"
#include "util/err.h"
#include "util/json.h"
#include "util/mem.h"
#include "util/sigv4.h"

#define BASE_MAX (sizeof "https://bedrock-runtime..amazonaws.com" + RD_BEDROCK_REGION_MAX)

static const char NO_CREDENTIALS[] =
    "No AWS credentials to sign this request for Bedrock: set access_key_id and secret_access_key in the proxy's "
    "aws configuration block (or AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY in the server's environment), or send "
    "a Bedrock API key as Authorization: Bearer.";
static const char HALF_CREDENTIALS[] =
    "The proxy's aws configuration block needs both access_key_id and secret_access_key to sign requests for "
    "Bedrock.";
static const char NO_REGION[] =
    "No AWS region for this Bedrock request: set region in the proxy's aws configuration block (or AWS_REGION in "
    "the server's environment), or sign the request with a credential scope that names one.";

static bool region_ok(const char *s, size_t n)
{
    if (n == 0 || n > RD_BEDROCK_REGION_MAX || s[0] == '-' || s[n - 1] == '-')
        return false;
    for (size_t i = 0; i < n; i++)
        if (!((s[i] >= 'a' && s[i] <= 'z') || (s[i] >= '0' && s[i] <= '9') || s[i] == '-'))
            return false;
    return true;
}

static size_t copy_region(const char *s, size_t n, char *out, size_t cap)
{
    if (s == NULL || !region_ok(s, n) || n >= cap)
        return 0;
    memcpy(out, s, n);
    out[n] = '\0';
    return n;
}

size_t rd_bedrock_scope_region(const char *auth, char *out, size_t cap)
{
    if (cap)
        out[0] = '\0';
    if (auth == NULL)
        return 0;
    /* Credential=AKID/DATE/REGION/SERVICE/aws4_request */
    const char *c = strstr(auth, "Credential=");
    if (c == NULL)
        return 0;
    c += 11;
    const char *end = c + strcspn(c, ", ");
    const char *s1 = memchr(c, '/', (size_t)(end - c));
    const char *s2 = s1 ? memchr(s1 + 1, '/', (size_t)(end - s1 - 1)) : NULL;
    const char *s3 = s2 ? memchr(s2 + 1, '/', (size_t)(end - s2 - 1)) : NULL;
    if (s3 == NULL)
        return 0;
    return copy_region(s2 + 1, (size_t)(s3 - s2 - 1), out, cap);
}

/* A string member of the configuration's aws block, NULL when absent or
 * empty. json-c's getters take non-const pointers; nothing is modified. */
static const char *aws_field(const struct rd_provider_req *r, const char *key)
{
    struct json_object *aws = rd_json_get((struct json_object *)r->config, "aws");
    struct json_object *v = rd_json_get(aws, key);
    if (v == NULL || !json_object_is_type(v, json_type_string) || json_object_get_string_len(v) == 0)
        return NULL;
    return json_object_get_string(v);
}

static const char *env_nonempty(const char *name)
{
    const char *v = getenv(name);
    return v && v[0] ? v : NULL;
}

static size_t find_region(const struct rd_provider_req *r, const struct rd_hdr *auth, char *out, size_t cap)
{
    const char *v = aws_field(r, "region");
    if (v)
        return copy_region(v, strlen(v), out, cap);
    if (auth) {
        char *a = rd_strndup(auth->value, auth->value_len);
        size_t n = rd_bedrock_scope_region(a, out, cap);
        free(a);
        if (n)
            return n;
    }
    if ((v = env_nonempty("AWS_REGION")) != NULL || (v = env_nonempty("AWS_DEFAULT_REGION")) != NULL)
        return copy_region(v, strlen(v), out, cap);
    return 0;
}

/* The host as the upstream client sends it in Host: the URL's authority
 * without a default port (curl and the native client both leave it out). */
static void url_host(const char *url, const char **host, size_t *n, const char **rest)
{
    const char *h = strstr(url, "://");
    bool https = strncasecmp(url, "https:", 6) == 0;
    h = h ? h + 3 : url;
    size_t len = strcspn(h, "/?");
    *rest = h + len;
    if (https && len > 4 && memcmp(h + len - 4, ":443", 4) == 0)
        len -= 4;
    else if (!https && len > 3 && memcmp(h + len - 3, ":80", 3) == 0)
        len -= 3;
    *host = h;
    *n = len;
}

static bool is_amz_header(const struct rd_hdr *h)
{
    return h->name_len > 6 && strncasecmp(h->name, "x-amz-", 6) == 0;
}

static int sign(const struct rd_provider_req *r, struct rd_upstream_prep *up, const struct rd_sigv4_creds *c,
                const char *region)
{
    bool had_sha = rd_hdrs_remove(up->headers, "x-amz-content-sha256") > 0;
    rd_hdrs_remove(up->headers, "authorization");
    rd_hdrs_remove(up->headers, "x-amz-date");
    rd_hdrs_remove(up->headers, "x-amz-security-token");

    char *date = rd_arena_alloc(up->arena, 17);
    rd_sigv4_amz_date(up->now_ms, date);
    char *hash = rd_arena_alloc(up->arena, 65);
    rd_sigv4_payload_hash(r->body, r->body_len, hash);
    rd_hdrs_add_ref(up->headers, "X-Amz-Date", date);
    if (had_sha)
        rd_hdrs_add_ref(up->headers, "X-Amz-Content-Sha256", hash);
    if (c->session_token)
        rd_hdrs_add_ref(up->headers, "X-Amz-Security-Token", c->session_token);

    /* Signed: host, content-type and every x-amz-* header, as the SDKs do
     * (the others may change on the way without breaking the signature). */
    const char *host, *rest;
    size_t host_len;
    url_host(up->url->data, &host, &host_len, &rest);
    struct rd_sigv4_header hs[RD_SIGV4_MAX_HEADERS];
    size_t nh = 0;
    hs[nh++] = (struct rd_sigv4_header){"host", 4, host, host_len};
    for (size_t i = 0; i < up->headers->n; i++) {
        const struct rd_hdr *h = &up->headers->v[i];
        if (!is_amz_header(h) && !rd_hdr_name_eq(h->name, h->name_len, "content-type"))
            continue;
        if (nh == RD_SIGV4_MAX_HEADERS)
            return RD_ETOOBIG;
        hs[nh++] = (struct rd_sigv4_header){h->name, h->name_len, h->value, h->value_len};
    }
    size_t plen = strcspn(rest, "?");
    char *path = rd_arena_strndup(up->arena, rest, plen);
    struct rd_sigv4_request sr = {
        .method = r->method,
        .path = path,
        .query = rest[plen] == '?' ? rest + plen + 1 : "",
        .headers = hs,
        .nheaders = nh,
        .payload_hash = hash,
        .s3 = false,
    };
    struct rd_buf auth;
    rd_buf_init(&auth, 16384);
    int rc = rd_sigv4_authorization(&sr, c, date, region, "bedrock", &auth);
    if (rc == 0)
        rd_hdrs_add_ref(up->headers, "Authorization", rd_arena_strndup(up->arena, auth.data, auth.len));
    rd_buf_free(&auth);
    return rc;
}

static int fail(struct rd_upstream_prep *up, const char *message)
{
    up->fail_message = message;
    return RD_EINVAL;
}

int rd_bedrock_prepare(const struct rd_provider *p, const struct rd_provider_req *r, struct rd_upstream_prep *up)
{
    const struct rd_hdr *auth = rd_hdrs_find(up->headers, "authorization");
    bool bearer = auth && auth->value_len > 7 && strncasecmp(auth->value, "Bearer ", 7) == 0;
    char region[RD_BEDROCK_REGION_MAX + 1];
    size_t rn = find_region(r, bearer ? NULL : auth, region, sizeof region);

    struct rd_upstream_prep located = *up;
    char base[BASE_MAX];
    if (up->base_is_default) {
        if (rn == 0)
            return fail(up, NO_REGION);
        int w = snprintf(base, sizeof base, "https://bedrock-runtime.%s.amazonaws.com", region);
        if (w < 0 || (size_t)w >= sizeof base)
            return RD_ETOOBIG;
        located.base = base;
    }
    int rc = rd_provider_prepare_passthrough(p, r, &located);
    if (rc < 0 || bearer)
        return rc;

    struct rd_sigv4_creds c = {aws_field(r, "access_key_id"), aws_field(r, "secret_access_key"),
                               aws_field(r, "session_token")};
    if (c.access_key_id || c.secret_access_key) {
        if (c.access_key_id == NULL || c.secret_access_key == NULL)
            return fail(up, HALF_CREDENTIALS);
    } else {
        c.access_key_id = env_nonempty("AWS_ACCESS_KEY_ID");
        c.secret_access_key = env_nonempty("AWS_SECRET_ACCESS_KEY");
        c.session_token = env_nonempty("AWS_SESSION_TOKEN");
        if (c.access_key_id == NULL || c.secret_access_key == NULL)
            return fail(up, NO_CREDENTIALS);
    }
    if (rn == 0)
        return fail(up, NO_REGION);
    return sign(r, up, &c, region);
}
