/* Temporaries of atomic writes (io/tmpfile.c, issue 12): the names carry host and
 * pid; a later write to the same target removes those of dead writers, and only
 * those. Every planted temporary is first checked to exist, and every "dead" pid to
 * be dead, so a sweep that removes nothing or everything fails here. */
#include <errno.h>
#include <fcntl.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cmocka.h>

#include "io/io.h"
#include "launch/cli.h"

typedef struct {
    char dir[256];
    char host[IO_TMP_HOSTLEN + 1];
    pid_t live;      /* a child blocked on a pipe: a live writer */
    int live_pipe;   /* its write end: closing it ends the child */
    long dead;       /* a child that exited and was reaped */
} fixture;

static int exists(const char *p)
{
    struct stat st;
    return lstat(p, &st) == 0;
}

static void touch(const char *p)
{
    int fd = open(p, O_WRONLY | O_CREAT | O_EXCL, 0600);
    assert_true(fd >= 0);
    assert_int_equal(write(fd, "x", 1), 1);
    close(fd);
}

/* dir/name formatted */
static const char *at(const fixture *f, char *buf, size_t len, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));
static const char *at(const fixture *f, char *buf, size_t len, const char *fmt, ...)
{
    int k = snprintf(buf, len, "%s/", f->dir);
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(buf + k, len - (size_t)k, fmt, ap);
    va_end(ap);
    return buf;
}

static int setup(void **state)
{
    fixture *f = calloc(1, sizeof *f);
    if (!f)
        return -1;
    snprintf(f->dir, sizeof f->dir, "/tmp/adebert-tmpfile-XXXXXX");
    if (!mkdtemp(f->dir))
        return -1;
    /* the host part as the writer writes it: from a template */
    char t[512];
    if (io_tmp_template("x", t, sizeof t))
        return -1;
    const char *h = t + strlen("x.tmp.");
    const char *dot = strchr(h, '.');
    if (!dot || (size_t)(dot - h) > IO_TMP_HOSTLEN)
        return -1;
    memcpy(f->host, h, (size_t)(dot - h));
    /* a dead pid: a child that exited, reaped */
    pid_t c = fork();
    if (c == 0)
        _exit(0);
    if (c < 0 || waitpid(c, NULL, 0) != c)
        return -1;
    f->dead = (long)c;
    /* a live one: blocked until its pipe closes */
    int p[2];
    if (pipe(p))
        return -1;
    f->live = fork();
    if (f->live == 0) {
        char b;
        close(p[1]);
        while (read(p[0], &b, 1) < 0 && errno == EINTR)
            ;
        _exit(0);
    }
    close(p[0]);
    f->live_pipe = p[1];
    *state = f;
    return f->live > 0 ? 0 : -1;
}

static int teardown(void **state)
{
    fixture *f = *state;
    close(f->live_pipe);
    waitpid(f->live, NULL, 0);
    char cmd[400];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", f->dir);
    int rc = system(cmd);
    free(f);
    return rc == 0 ? 0 : -1;
}

static void template_names_host_and_pid(void **state)
{
    fixture *f = *state;
    char t[600], want[600];
    assert_int_equal(io_tmp_template("/a/b/out.bin", t, sizeof t), 0);
    snprintf(want, sizeof want, "/a/b/out.bin.tmp.%s.%ld.XXXXXX", f->host, (long)getpid());
    assert_string_equal(t, want);
    assert_true(f->host[0] != '\0');
    for (const char *c = f->host; *c; c++)
        assert_true(*c == '-' || *c == '_' || (*c >= 'a' && *c <= 'z') || (*c >= 'A' && *c <= 'Z') ||
                    (*c >= '0' && *c <= '9'));
    assert_int_equal(io_tmp_template("/a/b/out.bin", t, 20), -1); /* does not fit */
}

static void sweep_removes_only_dead_writers(void **state)
{
    fixture *f = *state;
    /* the precondition: the "dead" pid names no process, the live one does */
    assert_int_equal(kill((pid_t)f->dead, 0), -1);
    assert_int_equal(errno, ESRCH);
    assert_int_equal(kill(f->live, 0), 0);

    char target[400], p[600];
    at(f, target, sizeof target, "out.bin");
    struct {
        char name[300];
        int dir;    /* a folder (with files) rather than a file */
        int stale;  /* must go */
    } c[] = {
        {"", 0, 1}, /* dead writer, this host: a file */
        {"", 1, 1}, /* dead writer, this host: a folder with two files */
        {"", 0, 0}, /* a live writer */
        {"", 0, 0}, /* this process (a write in flight) */
        {"", 0, 0}, /* another host's dead pid: cannot be asked, kept */
        {"", 0, 0}, /* another target, dead writer */
        {"", 0, 0}, /* another target whose name extends this one's */
        {"", 0, 0}, /* not of the form: 5-character random part */
        {"", 0, 0}, /* not of the form: leading zero pid */
        {"", 0, 0}, /* not of the form: trailing text */
        {"", 0, 0}, /* pid 1 (init, alive) */
    };
    snprintf(c[0].name, 300, "out.bin.tmp.%s.%ld.aB3xYz", f->host, f->dead);
    snprintf(c[1].name, 300, "out.bin.tmp.%s.%ld.Qq9d0E", f->host, f->dead);
    snprintf(c[2].name, 300, "out.bin.tmp.%s.%ld.abcdef", f->host, (long)f->live);
    snprintf(c[3].name, 300, "out.bin.tmp.%s.%ld.abcdef", f->host, (long)getpid());
    snprintf(c[4].name, 300, "out.bin.tmp.%s-other.%ld.abcdef", f->host, f->dead);
    snprintf(c[5].name, 300, "other.bin.tmp.%s.%ld.abcdef", f->host, f->dead);
    snprintf(c[6].name, 300, "out.bin.x.tmp.%s.%ld.abcdef", f->host, f->dead);
    snprintf(c[7].name, 300, "out.bin.tmp.%s.%ld.abcde", f->host, f->dead);
    snprintf(c[8].name, 300, "out.bin.tmp.%s.0%ld.abcdef", f->host, f->dead);
    snprintf(c[9].name, 300, "out.bin.tmp.%s.%ld.abcdef.x", f->host, f->dead);
    snprintf(c[10].name, 300, "out.bin.tmp.%s.1.abcdef", f->host);
    size_t n = sizeof c / sizeof *c;
    for (size_t i = 0; i < n; i++) {
        at(f, p, sizeof p, "%s", c[i].name);
        if (c[i].dir) {
            assert_int_equal(mkdir(p, 0700), 0);
            char q[700];
            snprintf(q, sizeof q, "%s/model.safetensors", p);
            touch(q);
            snprintf(q, sizeof q, "%s/config.json", p);
            touch(q);
        } else {
            touch(p);
        }
        assert_true(exists(p));
    }
    assert_int_equal(io_tmp_sweep(target), 2);
    for (size_t i = 0; i < n; i++) {
        at(f, p, sizeof p, "%s", c[i].name);
        if (exists(p) == c[i].stale)
            fail_msg("%s: %s", c[i].name, c[i].stale ? "a dead writer's temporary was left" : "removed, but must stay");
    }
    assert_int_equal(io_tmp_sweep(target), 0); /* nothing more */
    /* the live writer's temporary stays while it lives and goes once it has died */
    close(f->live_pipe);
    assert_int_equal(waitpid(f->live, NULL, 0), f->live);
    f->live_pipe = open("/dev/null", O_WRONLY);
    pid_t again = fork();
    if (again == 0) /* keeps teardown's waitpid meaningful */
        _exit(0);
    long was_live = (long)f->live;
    f->live = again;
    assert_int_equal(io_tmp_sweep(target), 1);
    snprintf(p, sizeof p, "%s/out.bin.tmp.%s.%ld.abcdef", f->dir, f->host, was_live);
    assert_false(exists(p));
    /* a folder holding a subfolder is not ours to descend into: left */
    at(f, p, sizeof p, "out.bin.tmp.%s.%ld.sub123", f->host, f->dead);
    assert_int_equal(mkdir(p, 0700), 0);
    char q[700];
    snprintf(q, sizeof q, "%s/inner", p);
    assert_int_equal(mkdir(q, 0700), 0);
    assert_int_equal(io_tmp_sweep(target), 0);
    assert_true(exists(q));
}

/* The shared writer of the command-line outputs (--dump-params, run files, metrics,
 * scores, predictions) sweeps before it writes; a relative target works too. */
static void cli_write_file_sweeps(void **state)
{
    fixture *f = *state;
    char target[400], stale[600], live[600], err[256];
    at(f, target, sizeof target, "params.bin");
    at(f, stale, sizeof stale, "params.bin.tmp.%s.%ld.k1L2m3", f->host, f->dead);
    at(f, live, sizeof live, "params.bin.tmp.%s.1.k1L2m3", f->host);
    touch(stale);
    touch(live);
    assert_int_equal(cli_write_file(target, "abcd", 4, err, sizeof err), 0);
    assert_false(exists(stale));
    assert_true(exists(live));
    struct stat st;
    assert_int_equal(stat(target, &st), 0);
    assert_int_equal((int)st.st_size, 4);
    /* only the target and the kept one: the write left no temporary of its own */
    char cmd[500];
    snprintf(cmd, sizeof cmd, "test $(ls '%s' | grep -c '^params\\.bin') -eq 2", f->dir);
    assert_int_equal(system(cmd), 0);

    char cwd[1024];
    assert_non_null(getcwd(cwd, sizeof cwd));
    assert_int_equal(chdir(f->dir), 0);
    touch(stale);
    assert_int_equal(io_tmp_sweep("params.bin"), 1);
    assert_false(exists(stale));
    assert_int_equal(chdir(cwd), 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(template_names_host_and_pid),
        cmocka_unit_test(sweep_removes_only_dead_writers),
        cmocka_unit_test(cli_write_file_sweeps),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
