/* dist: ranks and gradient reduction behind one communicator interface.
 * Built either on MPI (ADEBERT_MPI=ON) or as a one-rank communicator, so a host
 * with only the CUDA toolkit can build and run everything on one GPU. The
 * communicator is passed explicitly; nothing here is global. */
#ifndef ADEBERT_DIST_H
#define ADEBERT_DIST_H

#include <stddef.h>
#include <stdint.h>

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

/* ---- collectives: every rank calls each one, in the same order, even a rank
 * that holds no samples. In place; element-wise SUM unless named otherwise. */
int dist_allreduce_sum_f32(dist_comm *c, float *buf, size_t n, char err[DIST_ERRLEN]);
int dist_allreduce_sum_f64(dist_comm *c, double *buf, size_t n, char err[DIST_ERRLEN]);
int dist_allreduce_max_i64(dist_comm *c, int64_t *buf, size_t n, char err[DIST_ERRLEN]);
/* Rank 0 receives every rank's `count` doubles, concatenated in rank order, into
 * `recv` (which must hold the sum of the counts; ignored on other ranks). */
int dist_gather_f64(dist_comm *c, const double *send, size_t count, double *recv, size_t recv_cap,
                    char err[DIST_ERRLEN]);
/* Rank 0's `n` bytes to every rank. */
int dist_bcast_bytes(dist_comm *c, void *buf, size_t n, char err[DIST_ERRLEN]);

/* ---- gradient reduction overlapped with backward: start a bucket's SUM as soon as
 * its gradients are complete, progress between layers (Open MPI 4.1 has no
 * progress thread), wait before the optimizer. */
typedef struct dist_reducer dist_reducer;
int dist_reducer_create(dist_reducer **out, dist_comm *c, size_t max_buckets, char err[DIST_ERRLEN]);
void dist_reducer_free(dist_reducer *r);
int dist_reducer_start(dist_reducer *r, float *buf, size_t n, char err[DIST_ERRLEN]);
int dist_reducer_progress(dist_reducer *r, char err[DIST_ERRLEN]); /* non-blocking */
/* Waits for every started bucket; *wait_s (may be NULL) gets the time spent blocked. */
int dist_reducer_wait(dist_reducer *r, double *wait_s, char err[DIST_ERRLEN]);

#endif
