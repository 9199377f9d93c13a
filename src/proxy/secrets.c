#include "proxy/secrets.h"

#include <json-c/json.h>
#include <string.h>

#include "util/json.h"

/* Secret fields as {block, field}. */
static const char *const SECRETS[][2] = {
    {"aws", "secret_access_key"},
    {"aws", "session_token"},
};

#define NSECRETS (sizeof SECRETS / sizeof SECRETS[0])

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
        struct json_object *prev = member(member(old, SECRETS[i][0]), SECRETS[i][1]);
        if (json_object_is_type(prev, json_type_string) && !is_placeholder(prev))
            json_object_object_add(block, SECRETS[i][1], json_object_get(prev));
    }
    json_object_put(old);
}
