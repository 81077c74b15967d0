/* adebert: one program, subcommands. */
#include "dist/dist.h"
#include "launch/cli.h"
#include "launch/commands.h"
#include "nn/nn.h"

#include <stdio.h>
#include <string.h>
#include <cjson/cJSON.h>
#include <utf8proc.h>
#ifdef ADEBERT_HAVE_HDF5
#include <hdf5.h>
#endif

static const char *const usage =
    "usage: adebert <command> [options]   (adebert <command> --help for each)\n"
    "\n"
    "adebert fine-tunes BERT-family sentence classifiers to detect adverse drug events\n"
    "(ADE corpus v2), data-parallel over MPI ranks, on CPU or CUDA GPUs.\n"
    "\n"
    "commands:\n"
    "  data stats   corpus rows, split sizes, token lengths and train/test leakage\n"
    "  tokenize     BERT WordPiece: text lines on stdin -> token ids on stdout\n"
    "  train        fine-tune a BERT classifier, data-parallel over MPI ranks, per-epoch F1\n"
    "  eval         metrics of a checkpoint on its recorded split (or any corpus)\n"
    "  predict      text lines in, one JSON line each out (label, p_adverse_event)\n"
    "  serve        HTTPS inference endpoint (SageMaker/HF JSON), dynamic batching\n"
    "  import       a Hugging Face model directory -> an adebert checkpoint\n"
    "  export       an adebert checkpoint -> a Hugging Face model directory\n"
    "  bench        time training steps (ms/step, tokens/s, GFLOP/s, peak memory)\n"
    "  version      version and build configuration (CUDA, MPI, HDF5, GPUs seen)\n"
    "\n"
    "The ADE corpus is read from --data DIR, else $ADEBERT_DATA, else\n"
    "  " ADEBERT_DEFAULT_DATA "\n"
    "(io/fetch-ade-corpus.sh downloads it and checks its sha256).\n";

static int cmd_version(void)
{
    char buf[256];
    char err[DIST_ERRLEN];
    dist_comm comm;
    if (dist_init(&comm, NULL, NULL, err)) {
        cli_error("version", "%s", err);
        return CLI_FAIL;
    }
    if (comm.rank == 0) {
        printf("adebert %s\n", ADEBERT_VERSION);
        printf("  cJSON    %s\n", cJSON_Version());
        printf("  utf8proc %s\n", utf8proc_version());
#ifdef ADEBERT_HAVE_HDF5
        unsigned maj = 0, min = 0, rel = 0;
        H5get_libversion(&maj, &min, &rel);
        printf("  HDF5     %u.%u.%u (checkpoints)\n", maj, min, rel);
#else
        printf("  HDF5     not built (ADEBERT_HDF5=OFF: no checkpoints)\n");
#endif
        char why[256];
        nn_backend *cpu = NULL;
        if (!nn_backend_cpu_create(&cpu, 0, why, sizeof why) &&
            !nn_backend_cpu_set_precision(cpu, NN_PREC_BF16, why, sizeof why))
            printf("  CPU      %s GEMMs, fp32 and bf16 (oneDNN %s)\n", nn_cpu_blas_name(), nn_backend_cpu_isa(cpu));
        else
            printf("  CPU      %s GEMMs, fp32 only (%s)\n", nn_cpu_blas_name(), why);
        nn_backend_destroy(cpu);
        printf("  vecmath  GELU and softmax exp: %s\n", nn_cpu_vecmath_name());
        nn_cuda_device_summary(buf, sizeof buf);
#ifdef ADEBERT_HAVE_CUDA
        printf("  CUDA     built in; %s\n", buf);
#else
        printf("  CUDA     %s\n", buf);
#endif
        printf("  comm     %s\n", dist_describe(&comm, buf, sizeof buf));
    }
    fflush(stdout);
    printf("  rank %d of %d: local rank %d of %d on %s\n", comm.rank, comm.size, comm.local_rank,
           comm.local_size, comm.host);
    fflush(stdout);
    dist_finalize(&comm);
    return CLI_OK;
}

int main(int argc, char **argv)
{
    if (argc < 2) {
        cli_error(NULL, "no command given (adebert --help lists them)");
        return CLI_USAGE;
    }
    const char *cmd = argv[1];
    if (!strcmp(cmd, "--help") || !strcmp(cmd, "-h") || !strcmp(cmd, "help")) {
        fputs(usage, stdout);
        return CLI_OK;
    }
    if (!strcmp(cmd, "--version") || !strcmp(cmd, "version"))
        return cmd_version();
    if (!strcmp(cmd, "data"))
        return cmd_data(argc - 1, argv + 1);
    if (!strcmp(cmd, "tokenize"))
        return cmd_tokenize(argc - 1, argv + 1);
    if (!strcmp(cmd, "train"))
        return cmd_train(argc - 1, argv + 1);
    if (!strcmp(cmd, "bench"))
        return cmd_bench(argc - 1, argv + 1);
    if (!strcmp(cmd, "eval"))
        return cmd_eval(argc - 1, argv + 1);
    if (!strcmp(cmd, "predict"))
        return cmd_predict(argc - 1, argv + 1);
    if (!strcmp(cmd, "serve"))
        return cmd_serve(argc - 1, argv + 1);
    if (!strcmp(cmd, "import"))
        return cmd_import(argc - 1, argv + 1);
    if (!strcmp(cmd, "export"))
        return cmd_export(argc - 1, argv + 1);
    cli_error(NULL, "unknown command '%s' (adebert --help lists them)", cmd);
    return CLI_USAGE;
}
