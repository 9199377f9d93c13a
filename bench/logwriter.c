/* The request log writer on its own (make logwriter-bench): a producer
 * pushes records like bench/run.sh's (c) does (1,850 every 50 ms, ~37k a
 * second: the same fields alike, the id counting up, the timestamp by
 * millisecond, the latencies and the trace id varying) into a real
 * writer and SQLite database in a temporary folder; prints the writer
 * thread's CPU per record (from /proc/self/task/<tid>/schedstat, in ns).
 * Without the network in the way it shows what a change to the writer,
 * the record packing or the store buys, to a few percent.
 *
 *   build/release/bench/logwriter [seconds (default 5)]
 *   taskset -c 0 build/release/bench/logwriter 5   (as the bench pins it)
 */
#include <dirent.h>
#include <ftw.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "obs/logwriter.h"

static double writer_cpu_s(void)
{
    DIR *d = opendir("/proc/self/task");
    if (d == NULL)
        return 0;
    struct dirent *e;
    double t = 0;
    while ((e = readdir(d))) {
        char p[300], comm[64] = "";
        if (e->d_name[0] == '.')
            continue;
        snprintf(p, sizeof p, "/proc/self/task/%s/comm", e->d_name);
        FILE *f = fopen(p, "r");
        if (f == NULL)
            continue;
        if (fgets(comm, sizeof comm, f) == NULL)
            comm[0] = '\0';
        fclose(f);
        if (strncmp(comm, "rd-logwriter", 12) != 0)
            continue;
        snprintf(p, sizeof p, "/proc/self/task/%s/schedstat", e->d_name);
        unsigned long long ns = 0;
        if ((f = fopen(p, "r")) != NULL) {
            if (fscanf(f, "%llu", &ns) != 1)
                ns = 0;
            fclose(f);
        }
        t = (double)ns / 1e9;
    }
    closedir(d);
    return t;
}

static int rm_one(const char *path, const struct stat *sb, int flag, struct FTW *ftw)
{
    (void)sb, (void)flag, (void)ftw;
    return remove(path);
}

static void fill(struct rd_log_rec *r, unsigned n)
{
    static const char hex[] = "0123456789abcdef";
    memset(r, 0, sizeof *r);
    snprintf(r->id, sizeof r->id, "req_c0bcb3e4%08x", n);
    r->ts_ms = 1796419309365LL + n / 37;
    r->proxy_id = 1;
    strcpy(r->client_ip, "127.0.0.1");
    strcpy(r->method, "POST");
    strcpy(r->path, "/v1/chat/completions");
    strcpy(r->provider, "openai");
    strcpy(r->model, "gpt-4o-mini");
    r->status = r->upstream_status = 200;
    r->latency_ms = 1.2 + (rand() % 500) / 1000.0;
    r->upstream_latency_ms = r->ttfb_ms = r->latency_ms - 0.001;
    r->request_bytes = 166;
    r->response_bytes = 362;
    r->input_tokens = 24;
    r->output_tokens = 8;
    r->cached_tokens = r->reasoning_tokens = -1;
    r->cost_usd = 8.4e-06;
    r->has_cost = true;
    strcpy(r->prompt_hash, "e73a1b79cfc9d469d01236451b4fcd1849f1544eff0f5f99ad7d5a807b39321e");
    for (int k = 0; k < 32; k++)
        r->trace_id[k] = hex[rand() & 15];
}

int main(int argc, char **argv)
{
    int secs = argc > 1 ? atoi(argv[1]) : 5;
    if (secs < 1 || secs > 600) {
        fprintf(stderr, "usage: logwriter [seconds 1..600]\n");
        return 2;
    }
    char dir[] = "/tmp/rd-logwriter-bench-XXXXXX";
    if (mkdtemp(dir) == NULL) {
        perror("mkdtemp");
        return 1;
    }
    char url[128], err[200] = "";
    snprintf(url, sizeof url, "sqlite://%s/rd.db", dir);
    struct rd_log_writer_cfg cfg = {.nslots = 1, .buffer_bytes = 100u << 20, .node_id = "bench", .history = 4096};
    struct rd_log_writer *w = NULL;
    if (rd_log_writer_start(url, &cfg, &w, err, sizeof err) != 0) {
        fprintf(stderr, "logwriter: %s\n", err);
        return 1;
    }
    srand(1);
    unsigned n = 0, dropped = 0;
    double c0 = writer_cpu_s();
    for (int tick = 0; tick < secs * 20; tick++) {
        for (int i = 0; i < 1850; i++, n++) {
            struct rd_log_rec *r = rd_log_reserve(w, 0);
            if (r == NULL) {
                dropped++;
                continue;
            }
            fill(r, n);
            rd_log_commit(w, 0);
        }
        nanosleep(&(struct timespec){.tv_nsec = 50 * 1000 * 1000}, NULL);
    }
    int fl = rd_log_writer_flush(w, 20000);
    double c1 = writer_cpu_s();
    struct rd_log_writer_stats st;
    rd_log_writer_stats(w, &st);
    printf("records=%u written=%llu dropped=%u batches=%llu writer_cpu_us_per_record=%.3f%s\n", n,
           (unsigned long long)st.written, dropped, (unsigned long long)st.batches, (c1 - c0) * 1e6 / n,
           fl == 0 ? "" : " (flush timed out)");
    rd_log_writer_stop(w);
    nftw(dir, rm_one, 16, FTW_DEPTH | FTW_PHYS);
    return st.written == n - dropped ? 0 : 1;
}
