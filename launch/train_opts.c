/* `adebert train` options. One table drives the flags, the --config JSON keys (the
 * flag names with '-' -> '_') and the resolved config.json, so the three cannot
 * drift apart. */
#include "launch/train_opts.h"
#include "launch/cluster.h"
#include "launch/cli.h"

#include <cjson/cJSON.h>
#include <errno.h>
#include <getopt.h>
#include <math.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const char *const train_usage =
    "usage: adebert train --data DIR|FILE --out RUN_DIR --model tiny|minilm|base|CONFIG.json|HF_DIR\n"
    "                     --vocab FILE --lowercase|--cased [options]\n"
    "\n"
    "Fine-tunes a BERT sequence classifier (label 1 = Adverse_Event) on the ADE corpus,\n"
    "data-parallel over the MPI ranks it is started on (mpirun / srun), and writes one\n"
    "metrics line per evaluation to RUN_DIR/metrics.jsonl (precision, recall, F1,\n"
    "ROC-AUC, PR-AUC, ...). Batches are packed: padding is never computed.\n"
    "\n"
    "model and data\n"
    "  --data DIR|FILE        ADE corpus folder or a .tsv/.csv/.jsonl file [$ADEBERT_DATA, else\n"
    "                         the compiled-in ../shared/data/ade-corpus-v2]\n"
    "  --out RUN_DIR          run directory (created 0700; must not hold a run already)\n"
    "  --model NAME|FILE|DIR  architecture: preset tiny (2x64, tests), minilm (6x384),\n"
    "                         base (12x768), a config.json, or a Hugging Face folder\n"
    "                         (config.json, vocab.txt, tokenizer_config.json for the casing;\n"
    "                         with model.safetensors or pytorch_model.bin, e.g. BioBERT,\n"
    "                         training starts from those weights) [tiny]\n"
    "  --vocab FILE           WordPiece vocab.txt (required for presets)\n"
    "  --lowercase|--cased    casing (required for presets; BioBERT's vocab is cased)\n"
    "  --max-seq-len N        truncate sequences to N tokens [128]\n"
    "  --view hf|dedup        corpus rows [hf]; see adebert data stats --help\n"
    "  --split random|stratified|grouped  80/20 split [random]. random and stratified\n"
    "                         leak ~half the test positives into train on the hf view;\n"
    "                         grouped leaks none\n"
    "  --val-fraction F       share of train held out for validation [0.1]\n"
    "  --limit N              quick runs: at most N train rows and N/4 val and test rows\n"
    "  --augment FILE.jsonl   extra rows (e.g. synthetic positives) for the TRAIN split only,\n"
    "                         never validation or test (after the split and --limit). One\n"
    "                         object per line: {\"text\": str, \"label\": \"Adverse_Event\"|\"Not_AE\"|1|0,\n"
    "                         \"source\": str, \"prompt_id\": str|int} (the last two optional).\n"
    "                         A row whose text equals a validation or test sentence after\n"
    "                         NFKC casefolding and white space collapsing is refused. The\n"
    "                         file's sha256 and the rows used go into config.json (resume\n"
    "                         refuses another file) and RUN_DIR/augment_lines.txt\n"
    "  --augment-ratio R      use round(R x positive train rows) rows of the --augment file,\n"
    "                         chosen by a permutation seeded with --split-seed [all rows]\n"
    "\n"
    "optimisation\n"
    "  --epochs N             [10]\n"
    "  --batch-size B         GLOBAL batch size; each of the N ranks takes its share [32]\n"
    "  --lr X                 peak learning rate of AdamW [2e-5]\n"
    "  --weight-decay X       decoupled decay, not on biases/LayerNorm [0.01]; note HF\n"
    "                         Trainer's own default is 0.0\n"
    "  --warmup-ratio X       linear warmup over ceil(X * total steps), then linear decay\n"
    "                         to 0 [0.1]\n"
    "  --warmup-steps N       warmup steps instead of a ratio\n"
    "  --grad-clip X          clip by global gradient norm; 0 disables [1.0]\n"
    "  --class-weights none|balanced|W0,W1  loss weights per class [none]\n"
    "  --max-steps N          stop after N optimizer steps (the schedule spans them)\n"
    "  --eval-every epoch|N   evaluate val and test every epoch or every N steps [epoch]\n"
    "  --seed N               model init, dropout and batch order [42]\n"
    "  --split-seed N         which rows form train/val/test, apart from --seed so that\n"
    "                         model seeds vary over fixed rows [42]\n"
    "  --group-by-length      batches of similar length (HF's group_by_length megabatches);\n"
    "                         off by default: packing already skips padding, and grouped\n"
    "                         batches cost 0.02-0.05 F1 on ADE (experiments/results)\n"
    "\n"
    "execution\n"
    "  --device cpu|cuda      cuda: one GPU per rank (local rank mod visible GPUs), gradients\n"
    "                         summed with NCCL [cuda when the job has GPUs (SLURM_GPUS_PER_NODE,\n"
    "                         SLURM_JOB_GPUS, SLURM_STEP_GPUS, CUDA_VISIBLE_DEVICES), else cpu;\n"
    "                         a build without CUDA refuses such a job unless --device cpu]\n"
    "  --precision auto|fp32|tf32|bf16|fp16  GEMM inputs (fp32 master weights and optimizer;\n"
    "                         LayerNorm/softmax/GELU/loss in fp32). cpu: fp32 or bf16 (oneDNN,\n"
    "                         AVX512-BF16 or AMX); cuda: all four [auto: bf16 on CPUs with\n"
    "                         AVX512-BF16/AMX, else fp32; bf16 on sm80+, fp16 below]\n"
    "  --loss-scale auto|dynamic|none|S  loss scaling [auto: dynamic with fp16, else none].\n"
    "                         dynamic: start at 65536, halve and skip the step when the\n"
    "                         reduced gradients overflow (all ranks together), double after\n"
    "                         2000 clean steps; S: a fixed scale\n"
    "  --reduce-precision bf16|fp32  NCCL gradient sums on the wire [bf16]\n"
    "  --comm-timeout S       a gradient reduction that takes longer aborts the job [600]\n"
    "  --threads T            OpenMP threads per rank [OMP_NUM_THREADS, else all cores]\n"
    "  --config FILE          JSON object with any of these options as keys (batch_size,\n"
    "                         lr, ...); command-line flags override it\n"
    "  --quiet                no progress output (metrics rows are still printed)\n"
    "\n"
    "checkpoints (HDF5, in RUN_DIR, written by rank 0 to a temporary name, fsync'd, renamed)\n"
    "  --save-every epoch|N|none  ckpt-stepNNNNNNNN.h5 with optimizer state every epoch or N\n"
    "                         steps [epoch; none when built without HDF5]\n"
    "  --keep-last K          step checkpoints kept [2]\n"
    "  --select-on val|test   best.h5 = the model with the best F1 on this split [val];\n"
    "                         test is optimistic (selection on the test split) and is\n"
    "                         recorded as such (best.json; \"model_selection\": \"test\" on\n"
    "                         every metrics.jsonl line)\n"
    "  --resume               continue the run in --out from its newest checkpoint that\n"
    "                         verifies (a corrupt one is skipped with a warning); with no\n"
    "                         checkpoint there, start from scratch. Same options required;\n"
    "                         the rank count may differ. SIGTERM/SIGUSR1 (Slurm) save a\n"
    "                         checkpoint at the current step and exit 75\n"
    "  --init CKPT.h5|HF_DIR  initial weights (a checkpoint's model; optimizer state is not\n"
    "                         taken)\n"
    "\n"
    "debugging\n"
    "  --log-samples PREFIX   each rank writes the sample ids of each step to PREFIX.rankR\n"
    "  --dump-params FILE     rank 0 writes the final parameters (raw float32, flat)\n"
    "  --debug-skip-allreduce do NOT reduce gradients (ranks diverge: a negative control)\n"
    "  --debug-fail-at R:S    rank R fails at step S (tests that a failure ends the job)\n"
    "  --debug-stop-at S      behave as if SIGUSR1 arrived at step S (save, exit 75)\n"
    "  --debug-perturb-resume after --resume, nudge one weight (a negative control)\n"
    "  --debug-inject-inf R:S rank R puts an inf into its gradients at step S\n";

typedef enum { T_STR, T_INT, T_I64, T_U64, T_DBL, T_VIEW, T_SPLIT, T_FLAG } opt_type;

typedef struct {
    const char *name; /* flag name; config key = name with '-' -> '_' */
    opt_type type;
    size_t off, size; /* field of train_opts; size for strings */
    double lo, hi;    /* bounds for numbers */
    int in_config;    /* written to / read from config JSON */
} opt_desc;

#define F(field) offsetof(train_opts, field), sizeof(((train_opts *)0)->field)

static const opt_desc descs[] = {
    {"data", T_STR, F(data), 0, 0, 1},
    {"out", T_STR, F(out), 0, 0, 1},
    {"model", T_STR, F(model), 0, 0, 1},
    {"vocab", T_STR, F(vocab), 0, 0, 1},
    {"max-seq-len", T_INT, F(max_seq_len), 3, 4096, 1},
    {"view", T_VIEW, F(view), 0, 0, 1},
    {"split", T_SPLIT, F(split), 0, 0, 1},
    {"val-fraction", T_DBL, F(val_fraction), 0, 0.999999, 1},
    {"limit", T_I64, F(limit), 0, 1e12, 1},
    {"augment", T_STR, F(augment), 0, 0, 1},
    {"epochs", T_INT, F(epochs), 1, 100000, 1},
    {"batch-size", T_INT, F(batch_size), 1, 1 << 20, 1},
    {"lr", T_DBL, F(lr), 0, 10, 1},
    {"weight-decay", T_DBL, F(weight_decay), 0, 10, 1},
    {"warmup-ratio", T_DBL, F(warmup_ratio), 0, 1, 1},
    {"warmup-steps", T_I64, F(warmup_steps), -1, 1e12, 1}, /* -1: from the ratio */
    {"grad-clip", T_DBL, F(grad_clip), 0, 1e6, 1},
    {"class-weights", T_STR, F(class_weights), 0, 0, 1},
    {"max-steps", T_I64, F(max_steps), 0, 1e12, 1},
    {"seed", T_U64, F(seed), 0, 0, 1},
    {"split-seed", T_U64, F(split_seed), 0, 0, 1},
    {"group-by-length", T_FLAG, F(group_by_length), 0, 0, 1},
    {"device", T_STR, F(device), 0, 0, 1},
    {"precision", T_STR, F(precision), 0, 0, 1},
    {"reduce-precision", T_STR, F(reduce_precision), 0, 0, 1},
    {"comm-timeout", T_DBL, F(comm_timeout), 1, 1e6, 1},
    {"loss-scale", T_STR, F(loss_scale), 0, 0, 1},
    {"debug-inject-inf", T_STR, F(inject_inf), 0, 0, 0},
    {"threads", T_INT, F(threads), 0, 4096, 1},
    {"log-samples", T_STR, F(log_samples), 0, 0, 0},
    {"dump-params", T_STR, F(dump_params), 0, 0, 0},
    {"debug-skip-allreduce", T_FLAG, F(skip_allreduce), 0, 0, 0},
    {"debug-fail-at", T_STR, F(fail_at), 0, 0, 0},
    {"quiet", T_FLAG, F(quiet), 0, 0, 0},
    {"keep-last", T_INT, F(keep_last), 1, 1000000, 1},
    {"select-on", T_STR, F(select_on), 0, 0, 1},
    {"init", T_STR, F(init), 0, 0, 1},
    {"resume", T_FLAG, F(resume), 0, 0, 0},
    {"debug-stop-at", T_I64, F(stop_at), 0, 1e12, 0},
    {"debug-perturb-resume", T_FLAG, F(perturb_resume), 0, 0, 0},
};
#define NDESC (sizeof descs / sizeof *descs)

enum { OPT_BASE = 1000, OPT_LOWER = 2000, OPT_CASED, OPT_CONFIG, OPT_EVAL, OPT_HELP, OPT_SAVE, OPT_AUG_RATIO };

static void set_defaults(train_opts *o)
{
    memset(o, 0, sizeof *o);
    snprintf(o->model, sizeof o->model, "tiny");
    o->lowercase = -1;
    o->epochs = 10;
    o->lr = 2e-5;
    o->weight_decay = 0.01;
    o->warmup_ratio = 0.1;
    o->warmup_steps = -1;
    o->grad_clip = 1.0;
    o->batch_size = 32;
    o->max_seq_len = 128;
    o->seed = 42;
    o->split_seed = 42;
    o->view = IO_VIEW_HF;
    o->split = IO_SPLIT_RANDOM;
    o->val_fraction = 0.1;
    o->device[0] = 0; /* resolved after parsing: launch/cluster.h */
#ifdef ADEBERT_HAVE_HDF5
    o->save_every = -1;
#endif
    o->keep_last = 2;
    snprintf(o->select_on, sizeof o->select_on, "val");
    o->stop_at = -1;
    snprintf(o->precision, sizeof o->precision, "auto");
    snprintf(o->reduce_precision, sizeof o->reduce_precision, "bf16");
    o->comm_timeout = 600;
    snprintf(o->loss_scale, sizeof o->loss_scale, "auto");
    snprintf(o->class_weights, sizeof o->class_weights, "none");
}

/* Applies one textual value; `where` names its origin in errors. */
static int apply(train_opts *o, const opt_desc *d, const char *v, const char *where)
{
    char *field = (char *)o + d->off;
    char *end = NULL;
    errno = 0;
    switch (d->type) {
    case T_STR:
        if (strlen(v) >= d->size) {
            cli_error("train", "%s: value of --%s is too long", where, d->name);
            return -1;
        }
        memcpy(field, v, strlen(v) + 1);
        return 0;
    case T_INT:
    case T_I64: {
        long long x = strtoll(v, &end, 10);
        if (errno || !*v || *end || (double)x < d->lo || (double)x > d->hi) {
            cli_error("train", "%s: --%s must be an integer in [%.0f, %.0f], not '%s'", where, d->name, d->lo,
                      d->hi, v);
            return -1;
        }
        if (d->type == T_INT)
            *(int *)field = (int)x;
        else
            *(int64_t *)field = (int64_t)x;
        return 0;
    }
    case T_U64: {
        uint64_t x;
        if (cli_parse_u64(v, &x)) {
            cli_error("train", "%s: --%s must be a non-negative integer, not '%s'", where, d->name, v);
            return -1;
        }
        *(uint64_t *)field = x;
        return 0;
    }
    case T_DBL: {
        double x = strtod(v, &end);
        if (errno || !*v || *end || !isfinite(x) || x < d->lo || x > d->hi) {
            cli_error("train", "%s: --%s must be a number in [%g, %g], not '%s'", where, d->name, d->lo, d->hi, v);
            return -1;
        }
        *(double *)field = x;
        return 0;
    }
    case T_VIEW:
        if (io_view_parse(v, (io_view *)field)) {
            cli_error("train", "%s: --view must be hf or dedup, not '%s'", where, v);
            return -1;
        }
        return 0;
    case T_SPLIT:
        if (io_split_parse(v, (io_split_kind *)field)) {
            cli_error("train", "%s: --split must be random, stratified or grouped, not '%s'", where, v);
            return -1;
        }
        return 0;
    case T_FLAG:
        *(int *)field = 1;
        return 0;
    }
    return -1;
}

static int apply_eval_every(train_opts *o, const char *v, const char *where)
{
    if (!strcmp(v, "epoch")) {
        o->eval_every = 0;
        return 0;
    }
    uint64_t n;
    if (cli_parse_u64(v, &n) || n == 0 || n > (uint64_t)1e12) {
        cli_error("train", "%s: --eval-every must be 'epoch' or a positive step count, not '%s'", where, v);
        return -1;
    }
    o->eval_every = (int64_t)n;
    return 0;
}

static int apply_save_every(train_opts *o, const char *v, const char *where)
{
    uint64_t n = 0;
    if (!strcmp(v, "epoch"))
        o->save_every = -1;
    else if (!strcmp(v, "none"))
        o->save_every = 0;
    else if (!cli_parse_u64(v, &n) && n > 0 && n <= (uint64_t)1e12)
        o->save_every = (int64_t)n;
    else {
        cli_error("train", "%s: --save-every must be 'epoch', 'none' or a positive step count, not '%s'", where, v);
        return -1;
    }
    return 0;
}

/* A ratio of 0 would silently add nothing: R > 0 when given (0 in opts: not given). */
static int apply_augment_ratio(train_opts *o, const char *v, const char *where)
{
    char *end = NULL;
    errno = 0;
    double x = strtod(v, &end);
    if (errno || !*v || *end || !isfinite(x) || !(x > 0) || x > 1e6) {
        cli_error("train", "%s: --augment-ratio must be a positive number (at most 1e6), not '%s'", where, v);
        return -1;
    }
    o->augment_ratio = x;
    return 0;
}

static void key_of(const char *name, char *key, size_t n)
{
    snprintf(key, n, "%s", name);
    for (char *p = key; *p; p++)
        if (*p == '-')
            *p = '_';
}

static int load_config(train_opts *o, const char *path)
{
    char err[IO_ERRLEN];
    FILE *f = fopen(path, "rb");
    if (!f) {
        cli_error("train", "--config %s: cannot open: %s", path, strerror(errno));
        return -1;
    }
    char *buf = NULL;
    size_t len = 0, cap = 0;
    for (;;) {
        if (len + 4096 + 1 > cap) {
            cap = cap ? cap * 2 : 8192;
            if (cap > (1u << 20)) {
                fclose(f);
                free(buf);
                cli_error("train", "--config %s: larger than 1 MiB", path);
                return -1;
            }
            char *g = realloc(buf, cap);
            if (!g) {
                fclose(f);
                free(buf);
                cli_error("train", "out of memory");
                return -1;
            }
            buf = g;
        }
        size_t got = fread(buf + len, 1, 4096, f);
        len += got;
        if (got < 4096)
            break;
    }
    fclose(f);
    buf[len] = '\0';
    cJSON *j = cJSON_ParseWithLength(buf, len);
    free(buf);
    if (!cJSON_IsObject(j)) {
        cJSON_Delete(j);
        cli_error("train", "--config %s: not a JSON object", path);
        return -1;
    }
    int rc = 0;
    const cJSON *it;
    cJSON_ArrayForEach(it, j)
    {
        char key[64], val[1100], where[1100];
        snprintf(where, sizeof where, "%s key \"%s\"", path, it->string);
        const opt_desc *d = NULL;
        for (size_t i = 0; i < NDESC; i++) {
            key_of(descs[i].name, key, sizeof key);
            if (descs[i].in_config && !strcmp(key, it->string))
                d = &descs[i];
        }
        if (cJSON_IsString(it))
            snprintf(val, sizeof val, "%s", it->valuestring);
        else if (cJSON_IsNumber(it))
            snprintf(val, sizeof val, "%.17g", it->valuedouble);
        else if (!cJSON_IsBool(it)) {
            cli_error("train", "%s: must be a string, number or boolean", where);
            rc = -1;
            break;
        }
        if (!strcmp(it->string, "lowercase") && cJSON_IsBool(it)) {
            o->lowercase = cJSON_IsTrue(it);
        } else if (!strcmp(it->string, "eval_every") && !cJSON_IsBool(it)) {
            if (cJSON_IsNumber(it))
                snprintf(val, sizeof val, "%.0f", it->valuedouble);
            rc = apply_eval_every(o, val, where);
        } else if (!strcmp(it->string, "augment_ratio") && !cJSON_IsBool(it)) {
            rc = apply_augment_ratio(o, val, where);
        } else if (!strcmp(it->string, "save_every") && !cJSON_IsBool(it)) {
            if (cJSON_IsNumber(it))
                snprintf(val, sizeof val, "%.0f", it->valuedouble);
            rc = apply_save_every(o, val, where);
        } else if (d && cJSON_IsBool(it) && d->type == T_FLAG) {
            *(int *)((char *)o + d->off) = cJSON_IsTrue(it);
        } else if (d && !cJSON_IsBool(it) && d->type != T_FLAG) {
            /* integers written as 1e3 or 10.0 are still integers */
            if (cJSON_IsNumber(it) && (d->type == T_INT || d->type == T_I64 || d->type == T_U64) &&
                it->valuedouble == floor(it->valuedouble) && fabs(it->valuedouble) < 9e15)
                snprintf(val, sizeof val, "%.0f", it->valuedouble);
            rc = apply(o, d, val, where);
        } else {
            cli_error("train", "%s: unknown option or wrong type (keys are the flag names with '_')", where);
            rc = -1;
        }
        if (rc)
            break;
    }
    (void)err;
    cJSON_Delete(j);
    return rc;
}

int train_opts_parse(train_opts *o, int argc, char **argv)
{
    set_defaults(o);
    struct option longopts[NDESC + 10];
    size_t k = 0;
    for (size_t i = 0; i < NDESC; i++)
        longopts[k++] = (struct option){descs[i].name, descs[i].type == T_FLAG ? no_argument : required_argument,
                                        NULL, OPT_BASE + (int)i};
    longopts[k++] = (struct option){"lowercase", no_argument, NULL, OPT_LOWER};
    longopts[k++] = (struct option){"cased", no_argument, NULL, OPT_CASED};
    longopts[k++] = (struct option){"config", required_argument, NULL, OPT_CONFIG};
    longopts[k++] = (struct option){"eval-every", required_argument, NULL, OPT_EVAL};
    longopts[k++] = (struct option){"help", no_argument, NULL, OPT_HELP};
    longopts[k++] = (struct option){"save-every", required_argument, NULL, OPT_SAVE};
    longopts[k++] = (struct option){"augment-ratio", required_argument, NULL, OPT_AUG_RATIO};
    longopts[k++] = (struct option){0, 0, 0, 0};

    /* Pass 1: --help and --config, so the file sits under the flags. */
    optind = 1;
    int ch;
    const char *config = NULL;
    while ((ch = cli_getopt(argc, argv, "train", ":", longopts)) != -1) {
        if (ch == '?' || ch == ':')
            return 2;
        if (ch == OPT_HELP) {
            fputs(train_usage, stdout);
            return 1;
        }
        if (ch == OPT_CONFIG)
            config = optarg;
    }
    if (optind < argc) {
        cli_error("train", "unexpected argument '%s' (see --help)", argv[optind]);
        return 2;
    }
    if (config) {
        if (load_config(o, config))
            return 2;
        snprintf(o->config_file, sizeof o->config_file, "%s", config);
    }
    /* Pass 2: the flags. */
    optind = 1;
    int lower_flag = -1;
    while ((ch = cli_getopt(argc, argv, "train", ":", longopts)) != -1) {
        if (ch >= OPT_BASE && ch < OPT_BASE + (int)NDESC) {
            if (apply(o, &descs[ch - OPT_BASE], optarg ? optarg : "", "command line"))
                return 2;
        } else if (ch == OPT_LOWER || ch == OPT_CASED) {
            if (lower_flag >= 0 && lower_flag != (ch == OPT_LOWER)) {
                cli_error("train", "--lowercase and --cased exclude each other");
                return 2;
            }
            lower_flag = ch == OPT_LOWER;
        } else if (ch == OPT_EVAL) {
            if (apply_eval_every(o, optarg, "command line"))
                return 2;
        } else if (ch == OPT_SAVE) {
            if (apply_save_every(o, optarg, "command line"))
                return 2;
        } else if (ch == OPT_AUG_RATIO) {
            if (apply_augment_ratio(o, optarg, "command line"))
                return 2;
        }
    }
    if (lower_flag >= 0)
        o->lowercase = lower_flag;
    char cerr[CLUSTER_ERRLEN];
#ifdef ADEBERT_HAVE_CUDA
    const int built_with_cuda = 1;
#else
    const int built_with_cuda = 0;
#endif
    if (cluster_default_device(o->device, sizeof o->device, built_with_cuda, NULL, NULL, o->device_note,
                               sizeof o->device_note, cerr)) {
        cli_error("train", "%s", cerr);
        return 2;
    }
    if (strcmp(o->device, "cpu") && strcmp(o->device, "cuda")) {
        cli_error("train", "--device must be cpu or cuda, not '%s'", o->device);
        return 2;
    }
    if (strcmp(o->precision, "auto") && strcmp(o->precision, "fp32") && strcmp(o->precision, "tf32") &&
        strcmp(o->precision, "bf16") && strcmp(o->precision, "fp16")) {
        cli_error("train", "--precision must be auto, fp32, tf32, bf16 or fp16, not '%s'", o->precision);
        return 2;
    }
    if (strcmp(o->loss_scale, "auto") && strcmp(o->loss_scale, "dynamic") && strcmp(o->loss_scale, "none")) {
        char *end = NULL;
        double v = strtod(o->loss_scale, &end);
        if (!*o->loss_scale || *end || !(v > 0) || !isfinite(v) || v > 1e30) {
            cli_error("train", "--loss-scale must be auto, dynamic, none or a positive number, not '%s'",
                      o->loss_scale);
            return 2;
        }
    }
    if (!strcmp(o->device, "cpu") && strcmp(o->precision, "auto") && strcmp(o->precision, "fp32") &&
        strcmp(o->precision, "bf16")) {
        cli_error("train", "--precision %s: the CPU backend computes in fp32 or bf16", o->precision);
        return 2;
    }
    if (strcmp(o->reduce_precision, "bf16") && strcmp(o->reduce_precision, "fp32")) {
        cli_error("train", "--reduce-precision must be bf16 or fp32, not '%s'", o->reduce_precision);
        return 2;
    }
    if (strcmp(o->select_on, "val") && strcmp(o->select_on, "test")) {
        cli_error("train", "--select-on must be val or test, not '%s'", o->select_on);
        return 2;
    }
#ifndef ADEBERT_HAVE_HDF5
    if (o->save_every || o->resume || (o->init[0] && strstr(o->init, ".h5"))) {
        cli_error("train", "checkpoints (--save-every, --resume, --init CKPT.h5) need HDF5, and this adebert "
                           "was built without it (ADEBERT_HDF5=OFF); use --save-every none");
        return 2;
    }
#endif
    if (o->augment_ratio > 0 && !o->augment[0]) {
        cli_error("train", "--augment-ratio needs --augment FILE.jsonl");
        return 2;
    }
    if (!o->out[0]) {
        cli_error("train", "--out RUN_DIR is required (see --help)");
        return 2;
    }
    return 0;
}

char *train_opts_to_json(const train_opts *o)
{
    cJSON *j = cJSON_CreateObject();
    char key[64];
    for (size_t i = 0; i < NDESC; i++) {
        const opt_desc *d = &descs[i];
        if (!d->in_config)
            continue;
        key_of(d->name, key, sizeof key);
        const char *field = (const char *)o + d->off;
        switch (d->type) {
        case T_STR: cJSON_AddStringToObject(j, key, field); break;
        case T_INT: cJSON_AddNumberToObject(j, key, *(const int *)field); break;
        case T_I64: cJSON_AddNumberToObject(j, key, (double)*(const int64_t *)field); break;
        case T_U64: cJSON_AddNumberToObject(j, key, (double)*(const uint64_t *)field); break;
        case T_DBL: cJSON_AddNumberToObject(j, key, *(const double *)field); break;
        case T_VIEW: cJSON_AddStringToObject(j, key, io_view_name(*(const io_view *)field)); break;
        case T_SPLIT: cJSON_AddStringToObject(j, key, io_split_name(*(const io_split_kind *)field)); break;
        case T_FLAG: cJSON_AddBoolToObject(j, key, *(const int *)field); break;
        }
    }
    cJSON_AddBoolToObject(j, "lowercase", o->lowercase == 1);
    if (o->save_every > 0)
        cJSON_AddNumberToObject(j, "save_every", (double)o->save_every);
    else
        cJSON_AddStringToObject(j, "save_every", o->save_every ? "epoch" : "none");
    if (o->eval_every)
        cJSON_AddNumberToObject(j, "eval_every", (double)o->eval_every);
    else
        cJSON_AddStringToObject(j, "eval_every", "epoch");
    /* absent without --augment: runs without it record (and resume) what they did before */
    if (o->augment[0]) {
        if (o->augment_ratio > 0)
            cJSON_AddNumberToObject(j, "augment_ratio", o->augment_ratio);
        else
            cJSON_AddNullToObject(j, "augment_ratio");
    } else {
        cJSON_DeleteItemFromObjectCaseSensitive(j, "augment");
    }
    char *txt = cJSON_Print(j);
    cJSON_Delete(j);
    return txt;
}
