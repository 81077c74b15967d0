/* The MPI communicator. */
#include "dist/dist.h"

#include <mpi.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

typedef struct {
    MPI_Comm world, node;
    int thread_level;
    int we_initialised;
} comm_mpi;

#define MPI_TRY(call)                                                                         \
    do {                                                                                      \
        int rc_ = (call);                                                                     \
        if (rc_ != MPI_SUCCESS) {                                                             \
            char s_[MPI_MAX_ERROR_STRING];                                                    \
            int n_ = 0;                                                                       \
            MPI_Error_string(rc_, s_, &n_);                                                   \
            snprintf(err, DIST_ERRLEN, "%s failed in %s: %.120s", #call, __func__, s_); \
            return -1;                                                                        \
        }                                                                                     \
    } while (0)

int dist_init(dist_comm *c, int *argc, char ***argv, char err[DIST_ERRLEN])
{
    memset(c, 0, sizeof *c);
    comm_mpi *m = calloc(1, sizeof *m);
    if (!m) {
        snprintf(err, DIST_ERRLEN, "out of memory");
        return -1;
    }
    c->impl = m;
    int inited = 0;
    MPI_Initialized(&inited);
    if (!inited) {
        /* FUNNELED: only the main thread calls MPI; OpenMP threads compute. A
         * higher level would buy nothing and costs locking in Open MPI. */
        MPI_TRY(MPI_Init_thread(argc, argv, MPI_THREAD_FUNNELED, &m->thread_level));
        m->we_initialised = 1;
    } else {
        MPI_Query_thread(&m->thread_level);
    }
    /* Errors come back as codes so they can be reported with rank and host. */
    MPI_TRY(MPI_Comm_dup(MPI_COMM_WORLD, &m->world));
    MPI_TRY(MPI_Comm_set_errhandler(m->world, MPI_ERRORS_RETURN));
    MPI_TRY(MPI_Comm_rank(m->world, &c->rank));
    MPI_TRY(MPI_Comm_size(m->world, &c->size));
    /* Local rank from a shared-memory split: under srun --mpi=pmix the Open MPI
     * variables are unset, and mpirun inside an allocation gives every rank
     * SLURM_PROCID=0, so the environment is never trusted for this. */
    MPI_TRY(MPI_Comm_split_type(m->world, MPI_COMM_TYPE_SHARED, c->rank, MPI_INFO_NULL, &m->node));
    MPI_TRY(MPI_Comm_rank(m->node, &c->local_rank));
    MPI_TRY(MPI_Comm_size(m->node, &c->local_size));
    if (gethostname(c->host, sizeof c->host - 1) != 0)
        snprintf(c->host, sizeof c->host, "unknown");
    return 0;
}

void dist_finalize(dist_comm *c)
{
    comm_mpi *m = c->impl;
    if (!m)
        return;
    MPI_Comm_free(&m->node);
    MPI_Comm_free(&m->world);
    if (m->we_initialised)
        MPI_Finalize();
    free(m);
    c->impl = NULL;
}

int dist_barrier(dist_comm *c, char err[DIST_ERRLEN])
{
    comm_mpi *m = c->impl;
    MPI_TRY(MPI_Barrier(m->world));
    return 0;
}

void dist_abort(dist_comm *c, int code, const char *msg)
{
    fprintf(stderr, "adebert: rank %d of %d on %s: %s\n", c->rank, c->size, c->host, msg);
    fflush(stderr);
    MPI_Abort(MPI_COMM_WORLD, code);
    exit(code); /* not reached */
}

const char *dist_describe(const dist_comm *c, char *buf, size_t len)
{
    const comm_mpi *m = c->impl;
    char lib[MPI_MAX_LIBRARY_VERSION_STRING];
    int n = 0;
    MPI_Get_library_version(lib, &n);
    char *nl = strchr(lib, ',');
    if (nl)
        *nl = '\0';
    static const char *const levels[] = {"SINGLE", "FUNNELED", "SERIALIZED", "MULTIPLE"};
    int lv = m ? m->thread_level : 0;
    snprintf(buf, len, "MPI (%s; thread level %s; %d rank%s, %d on this node)", lib,
             (lv >= 0 && lv <= 3) ? levels[lv] : "?", c->size, c->size == 1 ? "" : "s", c->local_size);
    return buf;
}

/* MPI counts are int: large buffers go in chunks. */
#define CHUNK ((size_t)1 << 30)

/* In-place all-reduce of n elements of `size` bytes, in chunks that fit an int count. */
static int allreduce_chunked(dist_comm *c, void *buf, size_t n, size_t size, MPI_Datatype type, MPI_Op op,
                             char err[DIST_ERRLEN])
{
    comm_mpi *m = c->impl;
    for (size_t i = 0; i < n; i += CHUNK) {
        size_t k = n - i < CHUNK ? n - i : CHUNK;
        MPI_TRY(MPI_Allreduce(MPI_IN_PLACE, (char *)buf + i * size, (int)k, type, op, m->world));
    }
    return 0;
}

int dist_allreduce_sum_f32(dist_comm *c, float *buf, size_t n, char err[DIST_ERRLEN])
{
    return allreduce_chunked(c, buf, n, sizeof *buf, MPI_FLOAT, MPI_SUM, err);
}

int dist_allreduce_sum_f64(dist_comm *c, double *buf, size_t n, char err[DIST_ERRLEN])
{
    return allreduce_chunked(c, buf, n, sizeof *buf, MPI_DOUBLE, MPI_SUM, err);
}

int dist_allreduce_max_i64(dist_comm *c, int64_t *buf, size_t n, char err[DIST_ERRLEN])
{
    return allreduce_chunked(c, buf, n, sizeof *buf, MPI_INT64_T, MPI_MAX, err);
}

int dist_gather_f64(dist_comm *c, const double *send, size_t count, double *recv, size_t recv_cap,
                    char err[DIST_ERRLEN])
{
    comm_mpi *m = c->impl;
    int mine = (int)count;
    int *counts = NULL, *displs = NULL;
    if (c->rank == 0) {
        counts = calloc((size_t)c->size, sizeof *counts);
        displs = calloc((size_t)c->size, sizeof *displs);
        if (!counts || !displs) {
            free(counts);
            free(displs);
            snprintf(err, DIST_ERRLEN, "out of memory");
            return -1;
        }
    }
    int rc = MPI_Gather(&mine, 1, MPI_INT, counts, 1, MPI_INT, 0, m->world);
    size_t total = 0;
    if (rc == MPI_SUCCESS && c->rank == 0) {
        for (int r = 0; r < c->size; r++) {
            displs[r] = (int)total;
            total += (size_t)counts[r];
        }
    }
    /* Every rank learns whether rank 0 can take it all, so none is left waiting. */
    int64_t too_big = (c->rank == 0 && total > recv_cap);
    if (rc == MPI_SUCCESS)
        rc = MPI_Bcast(&too_big, 1, MPI_INT64_T, 0, m->world);
    if (rc == MPI_SUCCESS && !too_big)
        rc = MPI_Gatherv(send, mine, MPI_DOUBLE, recv, counts, displs, MPI_DOUBLE, 0, m->world);
    free(counts);
    free(displs);
    if (rc != MPI_SUCCESS) {
        snprintf(err, DIST_ERRLEN, "MPI_Gatherv of scores failed");
        return -1;
    }
    if (too_big) {
        snprintf(err, DIST_ERRLEN, "dist_gather_f64: gathered values exceed the buffer (%zu)", recv_cap);
        return -1;
    }
    return 0;
}

int dist_bcast_bytes(dist_comm *c, void *buf, size_t n, char err[DIST_ERRLEN])
{
    comm_mpi *m = c->impl;
    for (size_t i = 0; i < n; i += CHUNK) {
        size_t k = n - i < CHUNK ? n - i : CHUNK;
        MPI_TRY(MPI_Bcast((char *)buf + i, (int)k, MPI_BYTE, 0, m->world));
    }
    return 0;
}

struct dist_reducer {
    comm_mpi *m;
    MPI_Request *req;
    size_t n, cap;
};

int dist_reducer_create(dist_reducer **out, dist_comm *c, size_t max_buckets, char err[DIST_ERRLEN])
{
    dist_reducer *r = calloc(1, sizeof *r);
    if (r)
        r->req = calloc(max_buckets ? max_buckets : 1, sizeof *r->req);
    if (!r || !r->req) {
        free(r);
        snprintf(err, DIST_ERRLEN, "out of memory");
        return -1;
    }
    r->m = c->impl;
    r->cap = max_buckets ? max_buckets : 1;
    *out = r;
    return 0;
}

void dist_reducer_free(dist_reducer *r)
{
    if (!r)
        return;
    free(r->req);
    free(r);
}

int dist_reducer_start(dist_reducer *r, float *buf, size_t n, char err[DIST_ERRLEN])
{
    if (r->n == r->cap || n > (size_t)INT32_MAX) {
        snprintf(err, DIST_ERRLEN, "dist_reducer_start: too many buckets (%zu) or bucket too large", r->n);
        return -1;
    }
    MPI_TRY(MPI_Iallreduce(MPI_IN_PLACE, buf, (int)n, MPI_FLOAT, MPI_SUM, r->m->world, &r->req[r->n]));
    r->n++;
    return 0;
}

int dist_reducer_progress(dist_reducer *r, char err[DIST_ERRLEN])
{
    int done = 0;
    if (r->n)
        MPI_TRY(MPI_Testall((int)r->n, r->req, &done, MPI_STATUSES_IGNORE));
    return 0;
}

int dist_reducer_wait(dist_reducer *r, double *wait_s, char err[DIST_ERRLEN])
{
    double t0 = MPI_Wtime();
    if (r->n)
        MPI_TRY(MPI_Waitall((int)r->n, r->req, MPI_STATUSES_IGNORE));
    r->n = 0;
    if (wait_s)
        *wait_s = MPI_Wtime() - t0;
    return 0;
}
