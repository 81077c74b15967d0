/* dist: ranks and gradient reduction behind one communicator interface.
 * Built either on MPI (ADEBERT_MPI=ON) or as a one-rank communicator, so a host
 * with only the CUDA toolkit can build and run everything on one GPU. The
 * communicator is passed explicitly; nothing here is global. */
#ifndef ADEBERT_DIST_H
#define ADEBERT_DIST_H

#include <stddef.h>

#define DIST_ERRLEN 256

typedef struct {
    int rank, size;             /* world */
    int local_rank, local_size; /* on this node, from a shared-memory split, never SLURM_* */
    char host[64];
    void *impl;                 /* backend state (MPI communicators) */
} dist_comm;

/* Initialise (MPI_Init_thread when built with MPI). argc/argv may be NULL. */
int dist_init(dist_comm *c, int *argc, char ***argv, char err[DIST_ERRLEN]);
void dist_finalize(dist_comm *c);
int dist_barrier(dist_comm *c, char err[DIST_ERRLEN]);
/* Ends every rank of the job with `code`, after printing `msg` on stderr prefixed
 * with rank and host. Never returns. */
void dist_abort(dist_comm *c, int code, const char *msg);
/* "MPI (Open MPI 4.1.4, thread level ...)" or "single rank (built without MPI)". */
const char *dist_describe(const dist_comm *c, char *buf, size_t len);

#endif
