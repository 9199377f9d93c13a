/* Replays fuzz inputs through a libFuzzer target without libFuzzer, so that
 * `make test` can run every corpus under the gcc ASan+UBSan build. Linked
 * with any fuzz/fuzz_*.c: it only needs LLVMFuzzerTestOneInput (and calls
 * LLVMFuzzerInitialize when the target defines one).
 *
 * Usage: replay FILE|DIR...   Directories are walked recursively in name
 * order; names starting with '.' are skipped. Exits 0 when every input ran
 * (a crash aborts the process), 1 on an unreadable path or no input at all. */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define REPLAY_MAX_INPUT (16u * 1024u * 1024u)

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerInitialize(int *argc, char ***argv) __attribute__((weak));

static size_t replayed;

static int replay_file(const char *path, off_t size)
{
    int rc = -1;
    uint8_t *buf = NULL;
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        goto out;
    if (size < 0 || (uint64_t)size > REPLAY_MAX_INPUT) {
        errno = EFBIG;
        goto out;
    }
    /* exact size, so the target's reads past the end are caught */
    buf = malloc(size ? (size_t)size : 1);
    if (buf == NULL)
        goto out;
    size_t got = 0;
    while (got < (size_t)size) {
        ssize_t n = read(fd, buf + got, (size_t)size - got);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0) {
            errno = n == 0 ? EIO : errno;
            goto out;
        }
        got += (size_t)n;
    }
    LLVMFuzzerTestOneInput(buf, got);
    replayed++;
    rc = 0;
out:
    if (rc < 0)
        fprintf(stderr, "replay: %s: %s\n", path, strerror(errno));
    free(buf);
    if (fd >= 0 && close(fd) < 0 && rc == 0) {
        fprintf(stderr, "replay: close %s: %s\n", path, strerror(errno));
        rc = -1;
    }
    return rc;
}

static int replay_path(const char *path);

static int skip_dot(const struct dirent *d)
{
    return d->d_name[0] != '.';
}

static int replay_dir(const char *path)
{
    struct dirent **names = NULL;
    int n = scandir(path, &names, skip_dot, alphasort);
    if (n < 0) {
        fprintf(stderr, "replay: %s: %s\n", path, strerror(errno));
        return -1;
    }
    int rc = 0;
    for (int i = 0; i < n; i++) {
        char child[PATH_MAX];
        int len = snprintf(child, sizeof child, "%s/%s", path, names[i]->d_name);
        if (len < 0 || (size_t)len >= sizeof child) {
            fprintf(stderr, "replay: path too long under %s\n", path);
            rc = -1;
        } else if (replay_path(child) < 0) {
            rc = -1;
        }
        free(names[i]);
    }
    free(names);
    return rc;
}

static int replay_path(const char *path)
{
    struct stat st;
    if (stat(path, &st) < 0) {
        fprintf(stderr, "replay: %s: %s\n", path, strerror(errno));
        return -1;
    }
    if (S_ISDIR(st.st_mode))
        return replay_dir(path);
    if (!S_ISREG(st.st_mode))
        return 0;
    return replay_file(path, st.st_size);
}

int main(int argc, char **argv)
{
    if (argc < 2) {
        fprintf(stderr, "usage: %s FILE|DIR...\n", argv[0]);
        return 2;
    }
    if (LLVMFuzzerInitialize)
        LLVMFuzzerInitialize(&argc, &argv);
    int rc = 0;
    for (int i = 1; i < argc; i++)
        if (replay_path(argv[i]) < 0)
            rc = 1;
    if (replayed == 0) {
        fprintf(stderr, "replay: no inputs found\n");
        rc = 1;
    }
    printf("replay %s: %zu inputs ran, %s\n", argv[0], replayed, rc ? "with errors" : "ok");
    return rc;
}
