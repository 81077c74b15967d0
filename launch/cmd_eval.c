/* adebert eval: a checkpoint's metrics on a split of the corpus.
 *
 * The data settings (corpus view, split strategy, seed, fractions, --limit, casing,
 * max_seq_len) default to those recorded in the checkpoint, so "the test split" is
 * the rows training evaluated, and the metrics are computed as training computes them
 * (same p(ADE), same io_metrics rules). One rank: no MPI. */
#include "io/io.h"
#include "launch/cli.h"
#include "launch/commands.h"
#include "launch/infer.h"
#include "launch/model_io.h"

#include <cjson/cJSON.h>
#include <errno.h>
#include <getopt.h>
#include <limits.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>

static const char *const eval_usage =
    "usage: adebert eval --checkpoint CKPT.h5 [--data DIR|FILE] [--split-name test|val|train|all]\n"
    "                    [--view hf|dedup] [--split random|stratified|grouped] [--seed N]\n"
    "                    [--val-fraction F] [--test-fraction F] [--limit N] [--max-seq-len N]\n"
    "                    [--threshold 0.5] [--batch-size 64] [--threads T]\n"
    "                    [--json] [--out FILE] [--scores FILE]\n"
    "\n"
    "Evaluates a checkpoint on one part of the corpus and prints what training's\n"
    "evaluations log (eval loss, precision, recall, F1, accuracy, ROC-AUC, PR-AUC;\n"
    "positive class = ADE) and the confusion matrix. Every data setting defaults to the\n"
    "one recorded in the checkpoint, so the default (the test split) is exactly the rows\n"
    "training tested on.\n"
    "\n"
    "  --checkpoint CKPT  an adebert HDF5 checkpoint (train's ckpt-*.h5, best.h5, import)\n"
    "  --data DIR|FILE    the ADE corpus folder, or a two-column TSV/CSV/JSONL file\n"
    "                     [default: the corpus recorded in the checkpoint]\n"
    "  --split-name S     test, val, train, or all (every row of the corpus)\n"
    "                     [default: test; all when --data is a file other than the recorded one]\n"
    "  --view, --split, --seed, --val-fraction, --test-fraction, --limit N (0: no limit)\n"
    "                     override the recorded data settings (then the split is not\n"
    "                     training's any more)\n"
    "  --max-seq-len N    truncate sequences to N tokens [default: as in training]\n"
    "  --threshold P      predict ADE when p(ADE) >= P [default: 0.5, as training]\n"
    "  --batch-size N     sequences per forward pass [the training run's global batch size,\n"
    "                     so a one-rank run's evaluation is reproduced to the last bit; else 64]\n"
    "  --threads T        OpenMP threads [OMP_NUM_THREADS, else all cores]; batches are\n"
    "                     scored by min(T, 8) one-thread workers in parallel (results\n"
    "                     do not depend on T)\n"
    INFER_PRECISION_HELP
    "  --json             print one metrics.jsonl record instead of the table\n"
    "  --out FILE         also append that record to FILE (one line, O_APPEND, fsync'd)\n"
    "  --scores FILE      write the per-row scores: row (0-based corpus row), label,\n"
    "                     p_adverse_event; tab-separated with a header, written atomically\n";

enum {
    OPT_DATA = 256,
    OPT_SPLIT_NAME,
    OPT_VIEW,
    OPT_SPLIT,
    OPT_SEED,
    OPT_VALF,
    OPT_TESTF,
    OPT_LIMIT,
    OPT_MAXLEN,
    OPT_THRESHOLD,
    OPT_BATCH,
    OPT_THREADS,
    OPT_PRECISION,
    OPT_JSON,
    OPT_OUT,
    OPT_SCORES
};

typedef enum { PART_TEST, PART_VAL, PART_TRAIN, PART_ALL } part_kind;
static const char *const part_names[] = {"test", "val", "train", "all"};

typedef struct {
    const char *ckpt, *data, *out, *scores;
    int part; /* part_kind, -1: default */
    int view, split; /* -1: recorded */
    int have_seed, have_valf, have_testf, have_limit;
    uint64_t seed, limit;
    double val_fraction, test_fraction, threshold;
    size_t max_seq_len, batch, threads;
    const char *precision;
    int json;
} eval_opts;

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

static int parse_threshold(const char *s, double *out)
{
    char *end = NULL;
    errno = 0;
    double v = s && *s ? strtod(s, &end) : NAN;
    if (errno || !end || *end || !(v >= 0.0 && v <= 1.0))
        return -1;
    *out = v;
    return 0;
}

/* 0 ok, 1 --help shown, 2 usage error (reported). */
static int parse(eval_opts *o, int argc, char **argv)
{
    memset(o, 0, sizeof *o);
    o->part = o->view = o->split = -1;
    o->threshold = IO_METRICS_THRESHOLD;
    o->batch = 0; /* from the checkpoint */
    static const struct option opts[] = {{"checkpoint", required_argument, NULL, 'c'},
                                         {"data", required_argument, NULL, OPT_DATA},
                                         {"split-name", required_argument, NULL, OPT_SPLIT_NAME},
                                         {"view", required_argument, NULL, OPT_VIEW},
                                         {"split", required_argument, NULL, OPT_SPLIT},
                                         {"seed", required_argument, NULL, OPT_SEED},
                                         {"val-fraction", required_argument, NULL, OPT_VALF},
                                         {"test-fraction", required_argument, NULL, OPT_TESTF},
                                         {"limit", required_argument, NULL, OPT_LIMIT},
                                         {"max-seq-len", required_argument, NULL, OPT_MAXLEN},
                                         {"threshold", required_argument, NULL, OPT_THRESHOLD},
                                         {"batch-size", required_argument, NULL, OPT_BATCH},
                                         {"threads", required_argument, NULL, OPT_THREADS},
                                         {"precision", required_argument, NULL, OPT_PRECISION},
                                         {"json", no_argument, NULL, OPT_JSON},
                                         {"out", required_argument, NULL, OPT_OUT},
                                         {"scores", required_argument, NULL, OPT_SCORES},
                                         {"help", no_argument, NULL, 'h'},
                                         {0, 0, 0, 0}};
    optind = 1;
    int ch;
    while ((ch = cli_getopt(argc, argv, "eval", ":h", opts)) != -1) {
        const char *bad = NULL;
        switch (ch) {
        case 'c': o->ckpt = optarg; break;
        case OPT_DATA: o->data = optarg; break;
        case OPT_SPLIT_NAME:
            o->part = -1;
            for (int i = 0; i < 4; i++)
                if (!strcmp(optarg, part_names[i]))
                    o->part = i;
            if (o->part < 0)
                bad = "--split-name must be test, val, train or all";
            break;
        case OPT_VIEW: {
            io_view v;
            if (io_view_parse(optarg, &v))
                bad = "--view must be hf or dedup";
            o->view = (int)v;
            break;
        }
        case OPT_SPLIT: {
            io_split_kind k;
            if (io_split_parse(optarg, &k))
                bad = "--split must be random, stratified or grouped";
            o->split = (int)k;
            break;
        }
        case OPT_SEED:
            o->have_seed = 1;
            if (cli_parse_u64(optarg, &o->seed))
                bad = "--seed must be a non-negative integer";
            break;
        case OPT_VALF:
            o->have_valf = 1;
            if (cli_parse_fraction(optarg, &o->val_fraction))
                bad = "--val-fraction must be a number in [0, 1)";
            break;
        case OPT_TESTF:
            o->have_testf = 1;
            if (cli_parse_fraction(optarg, &o->test_fraction) || o->test_fraction <= 0)
                bad = "--test-fraction must be a number in (0, 1)";
            break;
        case OPT_LIMIT:
            o->have_limit = 1;
            if (cli_parse_u64(optarg, &o->limit) || o->limit > (uint64_t)UINT32_MAX)
                bad = "--limit must be an integer in [0, 4294967295]";
            break;
        case OPT_MAXLEN:
            if (cli_parse_size(optarg, 2, 1u << 20, &o->max_seq_len))
                bad = "--max-seq-len must be an integer in [2, 1048576]";
            break;
        case OPT_THRESHOLD:
            if (parse_threshold(optarg, &o->threshold))
                bad = "--threshold must be a number in [0, 1]";
            break;
        case OPT_BATCH:
            if (cli_parse_size(optarg, 1, 65536, &o->batch))
                bad = "--batch-size must be an integer in [1, 65536]";
            break;
        case OPT_THREADS:
            if (cli_parse_size(optarg, 0, 4096, &o->threads))
                bad = "--threads must be an integer in [0, 4096]";
            break;
        case OPT_PRECISION:
            o->precision = optarg;
            if (infer_precision_valid(optarg))
                bad = "--precision must be fp32, bf16 or auto";
            break;
        case OPT_JSON: o->json = 1; break;
        case OPT_OUT: o->out = optarg; break;
        case OPT_SCORES: o->scores = optarg; break;
        case 'h': fputs(eval_usage, stdout); return 1;
        default: return 2;
        }
        if (bad) {
            cli_error("eval", "%s, not '%s'", bad, optarg);
            return 2;
        }
    }
    if (optind < argc) {
        cli_error("eval", "unexpected argument '%s' (see --help)", argv[optind]);
        return 2;
    }
    if (!o->ckpt || !*o->ckpt) {
        cli_error("eval", "--checkpoint CKPT.h5 is required (see --help)");
        return 2;
    }
    if ((o->out && !*o->out) || (o->scores && !*o->scores) || (o->data && !*o->data)) {
        cli_error("eval", "--data, --out and --scores need a non-empty path");
        return 2;
    }
    return 0;
}

static int is_regular_file(const char *p)
{
    struct stat st;
    return stat(p, &st) == 0 && S_ISREG(st.st_mode);
}

/* Same file (by device and inode); 0 when either is missing. */
static int same_file(const char *a, const char *b)
{
    struct stat sa, sb;
    return a && b && *a && *b && stat(a, &sa) == 0 && stat(b, &sb) == 0 && sa.st_dev == sb.st_dev &&
           sa.st_ino == sb.st_ino;
}

typedef struct {
    infer_ctx ic;
    io_corpus corpus;
    io_split split;
    uint32_t *all_rows;
    double *scores;
    uint8_t *labels;
    int32_t *batch_ids;
    size_t *len;
    double *batch_loss;
    infer_pool pool;
    char *record;
} eval_state;

static void state_free(eval_state *s)
{
    infer_pool_close(&s->pool); /* before ic, whose weights its workers read */
    infer_close(&s->ic);
    io_corpus_free(&s->corpus);
    io_split_free(&s->split);
    free(s->all_rows);
    free(s->scores);
    free(s->labels);
    free(s->batch_ids);
    free(s->len);
    free(s->batch_loss);
    free(s->record);
}

static int fail(eval_state *s, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static int fail(eval_state *s, const char *fmt, ...)
{
    char msg[1024];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    cli_error("eval", "%s", msg);
    state_free(s);
    return CLI_FAIL;
}

/* The global batch size the checkpoint was trained with (its evaluations packed
 * that many sequences per forward on one rank; float sums depend on it), else 64.
 * An unreadable checkpoint also gives 64: infer_open then reports it properly. */
static size_t training_batch_size(const char *ckpt)
{
    mio_info info;
    char err[MIO_ERRLEN];
    size_t b = 64;
    if (mio_open(ckpt, &info, err))
        return b;
    cJSON *j = cJSON_Parse(info.data_json);
    const cJSON *t = cJSON_GetObjectItemCaseSensitive(j, "train");
    const cJSON *x = cJSON_GetObjectItemCaseSensitive(t, "batch_size");
    if (cJSON_IsNumber(x) && x->valuedouble >= 1 && x->valuedouble <= 65536)
        b = (size_t)x->valuedouble;
    cJSON_Delete(j);
    mio_info_free(&info);
    return b;
}

int cmd_eval(int argc, char **argv)
{
    eval_opts o;
    int prc = parse(&o, argc, argv);
    if (prc)
        return prc == 1 ? CLI_OK : CLI_USAGE;
    eval_state s;
    memset(&s, 0, sizeof s);
    char err[MIO_ERRLEN], ierr[IO_ERRLEN];
    double t0 = now_s();

    if (o.batch == 0)
        o.batch = training_batch_size(o.ckpt);
    if (infer_open(&s.ic, o.ckpt, (int64_t)o.batch, (int64_t)o.max_seq_len, (int)o.threads, err) ||
        (o.precision && infer_set_precision(&s.ic, o.precision, err)))
        return fail(&s, "%s", err);
    const mio_info *info = &s.ic.info;

    /* the data settings: recorded, then the overrides */
    mio_data d = info->data;
    d.max_seq_len = (int)s.ic.max_seq_len;
    if (o.view >= 0)
        d.view = (io_view)o.view;
    if (o.split >= 0)
        d.split = (io_split_kind)o.split;
    if (o.have_seed)
        d.seed = o.seed;
    if (o.have_valf)
        d.val_fraction = o.val_fraction;
    if (o.have_testf)
        d.test_fraction = o.test_fraction;
    if (o.have_limit)
        d.limit = (int64_t)o.limit;
    const char *data = o.data ? o.data : (d.data[0] ? d.data : cli_data_dir(NULL));
    int part = o.part;
    if (part < 0)
        part = o.data && is_regular_file(o.data) && !same_file(o.data, d.data) ? PART_ALL : PART_TEST;

    if (io_corpus_load(data, d.view, &s.corpus, ierr))
        return fail(&s, "%s%s", ierr, o.data ? "" : " (the corpus recorded in the checkpoint; give --data)");
    const uint32_t *rows = NULL;
    size_t n = 0;
    if (part == PART_ALL) {
        s.all_rows = malloc((s.corpus.n ? s.corpus.n : 1) * sizeof *s.all_rows);
        if (!s.all_rows)
            return fail(&s, "out of memory");
        for (size_t i = 0; i < s.corpus.n; i++)
            s.all_rows[i] = (uint32_t)i;
        rows = s.all_rows;
        n = s.corpus.n;
    } else {
        /* the rows training used: the same function builds them */
        if (mio_make_split(&s.corpus, &d, &s.split, ierr))
            return fail(&s, "%s", ierr);
        rows = part == PART_TEST ? s.split.test : part == PART_VAL ? s.split.val : s.split.train;
        n = part == PART_TEST ? s.split.n_test : part == PART_VAL ? s.split.n_val : s.split.n_train;
    }
    if (n == 0)
        return fail(&s, "the %s split of %s is empty", part_names[part], data);

    /* all rows encoded first, then scored batch-parallel (infer_pool: the same bits
     * for any worker count) */
    size_t B = o.batch, L = (size_t)s.ic.max_seq_len, nb = (n + B - 1) / B;
    s.scores = malloc(n * sizeof *s.scores);
    s.labels = malloc(n);
    s.batch_ids = malloc(n * L * sizeof *s.batch_ids);
    s.len = malloc(n * sizeof *s.len);
    s.batch_loss = calloc(nb, sizeof *s.batch_loss);
    if (!s.scores || !s.labels || !s.batch_ids || !s.len || !s.batch_loss)
        return fail(&s, "out of memory");
    double loss = 0;
    int64_t tokens = 0;
    double t_fwd = now_s();
    for (size_t i = 0; i < n; i++) {
        uint32_t row = rows[i];
        s.labels[i] = s.corpus.label[row];
        if (infer_encode(&s.ic, s.corpus.text[row], s.corpus.len[row], s.batch_ids + i * L, &s.len[i], ierr))
            return fail(&s, "corpus row %u: %s", row, ierr);
        tokens += (int64_t)s.len[i];
    }
    size_t bad;
    if (infer_pool_open(&s.pool, &s.ic, nb, err) ||
        infer_pool_score(&s.pool, n, s.batch_ids, L, s.len, s.labels, s.scores, s.batch_loss, &bad, err))
        return fail(&s, "%s", err);
    const int W = s.pool.W;
    for (size_t bi = 0; bi < nb; bi++)
        loss += s.batch_loss[bi];
    double fwd_s = now_s() - t_fwd;
    io_metrics m;
    memset(&m, 0, sizeof m);
    if (io_metrics_compute_f64(s.scores, s.labels, n, o.threshold, &m, ierr) ||
        io_confusion_check(&m.cm, (int64_t)n, ierr))
        return fail(&s, "metrics: %s", ierr);
    double eval_loss = loss / (double)n;

    /* the metrics.jsonl record: val/test as training writes them; train/all are
     * recorded as "test" with eval_split saying which rows they were */
    io_metrics_extra extra[3];
    size_t ne = 0;
    extra[ne++] = (io_metrics_extra){"source", 1, "eval", 0};
    extra[ne++] = (io_metrics_extra){"eval_split", 1, part_names[part], 0};
    if (o.threshold != IO_METRICS_THRESHOLD)
        extra[ne++] = (io_metrics_extra){"threshold", 0, NULL, o.threshold};
    io_metrics_record rec;
    memset(&rec, 0, sizeof rec);
    rec.schema_version = IO_METRICS_SCHEMA_VERSION;
    snprintf(rec.split, sizeof rec.split, "%s", part == PART_VAL ? "val" : "test");
    /* training's own record of this split at this step, from the metrics history the
     * checkpoint carries: its epoch numbering (1-based at evaluation, whereas the
     * checkpoint's epoch counter is a resume position) and, for the human output, its
     * figures when the rows are training's */
    rec.epoch = info->epoch;
    io_metrics_log hist;
    memset(&hist, 0, sizeof hist);
    const io_metrics_record *logged = NULL;
    if (info->metrics && io_metrics_parse(info->metrics, info->metrics_len, &hist, ierr) == 0) {
        for (size_t i = 0; i < hist.n; i++)
            if (hist.rec[i].step == info->step) {
                rec.epoch = hist.rec[i].epoch;
                if (!strcmp(hist.rec[i].split, part_names[part]))
                    logged = &hist.rec[i];
            }
    }
    int overridden = o.view >= 0 || o.split >= 0 || o.have_seed || o.have_valf || o.have_testf || o.have_limit ||
                     o.max_seq_len || o.threshold != IO_METRICS_THRESHOLD || (o.data && !same_file(o.data, d.data));
    if (overridden)
        logged = NULL;
    rec.step = info->step;
    rec.lr = NAN;
    rec.train_loss = NAN;
    rec.eval_loss = eval_loss;
    rec.m = m;
    rec.grad_norm = NAN;
    rec.loss_scale = 1.0;
    rec.seconds = now_s() - t0;
    rec.tokens_per_s = fwd_s > 0 ? (double)tokens / fwd_s : 0;
    rec.n_extra = ne;
    rec.extra = extra;
    if (io_metrics_format(&rec, &s.record, ierr)) {
        io_metrics_log_free(&hist);
        return fail(&s, "%s", ierr);
    }

    if (o.scores) {
        cli_outfile t;
        if (cli_outfile_open(&t, o.scores, err, sizeof err)) {
            io_metrics_log_free(&hist);
            return fail(&s, "--scores %s", err);
        }
        fputs("row\tlabel\tp_adverse_event\n", t.f);
        for (size_t i = 0; i < n; i++)
            fprintf(t.f, "%u\t%u\t%.17g\n", rows[i], (unsigned)s.labels[i], s.scores[i]);
        if (cli_outfile_commit(&t, err, sizeof err)) {
            io_metrics_log_free(&hist);
            return fail(&s, "--scores %s", err);
        }
    }
    if (o.out && io_metrics_append(o.out, &rec, ierr)) {
        io_metrics_log_free(&hist);
        return fail(&s, "--out: %s", ierr);
    }

    if (o.json) {
        printf("%s\n", s.record);
    } else {
        size_t pos = 0;
        for (size_t i = 0; i < n; i++)
            pos += s.labels[i];
        printf("adebert eval: %s (epoch %lld, step %lld)\n", o.ckpt, (long long)rec.epoch, (long long)info->step);
        if (part == PART_ALL)
            printf("  all %zu rows (%zu ADE) of %s, view %s\n", n, pos, data, io_view_name(d.view));
        else {
            char lim[48] = "";
            if (d.limit > 0)
                snprintf(lim, sizeof lim, ", limit %lld", (long long)d.limit);
            printf("  %s split: %zu rows (%zu ADE) of %s, view %s, split %s (seed %llu, test %g, val %g%s)\n",
                   part_names[part], n, pos, data, io_view_name(d.view), io_split_name(d.split),
                   (unsigned long long)d.seed, d.test_fraction, d.val_fraction, lim);
        }
        printf("  %s, max %d tokens; threshold %g; %s GEMMs; %d batches of %zu on %d worker%s\n",
               d.lowercase ? "lowercased" : "cased", d.max_seq_len, o.threshold, s.ic.precision, (int)nb, B, W,
               W == 1 ? "" : "s");
        printf("  loss %.4f  P %.4f  R %.4f  F1 %.4f  acc %.4f  ROC-AUC %.4f  PR-AUC %.4f\n", eval_loss, m.precision,
               m.recall, m.f1, m.accuracy, m.roc_auc, m.pr_auc);
        printf("  confusion         predicted ADE   predicted not-AE\n");
        printf("    actual ADE      %13lld   %16lld\n", (long long)m.cm.tp, (long long)m.cm.fn);
        printf("    actual not-AE   %13lld   %16lld\n", (long long)m.cm.fp, (long long)m.cm.tn);
        if (logged) {
            const io_metrics *t = &logged->m;
            int same = t->cm.tp == m.cm.tp && t->cm.fp == m.cm.fp && t->cm.tn == m.cm.tn && t->cm.fn == m.cm.fn;
            printf("  training logged at step %lld: F1 %.4f (tp %lld fp %lld tn %lld fn %lld)%s\n",
                   (long long)logged->step, t->f1, (long long)t->cm.tp, (long long)t->cm.fp, (long long)t->cm.tn,
                   (long long)t->cm.fn, same ? ": same confusion matrix" : ": DIFFERENT confusion matrix");
        }
    }
    io_metrics_log_free(&hist);
    if (fflush(stdout) != 0 || ferror(stdout))
        return fail(&s, "writing stdout failed");
    state_free(&s);
    return CLI_OK;
}
