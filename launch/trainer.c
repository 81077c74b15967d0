/* launch/trainer: the training machinery of `adebert train` (see trainer.h). */
#include "launch/trainer.h"
#include "launch/cluster.h"

#include "dist/reducer.h"
#include "io/io.h"
#include "launch/cli.h"
#include "launch/hf_io.h"
#include "launch/model_io.h"

#include <cjson/cJSON.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

/* Every failure fills t->err and returns -1 up to the public function, which hands
 * the message to the caller: only launch's command decides how the job ends. */
#define FAIL(...)                                                                                          \
    do {                                                                                                   \
        snprintf(t->err, sizeof t->err, __VA_ARGS__);                                                      \
        return -1;                                                                                         \
    } while (0)
#define TRY(call)                                                                                          \
    do {                                                                                                   \
        if (call)                                                                                          \
            return -1;                                                                                     \
    } while (0)

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

/* dir/name into dst; -1 when it does not fit (paths are bounded, never cut). */
static int join_path(char *dst, size_t n, const char *dir, const char *name)
{
    int k = snprintf(dst, n, "%s/%s", dir, name);
    return k < 0 || (size_t)k >= n ? -1 : 0;
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

/* Everything one run holds; freed by trainer_close whatever happened. */
struct trainer {
    train_opts o;         /* resolved: --precision auto, casing and vocab filled in */
    dist_comm *comm;      /* the caller's */
    io_corpus corpus;
    io_split split;
    io_vocab *vocab;
    io_tokenizer *tok;
    io_tokens tokens;
    nn_config cfg;
    nn_backend *be;
    nn_model *model;
    nn_adamw *opt;
    dist_nccl *nccl;            /* GPU: NCCL on device buffers */
    dist_grad_reducer *reducer; /* NCCL on the GPU, MPI on host buffers otherwise */
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
    int lock_fd;          /* rank 0: RUN_DIR/.lock, flock'd for the job's lifetime (-1: none) */
    int64_t max_local;    /* most sequences one rank holds in a step */
    char precision_note[320]; /* CPU --precision auto that fell back to fp32, and why */
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
    double last_grad_norm, last_lr; /* of the last step, for the evaluation records */
    int reduce_failed;    /* a bucket's reduction failed inside backward (t->err says why) */
    /* --augment: what was read and used (config.json, the banner) */
    char aug_sha256[65];
    size_t aug_in_file, aug_used, aug_used_pos, aug_train_pos, aug_dup_train;
    uint32_t *aug_lines;  /* 1-based file lines of the rows used, ascending */
    trainer_info info;
    char err[TRAINER_ERRLEN];
};

void trainer_close(trainer *t)
{
    if (!t)
        return;
    if (t->lock_fd >= 0)
        close(t->lock_fd); /* releases the run directory's lock */
    free(t->ids);
    free(t->offsets);
    free(t->labels);
    free(t->sample_ids);
    free(t->logits);
    free(t->scores);
    free(t->all_scores);
    free(t->train_json);
    free(t->aug_lines);
    if (t->sample_log)
        fclose(t->sample_log);
    if (t->step_log)
        fclose(t->step_log);
    dist_grad_reducer_free(t->reducer);
    nn_adamw_free(t->opt);
    nn_model_free(t->model);
    if (t->be)
        nn_backend_destroy(t->be);
    dist_nccl_free(t->nccl);
    io_tokens_free(&t->tokens);
    io_tokenizer_free(t->tok);
    io_vocab_free(t->vocab);
    io_split_free(&t->split);
    io_corpus_free(&t->corpus);
    free(t);
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

/* One job per run directory: an exclusive flock on RUN_DIR/.lock, held until the
 * trainer closes and released by the kernel when the process dies (a Slurm requeue
 * that overlaps a straggler, or a second --resume, is refused, never run beside it). */
static int lock_run_dir(trainer *t, char *err, size_t errlen)
{
    char p[1200];
    if (join_path(p, sizeof p, t->run_dir, ".lock")) {
        snprintf(err, errlen, "%.400s: path too long", t->run_dir);
        return -1;
    }
    int fd = open(p, O_RDWR | O_CREAT | O_CLOEXEC, 0600);
    if (fd < 0) {
        snprintf(err, errlen, "cannot create %.400s: %s", p, strerror(errno));
        return -1;
    }
    if (flock(fd, LOCK_EX | LOCK_NB) != 0) {
        int e = errno;
        close(fd);
        if (e == EWOULDBLOCK)
            snprintf(err, errlen,
                     "%.400s is in use by another adebert train (its .lock is held): one job per run directory",
                     t->run_dir);
        else
            snprintf(err, errlen, "cannot lock %.400s: %s", p, strerror(e));
        return -1;
    }
    t->lock_fd = fd;
    return 0;
}

static void on_grad_ready(void *ctx, float *grad, size_t off, size_t len);

/* ------------------------------------------------------------ setup */

/* Architecture, vocab and casing from --model/--vocab/--lowercase|--cased. */
static int setup_model_config(trainer *t)
{
    train_opts *o = &t->o;
    char err[IO_ERRLEN];
    nn_config mc;
    const char *m = o->model;
    if (hfio_is_model_dir(m)) {
        /* an HF folder: config.json, vocab.txt (unless --vocab), casing from
         * tokenizer_config.json unless a flag says; its weights (if any) come later */
        io_vocab *hv = NULL;
        int lower = o->lowercase;
        char notes[2048] = "", herr[HFIO_ERRLEN];
        if (hfio_inspect("train", m, o->lowercase, &mc, &hv, &lower, notes, sizeof notes, herr))
            FAIL("%s", herr);
        if (t->comm->rank == 0)
            fputs(notes, stderr);
        o->lowercase = lower;
        io_vocab_free(hv);
        if (!o->vocab[0]) {
            if (snprintf(o->vocab, sizeof o->vocab, "%s/vocab.txt", m) >= (int)sizeof o->vocab)
                FAIL("--model: path too long");
        }
        t->hf_weights = hfio_has_weights(m);
    } else if (strstr(m, ".json")) {
        if (io_config_load(m, &mc, err))
            FAIL("%s", err);
    } else if (io_config_preset(m, &mc, err)) {
        FAIL("--model: %s (presets: tiny, minilm, base; or a config.json / HF folder)", err);
    }
    if (!o->vocab[0])
        FAIL("--vocab FILE is required with --model %s", m);
    if (o->lowercase < 0)
        FAIL("--lowercase or --cased is required (BioBERT and bert-base-cased vocabularies are cased)");
    if (io_vocab_load(o->vocab, &t->vocab, err))
        FAIL("%s", err);
    size_t nv = io_vocab_size(t->vocab);
    int preset = !hfio_is_model_dir(m) && !strstr(m, ".json");
    if (preset) {
        mc.vocab_size = (int64_t)nv;
        mc.pad_token_id = io_vocab_pad(t->vocab) >= 0 ? io_vocab_pad(t->vocab) : 0;
    } else if ((int64_t)nv > mc.vocab_size) {
        FAIL("%s has %zu tokens but the model's vocab_size is %lld", o->vocab, nv, (long long)mc.vocab_size);
    }
    if (mc.num_labels != 2)
        FAIL("the model has num_labels %lld; ADE detection is binary (2)", (long long)mc.num_labels);
    if (o->max_seq_len > mc.max_position_embeddings)
        FAIL("--max-seq-len %d exceeds the model's max_position_embeddings %lld", o->max_seq_len,
            (long long)mc.max_position_embeddings);
    if (nn_config_validate(&mc, err))
        FAIL("%s", err);
    t->cfg = mc;
    return 0;
}

static mio_data data_settings(const trainer *t)
{
    mio_data d;
    memset(&d, 0, sizeof d);
    snprintf(d.data, sizeof d.data, "%s", t->o.data);
    d.view = t->o.view;
    d.split = t->o.split;
    d.seed = t->o.split_seed;
    d.test_fraction = IO_TEST_FRACTION;
    d.val_fraction = t->o.val_fraction;
    d.limit = t->o.limit;
    d.max_seq_len = t->o.max_seq_len;
    d.lowercase = t->o.lowercase;
    return d;
}

/* --augment, before --limit: the file's rows, refused when one of them is a
 * validation or test sentence (normalised). Checked against the whole split, not
 * just the rows --limit keeps: the file must be clean for any run. */
static int augment_check(trainer *t, io_augment *a)
{
    const char *path = t->o.augment;
    char err[IO_ERRLEN];
    if (io_augment_load(path, a, err))
        FAIL("--augment %s", err);
    size_t n = t->split.n_val + t->split.n_test;
    uint32_t *rows = malloc((n ? n : 1) * sizeof *rows);
    if (!rows)
        FAIL("out of memory");
    if (t->split.n_val)
        memcpy(rows, t->split.val, t->split.n_val * sizeof *rows);
    if (t->split.n_test)
        memcpy(rows + t->split.n_val, t->split.test, t->split.n_test * sizeof *rows);
    int found = 0;
    size_t row = 0;
    int rc = io_augment_find_normalised(a, &t->corpus, rows, n, &found, &row, err);
    free(rows);
    if (rc)
        FAIL("--augment %.300s: %s", path, err);
    if (found)
        FAIL("--augment %.300s: line %u duplicates a validation/test sentence (normalised); filter the file "
             "first (experiments/augment)",
             path, a->line[row]);
    return 0;
}

/* --augment, after --limit: the rows used (all, or round(R x positive train rows)
 * chosen by a permutation seeded with --split-seed, like --limit's rows: model
 * seeds then vary over fixed rows) join the corpus and the train split. */
static int augment_join(trainer *t, io_augment *a)
{
    const train_opts *o = &t->o;
    char err[IO_ERRLEN];
    size_t pos = 0;
    for (size_t i = 0; i < t->split.n_train; i++)
        pos += t->corpus.label[t->split.train[i]];
    size_t n_file = a->rows.n, n_use = n_file;
    if (o->augment_ratio > 0) {
        double want = round(o->augment_ratio * (double)pos);
        if (want > (double)n_file)
            FAIL("--augment-ratio %g asks for %.0f rows (round(%g x %zu positive train rows)), the file has %zu "
                 "(--augment %.300s)",
                 o->augment_ratio, want, o->augment_ratio, pos, n_file, o->augment);
        if (want < 1)
            FAIL("--augment-ratio %g x %zu positive train rows rounds to 0 rows", o->augment_ratio, pos);
        n_use = (size_t)want;
    }
    uint32_t *use = malloc(n_use * sizeof *use);
    t->aug_lines = malloc(n_use * sizeof *t->aug_lines);
    if (!use || !t->aug_lines) {
        free(use);
        FAIL("out of memory");
    }
    int rc = io_augment_choose(n_file, n_use, o->split_seed, use, err);
    if (rc == 0)
        rc = io_augment_count_exact(a, use, n_use, &t->corpus, t->split.train, t->split.n_train, &t->aug_dup_train,
                                    err);
    size_t used_pos = 0;
    for (size_t i = 0; rc == 0 && i < n_use; i++) {
        used_pos += a->rows.label[use[i]];
        t->aug_lines[i] = a->line[use[i]];
    }
    if (rc == 0)
        rc = io_augment_join(&t->corpus, &t->split, a, use, n_use, err);
    free(use);
    if (rc)
        FAIL("--augment %.300s: %s", o->augment, err);
    snprintf(t->aug_sha256, sizeof t->aug_sha256, "%s", a->sha256);
    t->aug_in_file = n_file;
    t->aug_used = n_use;
    t->aug_used_pos = used_pos;
    t->aug_train_pos = pos;
    return 0;
}

/* The corpus, the split (--limit; --augment rows join train), the tokens. */
static int setup_split(trainer *t)
{
    train_opts *o = &t->o;
    char err[IO_ERRLEN];
    const char *data = cli_data_dir(o->data);
    if (data != o->data && snprintf(o->data, sizeof o->data, "%s", data) >= (int)sizeof o->data)
        FAIL("corpus path too long");
    data = o->data;
    if (io_corpus_load(data, o->view, &t->corpus, err))
        FAIL("%s (io/fetch-ade-corpus.sh downloads the ADE corpus)", err);
    mio_data d = data_settings(t), whole = d;
    whole.limit = 0; /* mio_make_split in two halves: the augment check sees every val/test row */
    if (mio_make_split(&t->corpus, &whole, &t->split, err))
        FAIL("%s", err);
    io_augment a;
    memset(&a, 0, sizeof a);
    int rc = o->augment[0] ? augment_check(t, &a) : 0;
    if (rc == 0) {
        mio_limit_split(&t->split, &d);
        if (t->split.n_train == 0) {
            snprintf(t->err, sizeof t->err, "the train split is empty");
            rc = -1;
        }
    }
    if (rc == 0 && o->augment[0])
        rc = augment_join(t, &a);
    io_augment_free(&a);
    return rc;
}

static int setup_data(trainer *t)
{
    train_opts *o = &t->o;
    char err[IO_ERRLEN];
    TRY(setup_split(t));
    if (io_tokenizer_init(&t->tok, t->vocab, o->lowercase, err) ||
        io_tokenize_corpus(t->tok, &t->corpus, (size_t)o->max_seq_len, &t->tokens, err))
        FAIL("%s", err);
    /* class weights */
    if (!strcmp(o->class_weights, "none")) {
        t->use_class_w = 0;
    } else if (!strcmp(o->class_weights, "balanced")) {
        /* scikit-learn's compute_class_weight("balanced"): n / (2 * n_c) on train */
        size_t pos = 0;
        for (size_t i = 0; i < t->split.n_train; i++)
            pos += t->corpus.label[t->split.train[i]];
        size_t n = t->split.n_train;
        if (pos == 0 || pos == n)
            FAIL("--class-weights balanced: the train split holds one class only");
        t->class_w[0] = (float)((double)n / (2.0 * (double)(n - pos)));
        t->class_w[1] = (float)((double)n / (2.0 * (double)pos));
        t->use_class_w = 1;
    } else {
        char *end = NULL;
        errno = 0;
        double w0 = strtod(o->class_weights, &end), w1 = -1;
        if (!errno && end && *end == ',')
            w1 = strtod(end + 1, &end);
        if (errno || !end || *end || !(w0 > 0) || !(w1 > 0) || !isfinite(w0) || !isfinite(w1))
            FAIL("--class-weights must be none, balanced or two positive numbers W0,W1, not '%s'",
                o->class_weights);
        t->class_w[0] = (float)w0;
        t->class_w[1] = (float)w1;
        t->use_class_w = 1;
    }
    return 0;
}

static int setup_model(trainer *t)
{
    train_opts *o = &t->o;
    char err[NN_ERRLEN];
    int64_t n = t->comm->size;
    t->max_local = (o->batch_size + n - 1) / n;
    char derr[DIST_ERRLEN];
    t->cuda = !strcmp(o->device, "cuda");
    if (t->cuda) {
        /* the device first (NCCL picks local rank mod visible GPUs), then the backend on it */
        dist_nccl_opts no = {o->comm_timeout, 0};
        if (dist_nccl_create(&t->nccl, t->comm, &no, derr))
            FAIL("--device cuda: %s", derr);
        nn_precision prec = NN_PREC_BF16;
        int auto_prec = !strcmp(o->precision, "auto");
        if (!auto_prec && nn_precision_parse(o->precision, &prec))
            FAIL("--precision %s: unknown", o->precision);
        int rc = nn_backend_cuda_create(&t->be, dist_nccl_device(t->nccl), prec, err, sizeof err);
        if (rc && auto_prec) { /* below sm80: no bf16 tensor cores; fp16 with loss scaling */
            prec = NN_PREC_FP16;
            rc = nn_backend_cuda_create(&t->be, dist_nccl_device(t->nccl), prec, err, sizeof err);
        }
        if (rc)
            FAIL("--device cuda: %s", err);
        snprintf(o->precision, sizeof o->precision, "%s", nn_precision_name(prec));
    } else {
        if (nn_backend_cpu_create(&t->be, o->threads, err, sizeof err))
            FAIL("%s", err);
        /* auto: bf16 GEMMs where the CPU has AVX512-BF16/AMX (about twice fp32's rate),
         * else fp32; the banner says which, and why not bf16 */
        if (nn_backend_cpu_set_precision_name(t->be, o->precision, err, sizeof err))
            FAIL("--precision %s: %s", o->precision, err);
        if (*err)
            snprintf(t->precision_note, sizeof t->precision_note, " (no bf16: %s)", err);
        snprintf(o->precision, sizeof o->precision, "%s", *nn_backend_cpu_isa(t->be) ? "bf16" : "fp32");
    }
    if (nn_model_create(&t->model, &t->cfg, t->be, t->max_local * o->max_seq_len, t->max_local, o->max_seq_len,
                        err))
        FAIL("%s", err);
    if (nn_model_init_weights(t->model, o->seed, err))
        FAIL("%s", err);
    t->n_groups = nn_model_grad_groups(t->model, t->group_off, t->group_len, NN_MAX_GRAD_GROUPS);
    if (t->cuda ? dist_grad_reducer_nccl(&t->reducer, t->nccl, nn_cuda_stream(t->be), t->n_groups,
                                         nn_model_num_params(t->model),
                                         strcmp(o->reduce_precision, "fp32") ? DIST_NCCL_WIRE_BF16
                                                                              : DIST_NCCL_WIRE_FP32,
                                         derr)
                : dist_grad_reducer_host(&t->reducer, t->comm, t->n_groups, derr))
        FAIL("%s", derr);
    nn_model_set_grad_ready(t->model, on_grad_ready, t);
    size_t m = (size_t)t->max_local;
    t->ids = malloc(m * (size_t)o->max_seq_len * sizeof *t->ids);
    t->offsets = malloc((m + 1) * sizeof *t->offsets);
    t->labels = malloc(m * sizeof *t->labels);
    t->sample_ids = malloc(m * sizeof *t->sample_ids);
    t->logits = malloc(m * 2 * sizeof *t->logits);
    if (!t->ids || !t->offsets || !t->labels || !t->sample_ids || !t->logits)
        FAIL("out of memory for batch buffers");
    return 0;
}

/* ------------------------------------------------------------ steps */

/* Packs corpus rows into the batch buffers: token ids back to back, offsets,
 * labels and sample ids (the corpus row: it keys dropout, whatever the rank or
 * batch slot). Returns the token count. */
static int64_t pack(trainer *t, const uint32_t *rows, int64_t n)
{
    int64_t ntok = 0;
    t->offsets[0] = 0;
    for (int64_t i = 0; i < n; i++) {
        uint32_t row = rows[i];
        uint64_t a = t->tokens.offsets[row], b = t->tokens.offsets[row + 1];
        memcpy(t->ids + ntok, t->tokens.ids + a, (size_t)(b - a) * sizeof *t->ids);
        ntok += (int64_t)(b - a);
        t->offsets[i + 1] = (int32_t)ntok;
        t->labels[i] = t->corpus.label[row];
        t->sample_ids[i] = row;
    }
    return ntok;
}

static nn_batch make_batch(trainer *t, int64_t n, int train, uint32_t epoch, double denom)
{
    nn_batch b = {0};
    b.nseq = n;
    b.ids = t->ids;
    b.offsets = t->offsets;
    b.labels = t->labels;
    b.sample_ids = t->sample_ids;
    b.class_weights = t->use_class_w ? t->class_w : NULL;
    b.loss_denominator = denom;
    b.train = train;
    b.seed = t->o.seed;
    b.epoch = epoch;
    return b;
}

#define SCALE_GROWTH_INTERVAL 2000

/* Called by backward as each gradient group is final: start its SUM at once, and
 * progress the earlier ones (Open MPI 4.1 has no progress thread), so the reduction
 * overlaps the rest of backward. */
static void on_grad_ready(void *ctx, float *grad, size_t off, size_t len)
{
    trainer *t = ctx;
    char derr[DIST_ERRLEN];
    if (t->o.skip_allreduce || t->reduce_failed)
        return;
    /* backward cannot be told to stop: the failure is reported when it returns */
    if (dist_grad_reducer_bucket_ready(t->reducer, grad + off, len, derr)) {
        snprintf(t->err, sizeof t->err, "gradient all-reduce: %s", derr);
        t->reduce_failed = 1;
    }
}

/* One optimizer step over a global batch (corpus rows, identical on every rank):
 * this rank computes its contiguous share, every rank joins the reductions. */
static int train_step(trainer *t, const uint32_t *global, size_t n_global, uint32_t epoch, trainer_step_result *s)
{
    char err[NN_ERRLEN];
    char derr[DIST_ERRLEN];
    size_t begin, count;
    dist_sampler_share(n_global, (size_t)t->comm->rank, (size_t)t->comm->size, &begin, &count);
    /* The global normaliser: every rank sees the whole global batch, so it needs
     * no communication. */
    double denom = 0;
    int64_t tokens = 0;
    for (size_t i = 0; i < n_global; i++) {
        uint32_t row = global[i];
        denom += t->use_class_w ? t->class_w[t->corpus.label[row]] : 1.0;
        tokens += (int64_t)(t->tokens.offsets[row + 1] - t->tokens.offsets[row]);
    }
    if (t->sample_log) {
        fprintf(t->sample_log, "%lld", (long long)nn_adamw_steps_done(t->opt));
        for (size_t i = 0; i < count; i++)
            fprintf(t->sample_log, " %u", global[begin + i]);
        fputc('\n', t->sample_log);
    }
    if (t->fail_rank == t->comm->rank && t->fail_step == nn_adamw_steps_done(t->opt))
        FAIL("injected failure at step %lld (--debug-fail-at)", (long long)t->fail_step);
    nn_model_zero_grad(t->model);
    if (t->inject_rank == t->comm->rank && t->inject_step == nn_adamw_steps_done(t->opt)) {
        /* backward adds into the gradient buffer: this inf reaches the reduction */
        float inf = INFINITY;
        t->be->ops->upload(t->be, nn_model_grad_buf(t->model), &inf, sizeof inf);
    }
    const double S = t->ls.loss_scale;
    double loss = 0;
    if (count > 0) {
        pack(t, global + begin, (int64_t)count);
        /* loss x S: the gradients too (exactly, for powers of two); AdamW divides it out */
        nn_batch b = make_batch(t, (int64_t)count, 1, epoch, denom / S);
        float l = 0;
        if (nn_model_forward(t->model, &b, &l, NULL, err) || nn_model_backward(t->model, err))
            FAIL("step %lld: %s", (long long)nn_adamw_steps_done(t->opt), err);
        loss = l;
    }
    if (count == 0) /* no backward here, but this rank joins every bucket */
        for (size_t g = 0; g < t->n_groups; g++)
            on_grad_ready(t, nn_model_grad_buf(t->model), t->group_off[g], t->group_len[g]);
    if (t->reduce_failed)
        return -1;
    double t0 = now_s(), wait_s = 0;
    if (dist_grad_reducer_finish(t->reducer, &wait_s, derr))
        FAIL("gradient all-reduce: %s", derr);
    if (dist_allreduce_sum_f64(t->comm, &loss, 1, derr))
        FAIL("loss all-reduce: %s", derr);
    loss /= S;
    s->loss_scale = S;
    s->comm_s = now_s() - t0;
    /* The overflow check reads the REDUCED gradients, identical on every rank: all
     * ranks skip (or not) together. */
    if (nn_adamw_step_scaled(t->opt, S, &s->grad_norm, &s->lr, &s->skipped, err)) {
        const char *ce = nn_cuda_last_error(t->be);
        FAIL("optimizer: %s", ce ? ce : err);
    }
    if (s->skipped && !t->dyn_scale)
        FAIL("step %lld: the gradient norm is not finite (%s)", (long long)nn_adamw_steps_done(t->opt) - 1,
            S == 1 ? "no loss scaling" : "fixed --loss-scale; try dynamic");
    if (t->dyn_scale) {
        if (s->skipped) {
            t->ls.loss_scale = S > 1 ? S / 2 : 1;
            t->ls.good_steps = 0;
        } else if (++t->ls.good_steps >= SCALE_GROWTH_INTERVAL) {
            t->ls.loss_scale = S * 2 <= 1e30 ? S * 2 : S;
            t->ls.good_steps = 0;
        }
    }
    if (nn_cuda_last_error(t->be))
        FAIL("step %lld: %s", (long long)nn_adamw_steps_done(t->opt), nn_cuda_last_error(t->be));
    s->loss = loss;
    s->tokens = tokens;
    return 0;
}

/* Sharded forward over a split: rank r takes a contiguous block of rows, scores
 * p(ADE) are gathered to rank 0 in row order, loss sums are reduced. */
static int evaluate(trainer *t, const uint32_t *rows, size_t n, io_metrics *m, double *eval_loss)
{
    char err[NN_ERRLEN];
    char derr[DIST_ERRLEN];
    char ierr[IO_ERRLEN];
    size_t begin = n * (size_t)t->comm->rank / (size_t)t->comm->size;
    size_t end = n * (size_t)(t->comm->rank + 1) / (size_t)t->comm->size;
    double *scores = realloc(t->scores, (end - begin + 1) * sizeof *scores);
    if (!scores)
        FAIL("out of memory for evaluation scores");
    t->scores = scores;
    double loss = 0;
    for (size_t i = begin; i < end; i += (size_t)t->max_local) {
        int64_t k = (int64_t)(end - i < (size_t)t->max_local ? end - i : (size_t)t->max_local);
        pack(t, rows + i, k);
        /* denominator 1: the forward returns the batch's sum of losses */
        nn_batch b = make_batch(t, k, 0, 0, 1.0);
        b.class_weights = NULL;
        b.no_grad = 1;
        float l = 0;
        if (nn_model_forward(t->model, &b, &l, t->logits, err))
            FAIL("evaluation: %s", err);
        loss += l;
        for (int64_t j = 0; j < k; j++)
            scores[i - begin + (size_t)j] = nn_binary_p1(t->logits + 2 * j);
    }
    if (dist_allreduce_sum_f64(t->comm, &loss, 1, derr))
        FAIL("evaluation loss all-reduce: %s", derr);
    if (t->comm->rank == 0 && !t->all_scores) {
        size_t most = t->split.n_val > t->split.n_test ? t->split.n_val : t->split.n_test;
        t->all_scores = malloc((most + 1) * sizeof *t->all_scores);
        if (!t->all_scores)
            FAIL("out of memory for evaluation scores");
    }
    size_t cap = t->comm->rank == 0 ? (t->split.n_val > t->split.n_test ? t->split.n_val : t->split.n_test) : 0;
    if (dist_gather_f64(t->comm, scores, end - begin, t->all_scores, cap, derr))
        FAIL("evaluation gather: %s", derr);
    *eval_loss = n ? loss / (double)n : NAN;
    if (t->comm->rank != 0)
        return 0;
    uint8_t *labels = malloc(n + 1);
    if (!labels)
        FAIL("out of memory");
    for (size_t i = 0; i < n; i++)
        labels[i] = t->corpus.label[rows[i]];
    if (io_metrics_compute_f64(t->all_scores, labels, n, IO_METRICS_THRESHOLD, m, ierr) ||
        io_confusion_check(&m->cm, (int64_t)n, ierr)) {
        free(labels);
        FAIL("evaluation metrics: %s", ierr);
    }
    free(labels);
    return 0;
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
static char *checkpoint_extra(const trainer *t, const loop_state *ls)
{
    cJSON *o = cJSON_CreateObject(), *tr = cJSON_Parse(t->train_json), *l = cJSON_CreateObject();
    char *s = NULL;
    if (o && tr && l) {
        cJSON_AddItemToObject(o, "train", tr);
        tr = NULL;
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
    cJSON_Delete(tr);
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
static int save_checkpoint(trainer *t, const char *name, int with_optim, const loop_state *ls, int collective)
{
    char derr[DIST_ERRLEN];
    if (t->comm->rank == 0) {
        char path[1200], mpath[1200], err[MIO_ERRLEN];
        if (join_path(path, sizeof path, t->run_dir, name) ||
            join_path(mpath, sizeof mpath, t->run_dir, IO_METRICS_FILE))
            FAIL("--out: path too long");
        char *metrics = NULL, *extra = checkpoint_extra(t, ls);
        size_t mlen = 0;
        if (read_text(mpath, &metrics, &mlen) || !extra) {
            int e = errno;
            free(extra);
            free(metrics);
            if (!extra)
                FAIL("out of memory");
            FAIL("%s: cannot read: %s", mpath, strerror(e));
        }
        mio_data d = data_settings(t);
        mio_save_args a;
        memset(&a, 0, sizeof a);
        a.mc = &t->cfg;
        a.data = &d;
        a.vocab = t->vocab;
        a.epoch = ls->epoch;
        a.step = nn_adamw_steps_done(t->opt);
        a.batch_in_epoch = ls->batch;
        a.seed = t->o.seed;
        a.loss_scale = ls->loss_scale;
        a.good_steps = ls->good_steps;
        a.metrics = metrics;
        a.metrics_len = mlen;
        a.data_extra = extra;
        double t0 = now_s();
        int rc = mio_save(path, t->model, with_optim ? t->opt : NULL, &a, err);
        free(metrics);
        free(extra);
        if (rc)
            FAIL("saving a checkpoint: %s", err);
        if (!t->o.quiet) {
            struct stat st;
            double mb = stat(path, &st) == 0 ? (double)st.st_size / 1e6 : 0;
            fprintf(stderr, "  saved %s (%.1f MB) in %.2f s\n", path, mb, now_s() - t0);
        }
    }
    if (collective && dist_barrier(t->comm, derr))
        FAIL("barrier after saving a checkpoint: %s", derr);
    return 0;
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
static void prune_checkpoints(const trainer *t)
{
    if (t->comm->rank != 0)
        return;
    int64_t *steps;
    size_t n = list_checkpoints(t->run_dir, &steps);
    for (size_t i = (size_t)t->o.keep_last; i < n; i++) {
        char name[64], path[1200];
        checkpoint_name(name, sizeof name, steps[i]);
        /* already gone (deleted under the running job): nothing to do */
        if (join_path(path, sizeof path, t->run_dir, name) == 0 && unlink(path) != 0 && errno != ENOENT)
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
                                     "config_file", "reduce_precision", "comm_timeout",
                                     "augment" /* the path: its sha256 is compared */};
    for (size_t i = 0; i < sizeof ok / sizeof *ok; i++)
        if (!strcmp(key, ok[i]))
            return 1;
    return 0;
}

/* Rank 0: load checkpoint `path` into the model and optimizer, and its loop state.
 * 0 ok; -1 unusable (damaged: the caller tries an older one, and the model is as it
 * was); -2 written with other options (resuming it would silently change the run) or
 * the run directory cannot be written: the caller stops. */
static int try_resume(trainer *t, const char *path, loop_state *ls, char err[MIO_ERRLEN])
{
    mio_info info;
    if (mio_open(path, &info, err))
        return -1;
    int rc = -1;
    cJSON *saved = cJSON_Parse(info.data_json), *now = cJSON_Parse(t->train_json);
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
    /* and the other way round: an option the run had that this command lacks (a
     * resume without its --augment) */
    cJSON_ArrayForEach(it, train)
    {
        if (!option_may_change(it->string) && !cJSON_GetObjectItemCaseSensitive(now, it->string)) {
            char *a = cJSON_PrintUnformatted(it);
            snprintf(err, MIO_ERRLEN,
                     "%.300s was written with %s = %.60s, this command has (absent): resume with the same options",
                     path, it->string, a ? a : "?");
            free(a);
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
    if (mio_load_params(path, t->model, t->opt, err))
        goto out;
    /* metrics.jsonl as it was at that step: evaluations made after it are redone */
    char mpath[1200], werr[TRAINER_ERRLEN];
    if (join_path(mpath, sizeof mpath, t->run_dir, IO_METRICS_FILE) ||
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
static int bcast_floats(trainer *t, float *dev, size_t n)
{
    char derr[DIST_ERRLEN];
    if (t->comm->size == 1)
        return 0;
    float *h = malloc(n * sizeof *h);
    if (!h)
        FAIL("out of memory");
    if (t->comm->rank == 0)
        t->be->ops->download(t->be, h, dev, n * sizeof *h);
    if (dist_bcast_bytes(t->comm, h, n * sizeof *h, derr)) {
        free(h);
        FAIL("broadcasting the checkpoint: %s", derr);
    }
    if (t->comm->rank != 0) {
        t->be->ops->upload(t->be, dev, h, n * sizeof *h);
        t->be->ops->sync(t->be);
    }
    free(h);
    return 0;
}

/* Rank 0, holding the run directory's lock: temporaries of saves that a crash or
 * SIGKILL cut short (ckpt-step*.h5.tmp, best.h5.tmp) are removed. They are never
 * read (only complete files carry the final name), but would otherwise stay. */
static void remove_stale_temporaries(const trainer *t)
{
    DIR *d = opendir(t->run_dir);
    if (!d)
        return;
    struct dirent *e;
    while ((e = readdir(d))) {
        size_t n = strlen(e->d_name);
        if (n < 8 || strcmp(e->d_name + n - 7, ".h5.tmp") ||
            (strncmp(e->d_name, CKPT_PREFIX, strlen(CKPT_PREFIX)) && strcmp(e->d_name, "best.h5.tmp")))
            continue;
        char path[1200];
        if (join_path(path, sizeof path, t->run_dir, e->d_name) == 0 && unlinkat(dirfd(d), e->d_name, 0) == 0)
            fprintf(stderr, "adebert train: removed %s (a save that did not finish)\n", path);
    }
    closedir(d);
}

/* --resume: rank 0 finds the newest checkpoint in RUN_DIR that loads and verifies
 * (skipping bad ones with a warning), and gives its state to every rank. With none,
 * the run starts from scratch. */
static int resume(trainer *t)
{
    char derr[DIST_ERRLEN];
    int64_t step = -1; /* of the checkpoint resumed from; -1: none */
    loop_state ls = t->ls;
    if (t->comm->rank == 0) {
        remove_stale_temporaries(t);
        int64_t *steps;
        size_t n = list_checkpoints(t->run_dir, &steps);
        for (size_t i = 0; i < n; i++) {
            char name[64], path[1200], err[MIO_ERRLEN];
            checkpoint_name(name, sizeof name, steps[i]);
            if (join_path(path, sizeof path, t->run_dir, name)) {
                free(steps);
                FAIL("--out: path too long");
            }
            int rc = try_resume(t, path, &ls, err);
            if (rc == 0) {
                step = nn_adamw_steps_done(t->opt);
                break;
            }
            if (rc == -2) {
                free(steps);
                FAIL("--resume: %s", err);
            }
            fprintf(stderr, "adebert train: warning: skipping checkpoint %s: %s\n", path, err);
        }
        free(steps);
        if (step < 0) {
            char cerr[CLUSTER_ERRLEN]; /* requeued onto an empty (node-local) --out: refuse */
            if (cluster_check_resume_found(0, t->run_dir, NULL, NULL, cerr))
                FAIL("%s", cerr);
            fprintf(stderr, "adebert train: --resume: no usable checkpoint in %s; starting from scratch\n",
                    t->run_dir);
            char mpath[1200];
            if (join_path(mpath, sizeof mpath, t->run_dir, IO_METRICS_FILE) == 0)
                unlink(mpath); /* evaluations of an attempt that left no checkpoint */
        } else if (t->o.perturb_resume) {
            /* negative control: one weight off by a relative 1e-3 must change the result */
            size_t np = nn_model_num_params(t->model);
            float *h = malloc(np * sizeof *h);
            char nerr[NN_ERRLEN];
            if (!h || nn_model_get_params(t->model, h, np, nerr)) {
                free(h);
                FAIL("--debug-perturb-resume: cannot read the parameters");
            }
            const nn_param *p = nn_model_find_param(t->model, "classifier.weight");
            h[p ? p->offset : 0] *= 1.001f;
            int rc = nn_model_set_params(t->model, h, np, nerr);
            free(h);
            if (rc)
                FAIL("--debug-perturb-resume: %s", nerr);
        }
    }
    /* every rank runs this binary: the loop state travels as its bytes */
    if (dist_bcast_bytes(t->comm, &step, sizeof step, derr))
        FAIL("--resume: %s", derr);
    t->resumed_from = step;
    if (step < 0)
        return 0;
    if (dist_bcast_bytes(t->comm, &ls, sizeof ls, derr))
        FAIL("--resume: %s", derr);
    t->ls = ls;
    size_t n = nn_model_num_params(t->model);
    TRY(bcast_floats(t, nn_model_param_buf(t->model), n));
    TRY(bcast_floats(t, nn_adamw_m(t->opt), n));
    TRY(bcast_floats(t, nn_adamw_v(t->opt), n));
    nn_adamw_set_step(t->opt, step);
    return 0;
}

/* Initial weights from a checkpoint (its parameters, not its optimizer state) or a
 * Hugging Face folder (missing pooler/classifier keep the seed's init), read by
 * rank 0 and broadcast. The model's shapes must match. */
static int init_from(trainer *t, const char *src)
{
    if (t->comm->rank == 0) {
        if (hfio_is_model_dir(src)) {
            char notes[4096] = "", herr[HFIO_ERRLEN];
            if (hfio_load_weights("train", src, t->model, t->o.seed, notes, sizeof notes, herr))
                FAIL("initial weights from %s: %s", src, herr);
            fputs(notes, stderr);
        } else {
            char err[MIO_ERRLEN];
            if (mio_load_params(src, t->model, NULL, err))
                FAIL("--init: %s", err);
        }
    }
    return bcast_floats(t, nn_model_param_buf(t->model), nn_model_num_params(t->model));
}

/* ------------------------------------------------------------ replicas, evaluations */

static int params_checksum(trainer *t, uint64_t *out)
{
    size_t n = nn_model_num_params(t->model);
    float *host = NULL;
    const unsigned char *p = (const unsigned char *)nn_model_param_buf_const(t->model); /* read-only: keeps the bf16 copies */
    if (t->cuda) { /* device memory: a host copy first */
        char err[NN_ERRLEN];
        host = malloc(n * sizeof *host);
        if (!host || nn_model_get_params(t->model, host, n, err)) {
            free(host);
            FAIL("parameter checksum: cannot read the parameters");
        }
        p = (const unsigned char *)host;
    }
    uint64_t h = 0xcbf29ce484222325ull;
    for (size_t i = 0; i < n * sizeof(float); i++)
        h = (h ^ p[i]) * 0x100000001b3ull;
    free(host);
    *out = h;
    return 0;
}

int trainer_check_replicas(trainer *t, char err[TRAINER_ERRLEN])
{
    char derr[DIST_ERRLEN];
    uint64_t h = 0;
    if (params_checksum(t, &h))
        goto fail;
    int64_t v[2] = {(int64_t)(h >> 1), -(int64_t)(h >> 1)};
    if (dist_allreduce_max_i64(t->comm, v, 2, derr)) {
        snprintf(t->err, sizeof t->err, "parameter checksum: %s", derr);
        goto fail;
    }
    if (v[0] != -v[1]) {
        snprintf(t->err, sizeof t->err, "parameters differ between ranks after step %lld (checksum mismatch)",
                 (long long)nn_adamw_steps_done(t->opt));
        goto fail;
    }
    return 0;
fail:
    snprintf(err, TRAINER_ERRLEN, "%s", t->err);
    return -1;
}

/* *f1: the F1 on rank 0 (NaN elsewhere and for an empty split). */
static int log_eval(trainer *t, const char *split, int64_t epoch, double train_loss, double grad_norm, double lr,
                    double seconds, double tok_s, const uint32_t *rows, size_t n, double *f1)
{
    *f1 = NAN;
    if (n == 0)
        return 0;
    io_metrics m = {0};
    double eval_loss = 0;
    TRY(evaluate(t, rows, n, &m, &eval_loss));
    if (t->comm->rank != 0)
        return 0;
    io_metrics_record rec = {0};
    rec.schema_version = IO_METRICS_SCHEMA_VERSION;
    snprintf(rec.split, sizeof rec.split, "%s", split);
    rec.epoch = epoch;
    rec.step = nn_adamw_steps_done(t->opt);
    rec.lr = lr;
    rec.train_loss = train_loss;
    rec.eval_loss = eval_loss;
    rec.m = m;
    rec.grad_norm = grad_norm;
    rec.loss_scale = t->ls.loss_scale;
    rec.seconds = seconds;
    rec.tokens_per_s = tok_s;
    /* a run that picks best.h5 on the test split says so on every line: its test
     * numbers are then optimistic */
    io_metrics_extra extra[3];
    size_t ne = 0;
    if (!strcmp(t->o.select_on, "test"))
        extra[ne++] = (io_metrics_extra){"model_selection", 1, "test", 0};
    /* rank 0's memory after this evaluation: resident now and the peak so far (flat
     * across epochs in a healthy run; like the timing fields, not deterministic). The
     * kernel updates the peak lazily, so it is raised to the current figure when it
     * lags. null when unreadable. */
    uint64_t rss, peak;
    int have_rss = cli_rss_now(&rss) == 0, have_peak = cli_rss_peak(&peak) == 0;
    if (have_rss && have_peak && peak < rss)
        peak = rss;
    extra[ne++] = (io_metrics_extra){"rss_bytes", 0, NULL, have_rss ? (double)rss : NAN};
    extra[ne++] = (io_metrics_extra){"peak_rss_bytes", 0, NULL, have_peak ? (double)peak : NAN};
    rec.n_extra = ne;
    rec.extra = extra;
    char path[1200], ierr[IO_ERRLEN];
    if (join_path(path, sizeof path, t->run_dir, IO_METRICS_FILE))
        FAIL("--out: path too long");
    if (io_metrics_append(path, &rec, ierr))
        FAIL("%s", ierr);
    printf("epoch %3lld step %6lld %-4s  loss %.4f  P %.4f  R %.4f  F1 %.4f  acc %.4f  ROC-AUC %.4f  PR-AUC %.4f"
           "  (tp %lld fp %lld tn %lld fn %lld)\n",
           (long long)epoch, (long long)rec.step, split, eval_loss, m.precision, m.recall, m.f1, m.accuracy,
           m.roc_auc, m.pr_auc, (long long)m.cm.tp, (long long)m.cm.fp, (long long)m.cm.tn, (long long)m.cm.fn);
    fflush(stdout);
    *f1 = m.f1;
    return 0;
}

/* Rank 0: best.h5 (model only) when this evaluation beats the best so far, and
 * best.json saying which step and on which split it was selected. */
static int maybe_save_best(trainer *t, double f1, int64_t epoch)
{
    if (t->comm->rank != 0 || t->o.save_every == 0 || !(f1 > t->ls.best_f1))
        return 0;
    t->ls.best_f1 = f1;
    t->ls.best_step = nn_adamw_steps_done(t->opt);
    loop_state at = t->ls; /* best.h5 is never resumed from: its epoch is the one evaluated */
    at.epoch = epoch;
    TRY(save_checkpoint(t, "best.h5", 0, &at, 0));
    char buf[512], err[TRAINER_ERRLEN];
    snprintf(buf, sizeof buf,
             "{\"checkpoint\":\"best.h5\",\"step\":%lld,\"epoch\":%lld,\"selected_on\":\"%s\",\"f1\":%.9g%s}\n",
             (long long)t->ls.best_step, (long long)epoch, t->o.select_on, f1,
             strcmp(t->o.select_on, "test") ? "" : ",\"warning\":\"selected on the test split: its test metrics are optimistic\"");
    if (write_run_file(t->run_dir, "best.json", buf, err, sizeof err))
        FAIL("%s", err);
    return 0;
}


/* ------------------------------------------------------------ the library */

/* The public functions hand t->err to their caller. */
static int failed(const trainer *t, char err[TRAINER_ERRLEN])
{
    snprintf(err, TRAINER_ERRLEN, "%s", t->err);
    return -1;
}

/* "RANK:STEP" of the --debug-* options; -1 as rank when empty. */
static int parse_rank_step(const char *s, int *rank, int64_t *step)
{
    *rank = -1;
    if (!s[0])
        return 0;
    long long r = -1, st = -1;
    char tail = 0;
    if (sscanf(s, "%lld:%lld%c", &r, &st, &tail) != 2 || r < 0 || st < 0)
        return -1;
    *rank = (int)r;
    *step = st;
    return 0;
}

/* Everything trainer_open does, in this order: a failure leaves the rest undone. */
static int open_all(trainer *t, const char *command)
{
    train_opts *o = &t->o;
    int root = t->comm->rank == 0;
    if (parse_rank_step(o->fail_at, &t->fail_rank, &t->fail_step))
        FAIL("--debug-fail-at wants RANK:STEP, not '%s'", o->fail_at);
    char err[TRAINER_ERRLEN];
    snprintf(t->run_dir, sizeof t->run_dir, "%s", o->out);
    TRY(setup_model_config(t));
    TRY(setup_data(t));
    if (root && prepare_run_dir(t->run_dir, o->resume, err, sizeof err))
        FAIL("%s", err);
    if (root && lock_run_dir(t, err, sizeof err))
        FAIL("%s", err);
    char cerr[CLUSTER_ERRLEN]; /* at most one rank per GPU, checked before NCCL starts */
    if (!strcmp(o->device, "cuda") && cluster_check_ranks_vs_gpus(t->comm, NULL, NULL, cerr))
        FAIL("%s", cerr);
    TRY(setup_model(t));
    /* each rank's CPUs and GPU, so a bad binding shows in the job log */
    cluster_print_binding(t->comm, o->device, t->cuda ? dist_nccl_device(t->nccl) : -1, o->device_note);
    t->train_json = train_opts_to_json(o);
    if (!t->train_json)
        FAIL("out of memory");
    /* the rows' hashes go with the options (config.json, checkpoints): a resume
     * over changed files is refused like any other changed option */
    if (io_splitdir_is(o->data) || o->augment[0]) {
        char *h = NULL, herr[IO_ERRLEN];
        cJSON *j = cJSON_Parse(t->train_json);
        if (!j || (io_splitdir_is(o->data) && io_splitdir_hashes(o->data, &h, herr))) {
            int oom = !j;
            cJSON_Delete(j);
            FAIL("%s", oom ? "out of memory" : herr);
        }
        if (h)
            cJSON_AddItemToObject(j, "split_sha256", cJSON_Parse(h));
        free(h);
        if (o->augment[0]) {
            cJSON_AddStringToObject(j, "augment_sha256", t->aug_sha256);
            cJSON *r = cJSON_AddObjectToObject(j, "augment_rows");
            cJSON_AddNumberToObject(r, "in_file", (double)t->aug_in_file);
            cJSON_AddNumberToObject(r, "used", (double)t->aug_used);
            cJSON_AddNumberToObject(r, "used_positive", (double)t->aug_used_pos);
            cJSON_AddNumberToObject(r, "used_negative", (double)(t->aug_used - t->aug_used_pos));
            cJSON_AddNumberToObject(r, "train_positives", (double)t->aug_train_pos);
            cJSON_AddNumberToObject(r, "duplicate_train_rows", (double)t->aug_dup_train);
            cJSON_AddStringToObject(r, "chosen_by", o->augment_ratio > 0 ? "split_seed" : "all");
        }
        free(t->train_json);
        t->train_json = cJSON_PrintUnformatted(j);
        cJSON_Delete(j);
        if (!t->train_json)
            FAIL("out of memory");
    }
    t->ls.best_f1 = -1;
    t->ls.best_step = -1;
    t->resumed_from = -1;
    t->last_grad_norm = NAN;
    /* loss scaling: after setup_model, which resolved --precision auto */
    t->ls.loss_scale = 1;
    if (!strcmp(o->loss_scale, "dynamic") || (!strcmp(o->loss_scale, "auto") && !strcmp(o->precision, "fp16"))) {
        t->dyn_scale = 1;
        t->ls.loss_scale = 65536;
    } else if (strcmp(o->loss_scale, "auto") && strcmp(o->loss_scale, "none")) {
        t->ls.loss_scale = strtod(o->loss_scale, NULL);
    }
    if (parse_rank_step(o->inject_inf, &t->inject_rank, &t->inject_step))
        FAIL("--debug-inject-inf wants RANK:STEP, not '%s'", o->inject_inf);

    /* the schedule */
    size_t B = (size_t)o->batch_size;
    int64_t steps_per_epoch = (int64_t)((t->split.n_train + B - 1) / B);
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
    if (nn_adamw_create(&t->opt, t->model, &ac, nerr))
        FAIL("%s", nerr);
    if (o->init[0])
        TRY(init_from(t, o->init));
    else if (t->hf_weights)
        TRY(init_from(t, o->model));
    if (o->resume)
        TRY(resume(t));
    if (o->perturb_resume && t->resumed_from < 0)
        FAIL("--debug-perturb-resume needs a run to resume");

    if (o->log_samples[0]) {
        char p[1200];
        snprintf(p, sizeof p, "%s.rank%d", o->log_samples, t->comm->rank);
        t->sample_log = fopen(p, "w");
        if (!t->sample_log)
            FAIL("--log-samples %s: %s", p, strerror(errno));
    }
    if (root) {
        if (write_run_file(t->run_dir, "config.json", t->train_json, err, sizeof err) ||
            write_run_file(t->run_dir, t->resumed_from >= 0 ? "command-resume.txt" : "command.txt", command, err,
                           sizeof err))
            FAIL("%s", err);
        if (o->augment[0]) {
            /* which rows of the file this run trained on: line numbers, never text */
            char *lines = malloc(t->aug_used * 11 + 1), *p = lines;
            if (!lines)
                FAIL("out of memory");
            for (size_t i = 0; i < t->aug_used; i++)
                p += sprintf(p, "%u\n", t->aug_lines[i]);
            int rc = write_run_file(t->run_dir, "augment_lines.txt", lines, err, sizeof err);
            free(lines);
            if (rc)
                FAIL("%s", err);
        }
        char p[1200];
        if (join_path(p, sizeof p, t->run_dir, "train_log.jsonl"))
            FAIL("--out: path too long");
        int fd = open(p, O_WRONLY | O_CREAT | (t->resumed_from >= 0 ? O_APPEND : O_TRUNC), 0600);
        t->step_log = fd >= 0 ? fdopen(fd, "w") : NULL;
        if (!t->step_log)
            FAIL("%s: %s", p, strerror(errno));
        if (t->resumed_from >= 0)
            fprintf(t->step_log, "{\"resumed_from_step\":%lld}\n", (long long)t->resumed_from);
    }

    trainer_info *in = &t->info;
    in->o = &t->o;
    in->cfg = &t->cfg;
    in->be = t->be;
    in->nccl = t->nccl;
    in->cuda = t->cuda;
    in->n_params = nn_model_num_params(t->model);
    in->n_train = t->split.n_train;
    for (size_t i = 0; i < t->split.n_train; i++)
        in->n_train_pos += t->corpus.label[t->split.train[i]];
    if (o->augment[0]) {
        in->augment_sha256 = t->aug_sha256;
        in->aug_in_file = t->aug_in_file;
        in->aug_used = t->aug_used;
        in->aug_used_pos = t->aug_used_pos;
        in->aug_dup_train = t->aug_dup_train;
    }
    in->n_val = t->split.n_val;
    in->n_test = t->split.n_test;
    in->max_local = t->max_local;
    in->precision_note = t->precision_note;
    in->steps_per_epoch = steps_per_epoch;
    in->total_steps = total;
    in->warmup_steps = ac.warmup_steps;
    in->resumed_from = t->resumed_from;
    in->start_epoch = t->ls.epoch;
    in->start_batch = t->ls.batch;
    in->first_step = nn_adamw_steps_done(t->opt);
    return 0;
}

int trainer_open(trainer **out, const train_opts *o, dist_comm *comm, const char *command,
                 char err[TRAINER_ERRLEN])
{
    *out = NULL;
    trainer *t = calloc(1, sizeof *t);
    if (!t) {
        snprintf(err, TRAINER_ERRLEN, "out of memory");
        return -1;
    }
    t->o = *o;
    t->comm = comm;
    t->lock_fd = -1;
    t->fail_rank = -1;
    t->inject_rank = -1;
    if (open_all(t, command)) {
        failed(t, err);
        trainer_close(t);
        return -1;
    }
    *out = t;
    return 0;
}

const trainer_info *trainer_get_info(const trainer *t)
{
    return &t->info;
}

int trainer_plan_epoch(trainer *t, int epoch, dist_epoch_plan *plan, char err[TRAINER_ERRLEN])
{
    char derr[DIST_ERRLEN];
    if (dist_sampler_plan(plan, t->split.train, t->split.n_train, t->tokens.offsets, (size_t)t->o.batch_size,
                          t->o.group_by_length, t->o.seed, (uint32_t)epoch, derr)) {
        snprintf(err, TRAINER_ERRLEN, "sampler: %s", derr);
        return -1;
    }
    return 0;
}

int trainer_step(trainer *t, const uint32_t *global, size_t n_global, int epoch, trainer_step_result *s,
                 char err[TRAINER_ERRLEN])
{
    memset(s, 0, sizeof *s);
    if (train_step(t, global, n_global, (uint32_t)epoch, s))
        return failed(t, err);
    /* the running train loss lives in the loop state: a checkpoint carries it */
    t->ls.loss_sum += s->loss;
    t->ls.loss_n++;
    s->mean_loss = t->ls.loss_sum / (double)t->ls.loss_n;
    t->last_grad_norm = s->grad_norm;
    t->last_lr = s->lr;
    if (t->step_log) {
        char gn[32]; /* JSON has no inf: an overflowed norm is null */
        snprintf(gn, sizeof gn, isfinite(s->grad_norm) ? "%.9g" : "null", s->grad_norm);
        fprintf(t->step_log,
                "{\"step\":%lld,\"epoch\":%d,\"loss\":%.9g,\"lr\":%.9g,\"grad_norm\":%s,\"tokens\":%lld,"
                "\"loss_scale\":%.9g%s}\n",
                (long long)nn_adamw_steps_done(t->opt), epoch, s->loss, s->lr, gn, (long long)s->tokens,
                s->loss_scale, s->skipped ? ",\"skipped\":true" : "");
    }
    return 0;
}

static int evaluate_all(trainer *t, int64_t epoch, double seconds, double tok_s)
{
    if (t->step_log)
        fflush(t->step_log);
    double train_loss = t->ls.loss_n ? t->ls.loss_sum / (double)t->ls.loss_n : NAN;
    double f1v, f1t;
    TRY(log_eval(t, "val", epoch, train_loss, t->last_grad_norm, t->last_lr, seconds, tok_s, t->split.val,
                 t->split.n_val, &f1v));
    TRY(log_eval(t, "test", epoch, train_loss, t->last_grad_norm, t->last_lr, seconds, tok_s, t->split.test,
                 t->split.n_test, &f1t));
    t->ls.loss_sum = 0;
    t->ls.loss_n = 0;
    return maybe_save_best(t, strcmp(t->o.select_on, "test") ? f1v : f1t, epoch);
}

int trainer_evaluate(trainer *t, int64_t epoch, double seconds, double tok_s, char err[TRAINER_ERRLEN])
{
    /* evaluation in fp32 on the CPU, whatever the training GEMMs: the metrics a run
     * records are exactly what `adebert eval` of its checkpoint reports */
    int bf16 = !t->cuda && *nn_backend_cpu_isa(t->be);
    char nerr[NN_ERRLEN];
    if (bf16) nn_backend_cpu_set_precision(t->be, NN_PREC_FP32, nerr, sizeof nerr);
    int rc = evaluate_all(t, epoch, seconds, tok_s);
    if (bf16 && nn_backend_cpu_set_precision(t->be, NN_PREC_BF16, nerr, sizeof nerr)) {
        snprintf(err, TRAINER_ERRLEN, "%s", nerr);
        return 1;
    }
    return rc ? failed(t, err) : 0;
}

int trainer_save(trainer *t, int64_t next_epoch, int64_t next_batch, char err[TRAINER_ERRLEN])
{
    t->ls.epoch = next_epoch;
    t->ls.batch = next_batch;
    if (t->step_log)
        fflush(t->step_log);
    char name[64];
    checkpoint_name(name, sizeof name, nn_adamw_steps_done(t->opt));
    if (save_checkpoint(t, name, 1, &t->ls, 1))
        return failed(t, err);
    prune_checkpoints(t);
    return 0;
}

int trainer_dump_params(trainer *t, const char *path, char err[TRAINER_ERRLEN])
{
    size_t n = nn_model_num_params(t->model);
    float *host = malloc(n * sizeof *host);
    char nerr[NN_ERRLEN], werr[TRAINER_ERRLEN];
    int rc = -1;
    if (!host)
        snprintf(err, TRAINER_ERRLEN, "--dump-params: out of memory");
    else if (nn_model_get_params(t->model, host, n, nerr))
        snprintf(err, TRAINER_ERRLEN, "--dump-params: %s", nerr);
    else if (cli_write_file(path, host, n * sizeof *host, werr, sizeof werr))
        snprintf(err, TRAINER_ERRLEN, "--dump-params: %s", werr);
    else
        rc = 0;
    free(host);
    return rc;
}
