/* adebert bench: full training steps (forward, backward, clip + AdamW) on one
 * packed batch, timed after warm-up. The peer side and the alternating driver are
 * bench/bench_model_torch.py and bench/run_model_bench.sh. */
#include "io/io.h"
#include "launch/cli.h"
#include "launch/commands.h"
#include "nn/nn.h"

#include <getopt.h>
#include <omp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>

static const char *const bench_usage =
    "usage: adebert bench [--model tiny|minilm|base] [--batch-size 32] [--seq-len 128 | --lengths ade]\n"
    "                     [--steps 5] [--warmup 1] [--threads T] [--seed 1] [--device cpu|cuda]\n"
    "                     [--precision fp32|tf32|bf16|fp16] [--json]\n"
    "                     [--print-lengths]\n"
    "\n"
    "Times training steps on one packed batch (random token ids, fixed seed) and prints\n"
    "ms/step (median, min, max), tokens/s, achieved GFLOP/s and peak RSS (with --device cuda\n"
    "also the GPU and its peak device memory).\n"
    "\n"
    "  --model NAME       preset [base]\n"
    "  --batch-size B     sequences per step [32]\n"
    "  --seq-len S        every sequence S tokens [128]\n"
    "  --lengths ade      lengths drawn like the ADE corpus (log-normal, median 32, p99 ~92)\n"
    "  --steps N          timed steps [5]; --warmup W untimed steps first [1]\n"
    "  --threads T        OpenMP threads [OMP_NUM_THREADS, else all cores]\n"
    "  --device cpu|cuda  backend [cpu]; cuda runs on GPU 0 (CUDA_VISIBLE_DEVICES picks it)\n"
    "  --precision P      GEMM compute precision: cpu fp32 or bf16 (AVX512-BF16/AMX); cuda fp32, tf32 (sm80+), bf16\n"
    "                     (sm80+) or fp16 [cuda: bf16 on sm80+, fp16 below]; storage is fp32\n"
    "  --json             one JSON object: ms_per_step, tokens_per_s, gflops, peak_rss_mb, device,\n"
    "                     precision, peak_device_bytes, ...\n"
    "  --print-lengths    print the batch's lengths (comma separated) and exit: the PyTorch\n"
    "                     peer takes them to run the same batch composition\n";

enum { OPT_JSON = 256, OPT_PRINT, OPT_WARMUP, OPT_SEED, OPT_DEVICE, OPT_LENGTHS };

int cmd_bench(int argc, char **argv)
{
    const char *model = "base", *device = "cpu", *precision = NULL;
    int ade = 0, json = 0, print_lengths = 0;
    size_t batch = 32, seq = 128, steps = 5, warmup = 1, threads = 0;
    uint64_t seed = 1;
    static const struct option opts[] = {
        {"model", required_argument, NULL, 'm'},     {"batch-size", required_argument, NULL, 'b'},
        {"seq-len", required_argument, NULL, 's'},   {"lengths", required_argument, NULL, OPT_LENGTHS},
        {"steps", required_argument, NULL, 'n'},     {"warmup", required_argument, NULL, OPT_WARMUP},
        {"threads", required_argument, NULL, 't'},   {"seed", required_argument, NULL, OPT_SEED},
        {"device", required_argument, NULL, OPT_DEVICE}, {"precision", required_argument, NULL, 'p'},
        {"json", no_argument, NULL, OPT_JSON},       {"print-lengths", no_argument, NULL, OPT_PRINT},
        {"help", no_argument, NULL, 'h'},            {0, 0, 0, 0}};
    optind = 1;
    int ch;
    while ((ch = cli_getopt(argc, argv, "bench", ":h", opts)) != -1) {
        int bad = 0;
        switch (ch) {
        case 'm': model = optarg; break;
        case 'b': bad = cli_parse_size(optarg, 1, 65536, &batch); break;
        case 's': bad = cli_parse_size(optarg, 2, 4096, &seq); break;
        case 'n': bad = cli_parse_size(optarg, 1, 100000, &steps); break;
        case OPT_WARMUP: bad = cli_parse_size(optarg, 0, 100000, &warmup); break;
        case 't': bad = cli_parse_size(optarg, 0, 4096, &threads); break;
        case OPT_SEED: bad = cli_parse_u64(optarg, &seed); break;
        case OPT_LENGTHS:
            bad = strcmp(optarg, "ade") != 0;
            ade = 1;
            break;
        case OPT_DEVICE: device = optarg; break;
        case 'p': precision = optarg; break;
        case OPT_JSON: json = 1; break;
        case OPT_PRINT: print_lengths = 1; break;
        case 'h': fputs(bench_usage, stdout); return CLI_OK;
        default: return CLI_USAGE;
        }
        if (bad) {
            /* the flag is the previous word, or this one in --flag=value form */
            const char *flag = optarg == argv[optind - 1] && optind >= 2 ? argv[optind - 2] : argv[optind - 1];
            int n = (int)strcspn(flag, "=");
            cli_error("bench", "bad value '%s' for %.*s (see --help)", optarg, n, flag);
            return CLI_USAGE;
        }
    }
    if (optind < argc) {
        cli_error("bench", "unexpected argument '%s' (see --help)", argv[optind]);
        return CLI_USAGE;
    }
    int cuda = strcmp(device, "cuda") == 0;
    if (!cuda && strcmp(device, "cpu")) {
        cli_error("bench", "--device %s: expected cpu or cuda", device);
        return CLI_USAGE;
    }
    nn_precision prec = NN_PREC_FP32;
    if (precision && nn_precision_parse(precision, &prec)) {
        cli_error("bench", "--precision %s: expected fp32, tf32, bf16 or fp16", precision);
        return CLI_USAGE;
    }
    if (!cuda && prec != NN_PREC_FP32 && prec != NN_PREC_BF16) {
        cli_error("bench", "--precision %s: the CPU backend computes in fp32 or bf16", precision);
        return CLI_USAGE;
    }
    nn_config c;
    char err[IO_ERRLEN];
    if (io_config_preset(model, &c, err)) {
        cli_error("bench", "--model: %s", err);
        return CLI_USAGE;
    }
    if ((int64_t)seq > c.max_position_embeddings) {
        cli_error("bench", "--seq-len %zu exceeds max_position_embeddings %lld", seq,
                  (long long)c.max_position_embeddings);
        return CLI_USAGE;
    }
    int32_t *lens = malloc(batch * sizeof *lens);
    if (!lens) {
        cli_error("bench", "out of memory");
        return CLI_FAIL;
    }
    if (ade)
        nn_bench_ade_lengths(lens, (int64_t)batch, (int32_t)(seq > 128 ? seq : 128), seed);
    else
        for (size_t i = 0; i < batch; i++)
            lens[i] = (int32_t)seq;
    if (print_lengths) {
        for (size_t i = 0; i < batch; i++)
            printf("%s%d", i ? "," : "", lens[i]);
        printf("\n");
        free(lens);
        return CLI_OK;
    }
    nn_backend *be = NULL;
    int brc;
    if (cuda) {
        if (threads > 0) omp_set_num_threads((int)threads); /* host-side work only */
        if (precision) {
            brc = nn_backend_cuda_create(&be, 0, prec, err, sizeof err);
        } else { /* the default: bf16 where the GPU has it (sm80+), fp16 below */
            prec = NN_PREC_BF16;
            brc = nn_backend_cuda_create(&be, 0, prec, err, sizeof err);
            if (brc && strstr(err, "compute capability")) {
                prec = NN_PREC_FP16;
                brc = nn_backend_cuda_create(&be, 0, prec, err, sizeof err);
            }
        }
    } else {
        brc = nn_backend_cpu_create(&be, (int)threads, err, sizeof err);
        if (!brc && prec == NN_PREC_BF16 && (brc = nn_backend_cpu_set_precision(be, prec, err, sizeof err))) {
            nn_backend_destroy(be);
            be = NULL;
        }
    }
    if (brc) {
        cli_error("bench", "--device %s: %s", device, err);
        free(lens);
        return CLI_FAIL;
    }
    const char *prec_name = nn_precision_name(prec);
    const char *devname = cuda ? nn_cuda_device_name(be) : "cpu";
    nn_bench_result r;
    int rc = nn_bench_train(&c, be, lens, (int64_t)batch, (int)warmup, (int)steps, &r, err);
    if (cuda && nn_cuda_last_error(be)) { /* the backend's own words beat "norm is not finite" */
        snprintf(err, sizeof err, "%s", nn_cuda_last_error(be));
        rc = 1;
    }
    size_t peak_dev = cuda ? nn_cuda_peak_bytes(be) : 0;
    struct rusage ru;
    getrusage(RUSAGE_SELF, &ru);
    double rss_mb = (double)ru.ru_maxrss / 1024.0;
    const char *rev = getenv("ADEBERT_GIT_REV");
    if (rc)
        cli_error("bench", "%s", err);
    else if (json)
        printf("{\"side\":\"adebert\",\"model\":\"%s\",\"batch_size\":%zu,\"lengths\":\"%s\",\"seq_len\":%zu,"
               "\"tokens_per_step\":%.0f,\"steps\":%zu,\"warmup\":%zu,\"ms_per_step\":%.2f,\"ms_min\":%.2f,"
               "\"ms_max\":%.2f,\"tokens_per_s\":%.1f,\"gflops\":%.2f,\"peak_rss_mb\":%.1f,\"threads\":%d,"
               "\"blas\":\"%s\",\"final_loss\":%.6f,\"device\":\"%s\",\"device_name\":\"%s\","
               "\"precision\":\"%s\",\"peak_device_bytes\":%zu,\"git_rev\":\"%s\"}\n",
               model, batch, ade ? "ade" : "fixed", seq, r.tokens_per_step, steps, warmup, r.ms_median, r.ms_min,
               r.ms_max, r.tokens_per_s, r.gflops, rss_mb, omp_get_max_threads(), nn_cpu_blas_name(), r.final_loss,
               device, devname, prec_name, peak_dev, rev ? rev : "unknown");
    else if (cuda)
        printf("adebert cuda %s: %s, %s GEMMs: batch %zu (%s), %.0f tokens/step, %zu steps: %.1f ms/step (min %.1f, "
               "max %.1f), %.0f tokens/s, %.1f GFLOP/s, peak device memory %.0f MiB, peak RSS %.0f MiB\n",
               model, devname, prec_name, batch, ade ? "ade lengths" : "fixed length", r.tokens_per_step, steps,
               r.ms_median, r.ms_min, r.ms_max, r.tokens_per_s, r.gflops, (double)peak_dev / 1048576.0, rss_mb);
    else
        printf("adebert cpu %s: batch %zu (%s), %.0f tokens/step, %zu steps: %.1f ms/step (min %.1f, max %.1f), "
               "%.0f tokens/s, %.1f GFLOP/s, peak RSS %.0f MiB, %d threads, BLAS %s\n",
               model, batch, ade ? "ade lengths" : "fixed length", r.tokens_per_step, steps, r.ms_median, r.ms_min,
               r.ms_max, r.tokens_per_s, r.gflops, rss_mb, omp_get_max_threads(), nn_cpu_blas_name());
    nn_backend_destroy(be);
    free(lens);
    return rc ? CLI_FAIL : CLI_OK;
}
