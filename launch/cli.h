/* launch: small helpers shared by the subcommands. Only launch/ decides to exit. */
#ifndef ADEBERT_CLI_H
#define ADEBERT_CLI_H

#include <signal.h>
#include <stddef.h>
#include <stdio.h>
#include <stdint.h>

#include "io/io.h"

/* Exit statuses: 0 ok, 1 runtime failure (bad input file, I/O), 2 usage error. */
enum { CLI_OK = 0, CLI_FAIL = 1, CLI_USAGE = 2 };

/* Print "adebert <cmd>: <message>" on stderr (one line). */
void cli_error(const char *cmd, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* Strict number parsing: the whole string must be consumed, no overflow. 0 ok. */
int cli_parse_u64(const char *s, uint64_t *out);
int cli_parse_size(const char *s, size_t min, size_t max, size_t *out);
int cli_parse_fraction(const char *s, double *out); /* [0, 1) */

/* The corpus folder: --data, else $ADEBERT_DATA, else the compiled-in default. */
const char *cli_data_dir(const char *flag_value);

/* Casing: explicit flag (1 lower, 0 cased, -1 none) wins; otherwise the vocab
 * heuristic, announced on stderr so the choice is never silent. */
int cli_resolve_lowercase(const char *cmd, int flag, int vocab_is_cased);

/* An output file that appears whole or not at all: a temporary file next to `path`
 * (io_tmp_create_file: PATH.tmp.HOST.PID.XXXXXX, mode 0600, after removing those left
 * behind by killed writers), written in pieces through ->f, then cli_outfile_commit
 * (flush, fsync, rename over `path`, fsync the folder) or cli_outfile_abort
 * (unlink). 0 ok; otherwise err holds one line. */
typedef struct {
    char tmp[1200];
    const char *path;
    FILE *f;
} cli_outfile;

int cli_outfile_open(cli_outfile *t, const char *path, char *err, size_t errlen);
int cli_outfile_commit(cli_outfile *t, char *err, size_t errlen);
void cli_outfile_abort(cli_outfile *t);
/* The same for `len` bytes in one go. */
int cli_write_file(const char *path, const void *data, size_t len, char *err, size_t errlen);

/* This process's resident set size now (/proc/self/statm: resident pages x page
 * size) and its peak so far (getrusage ru_maxrss), in bytes. 0, or -1 when it cannot
 * be read (no /proc, a malformed line): *bytes is then 0. */
/* Blocks signals a and b in the calling thread, and so in every thread it creates
 * afterwards; *set receives them, for sigwait/sigtimedwait. Commands take their stop
 * signals this way and never through a handler: a signal frame pushed while oneDNN's
 * JIT GEMM has RSP on its heap workspace corrupts the heap (tests/cli/signal_mask.sh). */
void cli_block_signals(sigset_t *set, int a, int b);
int cli_rss_now(uint64_t *bytes);
int cli_rss_peak(uint64_t *bytes);

/* Creates the missing parent directories of path (mode 0700), as mkdir -p would:
 * run directories and split folders may be nested anywhere. */
int cli_mkdir_parents(const char *path, char *err, size_t errlen);

/* getopt_long with argv[0] named after the subcommand, errors reported as one line. */
struct option;
int cli_getopt(int argc, char **argv, const char *cmd, const char *shortopts, const struct option *longopts);

#endif
