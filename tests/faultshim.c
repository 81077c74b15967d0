/* faultshim: an LD_PRELOAD library that makes chosen file-system calls fail or stall,
 * for the fault tests (tests/cli/ckpt_faults.sh). Nothing happens unless FAULTSHIM_OP
 * is set. Environment:
 *   FAULTSHIM_OP      open | write | fsync | rename | unlink  (open covers open, open64,
 *                     openat, creat; write covers write, pwrite, pwrite64; fsync
 *                     covers fsync, fdatasync; rename covers rename, renameat)
 *   FAULTSHIM_MATCH   only calls whose path contains this substring count (fd calls:
 *                     the path the fd was opened as, read from /proc/self/fd)
 *   FAULTSHIM_NTH     the first matching call to fail (1-based) [1]
 *   FAULTSHIM_TIMES   how many matching calls fail from the NTH on; 0: all [1]
 *   FAULTSHIM_ERRNO   the errno they fail with: EIO, ENOSPC, EROFS, EDQUOT, EACCES,
 *                     ENOENT, EFBIG or a number. Unset (with DELAY_US set): no failure
 *   FAULTSHIM_DELAY_US every matching call first sleeps this long (a slow disk: widens
 *                     the window in which a test can kill a writer mid-file)
 *   FAULTSHIM_LOG     a file: one line per failed call ("faultshim: OP PATH errno")
 * Calls that are not matched pass through untouched. Thread-safe (one atomic
 * counter). Not a test of its own: tests/CMakeLists.txt builds it as a module. */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/types.h>
#include <time.h>
#include <unistd.h>

typedef int (*open_fn)(const char *, int, ...);
typedef int (*openat_fn)(int, const char *, int, ...);
typedef ssize_t (*write_fn)(int, const void *, size_t);
typedef ssize_t (*pwrite_fn)(int, const void *, size_t, off_t);
typedef int (*fd_fn)(int);
typedef int (*rename_fn)(const char *, const char *);
typedef int (*renameat_fn)(int, const char *, int, const char *);
typedef int (*path_fn)(const char *);
static atomic_long matched;

static int errno_named(const char *s)
{
    static const struct {
        const char *name;
        int e;
    } t[] = {{"EIO", EIO},       {"ENOSPC", ENOSPC}, {"EROFS", EROFS}, {"EDQUOT", EDQUOT},
             {"EACCES", EACCES}, {"ENOENT", ENOENT}, {"EFBIG", EFBIG}, {"EPERM", EPERM}};
    for (size_t i = 0; i < sizeof t / sizeof *t; i++)
        if (!strcmp(s, t[i].name))
            return t[i].e;
    int e = atoi(s);
    return e > 0 ? e : EIO;
}

/* 0: let the call through; an errno: fail it with that. */
static int decide(const char *op, const char *path)
{
    const char *want = getenv("FAULTSHIM_OP");
    if (!want || strcmp(want, op))
        return 0;
    const char *m = getenv("FAULTSHIM_MATCH");
    if (m && *m && (!path || !strstr(path, m)))
        return 0;
    const char *d = getenv("FAULTSHIM_DELAY_US");
    if (d && atol(d) > 0) {
        long us = atol(d);
        struct timespec ts = {us / 1000000, (us % 1000000) * 1000};
        while (nanosleep(&ts, &ts) != 0 && errno == EINTR)
            ;
    }
    const char *es = getenv("FAULTSHIM_ERRNO");
    if (!es || !*es)
        return 0;
    long n = atomic_fetch_add(&matched, 1) + 1;
    const char *ns = getenv("FAULTSHIM_NTH"), *ts = getenv("FAULTSHIM_TIMES");
    long nth = ns ? atol(ns) : 1, times = ts ? atol(ts) : 1;
    if (nth < 1)
        nth = 1;
    if (n < nth || (times > 0 && n >= nth + times))
        return 0;
    int e = errno_named(es);
    const char *lp = getenv("FAULTSHIM_LOG");
    if (lp && *lp) {
        open_fn ro = (open_fn)dlsym(RTLD_NEXT, "open");
        int fd = ro ? ro(lp, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0600) : -1;
        if (fd >= 0) {
            char line[1200];
            int k = snprintf(line, sizeof line, "faultshim: %s %s %d (call %ld)\n", op, path ? path : "?", e, n);
            write_fn rw = (write_fn)dlsym(RTLD_NEXT, "write");
            if (rw && k > 0)
                (void)!rw(fd, line, (size_t)k < sizeof line ? (size_t)k : sizeof line - 1);
            close(fd);
        }
    }
    return e;
}

static const char *fd_path(int fd, char *buf, size_t n)
{
    char link[64];
    snprintf(link, sizeof link, "/proc/self/fd/%d", fd);
    ssize_t k = readlink(link, buf, n - 1);
    if (k < 0)
        return NULL;
    buf[k] = '\0';
    return buf;
}

static int decide_fd(const char *op, int fd)
{
    if (!getenv("FAULTSHIM_OP"))
        return 0;
    char buf[1024];
    int saved = errno;
    const char *p = fd_path(fd, buf, sizeof buf);
    errno = saved;
    return decide(op, p);
}

#define REAL(name, type)                                                                                   \
    static type real_##name;                                                                               \
    if (!real_##name)                                                                                      \
    real_##name = (type)dlsym(RTLD_NEXT, #name)

static mode_t mode_arg(int flags, va_list ap)
{
    return (flags & O_CREAT) || (flags & O_TMPFILE) == O_TMPFILE ? (mode_t)va_arg(ap, int) : 0;
}

int open(const char *path, int flags, ...)
{
    va_list ap;
    va_start(ap, flags);
    mode_t mode = mode_arg(flags, ap);
    va_end(ap);
    REAL(open, open_fn);
    int e = decide("open", path);
    if (e) {
        errno = e;
        return -1;
    }
    return real_open(path, flags, mode);
}

int open64(const char *path, int flags, ...)
{
    va_list ap;
    va_start(ap, flags);
    mode_t mode = mode_arg(flags, ap);
    va_end(ap);
    REAL(open64, open_fn);
    int e = decide("open", path);
    if (e) {
        errno = e;
        return -1;
    }
    return real_open64(path, flags, mode);
}

int openat(int dirfd, const char *path, int flags, ...)
{
    va_list ap;
    va_start(ap, flags);
    mode_t mode = mode_arg(flags, ap);
    va_end(ap);
    REAL(openat, openat_fn);
    int e = decide("open", path);
    if (e) {
        errno = e;
        return -1;
    }
    return real_openat(dirfd, path, flags, mode);
}

int creat(const char *path, mode_t mode)
{
    return open(path, O_WRONLY | O_CREAT | O_TRUNC, mode);
}

ssize_t write(int fd, const void *b, size_t n)
{
    REAL(write, write_fn);
    int e = fd > 2 ? decide_fd("write", fd) : 0;
    if (e) {
        errno = e;
        return -1;
    }
    return real_write(fd, b, n);
}

ssize_t pwrite(int fd, const void *b, size_t n, off_t off)
{
    REAL(pwrite, pwrite_fn);
    int e = decide_fd("write", fd);
    if (e) {
        errno = e;
        return -1;
    }
    return real_pwrite(fd, b, n, off);
}

ssize_t pwrite64(int fd, const void *b, size_t n, off_t off)
{
    REAL(pwrite64, pwrite_fn);
    int e = decide_fd("write", fd);
    if (e) {
        errno = e;
        return -1;
    }
    return real_pwrite64(fd, b, n, off);
}

int fsync(int fd)
{
    REAL(fsync, fd_fn);
    int e = decide_fd("fsync", fd);
    if (e) {
        errno = e;
        return -1;
    }
    return real_fsync(fd);
}

int fdatasync(int fd)
{
    REAL(fdatasync, fd_fn);
    int e = decide_fd("fsync", fd);
    if (e) {
        errno = e;
        return -1;
    }
    return real_fdatasync(fd);
}

int rename(const char *a, const char *b)
{
    REAL(rename, rename_fn);
    int e = decide("rename", a);
    if (e) {
        errno = e;
        return -1;
    }
    return real_rename(a, b);
}

int renameat(int da, const char *a, int db, const char *b)
{
    REAL(renameat, renameat_fn);
    int e = decide("rename", a);
    if (e) {
        errno = e;
        return -1;
    }
    return real_renameat(da, a, db, b);
}

int unlink(const char *path)
{
    REAL(unlink, path_fn);
    int e = decide("unlink", path);
    if (e) {
        errno = e;
        return -1;
    }
    return real_unlink(path);
}
