/* adebert train: the data-parallel training loop.
 *
 * Every rank loads and tokenizes the corpus, computes the same split and the same
 * epoch order from (seed, epoch) without communicating, and takes its share of
 * each global batch. Losses are divided by the GLOBAL normaliser, gradients are
 * SUM-reduced, so N ranks give the 1-rank result (DESIGN.md). Rank 0 alone
 * prints and writes files. */
#include "dist/dist.h"
#include "dist/nccl.h"
#include "launch/cluster.h" /* issue 14 */
#include "dist/sampler.h"
#include "io/io.h"
#include "launch/cli.h"
#include "launch/commands.h"
#include "launch/hf_io.h"
#include "launch/model_io.h"
#include "launch/train_opts.h"
#include "nn/nn.h"

#include <cjson/cJSON.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#define ERRLEN 512

/* SIGTERM/SIGUSR1 (Slurm's warning before preemption) are never delivered
 * asynchronously: they stay blocked in every thread (MPI's, OpenMP's, ours) and the
 * main thread collects a pending one once per step, so no library call is ever
 * interrupted by them. */
static int stop_signal_pending(const sigset_t *set)
{
    struct timespec zero = {0, 0};
    int got = 0;
    while (sigtimedwait(set, NULL, &zero) > 0)
        got = 1;
    return got;
}

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

/* Where the training loop stands, beyond the model and optimizer: what a
 * checkpoint must carry for a resumed run to continue exactly. */
typedef struct {
    int64_t epoch, batch;  /* the next global batch to run */
    double loss_sum;       /* train loss summed since the last evaluation ... */
    int64_t loss_n;        /* ... over this many steps */
    double best_f1;        /* best.h5's F1 (-1: none yet) and step */
    int64_t best_step;
    double loss_scale;     /* the loss is multiplied by this (1: no scaling) ... */
    int64_t good_steps;    /* ... clean steps since it last changed (dynamic scaling) */
} loop_state;

/* Everything one run holds; freed by run_free whatever happened. */
typedef struct {
    train_opts o;
    dist_comm comm;
    int comm_up;
    io_corpus corpus;
    io_split split;
    io_vocab *vocab;
    io_tokenizer *tok;
    io_tokens tokens;
    nn_config cfg;
    io_model_config mc;
    nn_backend *be;
    nn_model *model;
    nn_adamw *opt;
    dist_reducer *reducer;        /* CPU: MPI on host buffers */
    dist_nccl *nccl;              /* GPU: NCCL on device buffers */
    dist_nccl_reducer *nreducer;
    int cuda;
    float class_w[2];
    int use_class_w;
    /* per-step scratch (host) */
    int32_t *ids, *offsets, *labels;
    uint32_t *sample_ids;
    float *logits;
    double *scores;       /* this rank's p(ADE) of an eval shard */
    double *all_scores;   /* rank 0: a whole split */
    FILE *sample_log;
    FILE *step_log;
    char run_dir[1024];
    int64_t max_local;    /* most sequences one rank holds in a step */
    size_t n_groups;      /* gradient buckets, in the order backward completes them */
    size_t group_off[NN_MAX_GRAD_GROUPS], group_len[NN_MAX_GRAD_GROUPS];
    int fail_rank;        /* --debug-fail-at; -1: none */
    int64_t fail_step;
    loop_state ls;
    int64_t resumed_from; /* step of the checkpoint resumed from; -1: fresh start */
    int dyn_scale;        /* dynamic loss scaling: halve on overflow, double after clean steps */
    int inject_rank;      /* --debug-inject-inf; -1: none */
    int64_t inject_step;
    char *train_json;     /* the resolved options (RUN_DIR/config.json; checkpoints) */
    int hf_weights;       /* --model HF_DIR holds weights: start from them */
} run;

static void run_free(run *r)
{
    free(r->ids);
    free(r->offsets);
    free(r->labels);
    free(r->sample_ids);
    free(r->logits);
    free(r->scores);
    free(r->all_scores);
    free(r->train_json);
    if (r->sample_log)
        fclose(r->sample_log);
    if (r->step_log)
        fclose(r->step_log);
    dist_reducer_free(r->reducer);
    dist_nccl_reducer_free(r->nreducer);
    nn_adamw_free(r->opt);
    nn_model_free(r->model);
    if (r->be)
        nn_backend_destroy(r->be);
    dist_nccl_free(r->nccl);
    io_tokens_free(&r->tokens);
    io_tokenizer_free(r->tok);
    io_vocab_free(r->vocab);
    io_split_free(&r->split);
    io_corpus_free(&r->corpus);
}

/* A failure on any rank ends the whole job at once, naming rank and host:
 * a rank that merely exits leaves the others blocked in a collective. */
static void die(run *r, const char *fmt, ...) __attribute__((format(printf, 2, 3), noreturn));
static void die(run *r, const char *fmt, ...)
{
    char msg[ERRLEN];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    if (r->comm_up && r->comm.size > 1)
        dist_abort(&r->comm, 1, msg);
    cli_error("train", "%s", msg);
    exit(CLI_FAIL);
}

/* dir/name into dst; -1 when it does not fit (paths are bounded, never cut). */
static int join_path(char *dst, size_t n, const char *dir, const char *name)
{
    int k = snprintf(dst, n, "%s/%s", dir, name);
    return k < 0 || (size_t)k >= n ? -1 : 0;
}

/* ------------------------------------------------------------ files */

/* A text file in the run directory, atomically. */
static int write_run_file(const char *dir, const char *name, const char *text, char *err, size_t errlen)
{
    char path[1200];
    if (join_path(path, sizeof path, dir, name)) {
        snprintf(err, errlen, "%.400s: path too long", dir);
        return -1;
    }
    return cli_write_file(path, text, strlen(text), err, errlen);
}

/* RUN_DIR is created 0700, and so are missing parents (as HF Trainer's output_dir:
 * table runners nest run directories); an existing one is accepted only if it holds
 * no run (or with --resume). */
static int prepare_run_dir(const char *dir, int resume, char *err, size_t errlen)
{
    if (cli_mkdir_parents(dir, err, errlen))
        return -1;
    if (mkdir(dir, 0700) != 0) {
        if (errno != EEXIST) {
            snprintf(err, errlen, "cannot create run directory %.400s: %s", dir, strerror(errno));
            return -1;
        }
        struct stat st;
        if (stat(dir, &st) != 0 || !S_ISDIR(st.st_mode)) {
            snprintf(err, errlen, "--out %.400s exists and is not a directory", dir);
            return -1;
        }
        char p[1200];
        if (!resume && join_path(p, sizeof p, dir, IO_METRICS_FILE) == 0 && access(p, F_OK) == 0) {
            snprintf(err, errlen, "%.400s already holds a run (metrics.jsonl); choose another --out, or --resume it",
                     dir);
            return -1;
        }
    }
    return 0;
}

static char *command_line(int argc, char **argv)
{
    size_t n = 16;
    for (int i = 0; i < argc; i++)
        n += strlen(argv[i]) * 4 + 3;
    char *s = malloc(n), *p = s;
    if (!s)
        return NULL;
    p += sprintf(p, "adebert");
    for (int i = 0; i < argc; i++) {
        *p++ = ' ';
        /* single-quote anything not plainly safe for a shell */
        int plain = *argv[i] != '\0';
        for (const char *c = argv[i]; *c; c++)
            if (!strchr("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-_=./,:+@%", *c))
                plain = 0;
        if (plain) {
            p += sprintf(p, "%s", argv[i]);
            continue;
        }
        *p++ = '\'';
        for (const char *c = argv[i]; *c; c++) {
            if (*c == '\'')
                p += sprintf(p, "'\\''");
            else
                *p++ = *c;
        }
        *p++ = '\'';
    }
    *p++ = '\n';
    *p = '\0';
    return s;
}

static void on_grad_ready(void *ctx, float *grad, size_t off, size_t len);

/* ------------------------------------------------------------ setup */

/* Architecture, vocab and casing from --model/--vocab/--lowercase|--cased. */
static void setup_model_config(run *r)
{
    train_opts *o = &r->o;
    char err[IO_ERRLEN];
    io_model_config mc;
    const char *m = o->model;
    if (hfio_is_model_dir(m)) {
        /* an HF folder: config.json, vocab.txt (unless --vocab), casing from
         * tokenizer_config.json unless a flag says; its weights (if any) come later */
        io_vocab *hv = NULL;
        int lower = o->lowercase;
        char notes[2048] = "", herr[HFIO_ERRLEN];
        if (hfio_inspect("train", m, o->lowercase, &mc, &hv, &lower, notes, sizeof notes, herr))
            die(r, "%s", herr);
        if (r->comm.rank == 0)
            fputs(notes, stderr);
        o->lowercase = lower;
        if (!o->vocab[0]) {
            if (snprintf(o->vocab, sizeof o->vocab, "%s/vocab.txt", m) >= (int)sizeof o->vocab)
                die(r, "--model: path too long");
        }
        io_vocab_free(hv);
        r->hf_weights = hfio_has_weights(m);
    } else if (strstr(m, ".json")) {
        if (io_config_load(m, &mc, err))
            die(r, "%s", err);
    } else if (io_config_preset(m, &mc, err)) {
        die(r, "--model: %s (presets: tiny, minilm, base; or a config.json / HF folder)", err);
    }
    if (!o->vocab[0])
        die(r, "--vocab FILE is required with --model %s", m);
    if (o->lowercase < 0)
        die(r, "--lowercase or --cased is required (BioBERT and bert-base-cased vocabularies are cased)");
    if (io_vocab_load(o->vocab, &r->vocab, err))
        die(r, "%s", err);
    size_t nv = io_vocab_size(r->vocab);
    int preset = !hfio_is_model_dir(m) && !strstr(m, ".json");
    if (preset) {
        mc.vocab_size = (int64_t)nv;
        mc.pad_token_id = io_vocab_pad(r->vocab) >= 0 ? io_vocab_pad(r->vocab) : 0;
    } else if ((int64_t)nv > mc.vocab_size) {
        die(r, "%s has %zu tokens but the model's vocab_size is %lld", o->vocab, nv, (long long)mc.vocab_size);
    }
    if (mc.num_labels != 2)
        die(r, "the model has num_labels %lld; ADE detection is binary (2)", (long long)mc.num_labels);
    if (o->max_seq_len > mc.max_position_embeddings)
        die(r, "--max-seq-len %d exceeds the model's max_position_embeddings %lld", o->max_seq_len,
            (long long)mc.max_position_embeddings);
    if (io_config_validate(&mc, err))
        die(r, "%s", err);
    cli_nn_config(&r->cfg, &mc);
    r->mc = mc;
}

static mio_data data_settings(const run *r)
{
    mio_data d;
    memset(&d, 0, sizeof d);
    snprintf(d.data, sizeof d.data, "%s", r->o.data);
    d.view = r->o.view;
    d.split = r->o.split;
    d.seed = r->o.split_seed;
    d.test_fraction = 0.2;
    d.val_fraction = r->o.val_fraction;
    d.limit = r->o.limit;
    d.max_seq_len = r->o.max_seq_len;
    d.lowercase = r->o.lowercase;
    return d;
}

static void setup_data(run *r)
{
    train_opts *o = &r->o;
    char err[IO_ERRLEN];
    const char *data = cli_data_dir(o->data);
    if (data != o->data && snprintf(o->data, sizeof o->data, "%s", data) >= (int)sizeof o->data)
        die(r, "corpus path too long");
    data = o->data;
    if (io_corpus_load(data, o->view, &r->corpus, err))
        die(r, "%s (io/fetch-ade-corpus.sh downloads the ADE corpus)", err);
    mio_data d = data_settings(r);
    if (mio_make_split(&r->corpus, &d, &r->split, err))
        die(r, "%s", err);
    if (r->split.n_train == 0)
        die(r, "the train split is empty");
    if (io_tokenizer_init(&r->tok, r->vocab, o->lowercase, err) ||
        io_tokenize_corpus(r->tok, &r->corpus, (size_t)o->max_seq_len, &r->tokens, err))
        die(r, "%s", err);
    /* class weights */
    if (!strcmp(o->class_weights, "none")) {
        r->use_class_w = 0;
    } else if (!strcmp(o->class_weights, "balanced")) {
        /* scikit-learn's compute_class_weight("balanced"): n / (2 * n_c) on train */
        size_t pos = 0;
        for (size_t i = 0; i < r->split.n_train; i++)
            pos += r->corpus.label[r->split.train[i]];
        size_t n = r->split.n_train;
        if (pos == 0 || pos == n)
            die(r, "--class-weights balanced: the train split holds one class only");
        r->class_w[0] = (float)((double)n / (2.0 * (double)(n - pos)));
        r->class_w[1] = (float)((double)n / (2.0 * (double)pos));
        r->use_class_w = 1;
    } else {
        char *end = NULL;
        errno = 0;
        double w0 = strtod(o->class_weights, &end), w1 = -1;
        if (!errno && end && *end == ',')
            w1 = strtod(end + 1, &end);
        if (errno || !end || *end || !(w0 > 0) || !(w1 > 0) || !isfinite(w0) || !isfinite(w1))
            die(r, "--class-weights must be none, balanced or two positive numbers W0,W1, not '%s'",
                o->class_weights);
        r->class_w[0] = (float)w0;
        r->class_w[1] = (float)w1;
        r->use_class_w = 1;
    }
}

static void setup_model(run *r)
{
    train_opts *o = &r->o;
    char err[NN_ERRLEN];
    int64_t n = r->comm.size;
    r->max_local = (o->batch_size + n - 1) / n;
    char derr[DIST_ERRLEN];
    r->cuda = !strcmp(o->device, "cuda");
    if (r->cuda) {
        /* the device first (NCCL picks local rank mod visible GPUs), then the backend on it */
        dist_nccl_opts no = {o->comm_timeout, 0};
        if (dist_nccl_create(&r->nccl, &r->comm, &no, derr))
            die(r, "--device cuda: %s", derr);
        nn_precision prec = NN_PREC_BF16;
        int auto_prec = !strcmp(o->precision, "auto");
        if (!auto_prec && nn_precision_parse(o->precision, &prec))
            die(r, "--precision %s: unknown", o->precision);
        int rc = nn_backend_cuda_create(&r->be, dist_nccl_device(r->nccl), prec, err, sizeof err);
        if (rc && auto_prec) { /* below sm80: no bf16 tensor cores; fp16 with loss scaling */
            prec = NN_PREC_FP16;
            rc = nn_backend_cuda_create(&r->be, dist_nccl_device(r->nccl), prec, err, sizeof err);
        }
        if (rc)
            die(r, "--device cuda: %s", err);
        snprintf(o->precision, sizeof o->precision, "%s", nn_precision_name(prec));
    } else if (nn_backend_cpu_create(&r->be, o->threads, err, sizeof err)) {
        die(r, "%s", err);
    }
    if (nn_model_create(&r->model, &r->cfg, r->be, r->max_local * o->max_seq_len, r->max_local, o->max_seq_len,
                        err))
        die(r, "%s", err);
    if (nn_model_init_weights(r->model, o->seed, err))
        die(r, "%s", err);
    r->n_groups = nn_model_grad_groups(r->model, r->group_off, r->group_len, NN_MAX_GRAD_GROUPS);
    if (r->cuda ? dist_nccl_reducer_create(&r->nreducer, r->nccl, nn_cuda_stream(r->be), r->n_groups,
                                           nn_model_num_params(r->model),
                                           strcmp(o->reduce_precision, "fp32") ? DIST_NCCL_WIRE_BF16
                                                                                : DIST_NCCL_WIRE_FP32,
                                           derr)
                : dist_reducer_create(&r->reducer, &r->comm, r->n_groups, derr))
        die(r, "%s", derr);
    nn_model_set_grad_ready(r->model, on_grad_ready, r);
    size_t m = (size_t)r->max_local;
    r->ids = malloc(m * (size_t)o->max_seq_len * sizeof *r->ids);
    r->offsets = malloc((m + 1) * sizeof *r->offsets);
    r->labels = malloc(m * sizeof *r->labels);
    r->sample_ids = malloc(m * sizeof *r->sample_ids);
    r->logits = malloc(m * 2 * sizeof *r->logits);
    if (!r->ids || !r->offsets || !r->labels || !r->sample_ids || !r->logits)
        die(r, "out of memory for batch buffers");
}

/* ------------------------------------------------------------ steps */

/* Packs corpus rows into the batch buffers: token ids back to back, offsets,
 * labels and sample ids (the corpus row: it keys dropout, whatever the rank or
 * batch slot). Returns the token count. */
static int64_t pack(run *r, const uint32_t *rows, int64_t n)
{
    int64_t t = 0;
    r->offsets[0] = 0;
    for (int64_t i = 0; i < n; i++) {
        uint32_t row = rows[i];
        uint64_t a = r->tokens.offsets[row], b = r->tokens.offsets[row + 1];
        memcpy(r->ids + t, r->tokens.ids + a, (size_t)(b - a) * sizeof *r->ids);
        t += (int64_t)(b - a);
        r->offsets[i + 1] = (int32_t)t;
        r->labels[i] = r->corpus.label[row];
        r->sample_ids[i] = row;
    }
    return t;
}

static nn_batch make_batch(run *r, int64_t n, int train, uint32_t epoch, double denom)
{
    nn_batch b = {0};
    b.nseq = n;
    b.ids = r->ids;
    b.offsets = r->offsets;
    b.labels = r->labels;
    b.sample_ids = r->sample_ids;
    b.class_weights = r->use_class_w ? r->class_w : NULL;
    b.loss_denominator = denom;
    b.train = train;
    b.seed = r->o.seed;
    b.epoch = epoch;
    return b;
}

typedef struct {
    double loss, grad_norm, lr, comm_s;
    int64_t tokens;
    int skipped; /* overflow under loss scaling: no update */
    double loss_scale; /* the scale this step used */
} step_result;

#define SCALE_GROWTH_INTERVAL 2000

/* Called by backward as each gradient group is final: start its SUM at once, and
 * progress the earlier ones (Open MPI 4.1 has no progress thread), so the reduction
 * overlaps the rest of backward. */
static void on_grad_ready(void *ctx, float *grad, size_t off, size_t len)
{
    run *r = ctx;
    char derr[DIST_ERRLEN];
    if (r->o.skip_allreduce)
        return;
    if (r->nreducer ? dist_nccl_reducer_start(r->nreducer, grad + off, len, derr) ||
                          dist_nccl_reducer_progress(r->nreducer, derr)
                    : dist_reducer_start(r->reducer, grad + off, len, derr) ||
                          dist_reducer_progress(r->reducer, derr))
        die(r, "gradient all-reduce: %s", derr);
}

/* One optimizer step over a global batch (corpus rows, identical on every rank):
 * this rank computes its contiguous share, every rank joins the reductions. */
static void train_step(run *r, const uint32_t *global, size_t n_global, uint32_t epoch, step_result *s)
{
    char err[NN_ERRLEN];
    char derr[DIST_ERRLEN];
    size_t begin, count;
    dist_sampler_share(n_global, (size_t)r->comm.rank, (size_t)r->comm.size, &begin, &count);
    /* The global normaliser: every rank sees the whole global batch, so it needs
     * no communication. */
    double denom = 0;
    int64_t tokens = 0;
    for (size_t i = 0; i < n_global; i++) {
        uint32_t row = global[i];
        denom += r->use_class_w ? r->class_w[r->corpus.label[row]] : 1.0;
        tokens += (int64_t)(r->tokens.offsets[row + 1] - r->tokens.offsets[row]);
    }
    if (r->sample_log) {
        fprintf(r->sample_log, "%lld", (long long)nn_adamw_steps_done(r->opt));
        for (size_t i = 0; i < count; i++)
            fprintf(r->sample_log, " %u", global[begin + i]);
        fputc('\n', r->sample_log);
    }
    if (r->fail_rank == r->comm.rank && r->fail_step == nn_adamw_steps_done(r->opt))
        die(r, "injected failure at step %lld (--debug-fail-at)", (long long)r->fail_step);
    nn_model_zero_grad(r->model);
    if (r->inject_rank == r->comm.rank && r->inject_step == nn_adamw_steps_done(r->opt)) {
        /* backward adds into the gradient buffer: this inf reaches the reduction */
        float inf = INFINITY;
        r->be->ops->upload(r->be, nn_model_grad_buf(r->model), &inf, sizeof inf);
    }
    const double S = r->ls.loss_scale;
    double loss = 0;
    if (count > 0) {
        pack(r, global + begin, (int64_t)count);
        /* loss x S: the gradients too (exactly, for powers of two); AdamW divides it out */
        nn_batch b = make_batch(r, (int64_t)count, 1, epoch, denom / S);
        float l = 0;
        if (nn_model_forward(r->model, &b, &l, NULL, err) || nn_model_backward(r->model, err))
            die(r, "step %lld: %s", (long long)nn_adamw_steps_done(r->opt), err);
        loss = l;
    }
    if (count == 0) /* no backward here, but this rank joins every bucket */
        for (size_t g = 0; g < r->n_groups; g++)
            on_grad_ready(r, nn_model_grad_buf(r->model), r->group_off[g], r->group_len[g]);
    double t0 = now_s(), wait_s = 0;
    if (r->nreducer ? dist_nccl_reducer_wait(r->nreducer, &wait_s, derr)
                    : dist_reducer_wait(r->reducer, &wait_s, derr))
        die(r, "gradient all-reduce: %s", derr);
    if (dist_allreduce_sum_f64(&r->comm, &loss, 1, derr))
        die(r, "loss all-reduce: %s", derr);
    loss /= S;
    s->loss_scale = S;
    s->comm_s = now_s() - t0;
    /* The overflow check reads the REDUCED gradients, identical on every rank: all
     * ranks skip (or not) together. */
    if (nn_adamw_step_scaled(r->opt, S, &s->grad_norm, &s->lr, &s->skipped, err)) {
        const char *ce = nn_cuda_last_error(r->be);
        die(r, "optimizer: %s", ce ? ce : err);
    }
    if (s->skipped && !r->dyn_scale)
        die(r, "step %lld: the gradient norm is not finite (%s)", (long long)nn_adamw_steps_done(r->opt) - 1,
            S == 1 ? "no loss scaling" : "fixed --loss-scale; try dynamic");
    if (r->dyn_scale) {
        if (s->skipped) {
            r->ls.loss_scale = S > 1 ? S / 2 : 1;
            r->ls.good_steps = 0;
        } else if (++r->ls.good_steps >= SCALE_GROWTH_INTERVAL) {
            r->ls.loss_scale = S * 2 <= 1e30 ? S * 2 : S;
            r->ls.good_steps = 0;
        }
    }
    if (nn_cuda_last_error(r->be))
        die(r, "step %lld: %s", (long long)nn_adamw_steps_done(r->opt), nn_cuda_last_error(r->be));
    s->loss = loss;
    s->tokens = tokens;
}

/* Sharded forward over a split: rank r takes a contiguous block of rows, scores
 * p(ADE) are gathered to rank 0 in row order, loss sums are reduced. */
static void evaluate(run *r, const uint32_t *rows, size_t n, io_metrics *m, double *eval_loss)
{
    char err[NN_ERRLEN];
    char derr[DIST_ERRLEN];
    char ierr[IO_ERRLEN];
    size_t begin = n * (size_t)r->comm.rank / (size_t)r->comm.size;
    size_t end = n * (size_t)(r->comm.rank + 1) / (size_t)r->comm.size;
    double *scores = realloc(r->scores, (end - begin + 1) * sizeof *scores);
    if (!scores)
        die(r, "out of memory for evaluation scores");
    r->scores = scores;
    double loss = 0;
    for (size_t i = begin; i < end; i += (size_t)r->max_local) {
        int64_t k = (int64_t)(end - i < (size_t)r->max_local ? end - i : (size_t)r->max_local);
        pack(r, rows + i, k);
        /* denominator 1: the forward returns the batch's sum of losses */
        nn_batch b = make_batch(r, k, 0, 0, 1.0);
        b.class_weights = NULL;
        float l = 0;
        if (nn_model_forward(r->model, &b, &l, r->logits, err))
            die(r, "evaluation: %s", err);
        loss += l;
        for (int64_t j = 0; j < k; j++) {
            double d = (double)r->logits[2 * j + 1] - (double)r->logits[2 * j];
            scores[i - begin + (size_t)j] = 1.0 / (1.0 + exp(-d)); /* softmax over 2 classes */
        }
    }
    if (dist_allreduce_sum_f64(&r->comm, &loss, 1, derr))
        die(r, "evaluation loss all-reduce: %s", derr);
    if (r->comm.rank == 0 && !r->all_scores) {
        size_t most = r->split.n_val > r->split.n_test ? r->split.n_val : r->split.n_test;
        r->all_scores = malloc((most + 1) * sizeof *r->all_scores);
        if (!r->all_scores)
            die(r, "out of memory for evaluation scores");
    }
    size_t cap = r->comm.rank == 0 ? (r->split.n_val > r->split.n_test ? r->split.n_val : r->split.n_test) : 0;
    if (dist_gather_f64(&r->comm, scores, end - begin, r->all_scores, cap, derr))
        die(r, "evaluation gather: %s", derr);
    *eval_loss = n ? loss / (double)n : NAN;
    if (r->comm.rank != 0)
        return;
    uint8_t *labels = malloc(n + 1);
    if (!labels)
        die(r, "out of memory");
    for (size_t i = 0; i < n; i++)
        labels[i] = r->corpus.label[rows[i]];
    if (io_metrics_compute_f64(r->all_scores, labels, n, IO_METRICS_THRESHOLD, m, ierr) ||
        io_confusion_check(&m->cm, (int64_t)n, ierr)) {
        free(labels);
        die(r, "evaluation metrics: %s", ierr);
    }
    free(labels);
}

/* ------------------------------------------------------------ progress */

typedef struct {
    int tty, quiet;
    double t_last_line, t_start;
    int64_t last_step_printed;
} progress;

static void fmt_duration(double s, char *buf, size_t n)
{
    if (!isfinite(s) || s < 0)
        s = 0;
    long t = (long)(s + 0.5);
    if (t >= 3600)
        snprintf(buf, n, "%ld:%02ld:%02ld", t / 3600, t / 60 % 60, t % 60);
    else
        snprintf(buf, n, "%ld:%02ld", t / 60, t % 60);
}

/* A bar redrawn in place on a terminal; plain lines every ~10% or 30 s otherwise,
 * so Slurm logs stay readable. */
static void progress_show(progress *p, int epoch, int epochs, int64_t step, int64_t total, double loss,
                          double tok_s, int force)
{
    if (p->quiet)
        return;
    double t = now_s();
    double eta = step > 0 ? (t - p->t_start) / (double)step * (double)(total - step) : 0;
    char eta_s[32];
    fmt_duration(eta, eta_s, sizeof eta_s);
    if (p->tty) {
        if (!force && t - p->t_last_line < 0.2 && step < total)
            return;
        int width = 24, fill = total > 0 ? (int)((double)width * (double)step / (double)total) : 0;
        char bar[32];
        for (int i = 0; i < width; i++)
            bar[i] = i < fill ? '#' : '.';
        bar[width] = '\0';
        fprintf(stderr, "\r  epoch %d/%d [%s] step %lld/%lld  loss %.4f  %.0f tok/s  ETA %s   ", epoch, epochs,
                bar, (long long)step, (long long)total, loss, tok_s, eta_s);
        p->t_last_line = t;
    } else {
        int64_t every = total / 10 > 0 ? total / 10 : 1;
        if (!force && step - p->last_step_printed < every && t - p->t_last_line < 30)
            return;
        fprintf(stderr, "  epoch %d/%d step %lld/%lld loss %.4f %.0f tok/s ETA %s\n", epoch, epochs,
                (long long)step, (long long)total, loss, tok_s, eta_s);
        p->t_last_line = t;
        p->last_step_printed = step;
    }
    fflush(stderr);
}

static void progress_clear(progress *p)
{
    if (p->tty && !p->quiet) {
        fprintf(stderr, "\r%100s\r", "");
        fflush(stderr);
    }
}

/* ------------------------------------------------------------ checkpoints */

#define CKPT_PREFIX "ckpt-step"

/* Doubles travel as C99 hex strings: exact, whatever the JSON library prints. */
static void add_hex(cJSON *o, const char *key, double v)
{
    char b[64];
    snprintf(b, sizeof b, "%a", v);
    cJSON_AddStringToObject(o, key, b);
}

static int get_hex(const cJSON *o, const char *key, double *v)
{
    const cJSON *x = cJSON_GetObjectItemCaseSensitive(o, key);
    char *end = NULL;
    if (!cJSON_IsString(x))
        return -1;
    *v = strtod(x->valuestring, &end);
    return *end ? -1 : 0;
}

static int get_i64(const cJSON *o, const char *key, int64_t *v)
{
    const cJSON *x = cJSON_GetObjectItemCaseSensitive(o, key);
    if (!cJSON_IsNumber(x) || x->valuedouble != floor(x->valuedouble) || fabs(x->valuedouble) > 9e15)
        return -1;
    *v = (int64_t)x->valuedouble;
    return 0;
}

/* {"train": <the resolved options>, "loop": <loop_state>}: stored with the data
 * settings of every checkpoint. */
static char *checkpoint_extra(const run *r, const loop_state *ls)
{
    cJSON *o = cJSON_CreateObject(), *t = cJSON_Parse(r->train_json), *l = cJSON_CreateObject();
    char *s = NULL;
    if (o && t && l) {
        cJSON_AddItemToObject(o, "train", t);
        t = NULL;
        cJSON_AddNumberToObject(l, "epoch", (double)ls->epoch);
        cJSON_AddNumberToObject(l, "batch", (double)ls->batch);
        add_hex(l, "loss_sum", ls->loss_sum);
        cJSON_AddNumberToObject(l, "loss_n", (double)ls->loss_n);
        add_hex(l, "best_f1", ls->best_f1);
        cJSON_AddNumberToObject(l, "best_step", (double)ls->best_step);
        add_hex(l, "loss_scale", ls->loss_scale);
        cJSON_AddNumberToObject(l, "good_steps", (double)ls->good_steps);
        cJSON_AddItemToObject(o, "loop", l);
        l = NULL;
        s = cJSON_PrintUnformatted(o);
    }
    cJSON_Delete(o);
    cJSON_Delete(t);
    cJSON_Delete(l);
    return s;
}

/* The whole file, or an empty text when it does not exist. */
static int read_text(const char *path, char **out, size_t *len)
{
    *out = NULL;
    *len = 0;
    FILE *f = fopen(path, "rb");
    if (!f)
        return errno == ENOENT ? 0 : -1;
    size_t cap = 1 << 16, n = 0;
    char *b = malloc(cap);
    while (b) {
        n += fread(b + n, 1, cap - n, f);
        if (n < cap)
            break;
        char *g = realloc(b, cap *= 2);
        if (!g)
            free(b);
        b = g;
    }
    int bad = ferror(f) || !b;
    fclose(f);
    if (bad) {
        free(b);
        return -1;
    }
    *out = b;
    *len = n;
    return 0;
}

/* Rank 0 writes RUN_DIR/name (0600, temporary name, fsync, rename); with_optim adds
 * the AdamW moments. Collective when `collective` (the other ranks wait at a
 * barrier), otherwise rank 0 alone calls it. */
static void save_checkpoint(run *r, const char *name, int with_optim, const loop_state *ls, int collective)
{
    char derr[DIST_ERRLEN];
    if (r->comm.rank == 0) {
        char path[1200], mpath[1200], err[MIO_ERRLEN];
        if (join_path(path, sizeof path, r->run_dir, name) ||
            join_path(mpath, sizeof mpath, r->run_dir, IO_METRICS_FILE))
            die(r, "--out: path too long");
        char *metrics = NULL, *extra = checkpoint_extra(r, ls);
        size_t mlen = 0;
        if (read_text(mpath, &metrics, &mlen))
            die(r, "%s: cannot read: %s", mpath, strerror(errno));
        if (!extra)
            die(r, "out of memory");
        mio_data d = data_settings(r);
        mio_save_args a;
        memset(&a, 0, sizeof a);
        a.mc = &r->mc;
        a.data = &d;
        a.vocab = r->vocab;
        a.epoch = ls->epoch;
        a.step = nn_adamw_steps_done(r->opt);
        a.batch_in_epoch = ls->batch;
        a.seed = r->o.seed;
        a.loss_scale = ls->loss_scale;
        a.good_steps = ls->good_steps;
        a.metrics = metrics;
        a.metrics_len = mlen;
        a.data_extra = extra;
        double t0 = now_s();
        int rc = mio_save(path, r->model, with_optim ? r->opt : NULL, &a, err);
        free(metrics);
        free(extra);
        if (rc)
            die(r, "saving a checkpoint: %s", err);
        if (!r->o.quiet) {
            struct stat st;
            double mb = stat(path, &st) == 0 ? (double)st.st_size / 1e6 : 0;
            fprintf(stderr, "  saved %s (%.1f MB) in %.2f s\n", path, mb, now_s() - t0);
        }
    }
    if (collective && dist_barrier(&r->comm, derr))
        die(r, "barrier after saving a checkpoint: %s", derr);
}

/* Step checkpoints in RUN_DIR, newest first (malloc'd steps; count returned). */
static size_t list_checkpoints(const char *dir, int64_t **steps)
{
    *steps = NULL;
    DIR *d = opendir(dir);
    if (!d)
        return 0;
    size_t n = 0, cap = 0;
    struct dirent *e;
    while ((e = readdir(d))) {
        long long s;
        char tail[8];
        if (sscanf(e->d_name, CKPT_PREFIX "%lld%7s", &s, tail) != 2 || strcmp(tail, ".h5") || s < 0)
            continue;
        if (n == cap) {
            int64_t *g = realloc(*steps, (cap = cap ? cap * 2 : 16) * sizeof *g);
            if (!g)
                break;
            *steps = g;
        }
        (*steps)[n++] = s;
    }
    closedir(d);
    for (size_t i = 1; i < n; i++) /* few files: insertion sort, descending */
        for (size_t j = i; j > 0 && (*steps)[j] > (*steps)[j - 1]; j--) {
            int64_t t = (*steps)[j];
            (*steps)[j] = (*steps)[j - 1];
            (*steps)[j - 1] = t;
        }
    return n;
}

static void checkpoint_name(char *buf, size_t n, int64_t step)
{
    snprintf(buf, n, CKPT_PREFIX "%08lld.h5", (long long)step);
}

/* Rank 0: keep the newest --keep-last step checkpoints. */
static void prune_checkpoints(run *r)
{
    if (r->comm.rank != 0)
        return;
    int64_t *steps;
    size_t n = list_checkpoints(r->run_dir, &steps);
    for (size_t i = (size_t)r->o.keep_last; i < n; i++) {
        char name[64], path[1200];
        checkpoint_name(name, sizeof name, steps[i]);
        if (join_path(path, sizeof path, r->run_dir, name) == 0 && unlink(path) != 0)
            fprintf(stderr, "adebert train: warning: cannot delete old checkpoint %s: %s\n", path, strerror(errno));
    }
    free(steps);
}

/* Options that may change between a run and its resumption: where things are and
 * how they are computed, not what is computed. */
static int option_may_change(const char *key)
{
    static const char *const ok[] = {"data",      "out",        "threads",     "device",
                                     "precision", "init",       "keep_last",   "save_every",
                                     "config_file", "reduce_precision", "comm_timeout"};
    for (size_t i = 0; i < sizeof ok / sizeof *ok; i++)
        if (!strcmp(key, ok[i]))
            return 1;
    return 0;
}

/* Rank 0: load checkpoint `path` into the model and optimizer, and its loop state.
 * 0 ok; -1 unusable (damaged: the caller tries an older one, and the model is as it
 * was); -2 written with other options (resuming it would silently change the run) or
 * the run directory cannot be written: the caller stops. */
static int try_resume(run *r, const char *path, loop_state *ls, char err[MIO_ERRLEN])
{
    mio_info info;
    if (mio_open(path, &info, err))
        return -1;
    int rc = -1;
    cJSON *saved = cJSON_Parse(info.data_json), *now = cJSON_Parse(r->train_json);
    const cJSON *train = cJSON_GetObjectItemCaseSensitive(saved, "train");
    const cJSON *loop = cJSON_GetObjectItemCaseSensitive(saved, "loop");
    if (!cJSON_IsObject(train) || !cJSON_IsObject(loop) || !now) {
        snprintf(err, MIO_ERRLEN, "%.400s: not written by adebert train (no loop state)", path);
        goto out;
    }
    const cJSON *it;
    cJSON_ArrayForEach(it, now)
    {
        if (option_may_change(it->string))
            continue;
        const cJSON *was = cJSON_GetObjectItemCaseSensitive(train, it->string);
        if (!was || !cJSON_Compare(was, it, 1)) {
            char *a = was ? cJSON_PrintUnformatted(was) : NULL, *b = cJSON_PrintUnformatted(it);
            snprintf(err, MIO_ERRLEN,
                     "%.300s was written with %s = %.60s, this command has %.60s: resume with the same options",
                     path, it->string, a ? a : "(absent)", b ? b : "?");
            free(a);
            free(b);
            rc = -2;
            goto out;
        }
    }
    if (get_i64(loop, "epoch", &ls->epoch) || get_i64(loop, "batch", &ls->batch) ||
        get_hex(loop, "loss_sum", &ls->loss_sum) || get_i64(loop, "loss_n", &ls->loss_n) ||
        get_hex(loop, "best_f1", &ls->best_f1) || get_i64(loop, "best_step", &ls->best_step) ||
        get_hex(loop, "loss_scale", &ls->loss_scale) || get_i64(loop, "good_steps", &ls->good_steps) ||
        ls->epoch < 0 || ls->batch < 0 || !(ls->loss_scale > 0)) {
        snprintf(err, MIO_ERRLEN, "%.400s: damaged loop state", path);
        goto out;
    }
    if (mio_load_params(path, r->model, r->opt, err))
        goto out;
    /* metrics.jsonl as it was at that step: evaluations made after it are redone */
    char mpath[1200], werr[ERRLEN];
    if (join_path(mpath, sizeof mpath, r->run_dir, IO_METRICS_FILE) ||
        cli_write_file(mpath, info.metrics ? info.metrics : "", info.metrics_len, werr, sizeof werr)) {
        snprintf(err, MIO_ERRLEN, "restoring metrics.jsonl: %.400s", werr);
        rc = -2; /* the run directory, not the checkpoint, is the problem: stop */
        goto out;
    }
    rc = 0;
out:
    cJSON_Delete(saved);
    cJSON_Delete(now);
    mio_info_free(&info);
    return rc;
}

/* Rank 0's copy of a device buffer of n floats to every rank. */
static void bcast_floats(run *r, float *dev, size_t n)
{
    char derr[DIST_ERRLEN];
    if (r->comm.size == 1)
        return;
    float *h = malloc(n * sizeof *h);
    if (!h)
        die(r, "out of memory");
    if (r->comm.rank == 0)
        r->be->ops->download(r->be, h, dev, n * sizeof *h);
    if (dist_bcast_bytes(&r->comm, h, n * sizeof *h, derr))
        die(r, "broadcasting the checkpoint: %s", derr);
    if (r->comm.rank != 0) {
        r->be->ops->upload(r->be, dev, h, n * sizeof *h);
        r->be->ops->sync(r->be);
    }
    free(h);
}

/* --resume: rank 0 finds the newest checkpoint in RUN_DIR that loads and verifies
 * (skipping bad ones with a warning), and gives its state to every rank. With none,
 * the run starts from scratch. */
static void resume(run *r)
{
    char derr[DIST_ERRLEN];
    int64_t step = -1; /* of the checkpoint resumed from; -1: none */
    loop_state ls = r->ls;
    if (r->comm.rank == 0) {
        int64_t *steps;
        size_t n = list_checkpoints(r->run_dir, &steps);
        for (size_t i = 0; i < n; i++) {
            char name[64], path[1200], err[MIO_ERRLEN];
            checkpoint_name(name, sizeof name, steps[i]);
            if (join_path(path, sizeof path, r->run_dir, name))
                die(r, "--out: path too long");
            int rc = try_resume(r, path, &ls, err);
            if (rc == 0) {
                step = nn_adamw_steps_done(r->opt);
                break;
            }
            if (rc == -2)
                die(r, "--resume: %s", err);
            fprintf(stderr, "adebert train: warning: skipping checkpoint %s: %s\n", path, err);
        }
        free(steps);
        if (step < 0) {
            char cerr[CLUSTER_ERRLEN]; /* issue 14.3: requeued onto an empty (node-local) --out */
            if (cluster_check_resume_found(0, r->run_dir, NULL, NULL, cerr))
                die(r, "%s", cerr);
            fprintf(stderr, "adebert train: --resume: no usable checkpoint in %s; starting from scratch\n",
                    r->run_dir);
            char mpath[1200];
            if (join_path(mpath, sizeof mpath, r->run_dir, IO_METRICS_FILE) == 0)
                unlink(mpath); /* evaluations of an attempt that left no checkpoint */
        } else if (r->o.perturb_resume) {
            /* negative control: one weight off by a relative 1e-3 must change the result */
            size_t np = nn_model_num_params(r->model);
            float *h = malloc(np * sizeof *h);
            char nerr[NN_ERRLEN];
            if (!h || nn_model_get_params(r->model, h, np, nerr))
                die(r, "--debug-perturb-resume: cannot read the parameters");
            const nn_param *p = nn_model_find_param(r->model, "classifier.weight");
            h[p ? p->offset : 0] *= 1.001f;
            if (nn_model_set_params(r->model, h, np, nerr))
                die(r, "--debug-perturb-resume: %s", nerr);
            free(h);
        }
    }
    /* every rank runs this binary: the loop state travels as its bytes */
    if (dist_bcast_bytes(&r->comm, &step, sizeof step, derr))
        die(r, "--resume: %s", derr);
    r->resumed_from = step;
    if (step < 0)
        return;
    if (dist_bcast_bytes(&r->comm, &ls, sizeof ls, derr))
        die(r, "--resume: %s", derr);
    r->ls = ls;
    size_t n = nn_model_num_params(r->model);
    bcast_floats(r, nn_model_param_buf(r->model), n);
    bcast_floats(r, nn_adamw_m(r->opt), n);
    bcast_floats(r, nn_adamw_v(r->opt), n);
    nn_adamw_set_step(r->opt, step);
}

/* Initial weights from a checkpoint (its parameters, not its optimizer state) or a
 * Hugging Face folder (missing pooler/classifier keep the seed's init), read by
 * rank 0 and broadcast. The model's shapes must match. */
static void init_from(run *r, const char *src)
{
    if (r->comm.rank == 0) {
        if (hfio_is_model_dir(src)) {
            char notes[4096] = "", herr[HFIO_ERRLEN];
            if (hfio_load_weights("train", src, r->model, r->o.seed, notes, sizeof notes, herr))
                die(r, "initial weights from %s: %s", src, herr);
            fputs(notes, stderr);
        } else {
            char err[MIO_ERRLEN];
            if (mio_load_params(src, r->model, NULL, err))
                die(r, "--init: %s", err);
        }
    }
    bcast_floats(r, nn_model_param_buf(r->model), nn_model_num_params(r->model));
}

/* ------------------------------------------------------------ the command */

static uint64_t params_checksum(run *r)
{
    size_t n = nn_model_num_params(r->model);
    float *host = NULL;
    const unsigned char *p = (const unsigned char *)nn_model_param_buf(r->model);
    if (r->cuda) { /* device memory: a host copy first */
        char err[NN_ERRLEN];
        host = malloc(n * sizeof *host);
        if (!host || nn_model_get_params(r->model, host, n, err))
            die(r, "parameter checksum: cannot read the parameters");
        p = (const unsigned char *)host;
    }
    uint64_t h = 0xcbf29ce484222325ull;
    for (size_t i = 0; i < n * sizeof(float); i++)
        h = (h ^ p[i]) * 0x100000001b3ull;
    free(host);
    return h;
}

/* Replicated parameters must stay identical on every rank: a silent divergence
 * (a skipped reduction, a bad node) would otherwise train N different models. */
static void check_replicas(run *r)
{
    char derr[DIST_ERRLEN];
    uint64_t h = params_checksum(r);
    int64_t v[2] = {(int64_t)(h >> 1), -(int64_t)(h >> 1)};
    if (dist_allreduce_max_i64(&r->comm, v, 2, derr))
        die(r, "parameter checksum: %s", derr);
    if (v[0] != -v[1])
        die(r, "parameters differ between ranks after step %lld (checksum mismatch)",
            (long long)nn_adamw_steps_done(r->opt));
}

/* Returns the F1 on rank 0 (NaN elsewhere and for an empty split). */
static double log_eval(run *r, const char *split, int64_t epoch, double train_loss, double grad_norm,
                       double lr, double seconds, double tok_s, const uint32_t *rows, size_t n)
{
    if (n == 0)
        return NAN;
    io_metrics m = {0};
    double eval_loss = 0;
    evaluate(r, rows, n, &m, &eval_loss);
    if (r->comm.rank != 0)
        return NAN;
    io_metrics_record rec = {0};
    rec.schema_version = IO_METRICS_SCHEMA_VERSION;
    snprintf(rec.split, sizeof rec.split, "%s", split);
    rec.epoch = epoch;
    rec.step = nn_adamw_steps_done(r->opt);
    rec.lr = lr;
    rec.train_loss = train_loss;
    rec.eval_loss = eval_loss;
    rec.m = m;
    rec.grad_norm = grad_norm;
    rec.loss_scale = r->ls.loss_scale;
    rec.seconds = seconds;
    rec.tokens_per_s = tok_s;
    /* a run that picks best.h5 on the test split says so on every line: its test
     * numbers are then optimistic */
    io_metrics_extra sel = {"model_selection", 1, "test", 0};
    if (!strcmp(r->o.select_on, "test")) {
        rec.n_extra = 1;
        rec.extra = &sel;
    }
    char path[1200], ierr[IO_ERRLEN];
    if (join_path(path, sizeof path, r->run_dir, IO_METRICS_FILE))
        die(r, "--out: path too long");
    if (io_metrics_append(path, &rec, ierr))
        die(r, "%s", ierr);
    printf("epoch %3lld step %6lld %-4s  loss %.4f  P %.4f  R %.4f  F1 %.4f  acc %.4f  ROC-AUC %.4f  PR-AUC %.4f"
           "  (tp %lld fp %lld tn %lld fn %lld)\n",
           (long long)epoch, (long long)rec.step, split, eval_loss, m.precision, m.recall, m.f1, m.accuracy,
           m.roc_auc, m.pr_auc, (long long)m.cm.tp, (long long)m.cm.fp, (long long)m.cm.tn, (long long)m.cm.fn);
    fflush(stdout);
    return m.f1;
}

/* Rank 0: best.h5 (model only) when this evaluation beats the best so far, and
 * best.json saying which step and on which split it was selected. */
static void maybe_save_best(run *r, double f1, int64_t epoch)
{
    if (r->comm.rank != 0 || r->o.save_every == 0 || !(f1 > r->ls.best_f1))
        return;
    r->ls.best_f1 = f1;
    r->ls.best_step = nn_adamw_steps_done(r->opt);
    loop_state at = r->ls; /* best.h5 is never resumed from: its epoch is the one evaluated */
    at.epoch = epoch;
    save_checkpoint(r, "best.h5", 0, &at, 0);
    char buf[512], err[ERRLEN];
    snprintf(buf, sizeof buf,
             "{\"checkpoint\":\"best.h5\",\"step\":%lld,\"epoch\":%lld,\"selected_on\":\"%s\",\"f1\":%.9g%s}\n",
             (long long)r->ls.best_step, (long long)epoch, r->o.select_on, f1,
             strcmp(r->o.select_on, "test") ? "" : ",\"warning\":\"selected on the test split: its test metrics are optimistic\"");
    if (write_run_file(r->run_dir, "best.json", buf, err, sizeof err))
        die(r, "%s", err);
}

int cmd_train(int argc, char **argv)
{
    run rr;
    memset(&rr, 0, sizeof rr);
    run *r = &rr;
    int prc = train_opts_parse(&r->o, argc, argv);
    if (prc)
        return prc == 1 ? CLI_OK : CLI_USAGE;
    train_opts *o = &r->o;
    char derr[DIST_ERRLEN];
    /* Blocked before MPI_Init so that every thread created from here on inherits it. */
    sigset_t stop_set;
    sigemptyset(&stop_set);
    sigaddset(&stop_set, SIGTERM);
    sigaddset(&stop_set, SIGUSR1);
    pthread_sigmask(SIG_BLOCK, &stop_set, NULL);
    int init_rc = dist_init(&r->comm, NULL, NULL, derr);
    if (init_rc) {
        cli_error("train", "%s", derr);
        return CLI_FAIL;
    }
    r->comm_up = 1;
    int root = r->comm.rank == 0;
    r->fail_rank = -1;
    if (o->fail_at[0]) {
        long long fr = -1, fs = -1;
        char tail = 0;
        if (sscanf(o->fail_at, "%lld:%lld%c", &fr, &fs, &tail) != 2 || fr < 0 || fs < 0)
            die(r, "--debug-fail-at wants RANK:STEP, not '%s'", o->fail_at);
        r->fail_rank = (int)fr;
        r->fail_step = fs;
    }
    char err[ERRLEN];
    snprintf(r->run_dir, sizeof r->run_dir, "%s", o->out);
    setup_model_config(r);
    setup_data(r);
    if (root && prepare_run_dir(r->run_dir, o->resume, err, sizeof err))
        die(r, "%s", err);
    char cerr[CLUSTER_ERRLEN]; /* issue 14.8: at most one rank per GPU, before NCCL */
    if (!strcmp(o->device, "cuda") && cluster_check_ranks_vs_gpus(&r->comm, NULL, NULL, cerr))
        die(r, "%s", cerr);
    setup_model(r);
    /* issue 14.4: each rank's CPUs and GPU */
    cluster_print_binding(&r->comm, o->device, r->cuda ? dist_nccl_device(r->nccl) : -1, o->device_note);
    r->train_json = train_opts_to_json(o);
    if (!r->train_json)
        die(r, "out of memory");
    if (io_splitdir_is(o->data)) {
        /* the rows' hashes go with the options (config.json, checkpoints): a resume
         * over changed files is refused like any other changed option */
        char *h = NULL, herr[IO_ERRLEN];
        cJSON *j = cJSON_Parse(r->train_json);
        if (io_splitdir_hashes(o->data, &h, herr) || !j)
            die(r, "%s", j ? herr : "out of memory");
        cJSON_AddItemToObject(j, "split_sha256", cJSON_Parse(h));
        free(h);
        free(r->train_json);
        r->train_json = cJSON_PrintUnformatted(j);
        cJSON_Delete(j);
        if (!r->train_json)
            die(r, "out of memory");
    }
    r->ls.best_f1 = -1;
    r->ls.best_step = -1;
    r->resumed_from = -1;
    /* loss scaling: after setup_model, which resolved --precision auto */
    r->ls.loss_scale = 1;
    if (!strcmp(o->loss_scale, "dynamic") || (!strcmp(o->loss_scale, "auto") && !strcmp(o->precision, "fp16"))) {
        r->dyn_scale = 1;
        r->ls.loss_scale = 65536;
    } else if (strcmp(o->loss_scale, "auto") && strcmp(o->loss_scale, "none")) {
        r->ls.loss_scale = strtod(o->loss_scale, NULL);
    }
    r->inject_rank = -1;
    if (o->inject_inf[0]) {
        long long ir = -1, is = -1;
        char tail = 0;
        if (sscanf(o->inject_inf, "%lld:%lld%c", &ir, &is, &tail) != 2 || ir < 0 || is < 0)
            die(r, "--debug-inject-inf wants RANK:STEP, not '%s'", o->inject_inf);
        r->inject_rank = (int)ir;
        r->inject_step = is;
    }

    /* the schedule */
    size_t B = (size_t)o->batch_size;
    int64_t steps_per_epoch = (int64_t)((r->split.n_train + B - 1) / B);
    int64_t total = steps_per_epoch * o->epochs;
    if (o->max_steps > 0 && o->max_steps < total)
        total = o->max_steps;
    nn_adamw_config ac;
    nn_adamw_config_default(&ac);
    ac.lr = o->lr;
    ac.weight_decay = o->weight_decay;
    ac.max_grad_norm = o->grad_clip;
    ac.total_steps = total;
    ac.warmup_steps = o->warmup_steps >= 0 ? o->warmup_steps : nn_warmup_from_ratio(o->warmup_ratio, total);
    char nerr[NN_ERRLEN];
    if (nn_adamw_create(&r->opt, r->model, &ac, nerr))
        die(r, "%s", nerr);
    if (o->init[0])
        init_from(r, o->init);
    else if (r->hf_weights)
        init_from(r, o->model);
    if (o->resume)
        resume(r);
    if (o->perturb_resume && r->resumed_from < 0)
        die(r, "--debug-perturb-resume needs a run to resume");

    if (o->log_samples[0]) {
        char p[1200];
        snprintf(p, sizeof p, "%s.rank%d", o->log_samples, r->comm.rank);
        r->sample_log = fopen(p, "w");
        if (!r->sample_log)
            die(r, "--log-samples %s: %s", p, strerror(errno));
    }
    if (root) {
        char *cmd = command_line(argc - 1, argv + 1);
        if (!cmd || write_run_file(r->run_dir, "config.json", r->train_json, err, sizeof err) ||
            write_run_file(r->run_dir, r->resumed_from >= 0 ? "command-resume.txt" : "command.txt", cmd, err,
                           sizeof err)) {
            free(cmd);
            die(r, "%s", cmd ? err : "out of memory");
        }
        free(cmd);
        char p[1200];
        if (join_path(p, sizeof p, r->run_dir, "train_log.jsonl"))
            die(r, "--out: path too long");
        int fd = open(p, O_WRONLY | O_CREAT | (r->resumed_from >= 0 ? O_APPEND : O_TRUNC), 0600);
        r->step_log = fd >= 0 ? fdopen(fd, "w") : NULL;
        if (!r->step_log)
            die(r, "%s: %s", p, strerror(errno));
        if (r->resumed_from >= 0)
            fprintf(r->step_log, "{\"resumed_from_step\":%lld}\n", (long long)r->resumed_from);
        char desc[256];
        size_t pos = 0;
        for (size_t i = 0; i < r->split.n_train; i++)
            pos += r->corpus.label[r->split.train[i]];
        if (io_splitdir_is(o->data))
            printf("adebert train: split folder %s: train %zu (%zu positive), val %zu, test %zu\n", o->data,
                   r->split.n_train, pos, r->split.n_val, r->split.n_test);
        else
            printf("adebert train: %s view %s, split %s (seed %llu): train %zu (%zu positive), val %zu, test %zu\n",
                   o->data, io_view_name(o->view), io_split_name(o->split), (unsigned long long)o->split_seed,
                   r->split.n_train, pos, r->split.n_val, r->split.n_test);
        printf("  model %s: %lld layers x %lld hidden, %zu parameters; %s, %s\n", o->model,
               (long long)r->cfg.num_hidden_layers, (long long)r->cfg.hidden_size, nn_model_num_params(r->model),
               o->lowercase ? "lowercased" : "cased", o->vocab);
        if (r->cuda) {
            char nd[256];
            printf("  %s; CUDA backend on %s, %s GEMMs, gradients: %s (%s on the wire); %d rank(s) x %lld "
                   "sequences max per step\n",
                   dist_describe(&r->comm, desc, sizeof desc), nn_cuda_device_name(r->be), o->precision,
                   dist_nccl_describe(r->nccl, nd, sizeof nd), o->reduce_precision, r->comm.size,
                   (long long)r->max_local);
        } else {
            printf("  %s; CPU backend (%s), %d rank(s) x %lld sequences max per step\n",
                   dist_describe(&r->comm, desc, sizeof desc), nn_cpu_blas_name(), r->comm.size,
                   (long long)r->max_local);
        }
        printf("  %d epochs x %lld steps (global batch %zu), %lld steps in all, warmup %lld, lr %g -> %s\n",
               o->epochs, (long long)steps_per_epoch, B, (long long)total, (long long)ac.warmup_steps, o->lr,
               r->run_dir);
        if (r->resumed_from >= 0)
            printf("  resumed_from_step %lld: epoch %lld, batch %lld of it; %lld steps to go\n",
                   (long long)r->resumed_from, (long long)r->ls.epoch + 1, (long long)r->ls.batch,
                   (long long)(total - r->resumed_from));
        if (o->split != IO_SPLIT_GROUPED && o->view == IO_VIEW_HF)
            printf("  note: the %s split of the hf view shares sentences between train and test; "
                   "--split grouped leaks none (adebert data stats)\n",
                   io_split_name(o->split));
        fflush(stdout);
    }

    progress pg = {isatty(2), o->quiet || !root, 0, now_s(), 0};
    double t_start = now_s(), comm_total = 0, eval_total = 0;
    double loss_sum = r->ls.loss_sum, last_grad_norm = NAN, last_lr = 0;
    int64_t loss_n = r->ls.loss_n, tokens_since = 0, step = nn_adamw_steps_done(r->opt);
    const int64_t first_step = step;
    double t_since = now_s();
    int stopped = 0;
    uint32_t *global = malloc(B * sizeof *global);
    if (!global)
        die(r, "out of memory");
    for (int epoch = (int)r->ls.epoch; epoch < o->epochs && step < total && !stopped; epoch++) {
        dist_epoch_plan plan;
        if (dist_sampler_plan(&plan, r->split.train, r->split.n_train, r->tokens.offsets, B, o->group_by_length,
                              o->seed,
                              (uint32_t)epoch, derr))
            die(r, "sampler: %s", derr);
        size_t b0 = epoch == r->ls.epoch ? (size_t)r->ls.batch : 0;
        for (size_t b = b0; b < plan.n_batches && step < total; b++) {
            size_t n_global = plan.batch_start[b + 1] - plan.batch_start[b];
            memcpy(global, plan.order + plan.batch_start[b], n_global * sizeof *global);
            step_result s;
            train_step(r, global, n_global, (uint32_t)epoch, &s);
            step++;
            comm_total += s.comm_s;
            loss_sum += s.loss;
            loss_n++;
            tokens_since += s.tokens;
            last_grad_norm = s.grad_norm;
            last_lr = s.lr;
            if (root) {
                char gn[32]; /* JSON has no inf: an overflowed norm is null */
                snprintf(gn, sizeof gn, isfinite(s.grad_norm) ? "%.9g" : "null", s.grad_norm);
                fprintf(r->step_log,
                        "{\"step\":%lld,\"epoch\":%d,\"loss\":%.9g,\"lr\":%.9g,\"grad_norm\":%s,\"tokens\":%lld,"
                        "\"loss_scale\":%.9g%s}\n",
                        (long long)step, epoch, s.loss, s.lr, gn, (long long)s.tokens, s.loss_scale,
                        s.skipped ? ",\"skipped\":true" : "");
            }
            double el = now_s() - t_since;
            progress_show(&pg, epoch + 1, o->epochs, step, total, loss_sum / (double)loss_n,
                          el > 0 ? (double)tokens_since / el : 0, 0);
            /* Every rank stops at the same step: OR the flag each step. */
            int64_t flag = stop_signal_pending(&stop_set) || (o->stop_at >= 0 && step == o->stop_at);
            if (dist_allreduce_max_i64(&r->comm, &flag, 1, derr))
                die(r, "stop flag all-reduce: %s", derr);
            int last_of_epoch = b + 1 == plan.n_batches || step == total;
            int eval_now = o->eval_every ? (step % o->eval_every == 0 || step == total) : last_of_epoch;
            if (flag)
                stopped = 1;
            if (eval_now) {
                if (root && r->step_log)
                    fflush(r->step_log);
                progress_clear(&pg);
                double secs = now_s() - t_start;
                double tok_s = (now_s() - t_since) > 0 ? (double)tokens_since / (now_s() - t_since) : 0;
                double train_loss = loss_n ? loss_sum / (double)loss_n : NAN;
                double t_eval = now_s();
                double f1v = log_eval(r, "val", epoch + 1, train_loss, last_grad_norm, last_lr, secs, tok_s,
                                      r->split.val, r->split.n_val);
                double f1t = log_eval(r, "test", epoch + 1, train_loss, last_grad_norm, last_lr, secs, tok_s,
                                      r->split.test, r->split.n_test);
                loss_sum = 0;
                loss_n = 0;
                r->ls.loss_sum = 0;
                r->ls.loss_n = 0;
                maybe_save_best(r, strcmp(o->select_on, "test") ? f1v : f1t, epoch + 1);
                eval_total += now_s() - t_eval;
                tokens_since = 0;
                t_since = now_s();
            }
            /* A checkpoint after this step: where the next step starts, and the loop's sums. */
            int due = o->save_every > 0 ? (step % o->save_every == 0 || step == total)
                                        : o->save_every < 0 && (last_of_epoch || step == total);
            if (o->save_every != 0 && (due || stopped)) {
                int end_of_epoch = b + 1 == plan.n_batches;
                r->ls.epoch = end_of_epoch ? epoch + 1 : epoch;
                r->ls.batch = end_of_epoch ? 0 : (int64_t)(b + 1);
                r->ls.loss_sum = loss_sum;
                r->ls.loss_n = loss_n;
                if (root && r->step_log)
                    fflush(r->step_log);
                progress_clear(&pg);
                char name[64];
                checkpoint_name(name, sizeof name, step);
                double t_save = now_s();
                save_checkpoint(r, name, 1, &r->ls, 1);
                prune_checkpoints(r);
                eval_total += now_s() - t_save; /* not training time */
            }
            if (stopped)
                break;
        }
        dist_sampler_plan_free(&plan);
        check_replicas(r);
    }
    free(global);
    progress_clear(&pg);
    if (root && o->dump_params[0]) {
        size_t n = nn_model_num_params(r->model);
        float *host = malloc(n * sizeof *host);
        if (!host || nn_model_get_params(r->model, host, n, nerr) ||
            cli_write_file(o->dump_params, host, n * sizeof *host, err, sizeof err)) {
            free(host);
            die(r, "--dump-params: %s", host ? err : "out of memory");
        }
        free(host);
    }
    double wall = now_s() - t_start, train_s = wall - eval_total;
    if (root) {
        printf("done: %lld steps in %.1f s: training %.1f s (%.1f ms/step, %.1f%% of it waiting on the gradient "
               "reduction), evaluation %.1f s; metrics in %s/%s\n",
               (long long)(step - first_step), wall, train_s,
               step > first_step ? 1000.0 * train_s / (double)(step - first_step) : 0.0,
               train_s > 0 ? 100.0 * comm_total / train_s : 0.0, eval_total, r->run_dir, IO_METRICS_FILE);
        if (r->cuda)
            printf("  peak device memory %.0f MiB on %s\n", (double)nn_cuda_peak_bytes(r->be) / 1048576.0,
                   nn_cuda_device_name(r->be));
        fflush(stdout);
    }
    int rc = CLI_OK;
    if (stopped) {
        if (root)
            fprintf(stderr, "adebert train: stopped by a signal at step %lld; %s; exit 75 so Slurm requeues\n",
                    (long long)step,
                    o->save_every ? "checkpoint saved, continue with --resume" : "nothing saved (--save-every none)");
        rc = 75;
    }
    run_free(r);
    dist_finalize(&r->comm);
    return rc;
}
