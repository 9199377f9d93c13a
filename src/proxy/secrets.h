/* Write-only secrets of the configuration document (Bedrock's
 * aws.secret_access_key and aws.session_token). The API never shows them,
 * only a placeholder, and a document sent back with the placeholder keeps
 * the stored value. In the database they are sealed (util/seal.h) under the
 * process's secrets key (DIR/secrets.key), so a copy of the database holds
 * no credential in clear; a snapshot opens them for the request path. The
 * list of secret fields is data (secrets.c). */
#ifndef RD_PROXY_SECRETS_H
#define RD_PROXY_SECRETS_H

#include <stdint.h>

#include "util/seal.h"

struct json_object;

/* What the API shows in place of a stored secret. */
#define RD_SECRET_PLACEHOLDER "********"

/* Sets the key that seals and opens stored secrets (copied). Call once at
 * startup, before any thread uses the functions below. */
void rd_secrets_set_key(const uint8_t key[RD_SEAL_KEY_LEN]);

/* Reads the secrets key from path (64 hex digits and an optional newline),
 * or creates the file (mode 0600, 32 random bytes) when it does not exist,
 * and sets it. Returns 0 or a negative code, with a message for the log in
 * why (cap bytes). Startup only. */
int rd_secrets_load_key(const char *path, char *why, size_t cap);

/* Replaces every secret field present in doc by RD_SECRET_PLACEHOLDER.
 * Returns doc (NULL-safe). Pure; any thread. */
struct json_object *rd_config_redact(struct json_object *doc);

/* For every secret field of doc (a new document from a client) that holds
 * the placeholder: puts back the value stored in old_json (the current
 * document's text, sealed values opened; NULL or invalid: nothing to
 * restore). A placeholder with nothing stored stays, for validation to
 * reject. Any thread. */
void rd_config_restore_secrets(struct json_object *doc, const char *old_json);

/* Seals every secret field of doc that is a string and not sealed yet, for
 * storing. Returns 0, or RD_ESTATE when no key was set, RD_EINVAL when the
 * cipher fails (doc is then partly sealed: do not store it). Any thread. */
int rd_config_seal(struct json_object *doc);

/* Opens every sealed secret field of doc (a stored document) in place.
 * Returns 0, or a negative code (RD_ESTATE: no key; RD_EINVAL: a value
 * sealed under another key or damaged; RD_EPROTO: malformed), with the
 * field ("aws.session_token") in *field. Any thread. */
int rd_config_unseal(struct json_object *doc, const char **field);

#endif
