/* dist/nccl in a build without CUDA or without nccl.h: one rank still works (it
 * needs no communicator: device 0, the reducer a no-op); several ranks and the
 * self-test fail with "built without NCCL". */
#include "dist/nccl.h"

#include <stdio.h>
#include <stdlib.h>

struct dist_nccl {
    int unused;
};
struct dist_nccl_reducer {
    int unused;
};

int dist_nccl_create(dist_nccl **out, dist_comm *c, const dist_nccl_opts *opts, char err[DIST_ERRLEN])
{
    *out = NULL;
    if (c->size > 1 || (opts && opts->force_comm)) {
        snprintf(err, DIST_ERRLEN, "built without NCCL: %d ranks cannot reduce GPU gradients (rebuild with CUDA "
                 "and NCCL found)", c->size);
        return -1;
    }
    *out = calloc(1, sizeof **out);
    if (!*out) {
        snprintf(err, DIST_ERRLEN, "out of memory");
        return -1;
    }
    return 0;
}

void dist_nccl_free(dist_nccl *n) { free(n); }
int dist_nccl_device(const dist_nccl *n) { return 0; }

const char *dist_nccl_describe(const dist_nccl *n, char *buf, size_t len)
{
    snprintf(buf, len, "one rank: no NCCL communicator, device 0 (built without NCCL)");
    return buf;
}

int dist_nccl_reducer_create(dist_nccl_reducer **out, dist_nccl *n, void *compute_stream, size_t max_buckets,
                             size_t max_elems, dist_nccl_wire wire, char err[DIST_ERRLEN])
{
    *out = calloc(1, sizeof **out);
    if (!*out) {
        snprintf(err, DIST_ERRLEN, "out of memory");
        return -1;
    }
    return 0;
}

void dist_nccl_reducer_free(dist_nccl_reducer *r) { free(r); }
int dist_nccl_reducer_start(dist_nccl_reducer *r, float *dev_buf, size_t n, char err[DIST_ERRLEN]) { return 0; }
int dist_nccl_reducer_progress(dist_nccl_reducer *r, char err[DIST_ERRLEN]) { return 0; }

int dist_nccl_reducer_wait(dist_nccl_reducer *r, double *wait_s, char err[DIST_ERRLEN])
{
    if (wait_s)
        *wait_s = 0;
    return 0;
}

int dist_nccl_selftest(dist_comm *c, double timeout_s, char *report, size_t len, char err[DIST_ERRLEN])
{
    snprintf(err, DIST_ERRLEN, "built without NCCL (CUDA toolkit or nccl.h not found at configure time)");
    return -1;
}
