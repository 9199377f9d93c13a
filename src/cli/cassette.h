/* `rubberduck cassette export|import`: a proxy's response cache to and from
 * a cassette file (cache/cassette.h), through a running server's admin API
 * (GET /api/v1/proxies/{id}/cache/export, POST .../cache/import) over HTTP
 * with libcurl's easy interface. Blocking; runs on the main thread of a
 * process that serves nothing. docs/api.md, "Cache". */
#ifndef RD_CLI_CASSETTE_H
#define RD_CLI_CASSETTE_H

extern const char rd_cli_cassette_usage[];

/* Runs the command; argv holds what follows "cassette". Prints a one-line
 * summary on stdout, errors on stderr. Returns the exit code: 0 done, 1
 * failed (server unreachable, refused, unknown proxy, lines in error),
 * 2 usage. */
int rd_cli_cassette(int argc, char **argv);

#endif
