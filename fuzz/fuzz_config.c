/* libFuzzer target for the configuration schema: any bytes through the JSON
 * parser and, when they parse, through rd_config_validate, rd_config_limits and
 * rd_config_emulator_tps. Checks the invariants callers rely on: a verdict of
 * 0 or RD_EINVAL, NUL-terminated error strings, a field only on error, and
 * limits always inside their documented ranges; an accepted ip_filtering
 * block (without country lists) compiles in the ip_filter stage. */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "proxy/config.h"
#include "proxy/stages/ip_filter.h"
#include "util/err.h"
#include "util/json.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void check_limits(const struct rd_limits *l)
{
    if (l->max_body_bytes < 1 || l->max_body_bytes > 1073741824 || l->connect_timeout_ms < 1 ||
        l->connect_timeout_ms > 600000 || l->upstream_timeout_ms < 1 || l->upstream_timeout_ms > 86400000 ||
        l->idle_timeout_ms < 1 || l->idle_timeout_ms > 3600000)
        abort();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct json_object *doc = NULL;
    struct rd_json_err jerr;
    if (rd_json_parse((const char *)data, size, RD_CONFIG_MAX_DOC_BYTES, &doc, &jerr) != 0)
        return 0;

    struct rd_config_err err;
    memset(&err, 'x', sizeof err);
    int rc = rd_config_validate(doc, &err);
    if (rc != 0 && rc != RD_EINVAL)
        abort();
    if (memchr(err.field, '\0', sizeof err.field) == NULL || memchr(err.message, '\0', sizeof err.message) == NULL)
        abort();
    if ((rc == 0) != (err.message[0] == '\0'))
        abort();

    struct rd_limits limits;
    rd_config_limits(doc, &limits);
    check_limits(&limits);
    double tps = rd_config_emulator_tps(doc);
    if (!(tps >= 0 && tps <= 100000))
        abort();

    /* What the schema accepts the ip_filter stage compiles: the pattern
     * syntax is one (the matcher's). Country lists are left out: they open
     * database files. */
    struct json_object *ipf = rd_json_get(doc, "ip_filtering");
    if (rc == 0 && ipf != NULL && rd_json_get(ipf, "countries_allowed") == NULL &&
        rd_json_get(ipf, "countries_blocked") == NULL) {
        struct rd_ipfilter *f = NULL;
        if (rd_ipfilter_compile(doc, &f, &err) != 0)
            abort();
        rd_ipfilter_free(f);
    }

    json_object_put(doc);
    return 0;
}
