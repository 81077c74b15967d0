/* dist/reducer: one interface over the host (MPI) and NCCL reducers (see reducer.h). */
#include "dist/reducer.h"

#include <stdio.h>
#include <stdlib.h>

typedef struct {
    int (*start)(void *impl, float *buf, size_t n, char err[DIST_ERRLEN]);
    int (*progress)(void *impl, char err[DIST_ERRLEN]);
    int (*wait)(void *impl, double *wait_s, char err[DIST_ERRLEN]);
    void (*free)(void *impl);
} reducer_ops;

struct dist_grad_reducer {
    const reducer_ops *ops;
    void *impl;
};

/* Adapters: the implementations' functions take their own pointer types. */
static int host_start(void *i, float *b, size_t n, char e[DIST_ERRLEN]) { return dist_reducer_start(i, b, n, e); }
static int host_progress(void *i, char e[DIST_ERRLEN]) { return dist_reducer_progress(i, e); }
static int host_wait(void *i, double *w, char e[DIST_ERRLEN]) { return dist_reducer_wait(i, w, e); }
static void host_free(void *i) { dist_reducer_free(i); }
static const reducer_ops host_ops = {host_start, host_progress, host_wait, host_free};

static int nccl_start(void *i, float *b, size_t n, char e[DIST_ERRLEN]) { return dist_nccl_reducer_start(i, b, n, e); }
static int nccl_progress(void *i, char e[DIST_ERRLEN]) { return dist_nccl_reducer_progress(i, e); }
static int nccl_wait(void *i, double *w, char e[DIST_ERRLEN]) { return dist_nccl_reducer_wait(i, w, e); }
static void nccl_free(void *i) { dist_nccl_reducer_free(i); }
static const reducer_ops nccl_ops = {nccl_start, nccl_progress, nccl_wait, nccl_free};

static int wrap(dist_grad_reducer **out, const reducer_ops *ops, void *impl, char err[DIST_ERRLEN])
{
    dist_grad_reducer *r = malloc(sizeof *r);
    if (!r) {
        ops->free(impl);
        snprintf(err, DIST_ERRLEN, "out of memory for the gradient reducer");
        return -1;
    }
    r->ops = ops;
    r->impl = impl;
    *out = r;
    return 0;
}

int dist_grad_reducer_host(dist_grad_reducer **out, dist_comm *c, size_t max_buckets, char err[DIST_ERRLEN])
{
    dist_reducer *impl = NULL;
    *out = NULL;
    if (dist_reducer_create(&impl, c, max_buckets, err))
        return -1;
    return wrap(out, &host_ops, impl, err);
}

int dist_grad_reducer_nccl(dist_grad_reducer **out, dist_nccl *n, void *compute_stream, size_t max_buckets,
                           size_t max_elems, dist_nccl_wire wire, char err[DIST_ERRLEN])
{
    dist_nccl_reducer *impl = NULL;
    *out = NULL;
    if (dist_nccl_reducer_create(&impl, n, compute_stream, max_buckets, max_elems, wire, err))
        return -1;
    return wrap(out, &nccl_ops, impl, err);
}

void dist_grad_reducer_free(dist_grad_reducer *r)
{
    if (!r)
        return;
    r->ops->free(r->impl);
    free(r);
}

int dist_grad_reducer_bucket_ready(dist_grad_reducer *r, float *buf, size_t n, char err[DIST_ERRLEN])
{
    /* Open MPI 4.1 has no progress thread: earlier buckets advance only when called */
    return r->ops->start(r->impl, buf, n, err) || r->ops->progress(r->impl, err) ? -1 : 0;
}

int dist_grad_reducer_finish(dist_grad_reducer *r, double *wait_s, char err[DIST_ERRLEN])
{
    return r->ops->wait(r->impl, wait_s, err) ? -1 : 0;
}
