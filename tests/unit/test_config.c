/* Tests for the configuration schema (src/proxy/config.c): the product
 * description's blocks as written, every field's type and range boundaries,
 * unknown keys, cross-field rules, IP patterns, limits and size strings.
 *
 * Case documents are written with ' for " to stay readable; doc() swaps them. */
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <cmocka.h>

#include "proxy/config.h"
#include "util/err.h"
#include "util/ipmatch.h"
#include "util/json.h"
#include "util/mem.h"

/* The configuration blocks of the product description, verbatim. */
static const char *const seed_blocks[] = {
    "{\n"
    "  \"timeout_config\": {\n"
    "    \"enabled\": true,\n"
    "    \"delay_ms\": 5000,\n"
    "    \"timeout_rate\": 0.1,\n"
    "    \"hang_rate\": 0.02\n"
    "  }\n"
    "}\n",
    "{\n"
    "  \"error_injection\": {\n"
    "    \"400_rate\": 0.05,\n"
    "    \"401_rate\": 0.02,\n"
    "    \"429_rate\": 0.15,\n"
    "    \"500_rate\": 0.03,\n"
    "    \"503_rate\": 0.01\n"
    "  }\n"
    "}\n",
    "{\n"
    "  \"rate_limiting\": {\n"
    "    \"requests_per_minute\": 60,\n"
    "    \"burst_allowance\": 10,\n"
    "    \"rate_limit_response\": {\n"
    "      \"status_code\": 429,\n"
    "      \"headers\": {\n"
    "        \"Retry-After\": \"60\",\n"
    "        \"X-RateLimit-Remaining\": \"0\"\n"
    "      }\n"
    "    }\n"
    "  }\n"
    "}\n",
    "{\n"
    "  \"ip_filtering\": {\n"
    "    \"mode\": \"allowlist\",\n"
    "    \"allowed_ips\": [\n"
    "      \"192.168.1.0/24\",\n"
    "      \"10.0.0.0/8\",\n"
    "      \"172.16.0.0/12\"\n"
    "    ],\n"
    "    \"blocked_ips\": [\n"
    "      \"192.168.1.100\",\n"
    "      \"10.0.0.50\"\n"
    "    ]\n"
    "  }\n"
    "}\n",
    "{\n"
    "  \"cache_ttl\": {\n"
    "    \"default\": 3600,\n"
    "    \"by_model\": {\n"
    "      \"gpt-4\": 7200,\n"
    "      \"claude-3-sonnet\": 3600,\n"
    "      \"gpt-3.5-turbo\": 1800\n"
    "    },\n"
    "    \"by_request_type\": {\n"
    "      \"completion\": 3600,\n"
    "      \"chat\": 1800,\n"
    "      \"embedding\": 86400\n"
    "    }\n"
    "  }\n"
    "}\n",
    "{\n"
    "  \"middleware_pipeline\": [\n"
    "    \"authentication\",\n"
    "    \"rate_limiting\", \n"
    "    \"request_validation\",\n"
    "    \"caching\",\n"
    "    \"failure_simulation\",\n"
    "    \"provider_forwarding\",\n"
    "    \"response_processing\",\n"
    "    \"logging\"\n"
    "  ]\n"
    "}\n",
    "{\n"
    "  \"memory_limits\": {\n"
    "    \"cache_max_size\": \"1GB\",\n"
    "    \"cache_max_entries\": 10000,\n"
    "    \"log_buffer_size\": \"100MB\",\n"
    "    \"response_buffer_size\": \"10MB\"\n"
    "  }\n"
    "}\n",
};

static struct json_object *parse(const char *text)
{
    struct json_object *obj = NULL;
    struct rd_json_err jerr = {0};
    int rc = rd_json_parse(text, strlen(text), RD_CONFIG_MAX_DOC_BYTES, &obj, &jerr);
    if (rc != 0)
        fail_msg("test document does not parse (%s at %zu): %s", jerr.msg, jerr.pos, text);
    return obj;
}

/* Parses a document written with ' for ". */
static struct json_object *doc(const char *quoted)
{
    char *text = rd_strdup(quoted);
    for (char *p = text; *p; p++)
        if (*p == '\'')
            *p = '"';
    struct json_object *obj = parse(text);
    free(text);
    return obj;
}

struct vcase {
    const char *json;    /* ' stands for " */
    const char *field;   /* NULL: the document is valid */
    const char *message; /* substring of err.message */
};

#define OK(j) {j, NULL, NULL}
#define BAD(j, f, m) {j, f, m}

static const char M_BOOL[] = "must be true or false";
static const char M_RATE[] = "must be a number between 0 and 1";
static const char M_UNKNOWN[] = "unknown field";
static const char M_IP[] = "must be an IPv4 or IPv6 address";
static const char M_SIZE[] = "must be a size such as";
static const char M_ABOVE0[] = "must be a number above 0 and at most 1";
static const char M_START[] = "must be a time of day \"HH:MM\" from 00:00 to 23:59 (UTC)";
static const char M_END[] = "must be a time of day \"HH:MM\" from 00:00 to 24:00 (UTC)";
static const char M_HDR[] = "must be an HTTP header name (a token such as \"anthropic-beta\")";
static const char M_DAY[] = "must be one of: mon, tue, wed, thu, fri, sat, sun";

static const struct vcase cases[] = {
    OK("{}"),
    /* top level */
    BAD("{'foo': {}}", "foo", "unknown configuration block 'foo'"),
    BAD("{'limits': {}, 'Limits': {}}", "Limits", "unknown configuration block 'Limits'"),
    BAD("{'limits': []}", "limits", "limits must be an object"),
    /* seed and failure (proxy/failure.h) */
    OK("{'seed': 0, 'failure': {'reveal': false, 'request_overrides': true}}"),
    OK("{'seed': 9007199254740991}"),
    BAD("{'seed': -1}", "seed", "seed must be an integer between 0 and 9007199254740991"),
    BAD("{'seed': 1.5}", "seed", "seed must be an integer between 0 and 9007199254740991"),
    BAD("{'failure': {'reveal': 'no'}}", "failure.reveal", "failure.reveal must be true or false"),
    BAD("{'failure': {'hide': true}}", "failure.hide", "unknown field 'failure.hide': expected one of reveal, request_overrides"),
    BAD("{'emulator': null}", "emulator", "must be an object"),
    /* limits */
    OK("{'limits': {'max_body_bytes': 1, 'connect_timeout_ms': 1, 'upstream_timeout_ms': 1, 'idle_timeout_ms': 1}}"),
    OK("{'limits': {'max_body_bytes': 1073741824, 'connect_timeout_ms': 600000, 'upstream_timeout_ms': 86400000,"
       " 'idle_timeout_ms': 3600000}}"),
    BAD("{'limits': {'max_body_bytes': 0}}", "limits.max_body_bytes",
        "limits.max_body_bytes must be an integer between 1 and 1073741824"),
    BAD("{'limits': {'max_body_bytes': 1073741825}}", "limits.max_body_bytes", "between 1 and 1073741824"),
    BAD("{'limits': {'max_body_bytes': '1024'}}", "limits.max_body_bytes", "must be an integer"),
    BAD("{'limits': {'max_body_bytes': 1024.0}}", "limits.max_body_bytes", "must be an integer"),
    BAD("{'limits': {'max_body_bytes': 1e3}}", "limits.max_body_bytes", "must be an integer"),
    BAD("{'limits': {'max_body_bytes': 99999999999999999999999}}", "limits.max_body_bytes", "must be an integer"),
    BAD("{'limits': {'max_body_bytes': null}}", "limits.max_body_bytes", "must be an integer"),
    BAD("{'limits': {'connect_timeout_ms': 0}}", "limits.connect_timeout_ms", "between 1 and 600000"),
    BAD("{'limits': {'connect_timeout_ms': 600001}}", "limits.connect_timeout_ms", "between 1 and 600000"),
    BAD("{'limits': {'upstream_timeout_ms': 86400001}}", "limits.upstream_timeout_ms", "between 1 and 86400000"),
    BAD("{'limits': {'idle_timeout_ms': 0}}", "limits.idle_timeout_ms", "between 1 and 3600000"),
    BAD("{'limits': {'idle_timeout_ms': 3600001}}", "limits.idle_timeout_ms", "between 1 and 3600000"),
    BAD("{'limits': {'max_body': 1}}", "limits.max_body", "unknown field 'limits.max_body'"),
    /* timeout_config */
    OK("{'timeout_config': {'enabled': false, 'delay_ms': 0, 'timeout_rate': 0, 'hang_rate': 0}}"),
    OK("{'timeout_config': {'delay_ms': 3600000, 'timeout_rate': 1}}"),
    OK("{'timeout_config': {'timeout_rate': 0.7, 'hang_rate': 0.3}}"),
    OK("{'timeout_config': {'hang_rate': 1}}"),
    BAD("{'timeout_config': {'enabled': 'yes'}}", "timeout_config.enabled", M_BOOL),
    BAD("{'timeout_config': {'enabled': 1}}", "timeout_config.enabled", M_BOOL),
    BAD("{'timeout_config': {'delay_ms': -1}}", "timeout_config.delay_ms", "between 0 and 3600000"),
    BAD("{'timeout_config': {'delay_ms': 3600001}}", "timeout_config.delay_ms", "between 0 and 3600000"),
    BAD("{'timeout_config': {'delay_ms': 5.5}}", "timeout_config.delay_ms", "must be an integer"),
    BAD("{'timeout_config': {'timeout_rate': 1.0001}}", "timeout_config.timeout_rate", M_RATE),
    BAD("{'timeout_config': {'timeout_rate': -0.0001}}", "timeout_config.timeout_rate", M_RATE),
    BAD("{'timeout_config': {'timeout_rate': '0.1'}}", "timeout_config.timeout_rate", M_RATE),
    BAD("{'timeout_config': {'hang_rate': 1.5}}", "timeout_config.hang_rate", M_RATE),
    /* the wait before a simulated 504 is delay_ms (docs/failure-simulation.md) */
    BAD("{'timeout_config': {'timeout_ms': 1000}}", "timeout_config.timeout_ms", M_UNKNOWN),
    BAD("{'timeout_config': {'timeout_rate': 0.6, 'hang_rate': 0.5}}", "timeout_config", "add up to at most 1"),
    BAD("{'timeout_config': {'timeout_seconds': 5}}", "timeout_config.timeout_seconds", M_UNKNOWN),
    /* error_injection */
    OK("{'error_injection': {'enabled': true, '400_rate': 0, '599_rate': 1}}"),
    OK("{'error_injection': {'429_rate': 0.5, 'retry_after_s': 0}}"),
    OK("{'error_injection': {'503_rate': 0.5, 'retry_after_s': 86400}}"),
    BAD("{'error_injection': {'retry_after_s': -1}}", "error_injection.retry_after_s", "between 0 and 86400"),
    BAD("{'error_injection': {'retry_after_s': 1.5}}", "error_injection.retry_after_s", "must be an integer"),
    /* the rates are summed, not retry_after_s */
    OK("{'error_injection': {'500_rate': 1, 'retry_after_s': 30}}"),
    BAD("{'error_injection': {'500_rate': 0.6, '503_rate': 0.5}}", "error_injection", "add up to at most 1"),
    /* Added in this order in binary floating point, these make 1.0000000000000002. */
    OK("{'error_injection': {'500_rate': 0.2, '502_rate': 0.4, '503_rate': 0.3, '504_rate': 0.1}}"),
    BAD("{'error_injection': {'enabled': 'true'}}", "error_injection.enabled", M_BOOL),
    BAD("{'error_injection': {'399_rate': 0.1}}", "error_injection.399_rate",
        "unknown field 'error_injection.399_rate': expected enabled, retry_after_s or \"<status>_rate\""),
    BAD("{'error_injection': {'600_rate': 0.1}}", "error_injection.600_rate", M_UNKNOWN),
    BAD("{'error_injection': {'429_rat': 0.1}}", "error_injection.429_rat", M_UNKNOWN),
    BAD("{'error_injection': {'4290_rate': 0.1}}", "error_injection.4290_rate", M_UNKNOWN),
    BAD("{'error_injection': {'429': 0.1}}", "error_injection.429", M_UNKNOWN),
    BAD("{'error_injection': {'429_rate': 1.01}}", "error_injection.429_rate", M_RATE),
    BAD("{'error_injection': {'429_rate': -0.5}}", "error_injection.429_rate", M_RATE),
    BAD("{'error_injection': {'429_rate': '0.1'}}", "error_injection.429_rate", M_RATE),
    BAD("{'error_injection': {'429_rate': 0.6, '500_rate': 0.5}}", "error_injection",
        "error_injection rates must add up to at most 1 (they add up to 1.1)"),
    /* rate_limiting */
    OK("{'rate_limiting': {'enabled': true, 'requests_per_minute': 1, 'burst_allowance': 0, 'key': 'ip',"
       " 'algorithm': 'sliding_window'}}"),
    OK("{'rate_limiting': {'requests_per_minute': 1000000, 'burst_allowance': 1000000, 'key': 'proxy',"
       " 'algorithm': 'token_bucket', 'tokens_per_minute': 100000000}}"),
    OK("{'rate_limiting': {'requests_per_minute': 999999, 'burst_allowance': 1}}"),
    BAD("{'rate_limiting': {'requests_per_minute': 999999, 'burst_allowance': 2}}", "rate_limiting.burst_allowance",
        "rate_limiting.burst_allowance plus requests_per_minute must be at most 1000000 with the sliding_window"),
    BAD("{'rate_limiting': {'requests_per_minute': 1000000, 'burst_allowance': 1, 'algorithm': 'sliding_window'}}",
        "rate_limiting.burst_allowance", "use \"algorithm\": \"token_bucket\""),
    BAD("{'rate_limiting': {'requests_per_minute': 5, 'tokens_per_minute': 0}}", "rate_limiting.tokens_per_minute",
        "between 1 and 100000000"),
    BAD("{'rate_limiting': {'requests_per_minute': 5, 'tokens_per_minute': 100000001}}",
        "rate_limiting.tokens_per_minute", "between 1 and 100000000"),
    BAD("{'rate_limiting': {'requests_per_minute': 5, 'window': 'sliding'}}", "rate_limiting.window",
        "unknown field 'rate_limiting.window'"),
    BAD("{'rate_limiting': {'requests_per_minute': 5, 'key': 'global'}}", "rate_limiting.key",
        "must be \"proxy\", \"ip\" or \"header:<name>\""),
    OK("{'rate_limiting': {'requests_per_minute': 5, 'rate_limit_response': {'body': {'error': 'slow down'}}}}"),
    OK("{'rate_limiting': {'requests_per_minute': 5, 'rate_limit_response': {'body': 'plain text'}}}"),
    OK("{'rate_limiting': {'requests_per_minute': 5, 'rate_limit_response': {'body': [1, null, true]}}}"),
    OK("{'rate_limiting': {'requests_per_minute': 5, 'key': 'header:X-User-Id'}}"),
    OK("{'rate_limiting': {'requests_per_minute': 5, 'rate_limit_response': {'status_code': 400, 'headers': {}}}}"),
    OK("{'rate_limiting': {'requests_per_minute': 5, 'rate_limit_response': {'status_code': 599}}}"),
    BAD("{'rate_limiting': {}}", "rate_limiting.requests_per_minute", "rate_limiting.requests_per_minute is required"),
    BAD("{'rate_limiting': {'requests_per_minute': 0}}", "rate_limiting.requests_per_minute",
        "rate_limiting.requests_per_minute must be an integer between 1 and 1000000"),
    BAD("{'rate_limiting': {'requests_per_minute': 1000001}}", "rate_limiting.requests_per_minute",
        "between 1 and 1000000"),
    BAD("{'rate_limiting': {'requests_per_minute': 60.5}}", "rate_limiting.requests_per_minute", "must be an integer"),
    BAD("{'rate_limiting': {'requests_per_minute': 5, 'burst_allowance': -1}}", "rate_limiting.burst_allowance",
        "between 0 and 1000000"),
    BAD("{'rate_limiting': {'requests_per_minute': 5, 'burst_allowance': 1000001}}", "rate_limiting.burst_allowance",
        "between 0 and 1000000"),
    BAD("{'rate_limiting': {'requests_per_minute': 5, 'key': 'header:'}}", "rate_limiting.key", "header:<name>"),
    BAD("{'rate_limiting': {'requests_per_minute': 5, 'key': 'header:bad name'}}", "rate_limiting.key",
        "header:<name>"),
    BAD("{'rate_limiting': {'requests_per_minute': 5, 'key': 'cookie'}}", "rate_limiting.key", "header:<name>"),
    BAD("{'rate_limiting': {'requests_per_minute': 5, 'key': 5}}", "rate_limiting.key", "must be a string"),
    BAD("{'rate_limiting': {'requests_per_minute': 5, 'algorithm': 'rolling'}}", "rate_limiting.algorithm",
        "must be one of: sliding_window, token_bucket"),
    BAD("{'rate_limiting': {'requests_per_minute': 5, 'rate_limit_response': {'status_code': 399}}}",
        "rate_limiting.rate_limit_response.status_code", "between 400 and 599"),
    BAD("{'rate_limiting': {'requests_per_minute': 5, 'rate_limit_response': {'status_code': 600}}}",
        "rate_limiting.rate_limit_response.status_code", "between 400 and 599"),
    BAD("{'rate_limiting': {'requests_per_minute': 5, 'rate_limit_response': {'headers': {'Retry-After': 60}}}}",
        "rate_limiting.rate_limit_response.headers.Retry-After", "must be a string"),
    BAD("{'rate_limiting': {'requests_per_minute': 5, 'rate_limit_response': {'headers': {'X-A': 'a\\r\\nSet-Cookie: x'}}}}",
        "rate_limiting.rate_limit_response.headers.X-A", "must not contain control characters"),
    BAD("{'rate_limiting': {'requests_per_minute': 5, 'rate_limit_response': {'headers': {'X-A': 'a\\u007f'}}}}",
        "rate_limiting.rate_limit_response.headers.X-A", "must not contain control characters"),
    BAD("{'rate_limiting': {'requests_per_minute': 5, 'rate_limit_response': {'headers': {'X-A': 'a\\u0000b'}}}}",
        "rate_limiting.rate_limit_response.headers.X-A", "must not contain NUL characters"),
    OK("{'rate_limiting': {'requests_per_minute': 5, 'rate_limit_response': {'headers': {'X-A': 'a\\tb'}}}}"),
    BAD("{'rate_limiting': {'requests_per_minute': 5, 'rate_limit_response': {'headers': {'Bad Name': 'x'}}}}",
        "rate_limiting.rate_limit_response.headers.Bad Name", M_UNKNOWN),
    BAD("{'rate_limiting': {'requests_per_minute': 5, 'rate_limit_response': {'headers': {'Content-Length': '0'}}}}",
        "rate_limiting.rate_limit_response.headers.Content-Length", M_UNKNOWN),
    BAD("{'rate_limiting': {'requests_per_minute': 5, 'rate_limit_response': {'headers': {'transfer-encoding': 'x'}}}}",
        "rate_limiting.rate_limit_response.headers.transfer-encoding", M_UNKNOWN),
    BAD("{'rate_limiting': {'requests_per_minute': 5, 'rate_limit_response': {'text': 'x'}}}",
        "rate_limiting.rate_limit_response.text", "expected one of status_code, headers, body"),
    BAD("{'rate_limiting': {'requests_per_minute': 5, 'per_ip': true}}", "rate_limiting.per_ip",
        "unknown field 'rate_limiting.per_ip'"),
    /* ip_filtering */
    OK("{'ip_filtering': {'mode': 'blocklist', 'blocked_ips': ['10.0.0.1']}}"),
    OK("{'ip_filtering': {'enabled': false, 'mode': 'allowlist', 'allowed_ips': []}}"),
    OK("{'ip_filtering': {'mode': 'allowlist', 'allowed_ips': ['10.*.*.*', '::1', '2001:db8::/32', '*',"
       " '192.168.*.*', '*.*.*.*', '10.0.0.0/32', '0.0.0.0/0', '2001:db8::/128', '::/0', '255.255.255.*',"
       " '::ffff:10.0.0.1']}}"),
    /* the matcher's syntax: trailing wildcards may be short */
    OK("{'ip_filtering': {'mode': 'blocklist', 'blocked_ips': ['10.0.*', '192.168.*', '172.16.5.*', '10.1.2.3/8', '10.*']}}"),
    OK("{'ip_filtering': {'mode': 'allowlist', 'countries_allowed': ['US', 'DE', 'EU'], 'trusted_proxies': ['10.0.0.0/8',"
       " '::1'], 'geoip_database': '/usr/share/GeoIP/GeoIP.dat', 'geoip_database_v6': '/x/v6.dat'}}"),
    OK("{'ip_filtering': {'mode': 'blocklist', 'countries_blocked': ['KP'], 'allowed_ips': ['1.2.3.4']}}"),
    BAD("{'ip_filtering': {'mode': 'blocklist', 'countries_blocked': ['us']}}", "ip_filtering.countries_blocked[0]",
        "must be an ISO 3166-1 alpha-2 country code in capitals"),
    BAD("{'ip_filtering': {'mode': 'blocklist', 'countries_blocked': ['XX']}}", "ip_filtering.countries_blocked[0]",
        "must be an ISO 3166-1 alpha-2 country code"),
    BAD("{'ip_filtering': {'mode': 'blocklist', 'countries_blocked': ['USA']}}", "ip_filtering.countries_blocked[0]",
        "must be a string of 2 to 2 characters"),
    BAD("{'ip_filtering': {'mode': 'allowlist', 'countries_allowed': []}}", "ip_filtering.allowed_ips",
        "must list at least one entry"),
    BAD("{'ip_filtering': {'mode': 'blocklist', 'trusted_proxies': ['10.0.0.0/33']}}", "ip_filtering.trusted_proxies[0]",
        "is over 32"),
    BAD("{'ip_filtering': {'mode': 'blocklist', 'geoip_database': 'GeoIP.dat'}}", "ip_filtering.geoip_database",
        "must be an absolute file path"),
    BAD("{'ip_filtering': {'mode': 'blocklist', 'geoip_database': '/a\\nb'}}", "ip_filtering.geoip_database",
        "must not contain control characters"),
    BAD("{'ip_filtering': {}}", "ip_filtering.mode", "is required"),
    BAD("{'ip_filtering': {'mode': 'denylist'}}", "ip_filtering.mode", "must be one of: allowlist, blocklist"),
    BAD("{'ip_filtering': {'mode': 'allowlist'}}", "ip_filtering.allowed_ips", "must list at least one entry"),
    BAD("{'ip_filtering': {'mode': 'allowlist', 'allowed_ips': []}}", "ip_filtering.allowed_ips",
        "must list at least one entry"),
    BAD("{'ip_filtering': {'mode': 'allowlist', 'allowed_ips': '10.0.0.1'}}", "ip_filtering.allowed_ips",
        "must be an array"),
    BAD("{'ip_filtering': {'mode': 'allowlist', 'allowed_ips': [10]}}", "ip_filtering.allowed_ips[0]",
        "must be a string"),
    BAD("{'ip_filtering': {'mode': 'allowlist', 'allowed_ips': ['10.0.0.1', '10.0.0.2', '10.0.0.3', '300.1.1.1']}}",
        "ip_filtering.allowed_ips[3]", "ip_filtering.allowed_ips[3] must be an IPv4 or IPv6 address"),
    BAD("{'ip_filtering': {'mode': 'allowlist', 'allowed_ips': ['300.1.1.1']}}", "ip_filtering.allowed_ips[0]",
        "or a wildcard pattern such as \"192.168.*.*\": octet 300 at position 1 is over 255"),
    BAD("{'ip_filtering': {'mode': 'blocklist', 'blocked_ips': ['10.0.0.1', '10.0.0.0/33']}}",
        "ip_filtering.blocked_ips[1]", "prefix length /33 at position 10 is over 32"),
    BAD("{'ip_filtering': {'mode': 'blocklist', 'blocked_ips': ['2001:db8::/129']}}", "ip_filtering.blocked_ips[0]",
        "prefix length /129 at position 12 is over 128"),
#define BAD_IP(ip) BAD("{'ip_filtering': {'mode': 'blocklist', 'blocked_ips': ['" ip "']}}", \
                       "ip_filtering.blocked_ips[0]", M_IP)
    BAD_IP("192.168.256.*"), BAD_IP("192.168.01.*"), BAD_IP("1234.1.1.*"),
    BAD_IP("10.0.0.0/"), BAD_IP("10.0.0.0/08"), BAD_IP("10.0.0.0/-1"), BAD_IP("/8"), BAD_IP("10.0.0.1 "),
    BAD_IP("10.0.0.0/8/8"), BAD_IP("10.*.0.0/8"), BAD_IP("fe80::1%eth0"), BAD_IP("**"), BAD_IP("10.0.0.*.*"),
    BAD_IP("localhost"), BAD_IP("10.0.0.01"), BAD_IP("192.168.*.*."),
    BAD("{'ip_filtering': {'mode': 'blocklist', 'blocked_ips': ['10.0.0.1\\u0000x']}}", "ip_filtering.blocked_ips[0]",
        "must not contain NUL characters"),
    BAD("{'ip_filtering': {'mode': 'blocklist', 'blocked_ips': ['']}}", "ip_filtering.blocked_ips[0]",
        "must be a string of 1 to 64 characters"),
    /* cache_ttl */
    OK("{'cache_ttl': {'default': 0}}"),
    OK("{'cache_ttl': {'default': 315360000, 'by_model': {'anthropic.claude-v2:1': 0}, 'by_request_type':"
       " {'completion': 1, 'chat': 2, 'embedding': 3, 'responses': 4, 'messages': 5, 'other': 315360000}}}"),
    BAD("{'cache_ttl': {'default': 315360001}}", "cache_ttl.default", "between 0 and 315360000"),
    BAD("{'cache_ttl': {'default': -1}}", "cache_ttl.default", "between 0 and 315360000"),
    BAD("{'cache_ttl': {'by_model': {'gpt-4': -1}}}", "cache_ttl.by_model.gpt-4", "between 0 and 315360000"),
    BAD("{'cache_ttl': {'by_model': {'gpt-4': '1h'}}}", "cache_ttl.by_model.gpt-4", "must be an integer"),
    BAD("{'cache_ttl': {'by_model': {'': 5}}}", "cache_ttl.by_model.", M_UNKNOWN),
    BAD("{'cache_ttl': {'by_model': {'gpt\\u007f': 5}}}", "cache_ttl.by_model.gpt\x7f", M_UNKNOWN),
    BAD("{'cache_ttl': {'by_model': {'gpt\\n4': 5}}}", "cache_ttl.by_model.gpt\n4", M_UNKNOWN),
    BAD("{'cache_ttl': {'by_model': []}}", "cache_ttl.by_model", "must be an object"),
    BAD("{'cache_ttl': {'by_request_type': {'image': 5}}}", "cache_ttl.by_request_type.image",
        "expected one of completion, chat, embedding, responses, messages, other"),
    BAD("{'cache_ttl': {'by_request_type': {'chat': 315360001}}}", "cache_ttl.by_request_type.chat", "between 0"),
    BAD("{'cache_ttl': {'peak': {}}}", "cache_ttl.peak",
        "unknown field 'cache_ttl.peak': expected one of default, by_model, by_request_type, usage_based, peak_hours, "
        "content_based"),
    /* cache_ttl.by_model globs */
    OK("{'cache_ttl': {'by_model': {'gpt-4o': 60, 'gpt-4*': 7200, 'claude-?-opus': 30, '*': 10}}}"),
    /* cache_ttl.usage_based */
    OK("{'cache_ttl': {'usage_based': {'every_hits': 1, 'max_s': 1}}}"),
    OK("{'cache_ttl': {'usage_based': {'every_hits': 1000000, 'max_s': 315360000}}}"),
    BAD("{'cache_ttl': {'usage_based': {'every_hits': 0, 'max_s': 60}}}", "cache_ttl.usage_based.every_hits",
        "cache_ttl.usage_based.every_hits must be an integer between 1 and 1000000"),
    BAD("{'cache_ttl': {'usage_based': {'every_hits': 1000001, 'max_s': 60}}}", "cache_ttl.usage_based.every_hits",
        "between 1 and 1000000"),
    BAD("{'cache_ttl': {'usage_based': {'every_hits': 1.5, 'max_s': 60}}}", "cache_ttl.usage_based.every_hits",
        "must be an integer"),
    BAD("{'cache_ttl': {'usage_based': {'every_hits': 5, 'max_s': 0}}}", "cache_ttl.usage_based.max_s",
        "between 1 and 315360000"),
    BAD("{'cache_ttl': {'usage_based': {'every_hits': 5, 'max_s': 315360001}}}", "cache_ttl.usage_based.max_s",
        "between 1 and 315360000"),
    BAD("{'cache_ttl': {'usage_based': {'max_s': 60}}}", "cache_ttl.usage_based.every_hits",
        "cache_ttl.usage_based.every_hits is required"),
    BAD("{'cache_ttl': {'usage_based': {'every_hits': 5}}}", "cache_ttl.usage_based.max_s",
        "cache_ttl.usage_based.max_s is required"),
    BAD("{'cache_ttl': {'usage_based': {'every_hits': 5, 'max_s': 60, 'cap_s': 1}}}", "cache_ttl.usage_based.cap_s",
        "unknown field 'cache_ttl.usage_based.cap_s': expected one of every_hits, max_s"),
    /* cache_ttl.peak_hours */
    OK("{'cache_ttl': {'peak_hours': {'start': '09:00', 'end': '17:30', 'factor': 0.5}}}"),
    OK("{'cache_ttl': {'peak_hours': {'start': '22:00', 'end': '02:00', 'days': ['fri', 'sat'], 'factor': 1}}}"),
    OK("{'cache_ttl': {'peak_hours': {'start': '00:00', 'end': '24:00', 'factor': 0.000001,"
       " 'days': ['mon', 'tue', 'wed', 'thu', 'fri', 'sat', 'sun']}}}"),
    OK("{'cache_ttl': {'peak_hours': {'start': '23:59', 'end': '00:00', 'factor': 0.25}}}"),
    BAD("{'cache_ttl': {'peak_hours': {'end': '17:00', 'factor': 0.5}}}", "cache_ttl.peak_hours.start",
        "cache_ttl.peak_hours.start is required"),
    BAD("{'cache_ttl': {'peak_hours': {'start': '09:00', 'factor': 0.5}}}", "cache_ttl.peak_hours.end", "is required"),
    BAD("{'cache_ttl': {'peak_hours': {'start': '09:00', 'end': '17:00'}}}", "cache_ttl.peak_hours.factor",
        "cache_ttl.peak_hours.factor is required"),
#define BAD_START(v) BAD("{'cache_ttl': {'peak_hours': {'start': " v ", 'end': '17:00', 'factor': 0.5}}}", \
                         "cache_ttl.peak_hours.start", M_START)
    BAD_START("'9:00'"), BAD_START("'24:00'"), BAD_START("'09:60'"), BAD_START("'09:00:00'"), BAD_START("'0900'"),
    BAD_START("' 9:00'"), BAD_START("'ab:cd'"), BAD_START("'09-00'"), BAD_START("'-1:00'"), BAD_START("'９:00'"),
    BAD("{'cache_ttl': {'peak_hours': {'start': 'nine o clock in the morning', 'end': '17:00', 'factor': 0.5}}}",
        "cache_ttl.peak_hours.start", "must be a string of 1 to 16 characters"),
    BAD("{'cache_ttl': {'peak_hours': {'start': 900, 'end': '17:00', 'factor': 0.5}}}", "cache_ttl.peak_hours.start",
        "must be a string"),
    BAD("{'cache_ttl': {'peak_hours': {'start': '09:00', 'end': '24:01', 'factor': 0.5}}}", "cache_ttl.peak_hours.end",
        M_END),
    BAD("{'cache_ttl': {'peak_hours': {'start': '09:00', 'end': '25:00', 'factor': 0.5}}}", "cache_ttl.peak_hours.end",
        M_END),
    BAD("{'cache_ttl': {'peak_hours': {'start': '09:00', 'end': '09:00', 'factor': 0.5}}}", "cache_ttl.peak_hours.end",
        "cache_ttl.peak_hours.end must differ from start (\"09:00\"): use \"00:00\" to \"24:00\" for the whole day"),
    BAD("{'cache_ttl': {'peak_hours': {'start': '00:00', 'end': '00:00', 'factor': 0.5}}}", "cache_ttl.peak_hours.end",
        "must differ from start"),
    BAD("{'cache_ttl': {'peak_hours': {'start': '09:00', 'end': '17:00', 'factor': 0}}}", "cache_ttl.peak_hours.factor",
        "cache_ttl.peak_hours.factor must be a number above 0 and at most 1"),
    BAD("{'cache_ttl': {'peak_hours': {'start': '09:00', 'end': '17:00', 'factor': 1.01}}}",
        "cache_ttl.peak_hours.factor", M_ABOVE0),
    BAD("{'cache_ttl': {'peak_hours': {'start': '09:00', 'end': '17:00', 'factor': -0.5}}}",
        "cache_ttl.peak_hours.factor", M_ABOVE0),
    BAD("{'cache_ttl': {'peak_hours': {'start': '09:00', 'end': '17:00', 'factor': '0.5'}}}",
        "cache_ttl.peak_hours.factor", M_ABOVE0),
    BAD("{'cache_ttl': {'peak_hours': {'start': '09:00', 'end': '17:00', 'factor': 0.5, 'days': []}}}",
        "cache_ttl.peak_hours.days", "cache_ttl.peak_hours.days must not be empty"),
    BAD("{'cache_ttl': {'peak_hours': {'start': '09:00', 'end': '17:00', 'factor': 0.5, 'days': 'mon'}}}",
        "cache_ttl.peak_hours.days", "must be an array"),
    BAD("{'cache_ttl': {'peak_hours': {'start': '09:00', 'end': '17:00', 'factor': 0.5, 'days': ['monday']}}}",
        "cache_ttl.peak_hours.days[0]", M_DAY),
    BAD("{'cache_ttl': {'peak_hours': {'start': '09:00', 'end': '17:00', 'factor': 0.5, 'days': ['mon', 'Tue']}}}",
        "cache_ttl.peak_hours.days[1]", M_DAY),
    BAD("{'cache_ttl': {'peak_hours': {'start': '09:00', 'end': '17:00', 'factor': 0.5, 'days': ['sat', 'sat']}}}",
        "cache_ttl.peak_hours.days[1]", "repeats \"sat\" (already at index 0)"),
    BAD("{'cache_ttl': {'peak_hours': {'start': '09:00', 'end': '17:00', 'factor': 0.5, 'tz': 'UTC'}}}",
        "cache_ttl.peak_hours.tz", "expected one of start, end, days, factor"),
    /* cache_ttl.content_based */
    OK("{'cache_ttl': {'content_based': {'truncated_s': 0}}}"),
    OK("{'cache_ttl': {'content_based': {'truncated_s': 315360000}}}"),
    BAD("{'cache_ttl': {'content_based': {}}}", "cache_ttl.content_based.truncated_s",
        "cache_ttl.content_based.truncated_s is required"),
    BAD("{'cache_ttl': {'content_based': {'truncated_s': -1}}}", "cache_ttl.content_based.truncated_s",
        "between 0 and 315360000"),
    BAD("{'cache_ttl': {'content_based': {'truncated_s': 315360001}}}", "cache_ttl.content_based.truncated_s",
        "between 0 and 315360000"),
    BAD("{'cache_ttl': {'content_based': {'truncated_s': 60, 'refusal_s': 1}}}", "cache_ttl.content_based.refusal_s",
        "expected one of truncated_s"),
    /* memory_limits */
    OK("{'memory_limits': {'cache_max_size': 1, 'cache_max_entries': 0, 'log_buffer_size': 1024,"
       " 'response_buffer_size': '1KB'}}"),
    OK("{'memory_limits': {'cache_max_size': '1024GB', 'cache_max_entries': 100000000, 'log_buffer_size': '1gb',"
       " 'response_buffer_size': 1073741824}}"),
    OK("{'memory_limits': {'cache_max_size': '512kb', 'log_buffer_size': '2048B', 'response_buffer_size': '1Mb'}}"),
    BAD("{'memory_limits': {'cache_max_size': 0}}", "memory_limits.cache_max_size", M_SIZE),
    BAD("{'memory_limits': {'cache_max_size': '1025GB'}}", "memory_limits.cache_max_size",
        "from 1 to 1099511627776 bytes"),
    BAD("{'memory_limits': {'cache_max_size': '10 MB'}}", "memory_limits.cache_max_size", M_SIZE),
    BAD("{'memory_limits': {'cache_max_size': '10TB'}}", "memory_limits.cache_max_size", M_SIZE),
    BAD("{'memory_limits': {'cache_max_size': '-1MB'}}", "memory_limits.cache_max_size", M_SIZE),
    BAD("{'memory_limits': {'cache_max_size': '99999999999999999999GB'}}", "memory_limits.cache_max_size", M_SIZE),
    BAD("{'memory_limits': {'cache_max_size': true}}", "memory_limits.cache_max_size", M_SIZE),
    BAD("{'memory_limits': {'log_buffer_size': 1023}}", "memory_limits.log_buffer_size", "from 1024 to 1073741824"),
    BAD("{'memory_limits': {'log_buffer_size': '1023B'}}", "memory_limits.log_buffer_size", M_SIZE),
    BAD("{'memory_limits': {'log_buffer_size': '1025MB'}}", "memory_limits.log_buffer_size", M_SIZE),
    BAD("{'memory_limits': {'response_buffer_size': '1.5MB'}}", "memory_limits.response_buffer_size", M_SIZE),
    BAD("{'memory_limits': {'response_buffer_size': 2048.0}}", "memory_limits.response_buffer_size", M_SIZE),
    BAD("{'memory_limits': {'cache_max_entries': -1}}", "memory_limits.cache_max_entries", "between 0 and 100000000"),
    BAD("{'memory_limits': {'cache_max_entries': 100000001}}", "memory_limits.cache_max_entries", "between 0"),
    BAD("{'memory_limits': {'cache_max_entries': '10'}}", "memory_limits.cache_max_entries", "must be an integer"),
    /* middleware_pipeline */
    OK("{'middleware_pipeline': []}"),
    OK("{'middleware_pipeline': ['authentication', 'ip_filter', 'rate_limiting', 'request_validation', 'caching',"
       " 'failure_simulation', 'provider_forwarding', 'response_processing', 'logging']}"),
    BAD("{'middleware_pipeline': ['caching', 'logging', 'caching']}", "middleware_pipeline[2]",
        "repeats \"caching\" (already at index 0)"),
    BAD("{'middleware_pipeline': ['caching', 'compression']}", "middleware_pipeline[1]",
        "middleware_pipeline[1] must be one of: authentication, ip_filter"),
    BAD("{'middleware_pipeline': ['caching', 5]}", "middleware_pipeline[1]", "must be one of"),
    BAD("{'middleware_pipeline': {}}", "middleware_pipeline", "must be an array"),
    BAD("{'middleware_pipeline': ['logging','logging','logging','logging','logging','logging','logging','logging',"
        "'logging','logging','logging','logging','logging','logging','logging','logging','logging']}",
        "middleware_pipeline", "at most 16 entries"),
    /* upstream client choice */
    OK("{'upstream': {'client': 'auto'}}"),
    OK("{'upstream': {'client': 'curl'}}"),
    OK("{'upstream': {'ca_file': '/etc/ssl/certs/ca-certificates.crt'}}"),
    BAD("{'upstream': {'ca_file': ''}}", "upstream.ca_file", "string of 1 to 4096 characters"),
    BAD("{'upstream': {'client': 'wget'}}", "upstream.client", "one of"),
    BAD("{'upstream': {'proxy': 'x'}}", "upstream.proxy", "unknown field"),
    /* emulator */
    OK("{'emulator': {'tokens_per_second': 0, 'seed': 0}}"),
    OK("{'emulator': {'tokens_per_second': 100000, 'seed': 9007199254740991}}"),
    OK("{'emulator': {'tokens_per_second': 12.5}}"),
    BAD("{'emulator': {'tokens_per_second': 100000.5}}", "emulator.tokens_per_second", "between 0 and 100000"),
    BAD("{'emulator': {'tokens_per_second': -1}}", "emulator.tokens_per_second", "between 0 and 100000"),
    BAD("{'emulator': {'tokens_per_second': 1e999}}", "emulator.tokens_per_second", "between 0 and 100000"),
    BAD("{'emulator': {'seed': 9007199254740992}}", "emulator.seed", "between 0 and 9007199254740991"),
    BAD("{'emulator': {'seed': 9223372036854775808}}", "emulator.seed", "must be an integer"),
    BAD("{'emulator': {'seed': -1}}", "emulator.seed", "must be an integer"),
    BAD("{'emulator': {'seed': 1.5}}", "emulator.seed", "must be an integer"),
    BAD("{'emulator': {'speed': 1}}", "emulator.speed", "expected one of tokens_per_second, seed"),
    /* cache */
    OK("{'cache': {'enabled': true, 'mode': 'normal'}}"),
    OK("{'cache': {'enabled': false, 'mode': 'record'}}"),
    OK("{'cache': {'mode': 'replay'}}"),
    BAD("{'cache': {'mode': 'write'}}", "cache.mode", "must be one of: normal, record, replay"),
    BAD("{'cache': {'enabled': 1}}", "cache.enabled", M_BOOL),
    /* every field at its default, written out */
    OK("{'cache': {'enabled': true, 'mode': 'normal', 'replay_timing': 'instant', 'persist': true, 'scope':"
       " 'credential', 'key_headers': [], 'coalesce': true, 'invalidate_on_model_change': true}}"),
    OK("{'cache': {'replay_timing': 'original', 'scope': 'proxy', 'persist': false, 'coalesce': false,"
       " 'invalidate_on_model_change': false, 'key_headers': ['anthropic-beta', 'anthropic-version', 'OpenAI-Beta']}}"),
    OK("{'cache': {'key_headers': ['h1', 'h2', 'h3', 'h4', 'h5', 'h6', 'h7', 'h8', 'h9', 'h10', 'h11', 'h12', 'h13',"
       " 'h14', 'h15', 'x-01234567890123456789012345678901234567890123456789012345678901']}}"),
    OK("{'cache': {'invalidate_on_error_rate': {'threshold': 0.5}}}"),
    OK("{'cache': {'invalidate_on_error_rate': {'threshold': 1, 'window_s': 3600, 'min_requests': 1000000}}}"),
    OK("{'cache': {'invalidate_on_error_rate': {'threshold': 0.0001, 'window_s': 1, 'min_requests': 1}}}"),
    BAD("{'cache': {'ttl': 5}}", "cache.ttl",
        "unknown field 'cache.ttl': expected one of enabled, mode, replay_timing, persist, scope, key_headers, "
        "coalesce, invalidate_on_error_rate, invalidate_on_model_change"),
    BAD("{'cache': {'replay_timing': 'fast'}}", "cache.replay_timing",
        "cache.replay_timing must be one of: instant, original"),
    BAD("{'cache': {'scope': 'global'}}", "cache.scope", "cache.scope must be one of: credential, proxy"),
    BAD("{'cache': {'scope': 'Proxy'}}", "cache.scope", "must be one of: credential, proxy"),
    BAD("{'cache': {'persist': 'yes'}}", "cache.persist", M_BOOL),
    BAD("{'cache': {'coalesce': 0}}", "cache.coalesce", M_BOOL),
    BAD("{'cache': {'invalidate_on_model_change': null}}", "cache.invalidate_on_model_change", M_BOOL),
    BAD("{'cache': {'key_headers': 'anthropic-beta'}}", "cache.key_headers", "cache.key_headers must be an array"),
    BAD("{'cache': {'key_headers': ['anthropic beta']}}", "cache.key_headers[0]", M_HDR),
    BAD("{'cache': {'key_headers': ['x-a', 'x-b:']}}", "cache.key_headers[1]", M_HDR),
    BAD("{'cache': {'key_headers': ['']}}", "cache.key_headers[0]", "must be a string of 1 to 64 characters"),
    BAD("{'cache': {'key_headers': ['x-012345678901234567890123456789012345678901234567890123456789012']}}",
        "cache.key_headers[0]", "must be a string of 1 to 64 characters"),
    BAD("{'cache': {'key_headers': [5]}}", "cache.key_headers[0]", "must be a string"),
    /* header names are case-insensitive, so these are the same header */
    BAD("{'cache': {'key_headers': ['anthropic-beta', 'Anthropic-Beta']}}", "cache.key_headers[1]",
        "cache.key_headers[1] repeats \"Anthropic-Beta\" (already at index 0)"),
    BAD("{'cache': {'key_headers': ['h1', 'h2', 'h3', 'h4', 'h5', 'h6', 'h7', 'h8', 'h9', 'h10', 'h11', 'h12', 'h13',"
        " 'h14', 'h15', 'h16', 'h17']}}",
        "cache.key_headers", "cache.key_headers must have at most 16 entries"),
    BAD("{'cache': {'invalidate_on_error_rate': {}}}", "cache.invalidate_on_error_rate.threshold",
        "cache.invalidate_on_error_rate.threshold is required"),
    BAD("{'cache': {'invalidate_on_error_rate': true}}", "cache.invalidate_on_error_rate", "must be an object"),
    BAD("{'cache': {'invalidate_on_error_rate': {'threshold': 0}}}", "cache.invalidate_on_error_rate.threshold",
        "cache.invalidate_on_error_rate.threshold must be a number above 0 and at most 1"),
    BAD("{'cache': {'invalidate_on_error_rate': {'threshold': 1.5}}}", "cache.invalidate_on_error_rate.threshold",
        M_ABOVE0),
    BAD("{'cache': {'invalidate_on_error_rate': {'threshold': 0.5, 'window_s': 0}}}",
        "cache.invalidate_on_error_rate.window_s", "must be an integer between 1 and 3600"),
    BAD("{'cache': {'invalidate_on_error_rate': {'threshold': 0.5, 'window_s': 3601}}}",
        "cache.invalidate_on_error_rate.window_s", "between 1 and 3600"),
    BAD("{'cache': {'invalidate_on_error_rate': {'threshold': 0.5, 'min_requests': 0}}}",
        "cache.invalidate_on_error_rate.min_requests", "must be an integer between 1 and 1000000"),
    BAD("{'cache': {'invalidate_on_error_rate': {'threshold': 0.5, 'min_requests': 1000001}}}",
        "cache.invalidate_on_error_rate.min_requests", "between 1 and 1000000"),
    BAD("{'cache': {'invalidate_on_error_rate': {'threshold': 0.5, 'window': 60}}}",
        "cache.invalidate_on_error_rate.window",
        "unknown field 'cache.invalidate_on_error_rate.window': expected one of threshold, window_s, min_requests"),
    /* logging: the request log (stages/record.c) */
    OK("{'logging': {'enabled': false}}"),
    OK("{'logging': {}}"),
    BAD("{'logging': {'enabled': 'no'}}", "logging.enabled", "logging.enabled must be true or false"),
    BAD("{'logging': {'level': 1}}", "logging.level", "unknown field 'logging.level'"),
    /* the first error in document order is the one reported */
    BAD("{'limits': {'idle_timeout_ms': 0}, 'foo': 1}", "limits.idle_timeout_ms", "between 1 and 3600000"),
};

static void test_cases(void **state)
{
    (void)state;
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        const struct vcase *tc = &cases[i];
        struct json_object *obj = doc(tc->json);
        struct rd_config_err err;
        memset(&err, 'x', sizeof err); /* results must not depend on what err held */
        int rc = rd_config_validate(obj, &err);
        json_object_put(obj);
        if (tc->field == NULL) {
            if (rc != 0)
                fail_msg("case %zu: %s\nrejected: field=%s message=%s", i, tc->json, err.field, err.message);
            assert_string_equal(err.field, "");
            continue;
        }
        if (rc != RD_EINVAL)
            fail_msg("case %zu: %s\naccepted (rc %d), expected field %s", i, tc->json, rc, tc->field);
        if (strcmp(err.field, tc->field) != 0 || strstr(err.message, tc->message) == NULL)
            fail_msg("case %zu: %s\ngot field=%s message=%s\nwant field=%s message~%s", i, tc->json, err.field,
                     err.message, tc->field, tc->message);
    }
}

static void test_seed_blocks_valid(void **state)
{
    (void)state;
    struct json_object *all = json_object_new_object();
    for (size_t i = 0; i < sizeof seed_blocks / sizeof seed_blocks[0]; i++) {
        struct json_object *obj = parse(seed_blocks[i]);
        struct rd_config_err err;
        if (rd_config_validate(obj, &err) != 0)
            fail_msg("seed block %zu rejected: %s (%s)", i, err.message, err.field);
        /* Also check them together, as one document holding every block. */
        json_object_object_foreach(obj, key, val) {
            json_object_object_add(all, key, json_object_get(val));
        }
        json_object_put(obj);
    }
    struct rd_config_err err;
    assert_int_equal(json_object_object_length(all), 7);
    if (rd_config_validate(all, &err) != 0)
        fail_msg("combined seed blocks rejected: %s (%s)", err.message, err.field);
    json_object_put(all);
}

/* What the old version stored in failure_config is not our format: its keys
 * are rejected with a pointer to the field, not silently defaulted. */
static void test_old_failure_config_rejected(void **state)
{
    (void)state;
    struct json_object *obj = doc("{'timeout_enabled': false, 'timeout_seconds': null}");
    struct rd_config_err err;
    assert_int_equal(rd_config_validate(obj, &err), RD_EINVAL);
    assert_string_equal(err.field, "timeout_enabled");
    assert_string_equal(err.message, "unknown configuration block 'timeout_enabled'");
    json_object_put(obj);
}

/* rate_limit_response.body: a string of at most 16 KiB, or any other JSON
 * value whose serialisation is at most 16 KiB. */
static void test_ratelimit_body_cap(void **state)
{
    (void)state;
    for (int big = 0; big < 2; big++) {
        for (int as_string = 0; as_string < 2; as_string++) {
            struct json_object *rl = json_object_new_object();
            json_object_object_add(rl, "requests_per_minute", json_object_new_int(5));
            struct json_object *resp = json_object_new_object();
            /* a string is counted as is; an array of it serialises with
             * brackets and quotes: 4 bytes more */
            size_t n = as_string ? 16384 + (size_t)big : 16380 + (size_t)big;
            char *text = malloc(n + 1);
            memset(text, 'a', n);
            text[n] = '\0';
            struct json_object *body = json_object_new_string(text);
            if (!as_string) {
                struct json_object *arr = json_object_new_array();
                json_object_array_add(arr, body);
                body = arr;
            }
            json_object_object_add(resp, "body", body);
            json_object_object_add(rl, "rate_limit_response", resp);
            struct json_object *d = json_object_new_object();
            json_object_object_add(d, "rate_limiting", rl);
            struct rd_config_err err;
            int rc = rd_config_validate(d, &err);
            if (big) {
                assert_int_equal(rc, RD_EINVAL);
                assert_string_equal(err.field, "rate_limiting.rate_limit_response.body");
                assert_string_equal(err.message, "rate_limiting.rate_limit_response.body must be at most 16384 bytes");
            } else {
                assert_int_equal(rc, 0);
            }
            json_object_put(d);
            free(text);
        }
    }
}

static void test_not_an_object(void **state)
{
    (void)state;
    /* Bare scalars carry a newline: rd_json_parse (json-c) needs a terminator
     * after a top-level number or literal. */
    static const char *const docs[] = {"[]", "[{}]", "42\n", "\"limits\"", "true\n", "1.5\n"};
    struct rd_config_err err;
    for (size_t i = 0; i < sizeof docs / sizeof docs[0]; i++) {
        struct json_object *obj = parse(docs[i]);
        assert_int_equal(rd_config_validate(obj, &err), RD_EINVAL);
        assert_string_equal(err.field, "");
        assert_string_equal(err.message, "the configuration document must be a JSON object");
        json_object_put(obj);
    }
    /* "null" parses to NULL in json-c. */
    assert_int_equal(rd_config_validate(NULL, &err), RD_EINVAL);
    assert_string_equal(err.message, "the configuration document must be a JSON object");
    /* err is optional. */
    assert_int_equal(rd_config_validate(NULL, NULL), RD_EINVAL);
}

/* json-c accepts NaN and infinities (and code may build them); no range
 * accepts them. */
static void test_non_finite_numbers(void **state)
{
    (void)state;
    const double bad[] = {NAN, INFINITY, -INFINITY};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        struct json_object *obj = doc("{'timeout_config': {}}");
        json_object_object_add(rd_json_get(obj, "timeout_config"), "hang_rate", json_object_new_double(bad[i]));
        struct rd_config_err err;
        assert_int_equal(rd_config_validate(obj, &err), RD_EINVAL);
        assert_string_equal(err.field, "timeout_config.hang_rate");
        json_object_put(obj);
    }
}

/* A path longer than err.field is cut, never overflowed. */
static void test_long_path_truncated(void **state)
{
    (void)state;
    char key[300];
    memset(key, 'k', sizeof key - 1);
    key[sizeof key - 1] = '\0';
    struct json_object *obj = doc("{'cache_ttl': {'by_model': {}}}");
    json_object_object_add(rd_json_get(rd_json_get(obj, "cache_ttl"), "by_model"), key, json_object_new_int(5));
    struct rd_config_err err;
    assert_int_equal(rd_config_validate(obj, &err), RD_EINVAL);
    assert_int_equal(strlen(err.field), sizeof err.field - 1);
    assert_memory_equal(err.field, "cache_ttl.by_model.kkk", 22);
    assert_true(strlen(err.message) < sizeof err.message);
    json_object_put(obj);
}

static void test_err_cleared_on_success(void **state)
{
    (void)state;
    struct rd_config_err err;
    struct json_object *bad = doc("{'foo': 1}");
    struct json_object *good = doc("{'limits': {'max_body_bytes': 10}}");
    assert_int_equal(rd_config_validate(bad, &err), RD_EINVAL);
    assert_int_equal(rd_config_validate(good, &err), 0);
    assert_string_equal(err.field, "");
    assert_string_equal(err.message, "");
    json_object_put(bad);
    json_object_put(good);
}

static void test_limits_defaults(void **state)
{
    (void)state;
    struct rd_limits l;
    memset(&l, 0xff, sizeof l);
    rd_limits_default(&l);
    assert_int_equal(l.max_body_bytes, 33554432);
    assert_int_equal(l.connect_timeout_ms, 10000);
    assert_int_equal(l.upstream_timeout_ms, 600000);
    assert_int_equal(l.idle_timeout_ms, 60000);

    struct rd_limits n;
    memset(&n, 0, sizeof n);
    rd_config_limits(NULL, &n);
    assert_memory_equal(&n, &l, sizeof l);

    struct json_object *obj = doc("{'emulator': {}}");
    memset(&n, 0, sizeof n);
    rd_config_limits(obj, &n);
    assert_memory_equal(&n, &l, sizeof l);
    json_object_put(obj);
}

static void test_limits_overrides(void **state)
{
    (void)state;
    struct rd_limits l;
    struct json_object *obj = doc("{'limits': {'max_body_bytes': 1073741824, 'connect_timeout_ms': 1,"
                                  " 'upstream_timeout_ms': 86400000, 'idle_timeout_ms': 5}}");
    rd_config_limits(obj, &l);
    assert_int_equal(l.max_body_bytes, 1073741824);
    assert_int_equal(l.connect_timeout_ms, 1);
    assert_int_equal(l.upstream_timeout_ms, 86400000);
    assert_int_equal(l.idle_timeout_ms, 5);
    json_object_put(obj);

    /* Partial: the rest keep their defaults. */
    obj = doc("{'limits': {'upstream_timeout_ms': 1234}}");
    rd_config_limits(obj, &l);
    assert_int_equal(l.max_body_bytes, 33554432);
    assert_int_equal(l.connect_timeout_ms, 10000);
    assert_int_equal(l.upstream_timeout_ms, 1234);
    assert_int_equal(l.idle_timeout_ms, 60000);
    json_object_put(obj);

    /* An unvalidated document: bad values fall back to the defaults. */
    obj = doc("{'limits': {'max_body_bytes': 0, 'connect_timeout_ms': '5', 'upstream_timeout_ms': 86400001,"
              " 'idle_timeout_ms': 1.5}}");
    rd_config_limits(obj, &l);
    assert_int_equal(l.max_body_bytes, 33554432);
    assert_int_equal(l.connect_timeout_ms, 10000);
    assert_int_equal(l.upstream_timeout_ms, 600000);
    assert_int_equal(l.idle_timeout_ms, 60000);
    json_object_put(obj);

    obj = doc("{'limits': 7}");
    rd_config_limits(obj, &l);
    assert_int_equal(l.max_body_bytes, 33554432);
    json_object_put(obj);
}

static void test_emulator_tps(void **state)
{
    (void)state;
    static const struct {
        const char *json;
        double want;
    } tc[] = {
        {"{}", 0},
        {"{'emulator': {}}", 0},
        {"{'emulator': {'tokens_per_second': 50}}", 50},
        {"{'emulator': {'tokens_per_second': 12.5}}", 12.5},
        {"{'emulator': {'tokens_per_second': 100000}}", 100000},
        {"{'emulator': {'tokens_per_second': 100001}}", 0},
        {"{'emulator': {'tokens_per_second': -3}}", 0},
        {"{'emulator': {'tokens_per_second': '50'}}", 0},
        {"{'emulator': 5}", 0},
    };
    assert_true(rd_config_emulator_tps(NULL) == 0);
    for (size_t i = 0; i < sizeof tc / sizeof tc[0]; i++) {
        struct json_object *obj = doc(tc[i].json);
        double got = rd_config_emulator_tps(obj);
        if (got != tc[i].want)
            fail_msg("%s: got %g want %g", tc[i].json, got, tc[i].want);
        json_object_put(obj);
    }
}

/* Builds {"ip_filtering": {"mode": "blocklist", "blocked_ips": [n patterns]}}
 * with distinct addresses, IPv4 and IPv6 CIDRs mixed. */
static struct json_object *ip_list_doc(size_t n)
{
    struct json_object *list = json_object_new_array_ext((int)n);
    char pat[64];
    for (size_t i = 0; i < n; i++) {
        if (i % 4 == 3)
            snprintf(pat, sizeof pat, "2001:db8:%zx::/48", i);
        else
            snprintf(pat, sizeof pat, "10.%zu.%zu.%zu/32", i >> 16 & 255, i >> 8 & 255, i & 255);
        json_object_array_add(list, json_object_new_string(pat));
    }
    struct json_object *blk = json_object_new_object();
    json_object_object_add(blk, "mode", json_object_new_string("blocklist"));
    json_object_object_add(blk, "blocked_ips", list);
    struct json_object *d = json_object_new_object();
    json_object_object_add(d, "ip_filtering", blk);
    return d;
}

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* Lists as long as an address set takes are accepted, and checking a
 * 10,000-entry list is fast; one more than the cap is refused. */
static void test_large_ip_list(void **state)
{
    (void)state;
    struct rd_config_err err;
    struct json_object *d = ip_list_doc(10000);
    double t0 = now_s();
    assert_int_equal(rd_config_validate(d, &err), 0);
    double dt = now_s() - t0;
    /* about 2 ms unsanitised; generous for ASan on a shared machine */
    assert_true(dt < 0.5);
    /* a bad entry deep in the list is named by its index */
    json_object_array_put_idx(json_object_object_get(json_object_object_get(d, "ip_filtering"), "blocked_ips"), 9876,
                              json_object_new_string("10.0.0.256"));
    assert_int_equal(rd_config_validate(d, &err), RD_EINVAL);
    assert_string_equal(err.field, "ip_filtering.blocked_ips[9876]");
    json_object_put(d);

    d = ip_list_doc(RD_IPSET_MAX_ENTRIES + 1);
    assert_int_equal(rd_config_validate(d, &err), RD_EINVAL);
    assert_string_equal(err.field, "ip_filtering.blocked_ips");
    assert_non_null(strstr(err.message, "must have at most 262144 entries"));
    json_object_put(d);
}

static void test_parse_size(void **state)
{
    (void)state;
    static const struct {
        const char *s;
        int rc;
        uint64_t want;
    } tc[] = {
        {"0", 0, 0},
        {"4096", 0, 4096},
        {"512B", 0, 512},
        {"512b", 0, 512},
        {"512KB", 0, 524288},
        {"512kb", 0, 524288},
        {"10MB", 0, 10485760},
        {"10mB", 0, 10485760},
        {"1GB", 0, 1073741824},
        {"1gb", 0, 1073741824},
        {"0010KB", 0, 10240},
        {"18446744073709551615", 0, UINT64_MAX},
        {"18446744073709551615B", 0, UINT64_MAX},
        {"17179869183GB", 0, UINT64_C(17179869183) * 1073741824},
        {"17179869184GB", RD_ETOOBIG, 0},
        {"18014398509481984KB", RD_ETOOBIG, 0},
        {"18446744073709551616", RD_ETOOBIG, 0},
        {"99999999999999999999999KB", RD_ETOOBIG, 0},
        {"", RD_EINVAL, 0},
        {"KB", RD_EINVAL, 0},
        {"10 MB", RD_EINVAL, 0},
        {" 10MB", RD_EINVAL, 0},
        {"10MB ", RD_EINVAL, 0},
        {"-1", RD_EINVAL, 0},
        {"+1", RD_EINVAL, 0},
        {"1.5MB", RD_EINVAL, 0},
        {"1e3", RD_EINVAL, 0},
        {"10TB", RD_EINVAL, 0},
        {"10KiB", RD_EINVAL, 0},
        {"10K", RD_EINVAL, 0},
        {"10MBB", RD_EINVAL, 0},
        {"000000000000000000000000000000001", RD_EINVAL, 0}, /* 33 characters: over the length cap */
    };
    for (size_t i = 0; i < sizeof tc / sizeof tc[0]; i++) {
        uint64_t out = 77;
        int rc = rd_config_parse_size(tc[i].s, &out);
        if (rc != tc[i].rc)
            fail_msg("\"%s\": rc %d want %d", tc[i].s, rc, tc[i].rc);
        if (out != (rc == 0 ? tc[i].want : 77))
            fail_msg("\"%s\": out %llu", tc[i].s, (unsigned long long)out);
    }
    uint64_t out = 77;
    assert_int_equal(rd_config_parse_size(NULL, &out), RD_EINVAL);
    assert_int_equal(out, 77);
}

/* rd_config_size: the cache's reads of memory_limits. */
static void test_config_size(void **state)
{
    (void)state;
    const uint64_t dflt = RD_CONFIG_CACHE_MAX_SIZE_DEFAULT;
    uint64_t out = 0, parsed = 0;
    /* the defaults are the documented strings */
    assert_int_equal(rd_config_parse_size("1GB", &parsed), 0);
    assert_true(parsed == RD_CONFIG_CACHE_MAX_SIZE_DEFAULT);
    assert_int_equal(rd_config_parse_size("10MB", &parsed), 0);
    assert_true(parsed == RD_CONFIG_RESPONSE_BUFFER_SIZE_DEFAULT);
    assert_int_equal(RD_CONFIG_CACHE_MAX_ENTRIES_DEFAULT, 10000);
    assert_int_equal(rd_config_size(NULL, "memory_limits", "cache_max_size", dflt, &out), 0);
    assert_true(out == dflt);
    struct json_object *d = doc("{'memory_limits': {'cache_max_size': '512MB', 'response_buffer_size': 4096}}");
    assert_int_equal(rd_config_size(d, "memory_limits", "cache_max_size", dflt, &out), 0);
    assert_true(out == UINT64_C(536870912));
    assert_int_equal(rd_config_size(d, "memory_limits", "response_buffer_size", RD_CONFIG_RESPONSE_BUFFER_SIZE_DEFAULT,
                                    &out),
                     0);
    assert_true(out == 4096);
    assert_int_equal(rd_config_size(d, "memory_limits", "log_buffer_size", 77, &out), 0);
    assert_true(out == 77);
    /* not size fields of the schema */
    out = 5;
    assert_int_equal(rd_config_size(d, "memory_limits", "cache_max_entries", 10000, &out), RD_EINVAL);
    assert_true(out == 10000);
    assert_int_equal(rd_config_size(d, "foo", "cache_max_size", 1, &out), RD_EINVAL);
    assert_int_equal(rd_config_size(d, "memory_limits", "foo", 1, &out), RD_EINVAL);
    assert_int_equal(rd_config_size(d, NULL, NULL, 1, &out), RD_EINVAL);
    json_object_put(d);
    /* an unvalidated document's unusable value: the default, and the caller is told */
    static const char *const bad[] = {
        "{'memory_limits': {'cache_max_size': 0}}",        "{'memory_limits': {'cache_max_size': '10TB'}}",
        "{'memory_limits': {'cache_max_size': '1025GB'}}", "{'memory_limits': {'cache_max_size': -1}}",
        "{'memory_limits': {'cache_max_size': true}}",     "{'memory_limits': {'cache_max_size': 1.5}}",
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        d = doc(bad[i]);
        out = 5;
        if (rd_config_size(d, "memory_limits", "cache_max_size", dflt, &out) != RD_EINVAL || out != dflt)
            fail_msg("%s: accepted (out %llu)", bad[i], (unsigned long long)out);
        json_object_put(d);
    }
    /* a block that is not an object reads as absent */
    d = doc("{'memory_limits': 5}");
    assert_int_equal(rd_config_size(d, "memory_limits", "cache_max_size", dflt, &out), 0);
    assert_true(out == dflt);
    json_object_put(d);
}

static void test_parse_clock(void **state)
{
    (void)state;
    static const struct {
        const char *s;
        int rc;
        uint32_t want;
    } tc[] = {
        {"00:00", 0, 0},         {"09:30", 0, 570},        {"23:59", 0, 1439},       {"24:00", 0, 1440},
        {"12:05", 0, 725},       {"24:01", RD_EINVAL, 0},  {"25:00", RD_EINVAL, 0},  {"23:60", RD_EINVAL, 0},
        {"9:00", RD_EINVAL, 0},  {"09:0", RD_EINVAL, 0},   {"09:000", RD_EINVAL, 0}, {"0930", RD_EINVAL, 0},
        {"09-30", RD_EINVAL, 0}, {"", RD_EINVAL, 0},       {"+9:00", RD_EINVAL, 0},  {"09:3 ", RD_EINVAL, 0},
        {"0x:30", RD_EINVAL, 0}, {"09:30Z", RD_EINVAL, 0},
    };
    for (size_t i = 0; i < sizeof tc / sizeof tc[0]; i++) {
        uint32_t out = 77;
        int rc = rd_config_parse_clock(tc[i].s, &out);
        if (rc != tc[i].rc || out != (rc == 0 ? tc[i].want : 77))
            fail_msg("\"%s\": rc %d out %u", tc[i].s, rc, out);
    }
    uint32_t out = 77;
    assert_int_equal(rd_config_parse_clock(NULL, &out), RD_EINVAL);
    assert_int_equal(out, 77);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_cases),
        cmocka_unit_test(test_seed_blocks_valid),
        cmocka_unit_test(test_old_failure_config_rejected),
        cmocka_unit_test(test_ratelimit_body_cap),
        cmocka_unit_test(test_not_an_object),
        cmocka_unit_test(test_non_finite_numbers),
        cmocka_unit_test(test_long_path_truncated),
        cmocka_unit_test(test_err_cleared_on_success),
        cmocka_unit_test(test_limits_defaults),
        cmocka_unit_test(test_limits_overrides),
        cmocka_unit_test(test_emulator_tps),
        cmocka_unit_test(test_parse_size),
        cmocka_unit_test(test_config_size),
        cmocka_unit_test(test_parse_clock),
        cmocka_unit_test(test_large_ip_list),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
