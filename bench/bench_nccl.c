/* NCCL sanity check: dist_nccl_selftest on every rank it is started on (one rank
 * without mpirun; `mpirun -np N build/bench/bench_nccl` on a multi-GPU node).
 * Exit 0: the all-reduce was exact on every rank; 1: it failed; 77: nothing to test
 * here (no NCCL in the build, or no CUDA device), the ctest "skipped" code. */
#include "dist/nccl.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int main(int argc, char **argv)
{
    double timeout_s = 60;
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--timeout") && i + 1 < argc) {
            timeout_s = atof(argv[++i]);
        } else {
            fprintf(stderr, "usage: bench_nccl [--timeout SECONDS]\n");
            return 2;
        }
    }
    dist_comm c;
    char err[DIST_ERRLEN] = "", report[512] = "";
    if (dist_init(&c, &argc, &argv, err)) {
        fprintf(stderr, "bench_nccl: %s\n", err);
        return 1;
    }
    int rc = dist_nccl_selftest(&c, timeout_s, report, sizeof report, err);
    int64_t bad = rc != 0;
    char e2[DIST_ERRLEN];
    if (c.size > 1 && dist_allreduce_max_i64(&c, &bad, 1, e2))
        bad = 1;
    if (rc) {
        int skip = strstr(err, "no CUDA device") != NULL || strstr(err, "built without NCCL") != NULL;
        fprintf(stderr, "bench_nccl: rank %d on %s: %s%s\n", c.rank, c.host, skip ? "SKIPPED: " : "", err);
        dist_finalize(&c);
        return skip ? 77 : 1;
    }
    if (c.rank == 0)
        printf("bench_nccl: %s: %s\n", bad ? "FAILED on another rank" : "ok", report);
    dist_finalize(&c);
    return bad ? 1 : 0;
}
