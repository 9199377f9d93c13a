/* Write-only secrets of the configuration document (Bedrock's
 * aws.secret_access_key and aws.session_token): the API never shows them,
 * only a placeholder, and a document sent back with the placeholder keeps
 * the stored value. The list of secret fields is data (secrets.c). Pure;
 * any thread. */
#ifndef RD_PROXY_SECRETS_H
#define RD_PROXY_SECRETS_H

struct json_object;

/* What the API shows in place of a stored secret. */
#define RD_SECRET_PLACEHOLDER "********"

/* Replaces every secret field present in doc by RD_SECRET_PLACEHOLDER.
 * Returns doc (NULL-safe). */
struct json_object *rd_config_redact(struct json_object *doc);

/* For every secret field of doc (a new document from a client) that holds
 * the placeholder: puts back the value stored in old_json (the current
 * document's text; NULL or invalid: nothing to restore). A placeholder with
 * nothing stored stays, for validation to reject. */
void rd_config_restore_secrets(struct json_object *doc, const char *old_json);

#endif
