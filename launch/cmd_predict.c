/* adebert predict: text lines in, one JSON line of p(ADE) each out.
 *
 * Lines are tokenized as training tokenized its corpus (the checkpoint's vocab,
 * casing and max_seq_len), scored in packed batches and written in input order.
 * The text itself is never echoed: errors name the line number only. */
#include "io/io.h"
#include "launch/cli.h"
#include "launch/commands.h"
#include "launch/infer.h"

#include <errno.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static const char *const predict_usage =
    "usage: adebert predict --checkpoint CKPT.h5 [--threshold 0.5] [--input FILE] [--output FILE]\n"
    "                       [--batch-size 64] [--threads T] [--precision fp32|bf16|auto]\n"
    "\n"
    "Reads UTF-8 text, one sentence per line, on stdin (or --input) and writes one JSON\n"
    "line per input line, in input order:\n"
    "  {\"label\": \"Adverse_Event\"|\"Not_AE\", \"p_adverse_event\": P}\n"
    "Text is tokenized with the checkpoint's vocabulary and casing and truncated to its\n"
    "max_seq_len, as in training; an empty line is scored as an empty sentence.\n"
    "\n"
    "  --checkpoint CKPT  an adebert HDF5 checkpoint (train's ckpt-*.h5, best.h5, import)\n"
    "  --threshold P      label Adverse_Event when p_adverse_event >= P [default: 0.5]\n"
    "  --input FILE       read FILE instead of stdin\n"
    "  --output FILE      write FILE instead of stdout; it appears only when every line\n"
    "                     was scored (written to a temporary file, then renamed)\n"
    "  --batch-size N     lines per forward pass [default: 64]; up to min(T, 8) batches\n"
    "                     are scored at once by one-thread workers (same results)\n"
    "  --threads T        OpenMP threads [OMP_NUM_THREADS, else all cores]\n"
    INFER_PRECISION_HELP;

enum { OPT_THRESHOLD = 256, OPT_INPUT, OPT_OUTPUT, OPT_BATCH, OPT_THREADS, OPT_PRECISION };

static int parse_threshold(const char *s, double *out)
{
    char *end = NULL;
    errno = 0;
    double v = s && *s ? strtod(s, &end) : -1.0;
    if (errno || !end || *end || !(v >= 0.0 && v <= 1.0))
        return -1;
    *out = v;
    return 0;
}

int cmd_predict(int argc, char **argv)
{
    const char *ckpt = NULL, *input = NULL, *output = NULL, *precision = NULL;
    double threshold = IO_METRICS_THRESHOLD;
    size_t batch = 64, threads = 0;
    static const struct option opts[] = {{"checkpoint", required_argument, NULL, 'c'},
                                         {"threshold", required_argument, NULL, OPT_THRESHOLD},
                                         {"input", required_argument, NULL, OPT_INPUT},
                                         {"output", required_argument, NULL, OPT_OUTPUT},
                                         {"batch-size", required_argument, NULL, OPT_BATCH},
                                         {"threads", required_argument, NULL, OPT_THREADS},
                                         {"precision", required_argument, NULL, OPT_PRECISION},
                                         {"help", no_argument, NULL, 'h'},
                                         {0, 0, 0, 0}};
    optind = 1;
    int ch;
    while ((ch = cli_getopt(argc, argv, "predict", ":h", opts)) != -1) {
        const char *bad = NULL;
        switch (ch) {
        case 'c': ckpt = optarg; break;
        case OPT_THRESHOLD:
            if (parse_threshold(optarg, &threshold))
                bad = "--threshold must be a number in [0, 1]";
            break;
        case OPT_INPUT: input = optarg; break;
        case OPT_OUTPUT: output = optarg; break;
        case OPT_BATCH:
            if (cli_parse_size(optarg, 1, 65536, &batch))
                bad = "--batch-size must be an integer in [1, 65536]";
            break;
        case OPT_THREADS:
            if (cli_parse_size(optarg, 0, 4096, &threads))
                bad = "--threads must be an integer in [0, 4096]";
            break;
        case OPT_PRECISION:
            precision = optarg;
            if (infer_precision_valid(optarg))
                bad = "--precision must be fp32, bf16 or auto";
            break;
        case 'h': fputs(predict_usage, stdout); return CLI_OK;
        default: return CLI_USAGE;
        }
        if (bad) {
            cli_error("predict", "%s, not '%s'", bad, optarg);
            return CLI_USAGE;
        }
    }
    if (optind < argc) {
        cli_error("predict", "unexpected argument '%s' (text comes on stdin or --input; see --help)", argv[optind]);
        return CLI_USAGE;
    }
    if (!ckpt || !*ckpt) {
        cli_error("predict", "--checkpoint CKPT.h5 is required (see --help)");
        return CLI_USAGE;
    }
    if ((input && !*input) || (output && !*output)) {
        cli_error("predict", "--input and --output need a non-empty path");
        return CLI_USAGE;
    }

    char err[MIO_ERRLEN], ierr[IO_ERRLEN];
    const char *in_name = input ? input : "stdin";
    infer_ctx ic;
    memset(&ic, 0, sizeof ic);
    cli_outfile out_tmp;
    memset(&out_tmp, 0, sizeof out_tmp);
    FILE *in = stdin, *out = stdout;
    char *line = NULL;
    size_t line_cap = 0;
    int32_t *ids = NULL;
    size_t *len = NULL;
    infer_pool pool;
    memset(&pool, 0, sizeof pool);
    double *p = NULL;
    int rc = CLI_FAIL;

    if (input && !(in = fopen(input, "r"))) {
        cli_error("predict", "--input %s: %s", input, strerror(errno));
        in = NULL;
        goto done;
    }
    if (infer_open(&ic, ckpt, (int64_t)batch, 0, (int)threads, err) ||
        (precision && infer_set_precision(&ic, precision, err))) {
        cli_error("predict", "%s", err);
        goto done;
    }
    /* typed at a terminal: answer each line as it comes; else read up to one batch per
     * worker, score them in parallel (infer_pool: the same bits for any worker count),
     * write the answers in order */
    int tty = isatty(fileno(in));
    if (infer_pool_open(&pool, &ic, tty ? 1 : INFER_MAX_WORKERS, err)) {
        cli_error("predict", "%s", err);
        goto done;
    }
    size_t L = (size_t)ic.max_seq_len, per_round = tty ? 1 : batch * (size_t)pool.W;
    ids = malloc(per_round * L * sizeof *ids);
    len = malloc(per_round * sizeof *len);
    p = malloc(per_round * sizeof *p);
    if (!ids || !len || !p) {
        cli_error("predict", "out of memory");
        goto done;
    }
    if (output) {
        if (cli_outfile_open(&out_tmp, output, err, sizeof err)) {
            cli_error("predict", "--output %s", err);
            goto done;
        }
        out = out_tmp.f;
    }

    size_t lineno = 0;
    int eof = 0;
    while (!eof) {
        size_t k = 0;
        while (k < per_round) {
            ssize_t got = getline(&line, &line_cap, in);
            if (got < 0) {
                eof = 1;
                break;
            }
            lineno++;
            size_t n = (size_t)got;
            if (n && line[n - 1] == '\n')
                n--;
            if (infer_encode(&ic, line, n, ids + k * L, &len[k], ierr)) {
                cli_error("predict", "%s line %zu: %s", in_name, lineno, ierr);
                goto done;
            }
            k++;
        }
        if (!eof || k) {
            size_t bad;
            if (infer_pool_score(&pool, k, ids, L, len, NULL, p, NULL, &bad, err)) {
                size_t first = lineno + 1 - k + bad * batch, last = first + batch - 1 < lineno ? first + batch - 1 : lineno;
                cli_error("predict", "%s lines %zu-%zu: %s", in_name, first, last, err);
                goto done;
            }
            for (size_t j = 0; j < k; j++)
                fprintf(out, "{\"label\": \"%s\", \"p_adverse_event\": %.9g}\n",
                        p[j] >= threshold ? "Adverse_Event" : "Not_AE", p[j]);
            if (!output && fflush(out) != 0) {
                cli_error("predict", "writing stdout failed: %s", strerror(errno));
                goto done;
            }
        }
    }
    if (ferror(in)) {
        cli_error("predict", "reading %s failed", in_name);
        goto done;
    }
    if (output) {
        out = NULL;
        if (cli_outfile_commit(&out_tmp, err, sizeof err)) {
            cli_error("predict", "--output %s", err);
            goto done;
        }
    } else if (fflush(stdout) != 0 || ferror(stdout)) {
        cli_error("predict", "writing stdout failed");
        goto done;
    }
    rc = CLI_OK;
done:
    if (output && out_tmp.tmp[0])
        cli_outfile_abort(&out_tmp);
    if (in && in != stdin)
        fclose(in);
    free(line);
    free(ids);
    free(len);
    free(p);
    infer_pool_close(&pool); /* before ic, whose weights its workers read */
    infer_close(&ic);
    return rc;
}
