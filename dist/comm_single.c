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
