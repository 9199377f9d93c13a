#include "proxy/config.h"

#include <inttypes.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>

#include "http/headers.h"
#include "util/err.h"
#include "util/ipmatch.h"
#include "util/json.h"

/* The schema is data: every known block and field is a row in the tables
 * below, and one generic walker (check_value) checks a document against them.
 * The few rules a row cannot express are the small functions named in the
 * rows (key_ok, check, rule); each says why it exists. */

enum ftype {
    T_BOOL,   /* true / false */
    T_NUMBER, /* any JSON number in [dmin, dmax] */
    T_INT,    /* JSON integer literal in [min, max] */
    T_STRING, /* string of min..max bytes, no NUL, then check() */
    T_ENUM,   /* string equal to one of choices */
    T_SIZE,   /* "10MB"-style string or integer byte count, in [min, max] bytes */
    T_OBJECT, /* members by name, plus keys accepted by key_ok checked against item */
    T_ARRAY,  /* at most max elements, each checked against item */
    T_CUSTOM, /* any JSON value, checked by rule alone (a field of two shapes) */
    T_JSON,   /* any JSON value; a string of at most max bytes, anything else at most max bytes serialised */
};

struct ctx;

/* Returns NULL when the string is acceptable, else what was expected. */
typedef const char *(*check_str_fn)(const char *s, size_t len);
typedef bool (*key_ok_fn)(const char *key);
typedef int (*rule_fn)(struct ctx *c, struct json_object *obj);

struct field {
    const char *name;            /* member key; NULL ends a member list */
    enum ftype type;
    bool required;
    int64_t min, max;            /* T_INT, T_SIZE: range; T_STRING: length; T_OBJECT, T_ARRAY: max entries (0: no cap);
                                  * T_ARRAY: min entries */
    double dmin, dmax;           /* T_NUMBER range */
    bool dmin_open;              /* T_NUMBER: dmin itself is excluded (a factor or threshold of 0 means nothing) */
    int64_t dflt;                /* T_INT default the engine applies (limits only) */
    const char *const *choices;  /* T_ENUM, NULL-terminated */
    check_str_fn check;          /* T_STRING extra rule */
    const struct field *members; /* T_OBJECT fixed members (may be NULL) */
    const struct field *item;    /* T_ARRAY elements; T_OBJECT values of keys accepted by key_ok */
    key_ok_fn key_ok;            /* T_OBJECT: which other keys are allowed */
    const char *keys_desc;       /* T_OBJECT with key_ok: those keys, for messages */
    bool unique;                 /* T_ARRAY: no element twice */
    rule_fn rule;                /* T_OBJECT: cross-member rule run once the members pass; T_CUSTOM: the check */
};

#define END {.name = NULL}
#define BOOL(n) {.name = n, .type = T_BOOL}
#define INT(n, lo, hi) {.name = n, .type = T_INT, .min = (lo), .max = (hi)}
#define INT_REQ(n, lo, hi) {.name = n, .type = T_INT, .required = true, .min = (lo), .max = (hi)}
#define NUM(n, lo, hi) {.name = n, .type = T_NUMBER, .dmin = (lo), .dmax = (hi)}
/* A required number in (lo, hi]. */
#define NUM_ABOVE_REQ(n, lo, hi) \
    {.name = n, .type = T_NUMBER, .required = true, .dmin = (lo), .dmax = (hi), .dmin_open = true}
#define ENUM(n, ch) {.name = n, .type = T_ENUM, .choices = (ch)}
#define ENUM_REQ(n, ch) {.name = n, .type = T_ENUM, .required = true, .choices = (ch)}
#define SIZE(n, lo, hi) {.name = n, .type = T_SIZE, .min = (lo), .max = (hi)}
#define OBJ(n, m) {.name = n, .type = T_OBJECT, .members = (m)}

#define KIB INT64_C(1024)
#define MIB (KIB * 1024)
#define GIB (MIB * 1024)
#define TTL_MAX INT64_C(315360000)      /* ten years in seconds: now_ms + ttl * 1000 cannot overflow */
#define SEED_MAX INT64_C(9007199254740991) /* 2^53 - 1: survives a round trip through JavaScript */
#define EMU_TPS_MAX 100000.0
#define RATES_EPSILON 1e-9 /* 0.2 + 0.4 + 0.3 + 0.1 is 1.0000000000000002 in binary */

static bool is_status_rate_key(const char *key);
static bool is_model_name(const char *key);
static bool is_settable_header(const char *key);
static const char *check_ratelimit_key(const char *s, size_t len);
static const char *check_header_value(const char *s, size_t len);
static const char *check_ip_pattern(const char *s, size_t len);
static const char *check_country(const char *s, size_t len);
static const char *check_path(const char *s, size_t len);
static const char *check_model_value(const char *s, size_t len);
static const char *check_aws_region(const char *s, size_t len);
static const char *check_aws_secret(const char *s, size_t len);
static int rule_rates_sum(struct ctx *c, struct json_object *obj);
static int rule_allowlist(struct ctx *c, struct json_object *obj);
static int rule_nth(struct ctx *c, struct json_object *v);
static int rule_respond(struct ctx *c, struct json_object *obj);
static bool is_header_name(const char *s, size_t len);
static bool is_header_name_key(const char *key);
static const char *check_path_glob(const char *s, size_t len);
static const char *check_method(const char *s, size_t len);
static int rule_min_max(struct ctx *c, struct json_object *obj);
static int rule_ratelimit(struct ctx *c, struct json_object *obj);
static int rule_peak_window(struct ctx *c, struct json_object *obj);
static const char *check_header_name(const char *s, size_t len);
static const char *check_clock_start(const char *s, size_t len);
static const char *check_clock_end(const char *s, size_t len);

/* limits: the one block the engine reads today. One list generates both the
 * schema rows and the struct rd_limits slots, so they cannot drift apart. */
#define LIMIT_FIELDS(X)                                         \
    X(max_body_bytes, 1, GIB, 32 * MIB)                         \
    X(connect_timeout_ms, 1, INT64_C(600000), INT64_C(10000))   \
    X(upstream_timeout_ms, 1, INT64_C(86400000), INT64_C(600000)) \
    X(idle_timeout_ms, 1, INT64_C(3600000), INT64_C(60000))
#define LIMIT_ROW(n, lo, hi, d) {.name = #n, .type = T_INT, .min = (lo), .max = (hi), .dflt = (d)},
#define LIMIT_SLOT(n, lo, hi, d) offsetof(struct rd_limits, n),

static const struct field limits_fields[] = {LIMIT_FIELDS(LIMIT_ROW) END};
static const size_t limit_slots[] = {LIMIT_FIELDS(LIMIT_SLOT)};

/* proxy/inject.h: how the rates combine and what delay_ms means. */
static const struct field timeout_fields[] = {
    BOOL("enabled"), INT("delay_ms", 0, 3600000), NUM("timeout_rate", 0, 1), NUM("hang_rate", 0, 1), END,
};

/* retry_after_s: the Retry-After of injected 429s and 503s. */
static const struct field error_fields[] = {BOOL("enabled"), INT("retry_after_s", 0, 86400), END};
static const struct field rate_value = NUM(NULL, 0, 1);

/* The limits mirror proxy/ratelimit.h: RD_RL_CEILING_MAX for tokens, and
 * RD_RL_WINDOW_CEILING_MAX for a sliding window's rate plus burst
 * (rule_ratelimit). */
#define RL_WINDOW_CEILING_MAX INT64_C(1000000)
#define RL_TOKENS_MAX INT64_C(100000000)
#define RL_BODY_MAX INT64_C(16384)
static const char *const rl_algorithm_choices[] = {"sliding_window", "token_bucket", NULL};
static const struct field header_value = {.type = T_STRING, .min = 0, .max = 1024, .check = check_header_value};
static const struct field rl_response_fields[] = {
    INT("status_code", 400, 599),
    {.name = "headers", .type = T_OBJECT, .max = 32, .item = &header_value, .key_ok = is_settable_header,
     .keys_desc = "header names (HTTP tokens other than Content-Length and hop-by-hop fields)"},
    /* sent instead of the provider's native error body: a string as is, any
     * other JSON value serialised */
    {.name = "body", .type = T_JSON, .max = RL_BODY_MAX},
    END,
};
static const struct field ratelimit_fields[] = {
    BOOL("enabled"),
    INT_REQ("requests_per_minute", 1, 1000000),
    INT("burst_allowance", 0, 1000000),
    INT("tokens_per_minute", 1, RL_TOKENS_MAX),
    ENUM("algorithm", rl_algorithm_choices),
    {.name = "key", .type = T_STRING, .min = 1, .max = 128, .check = check_ratelimit_key},
    OBJ("rate_limit_response", rl_response_fields),
    END,
};

static const char *const ipmode_choices[] = {"allowlist", "blocklist", NULL};
static const struct field ip_item = {.type = T_STRING, .min = 1, .max = RD_IP_MAX_TEXT, .check = check_ip_pattern};
static const struct field country_item = {.type = T_STRING, .min = 2, .max = 2, .check = check_country};
/* A list takes as many patterns as one address set holds (util/ipmatch.h). */
#define IP_LIST(n) {.name = n, .type = T_ARRAY, .max = RD_IPSET_MAX_ENTRIES, .item = &ip_item}
#define COUNTRY_LIST(n) {.name = n, .type = T_ARRAY, .max = 256, .item = &country_item}
static const struct field ipfilter_fields[] = {
    BOOL("enabled"),
    ENUM_REQ("mode", ipmode_choices),
    IP_LIST("allowed_ips"),
    IP_LIST("blocked_ips"),
    IP_LIST("trusted_proxies"),
    COUNTRY_LIST("countries_allowed"),
    COUNTRY_LIST("countries_blocked"),
    /* legacy GeoIP country databases (util/geoip.h); opened by the stage */
    {.name = "geoip_database", .type = T_STRING, .min = 1, .max = 4096, .check = check_path},
    {.name = "geoip_database_v6", .type = T_STRING, .min = 1, .max = 4096, .check = check_path},
    END,
};

static const struct field ttl_value = INT(NULL, 0, TTL_MAX);
static const struct field request_type_fields[] = {
    INT("completion", 0, TTL_MAX), INT("chat", 0, TTL_MAX),     INT("embedding", 0, TTL_MAX),
    INT("responses", 0, TTL_MAX),  INT("messages", 0, TTL_MAX), INT("other", 0, TTL_MAX),
    END,
};
/* The adaptive rules of cache/ttl.h. usage_based and content_based mean
 * nothing without their numbers, so those are required; peak_hours'
 * days default to every day. */
static const struct field usage_based_fields[] = {
    INT_REQ("every_hits", 1, 1000000),
    INT_REQ("max_s", 1, TTL_MAX),
    END,
};
static const char *const day_choices[] = {"mon", "tue", "wed", "thu", "fri", "sat", "sun", NULL};
static const struct field day_item = {.type = T_ENUM, .choices = day_choices};
static const struct field peak_hours_fields[] = {
    {.name = "start", .type = T_STRING, .required = true, .min = 1, .max = 16, .check = check_clock_start},
    {.name = "end", .type = T_STRING, .required = true, .min = 1, .max = 16, .check = check_clock_end},
    {.name = "days", .type = T_ARRAY, .min = 1, .max = 7, .item = &day_item, .unique = true},
    NUM_ABOVE_REQ("factor", 0, 1),
    END,
};
static const struct field content_based_fields[] = {INT_REQ("truncated_s", 0, TTL_MAX), END};
static const struct field cache_ttl_fields[] = {
    INT("default", 0, TTL_MAX),
    /* keys: exact model names, or globs with '*' and '?' (cache/ttl.h) */
    {.name = "by_model", .type = T_OBJECT, .max = 1024, .item = &ttl_value, .key_ok = is_model_name,
     .keys_desc = "model names or globs of 1 to 256 printable characters"},
    OBJ("by_request_type", request_type_fields),
    OBJ("usage_based", usage_based_fields),
    {.name = "peak_hours", .type = T_OBJECT, .members = peak_hours_fields, .rule = rule_peak_window},
    OBJ("content_based", content_based_fields),
    END,
};

static const struct field memory_fields[] = {
    SIZE("cache_max_size", 1, 1024 * GIB),
    INT("cache_max_entries", 0, 100000000),
    SIZE("log_buffer_size", KIB, GIB),
    SIZE("response_buffer_size", KIB, GIB),
    END,
};

/* The stage names of the product description, plus ip_filter. */
static const char *const stage_choices[] = {
    "authentication",      "ip_filter",  "rate_limiting", "request_validation", "caching", "failure_simulation",
    "provider_forwarding", "response_processing", "logging", NULL,
};
static const struct field stage_item = {.type = T_ENUM, .choices = stage_choices};

static const struct field emulator_fields[] = {
    NUM("tokens_per_second", 0, EMU_TPS_MAX),
    INT("seed", 0, SEED_MAX),
    END,
};

/* cache (docs/caching.md; read by proxy/stages/cache.c). Defaults:
 * enabled, normal, instant, persist, credential, no key headers, coalesce,
 * no error-rate invalidation, invalidate on model change. */
static const char *const cache_mode_choices[] = {"normal", "record", "replay", NULL};
static const char *const replay_timing_choices[] = {"instant", "original", NULL};
static const char *const cache_scope_choices[] = {"credential", "proxy", NULL};
static const struct field key_header_item = {.type = T_STRING, .min = 1, .max = 64, .check = check_header_name};
static const struct field error_rate_fields[] = {
    NUM_ABOVE_REQ("threshold", 0, 1),
    INT("window_s", 1, 3600),
    INT("min_requests", 1, 1000000),
    END,
};
static const struct field cache_fields[] = {
    BOOL("enabled"),
    ENUM("mode", cache_mode_choices),
    ENUM("replay_timing", replay_timing_choices),
    BOOL("persist"),
    ENUM("scope", cache_scope_choices),
    {.name = "key_headers", .type = T_ARRAY, .max = 16, .item = &key_header_item, .unique = true},
    BOOL("coalesce"),
    OBJ("invalidate_on_error_rate", error_rate_fields),
    BOOL("invalidate_on_model_change"),
    END,
};

/* "auto": the native HTTP/1.1 client for http:// to an IP or localhost,
 * libcurl otherwise; "curl": libcurl for everything. */
static const char *const client_choices[] = {"auto", "curl", NULL};
static const struct field upstream_fields[] = {
    ENUM("client", client_choices),
    /* PEM bundle of CAs trusted for an https upstream (a private or self-signed CA). */
    {.name = "ca_file", .type = T_STRING, .min = 1, .max = 4096},
    END,
};

/* deployments (azure_openai): deployment name -> the model it serves, for
 * logs, cache TTL rules and prices (providers/azure_openai.c). */
static const struct field deployment_model = {.type = T_STRING, .min = 1, .max = 256, .check = check_model_value};
/* Bedrock: the credentials the proxy re-signs SigV4 requests with, and the
 * region. secret_access_key and session_token are write-only in the API
 * (src/proxy/secrets.c). */
static const struct field aws_fields[] = {
    {.name = "access_key_id", .type = T_STRING, .min = 1, .max = 128, .check = check_aws_secret},
    {.name = "secret_access_key", .type = T_STRING, .min = 1, .max = 256, .check = check_aws_secret},
    {.name = "session_token", .type = T_STRING, .min = 1, .max = 8192, .check = check_aws_secret},
    {.name = "region", .type = T_STRING, .min = 1, .max = 32, .check = check_aws_region},
    END,
};

/* response_delay (stages/response_delay.c): a uniform delay in [min_ms, max_ms]. */
#define DELAY_MAX INT64_C(600000)
static const struct field response_delay_fields[] = {
    BOOL("enabled"), INT("min_ms", 0, DELAY_MAX), INT("max_ms", 0, DELAY_MAX), BOOL("cache_only"), END,
};

/* stream_faults and stream_timing (proxy/stages/stream.h). An after-events
 * count or a stall past the transfer deadline is accepted: the deadline
 * (limits.upstream_timeout_ms) then cuts the stream first. */
#define EVENTS_MAX INT64_C(1000000)
static const struct field stream_faults_fields[] = {
    BOOL("enabled"),
    NUM("cut_rate", 0, 1),
    INT("cut_after_events", 0, EVENTS_MAX),
    NUM("stall_rate", 0, 1),
    INT("stall_after_events", 0, EVENTS_MAX),
    INT("stall_ms", 1, 3600000),
    NUM("error_rate", 0, 1),
    INT("error_after_events", 0, EVENTS_MAX),
    INT("error_status", 400, 599),
    NUM("malformed_rate", 0, 1),
    INT("malformed_after_events", 0, EVENTS_MAX),
    NUM("duplicate_rate", 0, 1),
    INT("duplicate_after_events", 0, EVENTS_MAX),
    END,
};
static const struct field stream_timing_fields[] = {
    BOOL("enabled"),
    INT("ttft_ms", 0, 600000),
    NUM("tokens_per_second", 0, 100000),
    INT("jitter_ms", 0, 60000),
    END,
};

/* logging: the request log (stages/record.c); on unless enabled is false. */
static const struct field logging_fields[] = {BOOL("enabled"), END};

/* failure: how simulated outcomes show (proxy/failure.h). */
static const struct field failure_fields[] = {BOOL("reveal"), BOOL("request_overrides"), END};

/* scenario: scripted outcomes, first matching entry wins
 * (proxy/stages/scenario.h; the list's cap is RD_SCENARIO_MAX there). */
#define SCENARIO_MAX 256
#define SCENARIO_NTH_MAX 64
static const char *const stream_fault_choices[] = {"cut", "stall", "error", "malformed", "duplicate", NULL};
static const struct field scenario_match_fields[] = {
    {.name = "nth", .type = T_CUSTOM, .rule = rule_nth},
    {.name = "model", .type = T_STRING, .min = 1, .max = 256, .check = check_model_value},
    {.name = "path", .type = T_STRING, .min = 1, .max = 1024, .check = check_path_glob},
    {.name = "method", .type = T_STRING, .min = 1, .max = 16, .check = check_method},
    {.name = "header", .type = T_OBJECT, .max = 16, .item = &header_value, .key_ok = is_header_name_key,
     .keys_desc = "header names (HTTP tokens of at most 64 characters)"},
    END,
};
static const struct field scenario_respond_fields[] = {
    INT("status", 400, 599),
    {.name = "message", .type = T_STRING, .min = 1, .max = 1024, .check = check_header_value},
    INT("retry_after_s", 0, 86400),
    INT("delay_ms", 0, 3600000),
    BOOL("hang"),
    ENUM("stream_fault", stream_fault_choices),
    INT("after_events", 0, 1000000),
    INT("stall_ms", 0, 3600000),
    END,
};
static const struct field scenario_entry_fields[] = {
    OBJ("match", scenario_match_fields),
    {.name = "respond", .type = T_OBJECT, .required = true, .members = scenario_respond_fields,
     .rule = rule_respond},
    END,
};
static const struct field scenario_item = {.type = T_OBJECT, .members = scenario_entry_fields};

static const struct field blocks[] = {
    OBJ("limits", limits_fields),
    /* seed: every random decision of the failure simulation (proxy/failure.h) */
    INT("seed", 0, SEED_MAX),
    OBJ("failure", failure_fields),
    {.name = "scenario", .type = T_ARRAY, .max = SCENARIO_MAX, .item = &scenario_item},
    {.name = "timeout_config", .type = T_OBJECT, .members = timeout_fields, .rule = rule_rates_sum},
    {.name = "error_injection", .type = T_OBJECT, .max = 201, .members = error_fields, .item = &rate_value,
     .key_ok = is_status_rate_key, .keys_desc = "\"<status>_rate\" with a status from 400 to 599",
     .rule = rule_rates_sum},
    {.name = "response_delay", .type = T_OBJECT, .members = response_delay_fields, .rule = rule_min_max},
    {.name = "rate_limiting", .type = T_OBJECT, .members = ratelimit_fields, .rule = rule_ratelimit},
    {.name = "stream_faults", .type = T_OBJECT, .members = stream_faults_fields, .rule = rule_rates_sum},
    OBJ("stream_timing", stream_timing_fields),
    {.name = "ip_filtering", .type = T_OBJECT, .members = ipfilter_fields, .rule = rule_allowlist},
    OBJ("cache_ttl", cache_ttl_fields),
    OBJ("memory_limits", memory_fields),
    {.name = "middleware_pipeline", .type = T_ARRAY, .max = 16, .item = &stage_item, .unique = true},
    OBJ("emulator", emulator_fields),
    OBJ("cache", cache_fields),
    OBJ("upstream", upstream_fields),
    {.name = "deployments", .type = T_OBJECT, .max = 1024, .item = &deployment_model, .key_ok = is_model_name,
     .keys_desc = "deployment names of 1 to 256 printable characters"},
    OBJ("aws", aws_fields),
    OBJ("logging", logging_fields),
    END,
};

static const struct field root = {.name = "", .type = T_OBJECT, .members = blocks};

/* ---- walking ---------------------------------------------------------- */

struct ctx {
    struct rd_config_err *err;
    char path[sizeof(((struct rd_config_err *)0)->field)]; /* dotted path of the value being checked */
    size_t len;
};

__attribute__((format(printf, 2, 3))) static size_t path_push(struct ctx *c, const char *fmt, ...)
{
    size_t mark = c->len;
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(c->path + c->len, sizeof c->path - c->len, fmt, ap);
    va_end(ap);
    /* A path longer than the buffer is truncated rather than dropped. */
    if (n > 0)
        c->len = c->len + (size_t)n < sizeof c->path ? c->len + (size_t)n : sizeof c->path - 1;
    return mark;
}

static void path_pop(struct ctx *c, size_t mark)
{
    c->len = mark;
    c->path[mark] = '\0';
}

static size_t path_push_key(struct ctx *c, const char *key)
{
    return c->len ? path_push(c, ".%s", key) : path_push(c, "%s", key);
}

/* Records the error at the current path with a message formatted as is.
 * Returns RD_EINVAL. */
__attribute__((format(printf, 2, 3))) static int fail_plain(struct ctx *c, const char *fmt, ...)
{
    snprintf(c->err->field, sizeof c->err->field, "%s", c->path);
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(c->err->message, sizeof c->err->message, fmt, ap);
    va_end(ap);
    return RD_EINVAL;
}

/* Same, with the message prefixed by the path so that it reads on its own:
 * "rate_limiting.requests_per_minute must be an integer between ...". */
__attribute__((format(printf, 2, 3))) static int fail(struct ctx *c, const char *fmt, ...)
{
    snprintf(c->err->field, sizeof c->err->field, "%s", c->path);
    int n = snprintf(c->err->message, sizeof c->err->message, "%s ",
                     c->len ? c->path : "the configuration document");
    size_t off = n > 0 && (size_t)n < sizeof c->err->message ? (size_t)n : 0;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(c->err->message + off, sizeof c->err->message - off, fmt, ap);
    va_end(ap);
    return RD_EINVAL;
}

/* Writes "a, b, c" (names of a choices list or of members) into dst. */
static void join_names(char *dst, size_t cap, const char *const *choices, const struct field *members)
{
    size_t off = 0;
    dst[0] = '\0';
    for (size_t i = 0;; i++) {
        const char *name = choices ? choices[i] : members ? members[i].name : NULL;
        if (name == NULL || off >= cap)
            break;
        int n = snprintf(dst + off, cap - off, "%s%s", i ? ", " : "", name);
        if (n < 0)
            break;
        off += (size_t)n;
    }
}

static int check_value(struct ctx *c, const struct field *f, struct json_object *v);

static bool int_in_range(const struct field *f, struct json_object *v)
{
    /* json-c saturates integers beyond 64 bits at INT64_MIN/MAX, which every
     * range here excludes, so huge literals are rejected too. */
    if (!rd_json_is_int(v))
        return false;
    int64_t i = json_object_get_int64(v);
    return i >= f->min && i <= f->max;
}

static int check_string(struct ctx *c, const struct field *f, struct json_object *v)
{
    if (!json_object_is_type(v, json_type_string))
        return fail(c, "must be a string");
    const char *s = json_object_get_string(v);
    size_t len = (size_t)json_object_get_string_len(v);
    if (memchr(s, '\0', len) != NULL)
        return fail(c, "must not contain NUL characters");
    if ((int64_t)len < f->min || (int64_t)len > f->max)
        return fail(c, "must be a string of %" PRId64 " to %" PRId64 " characters", f->min, f->max);
    const char *expected = f->check ? f->check(s, len) : NULL;
    return expected ? fail(c, "%s", expected) : 0;
}

static int check_enum(struct ctx *c, const struct field *f, struct json_object *v)
{
    if (json_object_is_type(v, json_type_string)) {
        const char *s = json_object_get_string(v);
        size_t len = (size_t)json_object_get_string_len(v);
        for (size_t i = 0; f->choices[i]; i++)
            if (strlen(f->choices[i]) == len && memcmp(f->choices[i], s, len) == 0)
                return 0;
    }
    char names[200];
    join_names(names, sizeof names, f->choices, NULL);
    return fail(c, "must be one of: %s", names);
}

/* A T_SIZE value in f's range: true with *bytes set. */
static bool size_in_range(const struct field *f, struct json_object *v, uint64_t *bytes)
{
    if (rd_json_is_int(v)) {
        if (!int_in_range(f, v))
            return false;
        *bytes = (uint64_t)json_object_get_int64(v);
        return true;
    }
    if (!json_object_is_type(v, json_type_string))
        return false;
    const char *s = json_object_get_string(v);
    uint64_t n = 0;
    if (strlen(s) != (size_t)json_object_get_string_len(v) || rd_config_parse_size(s, &n) != 0 ||
        n < (uint64_t)f->min || n > (uint64_t)f->max)
        return false;
    *bytes = n;
    return true;
}

static int check_size(struct ctx *c, const struct field *f, struct json_object *v)
{
    uint64_t bytes = 0;
    if (size_in_range(f, v, &bytes))
        return 0;
    return fail(c, "must be a size such as \"10MB\" (units B, KB, MB, GB) or a byte count, from %" PRId64
                   " to %" PRId64 " bytes",
                f->min, f->max);
}

static const struct field *find_member(const struct field *f, const char *key)
{
    for (const struct field *m = f->members; m && m->name; m++)
        if (strcmp(m->name, key) == 0)
            return m;
    if (f->key_ok && f->key_ok(key))
        return f->item;
    return NULL;
}

static int unknown_key(struct ctx *c, const struct field *f, const char *key)
{
    if (f == &root)
        return fail_plain(c, "unknown configuration block '%s'", key);
    char names[160];
    join_names(names, sizeof names, NULL, f->members);
    if (f->key_ok)
        return fail_plain(c, "unknown field '%s': expected %s%s%s", c->path, names, names[0] ? " or " : "",
                          f->keys_desc);
    return fail_plain(c, "unknown field '%s': expected one of %s", c->path, names);
}

static int check_object(struct ctx *c, const struct field *f, struct json_object *v)
{
    if (!json_object_is_type(v, json_type_object))
        return fail(c, "must be an object");
    if (f->max > 0 && json_object_object_length(v) > f->max)
        return fail(c, "must have at most %" PRId64 " fields", f->max);
    struct json_object_iterator it = json_object_iter_begin(v);
    struct json_object_iterator end = json_object_iter_end(v);
    for (; !json_object_iter_equal(&it, &end); json_object_iter_next(&it)) {
        const char *key = json_object_iter_peek_name(&it);
        const struct field *m = find_member(f, key);
        size_t mark = path_push_key(c, key);
        int rc = m ? check_value(c, m, json_object_iter_peek_value(&it)) : unknown_key(c, f, key);
        path_pop(c, mark);
        if (rc != 0)
            return rc;
    }
    for (const struct field *m = f->members; m && m->name; m++) {
        if (m->required && rd_json_get(v, m->name) == NULL) {
            size_t mark = path_push_key(c, m->name);
            int rc = fail(c, "is required");
            path_pop(c, mark);
            return rc;
        }
    }
    return f->rule ? f->rule(c, v) : 0;
}

static int check_array(struct ctx *c, const struct field *f, struct json_object *v)
{
    if (!json_object_is_type(v, json_type_array))
        return fail(c, "must be an array");
    size_t n = json_object_array_length(v);
    if (f->max > 0 && n > (size_t)f->max)
        return fail(c, "must have at most %" PRId64 " entries", f->max);
    if (n < (size_t)f->min)
        return f->min == 1 ? fail(c, "must not be empty") : fail(c, "must have at least %" PRId64 " entries", f->min);
    for (size_t i = 0; i < n; i++) {
        struct json_object *e = json_object_array_get_idx(v, i);
        size_t mark = path_push(c, "[%zu]", i);
        int rc = check_value(c, f->item, e);
        /* Elements are strings once checked; unique arrays are short (max).
         * Compared without case: header names are case-insensitive, and the
         * enum lists hold lower-case choices only, so for them it is strcmp. */
        for (size_t j = 0; rc == 0 && f->unique && j < i; j++)
            if (strcasecmp(json_object_get_string(json_object_array_get_idx(v, j)), json_object_get_string(e)) == 0)
                rc = fail(c, "repeats \"%s\" (already at index %zu)", json_object_get_string(e), j);
        path_pop(c, mark);
        if (rc != 0)
            return rc;
    }
    return 0;
}

static int check_value(struct ctx *c, const struct field *f, struct json_object *v)
{
    switch (f->type) {
    case T_BOOL:
        return json_object_is_type(v, json_type_boolean) ? 0 : fail(c, "must be true or false");
    case T_INT:
        return int_in_range(f, v) ? 0
                                  : fail(c, "must be an integer between %" PRId64 " and %" PRId64, f->min, f->max);
    case T_NUMBER: {
        double d = rd_json_is_number(v) ? json_object_get_double(v) : 0;
        /* Written so that NaN (which json-c accepts) fails too. */
        if (rd_json_is_number(v) && (f->dmin_open ? d > f->dmin : d >= f->dmin) && d <= f->dmax)
            return 0;
        if (f->dmin_open)
            return fail(c, "must be a number above %g and at most %g", f->dmin, f->dmax);
        return fail(c, "must be a number between %g and %g", f->dmin, f->dmax);
    }
    case T_STRING: return check_string(c, f, v);
    case T_ENUM: return check_enum(c, f, v);
    case T_SIZE: return check_size(c, f, v);
    case T_OBJECT: return check_object(c, f, v);
    case T_ARRAY: return check_array(c, f, v);
    case T_CUSTOM: return f->rule(c, v);
    case T_JSON: {
        size_t len = 0;
        if (json_object_is_type(v, json_type_string))
            len = (size_t)json_object_get_string_len(v);
        else
            (void)rd_json_str(v, &len);
        return len <= (size_t)f->max ? 0 : fail(c, "must be at most %" PRId64 " bytes", f->max);
    }
    }
    return fail(c, "has an unsupported schema type"); /* unreachable: the switch is exhaustive */
}

/* ---- rules a row cannot express ---------------------------------------- */

/* One random draw picks at most one outcome per request, so the
 * probabilities of the outcomes of a block (its *_rate members) must add up
 * to at most 1. */
/* response_delay: an empty range is a mistake, not "no delay". */
static int rule_min_max(struct ctx *c, struct json_object *obj)
{
    struct json_object *lo = rd_json_get(obj, "min_ms"), *hi = rd_json_get(obj, "max_ms");
    if (lo == NULL || hi == NULL || json_object_get_int64(lo) <= json_object_get_int64(hi))
        return 0;
    size_t mark = path_push_key(c, "max_ms");
    int rc = fail(c, "must be at least min_ms (%" PRId64 ")", json_object_get_int64(lo));
    path_pop(c, mark);
    return rc;
}

static int rule_rates_sum(struct ctx *c, struct json_object *obj)
{
    double sum = 0;
    struct json_object_iterator it = json_object_iter_begin(obj);
    struct json_object_iterator end = json_object_iter_end(obj);
    for (; !json_object_iter_equal(&it, &end); json_object_iter_next(&it)) {
        const char *key = json_object_iter_peek_name(&it);
        size_t len = strlen(key);
        if (len > 5 && strcmp(key + len - 5, "_rate") == 0)
            sum += json_object_get_double(json_object_iter_peek_value(&it));
    }
    if (sum > 1 + RATES_EPSILON)
        return fail(c, "rates must add up to at most 1 (they add up to %g)", sum);
    return 0;
}

/* An enabled allowlist with no entries would refuse every client, which is
 * never what the user meant: it needs an address or a country to let in. */
static int rule_allowlist(struct ctx *c, struct json_object *obj)
{
    const char *mode = rd_json_get_str(obj, "mode");
    struct json_object *list = rd_json_get(obj, "allowed_ips");
    struct json_object *countries = rd_json_get(obj, "countries_allowed");
    if (!rd_json_get_bool(obj, "enabled", true) || mode == NULL || strcmp(mode, "allowlist") != 0)
        return 0;
    if ((list != NULL && json_object_array_length(list) > 0) ||
        (countries != NULL && json_object_array_length(countries) > 0))
        return 0;
    size_t mark = path_push_key(c, "allowed_ips");
    int rc = fail(c, "must list at least one entry when mode is \"allowlist\" and countries_allowed is empty (an "
                     "empty allowlist blocks every client)");
    path_pop(c, mark);
    return rc;
}

/* scenario[i].match.nth: one request number or a list of them, from 1. */
static int rule_nth(struct ctx *c, struct json_object *v)
{
    static const struct field n = INT(NULL, 1, SEED_MAX);
    if (rd_json_is_int(v))
        return int_in_range(&n, v) ? 0 : fail(c, "must be an integer between 1 and %" PRId64, n.max);
    if (!json_object_is_type(v, json_type_array))
        return fail(c, "must be a request number (from 1) or a list of request numbers");
    size_t len = json_object_array_length(v);
    if (len == 0 || len > SCENARIO_NTH_MAX)
        return fail(c, "must list 1 to %d request numbers", SCENARIO_NTH_MAX);
    for (size_t i = 0; i < len; i++) {
        size_t mark = path_push(c, "[%zu]", i);
        int rc = check_value(c, &n, json_object_array_get_idx(v, i));
        path_pop(c, mark);
        if (rc != 0)
            return rc;
    }
    return 0;
}

/* Fails naming member key of the object at the current path. */
__attribute__((format(printf, 3, 4))) static int fail_member(struct ctx *c, const char *key, const char *fmt, ...)
{
    size_t mark = path_push_key(c, key);
    char msg[200];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    int rc = fail(c, "%s", msg);
    path_pop(c, mark);
    return rc;
}

/* A sliding window keeps one timestamp per admission in the window, so its
 * rate plus burst is capped lower than a bucket's (proxy/ratelimit.h). */
static int rule_ratelimit(struct ctx *c, struct json_object *obj)
{
    const char *alg = rd_json_get_str(obj, "algorithm");
    int64_t ceiling = rd_json_get_int(obj, "requests_per_minute", 0) + rd_json_get_int(obj, "burst_allowance", 0);
    if ((alg != NULL && strcmp(alg, "token_bucket") == 0) || ceiling <= RL_WINDOW_CEILING_MAX)
        return 0;
    size_t mark = path_push_key(c, "burst_allowance");
    int rc = fail(c, "plus requests_per_minute must be at most %" PRId64
                     " with the sliding_window algorithm (it keeps one timestamp per request in the window): "
                     "use \"algorithm\": \"token_bucket\" for more",
                  RL_WINDOW_CEILING_MAX);
    path_pop(c, mark);
    return rc;
}

/* cache_ttl.peak_hours: a window from a time to the same time is empty
 * (or the whole day: either way not what the user meant to write). */
static int rule_peak_window(struct ctx *c, struct json_object *obj)
{
    uint32_t start = 0, end = 0;
    if (rd_config_parse_clock(rd_json_get_str(obj, "start"), &start) != 0 ||
        rd_config_parse_clock(rd_json_get_str(obj, "end"), &end) != 0 || start != end)
        return 0;
    return fail_member(c, "end", "must differ from start (\"%s\"): use \"00:00\" to \"24:00\" for the whole day",
                       rd_json_get_str(obj, "start"));
}

/* scenario[i].respond: one outcome the stages can carry out together. A
 * hang never answers, so nothing else can happen to it; an error status is
 * no stream, so it cannot carry a stream fault; the details of an outcome
 * need the outcome. */
static int rule_respond(struct ctx *c, struct json_object *obj)
{
    bool status = rd_json_get(obj, "status") != NULL;
    bool delay = rd_json_get_int(obj, "delay_ms", 0) > 0;
    bool hang = rd_json_get_bool(obj, "hang", false);
    const char *sf = rd_json_get_str(obj, "stream_fault");
    if (hang && (status || delay || sf))
        return fail_member(c, "hang", "cannot be combined with status, delay_ms or stream_fault: a hanging request "
                                      "never answers");
    if (status && sf)
        return fail_member(c, "stream_fault", "cannot be combined with status: an error response has no stream");
    if (!status && rd_json_get(obj, "message"))
        return fail_member(c, "message", "requires status");
    if (!status && rd_json_get(obj, "retry_after_s"))
        return fail_member(c, "retry_after_s", "requires status");
    if (!sf && rd_json_get(obj, "after_events"))
        return fail_member(c, "after_events", "requires stream_fault");
    if ((!sf || strcmp(sf, "stall") != 0) && rd_json_get(obj, "stall_ms"))
        return fail_member(c, "stall_ms", "requires stream_fault \"stall\"");
    if (!status && !delay && !hang && !sf)
        return fail(c, "must ask for an outcome: status, delay_ms (above 0), hang or stream_fault");
    return 0;
}

/* scenario[i].match.header: names are matched case-insensitively. */
static bool is_header_name_key(const char *key)
{
    return is_header_name(key, strlen(key));
}

/* A path glob: matched against the request path (without the query), so
 * it starts like one (or with '*'); no spaces or control characters. */
static const char *check_path_glob(const char *s, size_t len)
{
    if (s[0] != '/' && s[0] != '*')
        return "must start with '/' or '*' (it is matched against the request path, e.g. \"/v1/chat/*\")";
    for (size_t i = 0; i < len; i++)
        if ((unsigned char)s[i] <= 0x20 || s[i] == 0x7f)
            return "must not contain spaces or control characters";
    return NULL;
}

static const char *check_method(const char *s, size_t len)
{
    return rd_http_is_token(s, len) ? NULL : "must be an HTTP method such as \"POST\"";
}

/* "<status>_rate" with a status from 400 to 599, e.g. "429_rate". */
static bool is_status_rate_key(const char *key)
{
    return strlen(key) == 8 && (key[0] == '4' || key[0] == '5') && key[1] >= '0' && key[1] <= '9' &&
           key[2] >= '0' && key[2] <= '9' && strcmp(key + 3, "_rate") == 0;
}

/* Model names are free-form ("gpt-3.5-turbo", "anthropic.claude-v2:1") but
 * printable and bounded, since they end up in error messages and logs. */
static bool is_model_name(const char *key)
{
    size_t len = strlen(key);
    if (len == 0 || len > 256)
        return false;
    for (size_t i = 0; i < len; i++)
        if ((unsigned char)key[i] < 0x20 || key[i] == 0x7f)
            return false;
    return true;
}

/* A model name as a value (deployments): the rule of is_model_name. */
static const char *check_model_value(const char *s, size_t len)
{
    for (size_t i = 0; i < len; i++)
        if ((unsigned char)s[i] < 0x20 || s[i] == 0x7f)
            return "must be a model name of printable characters";
    return NULL;
}

/* A header name in the configuration: an RFC 9110 token of at most 64 bytes. */
static bool is_header_name(const char *s, size_t len)
{
    return len <= 64 && rd_http_is_token(s, len);
}

static const char *check_header_name(const char *s, size_t len)
{
    return is_header_name(s, len) ? NULL : "must be an HTTP header name (a token such as \"anthropic-beta\")";
}

/* Peak hours are UTC times of day; "24:00" only ends a window. */
static const char *check_clock_start(const char *s, size_t len)
{
    uint32_t m = 0;
    (void)len;
    return rd_config_parse_clock(s, &m) == 0 && m < 1440 ? NULL
                                                         : "must be a time of day \"HH:MM\" from 00:00 to 23:59 (UTC)";
}

static const char *check_clock_end(const char *s, size_t len)
{
    uint32_t m = 0;
    (void)len;
    return rd_config_parse_clock(s, &m) == 0 ? NULL : "must be a time of day \"HH:MM\" from 00:00 to 24:00 (UTC)";
}

/* The proxy writes framing and connection fields itself; a configured
 * Content-Length or Transfer-Encoding would corrupt the response. */
static bool is_settable_header(const char *key)
{
    size_t len = strlen(key);
    return is_header_name(key, len) && !rd_hdr_is_hop_by_hop(key, len) && !rd_hdr_name_eq(key, len, "content-length");
}

static const char *check_ratelimit_key(const char *s, size_t len)
{
    if (strcmp(s, "proxy") == 0 || strcmp(s, "ip") == 0)
        return NULL;
    if (len > 7 && strncmp(s, "header:", 7) == 0 && is_header_name(s + 7, len - 7))
        return NULL;
    return "must be \"proxy\", \"ip\" or \"header:<name>\" with an HTTP header name";
}

/* A CR or LF in a configured value would let the configuration inject
 * header lines into responses. */
static const char *check_header_value(const char *s, size_t len)
{
    for (size_t i = 0; i < len; i++)
        if (((unsigned char)s[i] < 0x20 && s[i] != '\t') || s[i] == 0x7f)
            return "must not contain control characters";
    return NULL;
}

/* An AWS region goes into the upstream host name: letters, digits and '-'. */
static const char *check_aws_region(const char *s, size_t len)
{
    for (size_t i = 0; i < len; i++)
        if (!((s[i] >= 'a' && s[i] <= 'z') || (s[i] >= '0' && s[i] <= '9') || s[i] == '-'))
            return "must be an AWS region name (lower-case letters, digits and '-', e.g. \"us-east-1\")";
    return NULL;
}

/* Credentials go into header values; the API shows secrets as "********",
 * which must not be stored as if it were one. */
static const char *check_aws_secret(const char *s, size_t len)
{
    for (size_t i = 0; i < len; i++)
        if ((unsigned char)s[i] <= 0x20 || s[i] == 0x7f)
            return "must not contain spaces or control characters";
    if (len == 8 && memcmp(s, "********", 8) == 0)
        return "is the placeholder the API shows for a stored secret, and there is none to keep: send the real "
               "value";
    return NULL;
}

/* The pattern syntax is the matcher's own (util/ipmatch.h), so that what
 * the schema accepts is exactly what the ip_filter stage can compile; the
 * message says what is wrong and where. */
static const char *check_ip_pattern(const char *s, size_t len)
{
    static _Thread_local char msg[320];
    char why[200];
    if (rd_ip_pattern_check(s, len, why, sizeof why) >= 0)
        return NULL;
    snprintf(msg, sizeof msg,
             "must be an IPv4 or IPv6 address, a CIDR block such as \"10.0.0.0/8\" or a wildcard pattern such as "
             "\"192.168.*.*\": %s",
             why);
    return msg;
}

/* ISO 3166-1 alpha-2 codes officially assigned, sorted, then "EU" and "AP",
 * which GeoIP databases report for ranges assigned to Europe or
 * Asia/Pacific as a whole. */
static const char country_codes[] =
    "ADAEAFAGAIALAMAOAQARASATAUAWAXAZBABBBDBEBFBGBHBIBJBLBMBNBOBQBRBSBTBVBWBYBZCACCCDCFCGCHCICKCLCMCNCOCRCUCVCWCXCY"
    "CZDEDJDKDMDODZECEEEGEHERESETFIFJFKFMFOFRGAGBGDGEGFGGGHGIGLGMGNGPGQGRGSGTGUGWGYHKHMHNHRHTHUIDIEILIMINIOIQIRISIT"
    "JEJMJOJPKEKGKHKIKMKNKPKRKWKYKZLALBLCLILKLRLSLTLULVLYMAMCMDMEMFMGMHMKMLMMMNMOMPMQMRMSMTMUMVMWMXMYMZNANCNENFNGNI"
    "NLNONPNRNUNZOMPAPEPFPGPHPKPLPMPNPRPSPTPWPYQARERORSRURWSASBSCSDSESGSHSISJSKSLSMSNSOSRSSSTSVSXSYSZTCTDTFTGTHTJTK"
    "TLTMTNTOTRTTTVTWTZUAUGUMUSUYUZVAVCVEVGVIVNVUWFWSYEYTZAZMZW"
    "EUAP";

static const char *check_country(const char *s, size_t len)
{
    if (len == 2 && s[0] >= 'A' && s[0] <= 'Z' && s[1] >= 'A' && s[1] <= 'Z')
        for (size_t i = 0; i + 1 < sizeof country_codes; i += 2)
            if (country_codes[i] == s[0] && country_codes[i + 1] == s[1])
                return NULL;
    return "must be an ISO 3166-1 alpha-2 country code in capitals, such as \"US\" or \"DE\"";
}

/* A file path: absolute, no control characters (it ends up in messages). */
static const char *check_path(const char *s, size_t len)
{
    if (s[0] != '/')
        return "must be an absolute file path";
    for (size_t i = 0; i < len; i++)
        if ((unsigned char)s[i] < 0x20 || s[i] == 0x7f)
            return "must not contain control characters";
    return NULL;
}

/* ---- public API -------------------------------------------------------- */

int rd_config_validate(struct json_object *doc, struct rd_config_err *err)
{
    struct rd_config_err scratch = {0};
    struct ctx c = {.err = err ? err : &scratch, .len = 0};
    c.path[0] = '\0';
    c.err->field[0] = '\0';
    c.err->message[0] = '\0';
    if (doc == NULL || !json_object_is_type(doc, json_type_object))
        return fail(&c, "must be a JSON object");
    return check_object(&c, &root, doc);
}

void rd_limits_default(struct rd_limits *out)
{
    for (size_t i = 0; i < sizeof limit_slots / sizeof limit_slots[0]; i++)
        *(uint64_t *)(void *)((char *)out + limit_slots[i]) = (uint64_t)limits_fields[i].dflt;
}

/* Tolerates unvalidated documents: a value of the wrong type or out of range
 * is ignored in favour of the default. */
void rd_config_limits(struct json_object *doc, struct rd_limits *out)
{
    struct json_object *blk = rd_json_get(doc, "limits");
    rd_limits_default(out);
    for (size_t i = 0; i < sizeof limit_slots / sizeof limit_slots[0]; i++) {
        struct json_object *v = rd_json_get(blk, limits_fields[i].name);
        if (int_in_range(&limits_fields[i], v))
            *(uint64_t *)(void *)((char *)out + limit_slots[i]) = (uint64_t)json_object_get_int64(v);
    }
}

bool rd_config_upstream_curl(struct json_object *doc)
{
    const char *client = rd_json_get_str(rd_json_get(doc, "upstream"), "client");
    return client != NULL && strcmp(client, "curl") == 0;
}

const char *rd_config_upstream_ca_file(struct json_object *doc)
{
    return rd_json_get_str(rd_json_get(doc, "upstream"), "ca_file");
}

double rd_config_emulator_tps(struct json_object *doc)
{
    struct json_object *v = rd_json_get(rd_json_get(doc, "emulator"), "tokens_per_second");
    if (!rd_json_is_number(v))
        return 0;
    double d = json_object_get_double(v);
    return d >= 0 && d <= EMU_TPS_MAX ? d : 0;
}

/* Tolerates unvalidated documents like rd_config_limits, but says so: the
 * caller learns that the value it asked for was unusable. */
int rd_config_size(struct json_object *doc, const char *block, const char *field, uint64_t dflt, uint64_t *out)
{
    *out = dflt;
    if (block == NULL || field == NULL)
        return RD_EINVAL;
    const struct field *b = find_member(&root, block);
    const struct field *f = b && b->type == T_OBJECT ? find_member(b, field) : NULL;
    struct json_object *v = rd_json_get(rd_json_get(doc, block), field);
    uint64_t bytes = 0;
    if (f == NULL || f->type != T_SIZE)
        return RD_EINVAL;
    if (v == NULL)
        return 0;
    if (!size_in_range(f, v, &bytes))
        return RD_EINVAL;
    *out = bytes;
    return 0;
}

int rd_config_parse_clock(const char *s, uint32_t *minutes)
{
    if (s == NULL || strlen(s) != 5 || s[2] != ':')
        return RD_EINVAL;
    for (size_t i = 0; i < 5; i++)
        if (i != 2 && (s[i] < '0' || s[i] > '9'))
            return RD_EINVAL;
    uint32_t h = (uint32_t)(s[0] - '0') * 10 + (uint32_t)(s[1] - '0');
    uint32_t m = (uint32_t)(s[3] - '0') * 10 + (uint32_t)(s[4] - '0');
    if (m > 59 || h > 24 || (h == 24 && m != 0))
        return RD_EINVAL;
    *minutes = h * 60 + m;
    return 0;
}

int rd_config_parse_size(const char *s, uint64_t *out)
{
    static const struct {
        const char *unit;
        uint64_t mult;
    } units[] = {{"", 1}, {"b", 1}, {"kb", 1024}, {"mb", 1024 * 1024}, {"gb", 1024 * 1024 * 1024}};
    uint64_t n = 0;
    bool overflow = false;
    size_t i = 0;
    if (s == NULL || strnlen(s, 33) > 32)
        return RD_EINVAL;
    for (; s[i] >= '0' && s[i] <= '9'; i++)
        overflow |= __builtin_mul_overflow(n, 10, &n) || __builtin_add_overflow(n, (uint64_t)(s[i] - '0'), &n);
    if (i == 0)
        return RD_EINVAL;
    for (size_t u = 0; u < sizeof units / sizeof units[0]; u++) {
        if (strcasecmp(s + i, units[u].unit) != 0)
            continue;
        if (overflow || __builtin_mul_overflow(n, units[u].mult, &n))
            return RD_ETOOBIG;
        *out = n;
        return 0;
    }
    return RD_EINVAL;
}
