/* Temporaries of write-then-rename outputs: names that carry the writer's host and
 * pid, and the sweep that removes those of dead writers (contract in io/io.h). */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/types.h>
#include <unistd.h>

#include "io/io_internal.h"

/* This machine's name as it appears in temporary names. */
static void tmp_host(char host[IO_TMP_HOSTLEN + 1])
{
    char h[256];
    if (gethostname(h, sizeof h) != 0 || !h[0])
        snprintf(h, sizeof h, "localhost");
    h[sizeof h - 1] = '\0';
    size_t i = 0;
    for (; h[i] && i < IO_TMP_HOSTLEN; i++) {
        char c = h[i];
        int ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '-';
        host[i] = ok ? c : '_';
    }
    host[i] = '\0';
}

int io_tmp_template(const char *target, char *buf, size_t len)
{
    char host[IO_TMP_HOSTLEN + 1];
    tmp_host(host);
    int k = snprintf(buf, len, "%s.tmp.%s.%ld.XXXXXX", target, host, (long)getpid());
    return k < 0 || (size_t)k >= len ? -1 : 0;
}

/* The folder and the last component of target, in dir[len] and *base (into dir). */
static int split_target(const char *target, char *dir, size_t len, const char **base)
{
    size_t n = strlen(target);
    while (n > 1 && target[n - 1] == '/')
        n--;
    if (n == 0 || n + 3 > len)
        return -1;
    const char *slash = NULL;
    for (size_t i = 0; i < n; i++)
        if (target[i] == '/')
            slash = target + i;
    if (!slash) {
        snprintf(dir, len, ".");
        memcpy(dir + 2, target, n);
        dir[2 + n] = '\0';
        *base = dir + 2;
    } else {
        size_t d = (size_t)(slash - target);
        memcpy(dir, target, n);
        dir[n] = '\0';
        dir[d] = '\0';
        if (d == 0) { /* "/name": the root folder */
            memmove(dir + 2, dir + 1, n);
            dir[0] = '/';
            dir[1] = '\0';
            *base = dir + 2;
        } else {
            *base = dir + d + 1;
        }
    }
    return **base ? 0 : -1;
}

/* The pid of a temporary of `base` written on `host`, or 0 when `name` is not one:
 * exactly BASE.tmp.HOST.PID.XXXXXX with PID decimal and XXXXXX six alphanumerics. */
static long tmp_pid(const char *name, const char *base, const char *host)
{
    size_t bl = strlen(base), hl = strlen(host);
    if (strncmp(name, base, bl) || strncmp(name + bl, ".tmp.", 5))
        return 0;
    const char *p = name + bl + 5;
    if (strncmp(p, host, hl) || p[hl] != '.')
        return 0;
    p += hl + 1;
    long pid = 0;
    const char *d = p;
    while (*p >= '0' && *p <= '9' && p - d < 10)
        pid = pid * 10 + (*p++ - '0');
    if (p == d || *d == '0' || *p != '.')
        return 0;
    p++;
    for (int i = 0; i < 6; i++, p++)
        if (!((*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z') || (*p >= '0' && *p <= '9')))
            return 0;
    return *p ? 0 : pid;
}

/* A folder's plain entries, then the folder; a subfolder inside leaves it in place. */
static int remove_flat_dir_at(int dfd, const char *name)
{
    int fd = openat(dfd, name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
    if (fd < 0)
        return -1;
    DIR *d = fdopendir(fd);
    if (!d) {
        close(fd);
        return -1;
    }
    struct dirent *e;
    while ((e = readdir(d)) != NULL)
        if (strcmp(e->d_name, ".") && strcmp(e->d_name, ".."))
            (void)unlinkat(fd, e->d_name, 0); /* a subfolder: EISDIR, and rmdir below fails */
    closedir(d);
    return unlinkat(dfd, name, AT_REMOVEDIR);
}

size_t io_tmp_sweep(const char *target)
{
    char dir[4200], host[IO_TMP_HOSTLEN + 1];
    const char *base;
    if (split_target(target, dir, sizeof dir, &base))
        return 0;
    tmp_host(host);
    int dfd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (dfd < 0)
        return 0;
    int fd2 = dup(dfd);
    DIR *d = fd2 >= 0 ? fdopendir(fd2) : NULL;
    if (!d) {
        if (fd2 >= 0)
            close(fd2);
        close(dfd);
        return 0;
    }
    size_t removed = 0;
    long self = (long)getpid();
    struct dirent *e;
    while ((e = readdir(d)) != NULL) {
        long pid = tmp_pid(e->d_name, base, host);
        if (pid <= 0 || pid == self || (pid_t)pid != pid)
            continue;
        /* EPERM: the process exists (another user's): alive */
        if (kill((pid_t)pid, 0) == 0 || errno != ESRCH)
            continue;
        struct stat st;
        if (fstatat(dfd, e->d_name, &st, AT_SYMLINK_NOFOLLOW) != 0)
            continue;
        int rc = S_ISDIR(st.st_mode) ? remove_flat_dir_at(dfd, e->d_name) : unlinkat(dfd, e->d_name, 0);
        if (rc == 0)
            removed++;
    }
    closedir(d);
    close(dfd);
    return removed;
}

static int tmp_prepare(const char *target, char *tmp, size_t len, char err[IO_ERRLEN])
{
    if (io_tmp_template(target, tmp, len)) {
        tmp[0] = '\0';
        return io_fail(err, "%.300s: path too long", target);
    }
    io_tmp_sweep(target);
    return 0;
}

int io_tmp_create_file(const char *target, char *tmp, size_t len, char err[IO_ERRLEN])
{
    if (tmp_prepare(target, tmp, len, err))
        return -1;
    int fd = mkstemp(tmp);
    if (fd < 0) {
        io_fail(err, "%.300s: cannot create a file next to it: %s", target, strerror(errno));
        tmp[0] = '\0';
    }
    return fd;
}

int io_tmp_create_dir(const char *target, char *tmp, size_t len, char err[IO_ERRLEN])
{
    if (tmp_prepare(target, tmp, len, err))
        return -1;
    if (!mkdtemp(tmp)) {
        io_fail(err, "%.300s: cannot create a folder next to it: %s", target, strerror(errno));
        tmp[0] = '\0';
        return -1;
    }
    return 0;
}
