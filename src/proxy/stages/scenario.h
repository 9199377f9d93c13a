/* Scenarios and per-request triggers (issue 7, item 8): the matching and
 * parsing behind the scenario stage (scenario.c), apart from the request
 * object so that tests drive them directly.
 *
 * A scenario set is the configuration's top-level "scenario" list compiled
 * once per snapshot: each entry's conditions (nth, model, path, method,
 * header) and the outcome it asks for, as a struct rd_fault_plan. The
 * request path parses nothing: globs are split into their literal segments
 * at compile time and matched in linear time.
 *
 * Counting: an entry with nth counts, from 1, the requests that meet its
 * other conditions, whether or not an earlier entry answered them (so
 * "the 2nd request to /v1/embeddings" means that, whatever the entries
 * before it do). The counters are atomics in the set, which belongs to one
 * snapshot: replacing the configuration starts them again. The first entry
 * whose conditions all hold (nth included) wins.
 *
 * Threading: compile and free on any thread; match from any number of
 * threads at once (the counters are the only shared writes). */
#ifndef RD_PROXY_STAGES_SCENARIO_H
#define RD_PROXY_STAGES_SCENARIO_H

#include <json-c/json.h>
#include <stddef.h>

#include "http/headers.h"
#include "proxy/config.h"
#include "proxy/req.h"

#define RD_SCENARIO_MAX 256         /* entries of the "scenario" list */
#define RD_SCENARIO_NTH_MAX 64      /* numbers of one "nth" list */
#define RD_SCENARIO_HEADERS_MAX 16  /* names of one "match.header" */
#define RD_FAULT_HEADER "X-Rubberduck-Fault"

struct rd_scenario_set;

/* What an entry is matched against: the request's method, path (without
 * the query), model ("" when unknown) and headers. All borrowed. */
struct rd_scenario_input {
    const char *method;
    const char *path;
    const char *model;
    const struct rd_hdrs *headers;
};

/* Compiles list (the "scenario" array of a document rd_config_validate
 * accepted; NULL or empty: *out NULL). The set copies what it keeps: list
 * may be freed afterwards. Returns 0, or RD_EINVAL with err naming the
 * field for what the schema cannot check. */
int rd_scenario_compile(struct json_object *list, struct rd_scenario_set **out, struct rd_config_err *err);
void rd_scenario_free(struct rd_scenario_set *set); /* NULL-safe */
size_t rd_scenario_count(const struct rd_scenario_set *set);

/* Counts in against every entry and returns the index of the first entry
 * that matches, with *plan filled from it (plan->set true; message
 * borrowed from set), or -1 (plan untouched). set may be NULL. */
int rd_scenario_match(const struct rd_scenario_set *set, const struct rd_scenario_input *in,
                      struct rd_fault_plan *plan);

/* True if text[0..len) matches the glob pattern (NUL-terminated): '*'
 * matches any run of bytes, '/' included; every other byte itself. Pure;
 * linear in len for any pattern (the rd_scenario_set's compiled form is
 * what the request path uses; this one is for tests and the schema). */
bool rd_scenario_glob_match(const char *pattern, const char *text, size_t len);

/* Reads the X-Rubberduck-Fault fields of headers (name case-insensitive;
 * several lines read as one comma-separated list) into plan: items
 * "status=503", "retry_after_s=N", "hang", "delay_ms=500", "cut_after=3",
 * "stall_after=N", "stall_ms=M", "error_after=N", "malformed",
 * "malformed_after=N", "duplicate", "duplicate_after=N", spaces around
 * items allowed (docs/failure-simulation.md). Rejects unknown items, bad
 * numbers, an item given twice and combinations that contradict each other
 * (hang with anything else, a status with a stream fault, two stream
 * faults, stall_ms without stall_after); fills the defaults (Retry-After
 * 1 s on 429 and 503). Returns 0 when there is no such field (plan
 * untouched), 1 with plan filled (plan->set true), or RD_EINVAL with msg a
 * sentence for the client saying which item, where and what was expected.
 * Pure; reads each value within its length. */
int rd_scenario_parse_faults(const struct rd_hdrs *headers, struct rd_fault_plan *plan, char *msg, size_t cap);

#endif
