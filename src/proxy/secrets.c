#include "proxy/secrets.h"

#include <errno.h>
#include <fcntl.h>
#include <json-c/json.h>
#include <openssl/crypto.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "util/err.h"
#include "util/hash.h"
#include "util/json.h"

/* Secret fields as {block, field, the sealed value's associated data}. */
static const char *const SECRETS[][3] = {
    {"aws", "secret_access_key", "aws.secret_access_key"},
    {"aws", "session_token", "aws.session_token"},
};

#define NSECRETS (sizeof SECRETS / sizeof SECRETS[0])

/* Written once at startup, before the threads that read it exist. */
static uint8_t key[RD_SEAL_KEY_LEN];
static bool have_key;

void rd_secrets_set_key(const uint8_t k[RD_SEAL_KEY_LEN])
{
    memcpy(key, k, sizeof key);
    have_key = true;
}


static int read_key(int fd, const char *path, uint8_t out[RD_SEAL_KEY_LEN], char *why, size_t cap)
{
    char text[2 * RD_SEAL_KEY_LEN + 3];
    ssize_t n = read(fd, text, sizeof text);
    size_t len = n > 0 ? (size_t)n : 0;
    while (len > 0 && (text[len - 1] == '\n' || text[len - 1] == '\r'))
        len--;
    bool ok = len == 2 * RD_SEAL_KEY_LEN;
    for (size_t i = 0; ok && i < RD_SEAL_KEY_LEN; i++) {
        int hi = rd_hex_value(text[2 * i]), lo = rd_hex_value(text[2 * i + 1]);
        ok = hi >= 0 && lo >= 0;
        out[i] = (uint8_t)(ok ? hi << 4 | lo : 0);
    }
    OPENSSL_cleanse(text, sizeof text);
    if (!ok) {
        snprintf(why, cap, "%s must hold %d hex digits (the key that seals stored secrets)", path,
                 2 * RD_SEAL_KEY_LEN);
        return RD_EINVAL;
    }
    return 0;
}

int rd_secrets_load_key(const char *path, char *why, size_t cap)
{
    uint8_t k[RD_SEAL_KEY_LEN];
    int rc;
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd >= 0) {
        rc = read_key(fd, path, k, why, cap);
        (void)close(fd); /* read-only: nothing to lose */
    } else if (errno != ENOENT) {
        rc = -errno;
        snprintf(why, cap, "cannot open %s: %s", path, strerror(errno));
    } else {
        if ((rc = rd_random_bytes(k, sizeof k)) != 0) {
            snprintf(why, cap, "no random bytes for %s", path);
            return rc;
        }
        char hex[2 * RD_SEAL_KEY_LEN + 2];
        rd_hex(k, sizeof k, hex);
        hex[2 * RD_SEAL_KEY_LEN] = '\n';
        fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
        if (fd < 0) {
            rc = -errno;
            snprintf(why, cap, "cannot create %s: %s", path, strerror(errno));
        } else {
            bool ok = write(fd, hex, 2 * RD_SEAL_KEY_LEN + 1) == 2 * RD_SEAL_KEY_LEN + 1;
            ok = close(fd) == 0 && ok;
            rc = ok ? 0 : RD_EINVAL;
            if (!ok)
                snprintf(why, cap, "cannot write %s", path);
        }
        OPENSSL_cleanse(hex, sizeof hex);
    }
    if (rc == 0)
        rd_secrets_set_key(k);
    OPENSSL_cleanse(k, sizeof k);
    return rc;
}

static struct json_object *member(struct json_object *o, const char *k)
{
    struct json_object *v = NULL;
    return json_object_is_type(o, json_type_object) && json_object_object_get_ex(o, k, &v) ? v : NULL;
}

struct json_object *rd_config_redact(struct json_object *doc)
{
    for (size_t i = 0; i < NSECRETS; i++) {
        struct json_object *block = member(doc, SECRETS[i][0]);
        if (json_object_is_type(block, json_type_object) && member(block, SECRETS[i][1]) != NULL)
            json_object_object_add(block, SECRETS[i][1], json_object_new_string(RD_SECRET_PLACEHOLDER));
    }
    return doc;
}

static bool is_placeholder(struct json_object *v)
{
    return json_object_is_type(v, json_type_string) && strcmp(json_object_get_string(v), RD_SECRET_PLACEHOLDER) == 0;
}

void rd_config_restore_secrets(struct json_object *doc, const char *old_json)
{
    struct json_object *old = NULL;
    bool parsed = false;
    for (size_t i = 0; i < NSECRETS; i++) {
        struct json_object *block = member(doc, SECRETS[i][0]);
        if (!is_placeholder(member(block, SECRETS[i][1])))
            continue;
        if (!parsed) {
            parsed = true;
            if (old_json == NULL || rd_json_parse(old_json, strlen(old_json), 1u << 24, &old, NULL) != 0)
                old = NULL;
        }
        /* The stored value, sealed or not: rd_config_seal leaves a sealed
         * one as it is. */
        struct json_object *prev = member(member(old, SECRETS[i][0]), SECRETS[i][1]);
        if (json_object_is_type(prev, json_type_string) && !is_placeholder(prev))
            json_object_object_add(block, SECRETS[i][1], json_object_get(prev));
    }
    json_object_put(old);
}

/* Seals (seal) or opens (!seal) every secret string of doc. */
static int transform(struct json_object *doc, bool seal, const char **field)
{
    if (field)
        *field = NULL;
    for (size_t i = 0; i < NSECRETS; i++) {
        struct json_object *block = member(doc, SECRETS[i][0]);
        struct json_object *v = member(block, SECRETS[i][1]);
        if (!json_object_is_type(v, json_type_string))
            continue;
        const char *s = json_object_get_string(v);
        size_t len = (size_t)json_object_get_string_len(v);
        if (rd_is_sealed(s, len) == seal)
            continue; /* already in the wanted form */
        if (field)
            *field = SECRETS[i][2];
        if (!have_key)
            return RD_ESTATE;
        struct rd_buf b;
        rd_buf_init(&b, 0);
        int rc = seal ? rd_seal(key, SECRETS[i][2], s, len, &b) : rd_unseal(key, SECRETS[i][2], s, len, &b);
        if (rc == 0)
            json_object_object_add(block, SECRETS[i][1], rd_json_new_strn(b.data ? b.data : "", b.len));
        if (b.data)
            OPENSSL_cleanse(b.data, b.len);
        rd_buf_free(&b);
        if (rc != 0)
            return rc;
    }
    if (field)
        *field = NULL;
    return 0;
}

int rd_config_seal(struct json_object *doc)
{
    return transform(doc, true, NULL);
}

int rd_config_unseal(struct json_object *doc, const char **field)
{
    return transform(doc, false, field);
}
