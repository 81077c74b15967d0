/* adebert import: a Hugging Face model directory -> an adebert checkpoint. */
#include "launch/cli.h"
#include "launch/commands.h"
#include "launch/hf_io.h"
#include "launch/model_io.h"

#include <errno.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

static const char *const import_usage =
    "usage: adebert import --hf DIR --out CKPT.h5 [--lowercase|--cased] [--seed N]\n"
    "                      [--max-seq-len N] [--force]\n"
    "\n"
    "Converts a Hugging Face BERT model directory into an adebert checkpoint (no\n"
    "optimizer state, epoch 0, step 0) that train --init, eval, predict and export\n"
    "accept.\n"
    "\n"
    "DIR holds config.json, vocab.txt, optionally tokenizer_config.json, and the\n"
    "weights: model.safetensors (F32/F16/BF16) or pytorch_model.bin (torch.save, zip\n"
    "or legacy format, read without executing its pickle). Names with or without the\n"
    "`bert.` prefix and old LayerNorm gamma/beta names are accepted; pretraining heads\n"
    "(cls.*) are dropped; a missing pooler or classifier is initialised as Hugging\n"
    "Face does (normal(0, 0.02), zero bias) from the seed and reported on stderr.\n"
    "\n"
    "  --hf DIR           the Hugging Face model directory\n"
    "  --out CKPT.h5      the checkpoint to write (atomically)\n"
    "  --lowercase        lowercase and strip accents when tokenizing\n"
    "  --cased            keep case and accents\n"
    "                     [default: tokenizer_config.json's do_lower_case; without that\n"
    "                     file, lowercase, as Hugging Face does (warned when the vocab\n"
    "                     looks cased)]\n"
    "  --seed N           initialisation of missing tensors, and the recorded run and\n"
    "                     split seed [default: 42]\n"
    "  --max-seq-len N    recorded max sequence length [default: min(128,\n"
    "                     max_position_embeddings)]\n"
    "  --force            replace an existing CKPT.h5\n"
    "\n"
    "The recorded data settings (used by eval/predict defaults) are: view hf, split\n"
    "grouped, test fraction 0.2, validation fraction 0.1.\n";

enum { OPT_LOWER = 256, OPT_CASED, OPT_SEED, OPT_MAXLEN, OPT_FORCE };

int cmd_import(int argc, char **argv)
{
    const char *dir = NULL, *out = NULL;
    int lowercase = -1, force = 0;
    uint64_t seed = 42;
    size_t max_len = 0;
    static const struct option opts[] = {{"hf", required_argument, NULL, 'H'},
                                         {"out", required_argument, NULL, 'o'},
                                         {"lowercase", no_argument, NULL, OPT_LOWER},
                                         {"cased", no_argument, NULL, OPT_CASED},
                                         {"seed", required_argument, NULL, OPT_SEED},
                                         {"max-seq-len", required_argument, NULL, OPT_MAXLEN},
                                         {"force", no_argument, NULL, OPT_FORCE},
                                         {"help", no_argument, NULL, 'h'},
                                         {0, 0, 0, 0}};
    optind = 1;
    int ch;
    while ((ch = cli_getopt(argc, argv, "import", ":h", opts)) != -1) {
        switch (ch) {
        case 'H': dir = optarg; break;
        case 'o': out = optarg; break;
        case OPT_LOWER:
        case OPT_CASED:
            if (lowercase >= 0 && lowercase != (ch == OPT_LOWER)) {
                cli_error("import", "--lowercase and --cased exclude each other");
                return CLI_USAGE;
            }
            lowercase = ch == OPT_LOWER;
            break;
        case OPT_SEED:
            if (cli_parse_u64(optarg, &seed)) {
                cli_error("import", "--seed must be a non-negative integer, not '%s'", optarg);
                return CLI_USAGE;
            }
            break;
        case OPT_MAXLEN:
            if (cli_parse_size(optarg, 2, 1u << 16, &max_len)) {
                cli_error("import", "--max-seq-len must be an integer in [2, 65536], not '%s'", optarg);
                return CLI_USAGE;
            }
            break;
        case OPT_FORCE: force = 1; break;
        case 'h': fputs(import_usage, stdout); return CLI_OK;
        default: return CLI_USAGE;
        }
    }
    if (optind < argc) {
        cli_error("import", "unexpected argument '%s' (see --help)", argv[optind]);
        return CLI_USAGE;
    }
    if (!dir || !out) {
        cli_error("import", "--hf DIR and --out CKPT.h5 are required (see --help)");
        return CLI_USAGE;
    }
#ifndef ADEBERT_HAVE_HDF5
    (void)lowercase, (void)force, (void)seed, (void)max_len;
    cli_error("import", "checkpoints need HDF5, and this adebert was built without it (ADEBERT_HDF5=OFF)");
    return CLI_FAIL;
#else
    struct stat sb;
    if (stat(out, &sb) == 0) {
        if (S_ISDIR(sb.st_mode)) {
            cli_error("import", "%s is a directory; --out names the checkpoint file", out);
            return CLI_FAIL;
        }
        if (!force) {
            cli_error("import", "%s exists (pass --force to replace it)", out);
            return CLI_FAIL;
        }
    }

    char err[MIO_ERRLEN > HFIO_ERRLEN ? MIO_ERRLEN : HFIO_ERRLEN], nerr[NN_ERRLEN];
    nn_config mc;
    io_vocab *vocab = NULL;
    nn_backend *be = NULL;
    nn_model *m = NULL;
    int lc = 1, rc = CLI_FAIL;
    /* warnings are printed once everything succeeded: a failure is one line */
    char notes[4096] = "";
    if (hfio_inspect("import", dir, lowercase, &mc, &vocab, &lc, notes, sizeof notes, err)) {
        cli_error("import", "%s", err);
        return CLI_FAIL;
    }
    int64_t msl = max_len ? (int64_t)max_len : 128;
    if (msl > mc.max_position_embeddings) {
        if (max_len) {
            cli_error("import", "--max-seq-len %zu exceeds the model's max_position_embeddings %lld", max_len,
                      (long long)mc.max_position_embeddings);
            goto done;
        }
        msl = mc.max_position_embeddings;
    }
    if (msl < 2) {
        cli_error("import", "%s: max_position_embeddings %lld leaves no room for [CLS] and [SEP]", dir,
                  (long long)mc.max_position_embeddings);
        goto done;
    }
    if (nn_backend_cpu_create(&be, 0, nerr, sizeof nerr)) {
        cli_error("import", "CPU backend: %s", nerr);
        goto done;
    }
    /* the arena is never used: the smallest the model accepts */
    if (nn_model_create_inference(&m, &mc, be, 2, 1, 2, nerr)) {
        cli_error("import", "%s", nerr);
        goto done;
    }
    if (hfio_load_weights("import", dir, m, seed, notes, sizeof notes, err)) {
        cli_error("import", "%s", err);
        goto done;
    }
    mio_data data;
    memset(&data, 0, sizeof data);
    data.view = IO_VIEW_HF;
    data.split = IO_SPLIT_GROUPED;
    data.seed = seed;
    data.test_fraction = IO_TEST_FRACTION;
    data.val_fraction = 0.1;
    data.limit = 0;
    data.max_seq_len = (int)msl;
    data.lowercase = lc;
    mio_save_args a;
    memset(&a, 0, sizeof a);
    a.mc = &mc;
    a.data = &data;
    a.vocab = vocab;
    a.seed = seed;
    a.loss_scale = 1.0;
    if (mio_save(out, m, NULL, &a, err)) {
        cli_error("import", "%s", err);
        goto done;
    }
    fputs(notes, stderr);
    printf("imported %s -> %s (%lld layers, hidden %lld, vocab %zu, %s, max_seq_len %lld, %zu parameters)\n", dir, out,
           (long long)mc.num_hidden_layers, (long long)mc.hidden_size, io_vocab_size(vocab),
           lc ? "lowercase" : "cased", (long long)msl, nn_model_num_params(m));
    rc = CLI_OK;
done:
    nn_model_free(m);
    nn_backend_destroy(be);
    io_vocab_free(vocab);
    return rc;
#endif
}
