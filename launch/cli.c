#include "launch/cli.h"

#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <libgen.h>
#include <math.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <unistd.h>

void cli_error(const char *cmd, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    fprintf(stderr, "adebert%s%s: ", cmd ? " " : "", cmd ? cmd : "");
    vfprintf(stderr, fmt, ap);
    fputc('\n', stderr);
    va_end(ap);
}

int cli_parse_u64(const char *s, uint64_t *out)
{
    if (!s || !*s || *s == '-' || *s == '+')
        return -1;
    errno = 0;
    char *end = NULL;
    unsigned long long v = strtoull(s, &end, 10);
    if (errno || *end)
        return -1;
    *out = (uint64_t)v;
    return 0;
}

int cli_parse_size(const char *s, size_t min, size_t max, size_t *out)
{
    uint64_t v;
    if (cli_parse_u64(s, &v) || v < min || v > max)
        return -1;
    *out = (size_t)v;
    return 0;
}

int cli_parse_fraction(const char *s, double *out)
{
    if (!s || !*s)
        return -1;
    errno = 0;
    char *end = NULL;
    double v = strtod(s, &end);
    if (errno || *end || !isfinite(v) || v < 0.0 || v >= 1.0)
        return -1;
    *out = v;
    return 0;
}

const char *cli_data_dir(const char *flag_value)
{
    if (flag_value && *flag_value)
        return flag_value;
    const char *env = getenv("ADEBERT_DATA");
    if (env && *env)
        return env;
    return ADEBERT_DEFAULT_DATA;
}

int cli_resolve_lowercase(const char *cmd, int flag, int vocab_is_cased)
{
    if (flag >= 0)
        return flag;
    fprintf(stderr, "adebert %s: note: no --lowercase/--cased given; using %s (the vocab %s uppercase tokens)\n",
            cmd, vocab_is_cased ? "--cased" : "--lowercase", vocab_is_cased ? "has" : "has no");
    return !vocab_is_cased;
}

int cli_getopt(int argc, char **argv, const char *cmd, const char *shortopts, const struct option *longopts)
{
    opterr = 0;
    int idx = 0;
    int c = getopt_long(argc, argv, shortopts, longopts, &idx);
    if (c == '?') {
        if (optopt)
            cli_error(cmd, "option -%c is unknown or needs a value (see --help)", optopt);
        else
            cli_error(cmd, "unknown option or missing value: '%s' (see --help)", argv[optind - 1]);
    } else if (c == ':') {
        cli_error(cmd, "option '%s' needs a value (see --help)", argv[optind - 1]);
    }
    return c;
}

int cli_outfile_open(cli_outfile *t, const char *path, char *err, size_t errlen)
{
    memset(t, 0, sizeof *t);
    t->path = path;
    /* PATH.tmp.HOST.PID.XXXXXX (mode 0600); temporaries that killed writers left
     * next to PATH are removed first (io/io.h) */
    char ierr[IO_ERRLEN];
    int fd = io_tmp_create_file(path, t->tmp, sizeof t->tmp, ierr);
    if (fd < 0) {
        snprintf(err, errlen, "%s", ierr);
        return -1;
    }
    t->f = fdopen(fd, "w");
    if (!t->f) {
        snprintf(err, errlen, "%.400s: %s", path, strerror(errno));
        close(fd);
        unlink(t->tmp);
        t->tmp[0] = '\0';
        return -1;
    }
    return 0;
}

void cli_outfile_abort(cli_outfile *t)
{
    if (t->f)
        fclose(t->f);
    t->f = NULL;
    if (t->tmp[0])
        unlink(t->tmp);
    t->tmp[0] = '\0';
}

int cli_outfile_commit(cli_outfile *t, char *err, size_t errlen)
{
    int bad = fflush(t->f) != 0 || ferror(t->f) || fsync(fileno(t->f)) != 0;
    int e = errno;
    if (fclose(t->f) != 0 && !bad) {
        bad = 1;
        e = errno;
    }
    t->f = NULL;
    if (bad || rename(t->tmp, t->path) != 0) {
        snprintf(err, errlen, "%.400s: write failed: %s", t->path, strerror(bad ? e : errno));
        unlink(t->tmp);
        t->tmp[0] = '\0';
        return -1;
    }
    t->tmp[0] = '\0';
    /* the rename itself is durable once the folder is synced */
    char dir[1100];
    snprintf(dir, sizeof dir, "%s", t->path);
    int dfd = open(dirname(dir), O_RDONLY | O_DIRECTORY);
    if (dfd >= 0) {
        (void)fsync(dfd);
        close(dfd);
    }
    return 0;
}

int cli_write_file(const char *path, const void *data, size_t len, char *err, size_t errlen)
{
    cli_outfile t;
    if (cli_outfile_open(&t, path, err, errlen))
        return -1;
    if (len && fwrite(data, 1, len, t.f) != len) {
        snprintf(err, errlen, "%.400s: write failed: %s", path, strerror(errno));
        cli_outfile_abort(&t);
        return -1;
    }
    return cli_outfile_commit(&t, err, errlen);
}

int cli_mkdir_parents(const char *path, char *err, size_t errlen)
{
    char parent[4096];
    if ((size_t)snprintf(parent, sizeof parent, "%s", path) >= sizeof parent) {
        snprintf(err, errlen, "%.400s: path too long", path);
        return -1;
    }
    for (char *p = parent + 1; *p; p++) {
        if (*p != '/')
            continue;
        *p = '\0';
        if (mkdir(parent, 0700) != 0 && errno != EEXIST) {
            snprintf(err, errlen, "cannot create %.400s: %s", parent, strerror(errno));
            return -1;
        }
        *p = '/';
    }
    return 0;
}

int cli_rss_now(uint64_t *bytes)
{
    *bytes = 0;
    int fd = open("/proc/self/statm", O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return -1;
    char buf[256];
    size_t got = 0;
    for (;;) { /* one short line, read whole (a read may return less) */
        ssize_t k = read(fd, buf + got, sizeof buf - 1 - got);
        if (k < 0 && errno == EINTR)
            continue;
        if (k <= 0)
            break;
        got += (size_t)k;
        if (got == sizeof buf - 1)
            break;
    }
    close(fd);
    buf[got] = '\0';
    /* "size resident shared text lib data dt", in pages */
    char *p = buf, *end;
    errno = 0;
    (void)strtoull(p, &end, 10);
    if (end == p || errno)
        return -1;
    p = end;
    unsigned long long resident = strtoull(p, &end, 10);
    long page = sysconf(_SC_PAGESIZE);
    if (end == p || errno || (*end != ' ' && *end != '\n') || page <= 0 || resident > UINT64_MAX / (uint64_t)page)
        return -1;
    *bytes = (uint64_t)resident * (uint64_t)page;
    return 0;
}

int cli_rss_peak(uint64_t *bytes)
{
    struct rusage ru;
    *bytes = 0;
    if (getrusage(RUSAGE_SELF, &ru) != 0 || ru.ru_maxrss <= 0)
        return -1;
    *bytes = (uint64_t)ru.ru_maxrss * 1024u; /* Linux: kilobytes */
    return 0;
}

void cli_block_signals(sigset_t *set, int a, int b)
{
    sigemptyset(set);
    sigaddset(set, a);
    sigaddset(set, b);
    pthread_sigmask(SIG_BLOCK, set, NULL);
}
