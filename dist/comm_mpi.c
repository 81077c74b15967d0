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
            snprintf(err, DIST_ERRLEN, "%s failed at %s:%d: %.120s", #call, __FILE__, __LINE__, s_); \
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
