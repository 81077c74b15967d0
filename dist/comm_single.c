/* The one-rank communicator of a build without MPI. */
#include "dist/dist.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

int dist_init(dist_comm *c, int *argc, char ***argv, char err[DIST_ERRLEN])
{
    (void)argc;
    (void)argv;
    (void)err;
    memset(c, 0, sizeof *c);
    c->size = c->local_size = 1;
    if (gethostname(c->host, sizeof c->host - 1) != 0)
        snprintf(c->host, sizeof c->host, "unknown");
    return 0;
}

void dist_finalize(dist_comm *c) { (void)c; }

int dist_barrier(dist_comm *c, char err[DIST_ERRLEN])
{
    (void)c;
    (void)err;
    return 0;
}

void dist_abort(dist_comm *c, int code, const char *msg)
{
    fprintf(stderr, "adebert: rank 0 on %s: %s\n", c->host, msg);
    exit(code);
}

const char *dist_describe(const dist_comm *c, char *buf, size_t len)
{
    (void)c;
    snprintf(buf, len, "single rank (built without MPI)");
    return buf;
}

/* One rank: every reduction is the identity. */
int dist_allreduce_sum_f32(dist_comm *c, float *buf, size_t n, char err[DIST_ERRLEN]) { return 0; }
int dist_allreduce_sum_f64(dist_comm *c, double *buf, size_t n, char err[DIST_ERRLEN]) { return 0; }
int dist_allreduce_max_i64(dist_comm *c, int64_t *buf, size_t n, char err[DIST_ERRLEN]) { return 0; }

int dist_gather_f64(dist_comm *c, const double *send, size_t count, double *recv, size_t recv_cap,
                    char err[DIST_ERRLEN])
{
    if (count > recv_cap) {
        snprintf(err, DIST_ERRLEN, "dist_gather_f64: %zu values do not fit in %zu", count, recv_cap);
        return -1;
    }
    if (count)
        memmove(recv, send, count * sizeof *send);
    return 0;
}

int dist_bcast_bytes(dist_comm *c, void *buf, size_t n, char err[DIST_ERRLEN]) { return 0; }

struct dist_reducer {
    int unused;
};

int dist_reducer_create(dist_reducer **out, dist_comm *c, size_t max_buckets, char err[DIST_ERRLEN])
{
    *out = calloc(1, sizeof **out);
    if (!*out) {
        snprintf(err, DIST_ERRLEN, "out of memory");
        return -1;
    }
    return 0;
}
void dist_reducer_free(dist_reducer *r) { free(r); }
int dist_reducer_start(dist_reducer *r, float *buf, size_t n, char err[DIST_ERRLEN]) { return 0; }
int dist_reducer_progress(dist_reducer *r, char err[DIST_ERRLEN]) { return 0; }
int dist_reducer_wait(dist_reducer *r, double *wait_s, char err[DIST_ERRLEN])
{
    if (wait_s)
        *wait_s = 0;
    return 0;
}
