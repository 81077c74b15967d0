/* adebert data stats: what a split of the corpus holds, and how much of the test
 * set is already in train. Never prints corpus text. */
#include "io/io.h"
#include "launch/cli.h"
#include "launch/commands.h"

#include <cjson/cJSON.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const char *const stats_usage =
    "usage: adebert data stats [--data DIR|FILE] [--view hf|dedup] [--split random|stratified|grouped]\n"
    "                          [--seed N] [--val-fraction F] [--vocab FILE [--lowercase|--cased]]\n"
    "                          [--json]\n"
    "\n"
    "Prints rows, positives (label 1 = Adverse_Event), negatives, the train/val/test sizes\n"
    "of an 80/20 split (validation carved out of train), token-length percentiles\n"
    "(with --vocab; [CLS] and [SEP] included, no truncation) and the split's leakage:\n"
    "test (and val) rows whose exact text is also in train.\n"
    "\n"
    "  --data DIR|FILE   ADE corpus folder (DRUG-AE.rel + ADE-NEG.txt) or a .tsv/.csv/.jsonl\n"
    "                    file with text and label; default $ADEBERT_DATA, else\n"
    "                    " ADEBERT_DEFAULT_DATA "\n"
    "  --view hf         the Hugging Face Ade_corpus_v2_classification rows (23,516; a\n"
    "                    positive sentence repeats once per drug-effect relation) [default]\n"
    "  --view dedup      each distinct text once (20,896)\n"
    "  --split random    unstratified 80/20 shuffle [default]. On the hf view it leaks\n"
    "                    about half of the test positives into train, verbatim.\n"
    "  --split stratified  80/20 per class (the proportions of scikit-learn's stratified\n"
    "                    train_test_split, not its rows)\n"
    "  --split grouped   80/20 over connected components of the PubMed-id/text graph: no\n"
    "                    abstract and no text in both train and test (leakage exactly 0)\n"
    "  --seed N          split seed [42]\n"
    "  --val-fraction F  share of train held out for validation, in [0,1) [0.1]\n"
    "  --vocab FILE      WordPiece vocab.txt, to report token lengths\n"
    "  --lowercase|--cased  casing for --vocab [default: cased if the vocab has uppercase tokens]\n"
    "  --json            one JSON object on stdout instead of the table\n";

enum { OPT_LOWER = 256, OPT_CASED, OPT_JSON, OPT_VAL };

typedef struct {
    size_t p50, p90, p99, max, n;
    double mean;
    uint32_t *sorted; /* all lengths, ascending (for the histogram) */
} length_stats;

static int cmp_u32(const void *a, const void *b)
{
    uint32_t x = *(const uint32_t *)a, y = *(const uint32_t *)b;
    return (x > y) - (x < y);
}

/* Nearest-rank percentile of sorted values. */
static size_t percentile(const uint32_t *sorted, size_t n, double p)
{
    size_t k = (size_t)((p / 100.0) * (double)n + 0.999999999);
    if (k < 1)
        k = 1;
    if (k > n)
        k = n;
    return sorted[k - 1];
}

static int token_lengths(const io_corpus *c, const char *vocab_path, int lowercase_flag,
                         length_stats *out, int *lowercase_used, char err[IO_ERRLEN])
{
    io_vocab *v = NULL;
    io_tokenizer *t = NULL;
    io_tokens tk = {0};
    uint32_t *len = NULL;
    int rc = -1;
    if (io_vocab_load(vocab_path, &v, err))
        goto done;
    *lowercase_used = cli_resolve_lowercase("data stats", lowercase_flag, io_vocab_is_cased(v));
    if (io_tokenizer_init(&t, v, *lowercase_used, err))
        goto done;
    if (io_tokenize_corpus(t, c, 0, &tk, err))
        goto done;
    len = malloc((tk.n ? tk.n : 1) * sizeof *len);
    if (!len) {
        snprintf(err, IO_ERRLEN, "out of memory");
        goto done;
    }
    double sum = 0;
    for (size_t i = 0; i < tk.n; i++) {
        len[i] = (uint32_t)(tk.offsets[i + 1] - tk.offsets[i]);
        sum += len[i];
    }
    qsort(len, tk.n, sizeof *len, cmp_u32);
    out->n = tk.n;
    out->mean = tk.n ? sum / (double)tk.n : 0;
    out->p50 = percentile(len, tk.n, 50);
    out->p90 = percentile(len, tk.n, 90);
    out->p99 = percentile(len, tk.n, 99);
    out->max = tk.n ? len[tk.n - 1] : 0;
    out->sorted = len;
    len = NULL;
    rc = 0;
done:
    free(len);
    io_tokens_free(&tk);
    io_tokenizer_free(t);
    io_vocab_free(v);
    return rc;
}

static double pct(size_t a, size_t b) { return b ? 100.0 * (double)a / (double)b : 0.0; }

static int data_stats(int argc, char **argv)
{
    const char *data = NULL, *vocab = NULL;
    io_view view = IO_VIEW_HF;
    io_split_kind split = IO_SPLIT_RANDOM;
    uint64_t seed = 42;
    double val_fraction = 0.1;
    int lowercase = -1, json = 0;
    static const struct option opts[] = {
        {"data", required_argument, NULL, 'd'},   {"view", required_argument, NULL, 'v'},
        {"split", required_argument, NULL, 's'},  {"seed", required_argument, NULL, 'S'},
        {"val-fraction", required_argument, NULL, OPT_VAL},
        {"vocab", required_argument, NULL, 'V'},  {"lowercase", no_argument, NULL, OPT_LOWER},
        {"cased", no_argument, NULL, OPT_CASED},  {"json", no_argument, NULL, OPT_JSON},
        {"help", no_argument, NULL, 'h'},         {0, 0, 0, 0}};
    optind = 1;
    int ch;
    while ((ch = cli_getopt(argc, argv, "data stats", ":h", opts)) != -1) {
        switch (ch) {
        case 'd': data = optarg; break;
        case 'V': vocab = optarg; break;
        case 'v':
            if (io_view_parse(optarg, &view)) {
                cli_error("data stats", "--view must be hf or dedup, not '%s'", optarg);
                return CLI_USAGE;
            }
            break;
        case 's':
            if (io_split_parse(optarg, &split)) {
                cli_error("data stats", "--split must be random, stratified or grouped, not '%s'", optarg);
                return CLI_USAGE;
            }
            break;
        case 'S':
            if (cli_parse_u64(optarg, &seed)) {
                cli_error("data stats", "--seed must be a non-negative integer, not '%s'", optarg);
                return CLI_USAGE;
            }
            break;
        case OPT_VAL:
            if (cli_parse_fraction(optarg, &val_fraction)) {
                cli_error("data stats", "--val-fraction must be a number in [0, 1), not '%s'", optarg);
                return CLI_USAGE;
            }
            break;
        case OPT_LOWER:
        case OPT_CASED:
            if (lowercase >= 0 && lowercase != (ch == OPT_LOWER)) {
                cli_error("data stats", "--lowercase and --cased exclude each other");
                return CLI_USAGE;
            }
            lowercase = ch == OPT_LOWER;
            break;
        case OPT_JSON: json = 1; break;
        case 'h': fputs(stats_usage, stdout); return CLI_OK;
        default: return CLI_USAGE;
        }
    }
    if (optind < argc) {
        cli_error("data stats", "unexpected argument '%s' (see --help)", argv[optind]);
        return CLI_USAGE;
    }
    if (lowercase >= 0 && !vocab) {
        cli_error("data stats", "--lowercase/--cased only apply with --vocab");
        return CLI_USAGE;
    }
    data = cli_data_dir(data);

    char err[IO_ERRLEN];
    io_corpus c = {0};
    io_split s = {0};
    io_leakage leak = {0};
    length_stats ls = {0};
    int lower_used = 0;
    int rc = CLI_FAIL;
    if (io_corpus_load(data, view, &c, err)) {
        cli_error("data stats", "%s (io/fetch-ade-corpus.sh downloads the ADE corpus)", err);
        goto done;
    }
    if (io_split_make(&c, split, seed, IO_TEST_FRACTION, val_fraction, &s, err) || io_split_leakage(&c, &s, &leak, err)) {
        cli_error("data stats", "%s", err);
        goto done;
    }
    if (vocab && token_lengths(&c, vocab, lowercase, &ls, &lower_used, err)) {
        cli_error("data stats", "%s", err);
        goto done;
    }
    size_t pos = io_corpus_positives(&c);
    if (json) {
        cJSON *o = cJSON_CreateObject();
        cJSON_AddStringToObject(o, "data", data);
        cJSON_AddStringToObject(o, "view", io_view_name(view));
        cJSON_AddStringToObject(o, "split", io_split_name(split));
        cJSON_AddNumberToObject(o, "seed", (double)seed);
        cJSON_AddNumberToObject(o, "test_fraction", IO_TEST_FRACTION);
        cJSON_AddNumberToObject(o, "val_fraction", val_fraction);
        cJSON_AddNumberToObject(o, "rows", (double)c.n);
        cJSON_AddNumberToObject(o, "positives", (double)pos);
        cJSON_AddNumberToObject(o, "negatives", (double)(c.n - pos));
        cJSON_AddNumberToObject(o, "train_rows", (double)s.n_train);
        cJSON_AddNumberToObject(o, "val_rows", (double)s.n_val);
        cJSON_AddNumberToObject(o, "test_rows", (double)s.n_test);
        cJSON_AddNumberToObject(o, "train_positives", (double)leak.train_positives);
        cJSON_AddNumberToObject(o, "val_positives", (double)leak.val_positives);
        cJSON_AddNumberToObject(o, "test_positives", (double)leak.test_positives);
        cJSON_AddNumberToObject(o, "leaked_test_rows", (double)leak.leaked_test_rows);
        cJSON_AddNumberToObject(o, "leaked_test_positives", (double)leak.leaked_test_positives);
        cJSON_AddNumberToObject(o, "leaked_val_rows", (double)leak.leaked_val_rows);
        cJSON_AddNumberToObject(o, "leaked_val_positives", (double)leak.leaked_val_positives);
        if (vocab) {
            cJSON *l = cJSON_AddObjectToObject(o, "token_length");
            cJSON_AddStringToObject(l, "vocab", vocab);
            cJSON_AddBoolToObject(l, "lowercase", lower_used);
            cJSON_AddNumberToObject(l, "mean", ls.mean);
            cJSON_AddNumberToObject(l, "p50", (double)ls.p50);
            cJSON_AddNumberToObject(l, "p90", (double)ls.p90);
            cJSON_AddNumberToObject(l, "p99", (double)ls.p99);
            cJSON_AddNumberToObject(l, "max", (double)ls.max);
            /* [[length, rows], ...] ascending: what benchmarks sample lengths from */
            cJSON *h = cJSON_AddArrayToObject(l, "histogram");
            for (size_t i = 0; i < ls.n;) {
                size_t j = i;
                while (j < ls.n && ls.sorted[j] == ls.sorted[i])
                    j++;
                cJSON *pair = cJSON_CreateArray();
                cJSON_AddItemToArray(pair, cJSON_CreateNumber(ls.sorted[i]));
                cJSON_AddItemToArray(pair, cJSON_CreateNumber((double)(j - i)));
                cJSON_AddItemToArray(h, pair);
                i = j;
            }
        }
        char *txt = cJSON_PrintUnformatted(o);
        cJSON_Delete(o);
        if (!txt) {
            cli_error("data stats", "out of memory");
            goto done;
        }
        puts(txt);
        cJSON_free(txt);
    } else {
        printf("corpus   %s (view %s)\n", data, io_view_name(view));
        printf("rows     %zu: %zu positive (%.1f%%), %zu negative\n", c.n, pos, pct(pos, c.n), c.n - pos);
        printf("split    %s, seed %llu, test 20%%, val %.0f%% of the rest\n", io_split_name(split),
               (unsigned long long)seed, 100.0 * val_fraction);
        printf("  train  %6zu rows, %5zu positive\n", s.n_train, leak.train_positives);
        printf("  val    %6zu rows, %5zu positive\n", s.n_val, leak.val_positives);
        printf("  test   %6zu rows, %5zu positive\n", s.n_test, leak.test_positives);
        if (vocab)
            printf("tokens   p50 %zu, p90 %zu, p99 %zu, max %zu, mean %.1f (%s, %s, [CLS]/[SEP] included)\n",
                   ls.p50, ls.p90, ls.p99, ls.max, ls.mean, vocab, lower_used ? "lowercased" : "cased");
        printf("leakage  test rows whose exact text is in train: %zu of %zu (%.1f%%);"
               " test positives: %zu of %zu (%.1f%%)\n",
               leak.leaked_test_rows, s.n_test, pct(leak.leaked_test_rows, s.n_test),
               leak.leaked_test_positives, leak.test_positives,
               pct(leak.leaked_test_positives, leak.test_positives));
        printf("         val rows whose exact text is in train: %zu of %zu (%.1f%%)\n", leak.leaked_val_rows,
               s.n_val, pct(leak.leaked_val_rows, s.n_val));
        if (leak.leaked_test_rows)
            printf("warning: test scores on this split are inflated by memorised sentences; "
                   "--split grouped leaks none\n");
    }
    rc = CLI_OK;
done:
    free(ls.sorted);
    io_split_free(&s);
    io_corpus_free(&c);
    return rc;
}

static const char *const split_usage =
    "usage: adebert data split --out DIR [--data DIR|FILE] [--view hf|dedup]\n"
    "                          [--split random|stratified|grouped] [--seed N]\n"
    "                          [--val-fraction F] [--test-fraction F]\n"
    "\n"
    "Writes the rows of one split as DIR/train.jsonl, val.jsonl and test.jsonl (one\n"
    "object per row: id = row index in the view, text, label, group = PubMed id) and\n"
    "DIR/manifest.json (the options, rows, positives and sha256 of each file). `train\n"
    "--data DIR` and `eval --data DIR` read such a folder (its hashes are checked and\n"
    "recorded with the run), and so do the baselines in experiments/baselines: every\n"
    "side can be shown to have used the same rows. DIR is created 0700, files 0600\n"
    "(the text may be patient data), written under a temporary name and renamed.\n"
    "\n"
    "  --out DIR          the folder to create (must not exist)\n"
    "  --data DIR|FILE    corpus [the compiled-in ADE corpus]\n"
    "  --view hf|dedup    [hf]\n"
    "  --split KIND       random | stratified | grouped [random]\n"
    "  --seed N           split seed [42]\n"
    "  --val-fraction F   share of train held out for validation [0.1]; 0: none\n"
    "  --test-fraction F  share of all rows in test [0.2]\n";

static int data_split(int argc, char **argv)
{
    const char *data = NULL, *out = NULL;
    io_view view = IO_VIEW_HF;
    io_split_kind split = IO_SPLIT_RANDOM;
    uint64_t seed = 42;
    double val_fraction = 0.1, test_fraction = IO_TEST_FRACTION;
    enum { OPT_TEST = 300 };
    static const struct option opts[] = {
        {"data", required_argument, NULL, 'd'},   {"view", required_argument, NULL, 'v'},
        {"split", required_argument, NULL, 's'},  {"seed", required_argument, NULL, 'S'},
        {"val-fraction", required_argument, NULL, OPT_VAL},
        {"test-fraction", required_argument, NULL, OPT_TEST},
        {"out", required_argument, NULL, 'o'},    {"help", no_argument, NULL, 'h'},
        {0, 0, 0, 0}};
    optind = 1;
    int ch;
    while ((ch = cli_getopt(argc, argv, "data split", ":h", opts)) != -1) {
        switch (ch) {
        case 'd': data = optarg; break;
        case 'o': out = optarg; break;
        case 'v':
            if (io_view_parse(optarg, &view)) {
                cli_error("data split", "--view must be hf or dedup, not '%s'", optarg);
                return CLI_USAGE;
            }
            break;
        case 's':
            if (io_split_parse(optarg, &split)) {
                cli_error("data split", "--split must be random, stratified or grouped, not '%s'", optarg);
                return CLI_USAGE;
            }
            break;
        case 'S':
            if (cli_parse_u64(optarg, &seed)) {
                cli_error("data split", "--seed must be a non-negative integer, not '%s'", optarg);
                return CLI_USAGE;
            }
            break;
        case OPT_VAL:
        case OPT_TEST:
            if (cli_parse_fraction(optarg, ch == OPT_VAL ? &val_fraction : &test_fraction) ||
                (ch == OPT_TEST && test_fraction <= 0)) {
                cli_error("data split", "--%s must be a number in %s, not '%s'",
                          ch == OPT_VAL ? "val-fraction" : "test-fraction", ch == OPT_VAL ? "[0, 1)" : "(0, 1)",
                          optarg);
                return CLI_USAGE;
            }
            break;
        case 'h': fputs(split_usage, stdout); return CLI_OK;
        default: return CLI_USAGE;
        }
    }
    if (optind < argc) {
        cli_error("data split", "unexpected argument '%s' (see --help)", argv[optind]);
        return CLI_USAGE;
    }
    if (!out) {
        cli_error("data split", "--out DIR is required (see --help)");
        return CLI_USAGE;
    }
    data = cli_data_dir(data);
    char err[IO_ERRLEN];
    io_corpus c = {0};
    io_split s = {0};
    int rc = CLI_FAIL;
    if (io_splitdir_is(data)) {
        cli_error("data split", "%s is already a split folder", data);
        return CLI_USAGE;
    }
    if (io_corpus_load(data, view, &c, err) ||
        io_split_make(&c, split, seed, test_fraction, val_fraction, &s, err)) {
        cli_error("data split", "%s", err);
        goto done;
    }
    char opts_json[1400];
    cJSON *o = cJSON_CreateObject();
    cJSON_AddStringToObject(o, "data", data);
    cJSON_AddStringToObject(o, "view", io_view_name(view));
    cJSON_AddStringToObject(o, "split", io_split_name(split));
    snprintf(opts_json, sizeof opts_json, "%llu", (unsigned long long)seed);
    cJSON_AddStringToObject(o, "seed", opts_json);
    cJSON_AddNumberToObject(o, "test_fraction", test_fraction);
    cJSON_AddNumberToObject(o, "val_fraction", val_fraction);
    io_leakage lk;
    if (io_split_leakage(&c, &s, &lk, err) == 0) {
        cJSON *l = cJSON_AddObjectToObject(o, "leakage");
        cJSON_AddNumberToObject(l, "test_rows_in_train", (double)lk.leaked_test_rows);
        cJSON_AddNumberToObject(l, "test_positives_in_train", (double)lk.leaked_test_positives);
        cJSON_AddNumberToObject(l, "test_positives", (double)lk.test_positives);
    }
    char *oj = cJSON_PrintUnformatted(o);
    cJSON_Delete(o);
    if (!oj || cli_mkdir_parents(out, err, sizeof err) || io_splitdir_write(out, &c, &s, oj, err)) {
        cli_error("data split", "%s", oj ? err : "out of memory");
        free(oj);
        goto done;
    }
    free(oj);
    printf("adebert data split: %s view %s, split %s (seed %llu): train %zu, val %zu, test %zu -> %s\n", data,
           io_view_name(view), io_split_name(split), (unsigned long long)seed, s.n_train, s.n_val, s.n_test, out);
    rc = CLI_OK;
done:
    io_split_free(&s);
    io_corpus_free(&c);
    return rc;
}

int cmd_data(int argc, char **argv)
{
    if (argc < 2 || !strcmp(argv[1], "--help") || !strcmp(argv[1], "-h")) {
        fputs("usage: adebert data stats|split [options]   (adebert data stats --help, data split --help)\n",
              argc < 2 ? stderr : stdout);
        return argc < 2 ? CLI_USAGE : CLI_OK;
    }
    if (!strcmp(argv[1], "stats"))
        return data_stats(argc - 1, argv + 1);
    if (!strcmp(argv[1], "split"))
        return data_split(argc - 1, argv + 1);
    cli_error("data", "unknown subcommand '%s' (stats or split)", argv[1]);
    return CLI_USAGE;
}
