/* adebert tokenize: text lines on stdin -> WordPiece ids (or pieces) on stdout. */
#include "io/io.h"
#include "launch/cli.h"
#include "launch/commands.h"

#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const char *const tokenize_usage =
    "usage: adebert tokenize --vocab FILE [--lowercase|--cased] [--max-seq-len N] [--tokens]\n"
    "\n"
    "Reads UTF-8 text, one sequence per line, on stdin and writes one line per input\n"
    "line: the space-separated token ids, [CLS] and [SEP] included, exactly as Hugging\n"
    "Face's fast BERT tokenizer produces them.\n"
    "\n"
    "  --vocab FILE       WordPiece vocab.txt (token id = 0-based line number)\n"
    "  --lowercase        lowercase and strip accents (uncased models; also what HF does\n"
    "                     for a model without tokenizer_config.json, e.g. BioBERT)\n"
    "  --cased            keep case and accents (cased models)\n"
    "                     [default: --cased if the vocab has uppercase tokens, noted on stderr]\n"
    "  --max-seq-len N    truncate to N tokens in all, keeping [CLS] and [SEP] (N >= 2)\n"
    "                     [default: no truncation]\n"
    "  --tokens           print the word pieces instead of their ids\n";

enum { OPT_LOWER = 256, OPT_CASED, OPT_TOKENS, OPT_MAXLEN };

int cmd_tokenize(int argc, char **argv)
{
    const char *vocab_path = NULL;
    int lowercase = -1, pieces = 0;
    size_t max_len = 0;
    static const struct option opts[] = {{"vocab", required_argument, NULL, 'V'},
                                         {"lowercase", no_argument, NULL, OPT_LOWER},
                                         {"cased", no_argument, NULL, OPT_CASED},
                                         {"max-seq-len", required_argument, NULL, OPT_MAXLEN},
                                         {"tokens", no_argument, NULL, OPT_TOKENS},
                                         {"help", no_argument, NULL, 'h'},
                                         {0, 0, 0, 0}};
    optind = 1;
    int ch;
    while ((ch = cli_getopt(argc, argv, "tokenize", ":h", opts)) != -1) {
        switch (ch) {
        case 'V': vocab_path = optarg; break;
        case OPT_LOWER:
        case OPT_CASED:
            if (lowercase >= 0 && lowercase != (ch == OPT_LOWER)) {
                cli_error("tokenize", "--lowercase and --cased exclude each other");
                return CLI_USAGE;
            }
            lowercase = ch == OPT_LOWER;
            break;
        case OPT_MAXLEN:
            if (cli_parse_size(optarg, 2, 1u << 20, &max_len)) {
                cli_error("tokenize", "--max-seq-len must be an integer in [2, 1048576], not '%s'", optarg);
                return CLI_USAGE;
            }
            break;
        case OPT_TOKENS: pieces = 1; break;
        case 'h': fputs(tokenize_usage, stdout); return CLI_OK;
        default: return CLI_USAGE;
        }
    }
    if (optind < argc) {
        cli_error("tokenize", "unexpected argument '%s' (text comes on stdin; see --help)", argv[optind]);
        return CLI_USAGE;
    }
    if (!vocab_path) {
        cli_error("tokenize", "--vocab FILE is required (see --help)");
        return CLI_USAGE;
    }

    char err[IO_ERRLEN];
    io_vocab *v = NULL;
    io_tokenizer *t = NULL;
    char *line = NULL;
    size_t line_cap = 0;
    int32_t *ids = NULL;
    size_t ids_cap = 0;
    int rc = CLI_FAIL;
    if (io_vocab_load(vocab_path, &v, err) ||
        io_tokenizer_init(&t, v, cli_resolve_lowercase("tokenize", lowercase, io_vocab_is_cased(v)), err)) {
        cli_error("tokenize", "%s", err);
        goto done;
    }
    ssize_t got;
    size_t lineno = 0;
    while ((got = getline(&line, &line_cap, stdin)) >= 0) {
        lineno++;
        size_t len = (size_t)got;
        if (len && line[len - 1] == '\n')
            len--;
        /* Every word piece covers at least one character, so len + 2 ids always fit. */
        size_t limit = max_len ? max_len : len + 2;
        if (limit > ids_cap) {
            int32_t *grown = realloc(ids, limit * sizeof *ids);
            if (!grown) {
                cli_error("tokenize", "stdin line %zu: out of memory", lineno);
                goto done;
            }
            ids = grown;
            ids_cap = limit;
        }
        size_t n = 0;
        if (io_tokenizer_encode(t, line, len, limit, ids, ids_cap, &n, err)) {
            cli_error("tokenize", "stdin line %zu: %s", lineno, err);
            goto done;
        }
        for (size_t i = 0; i < n; i++) {
            if (i)
                putchar(' ');
            if (pieces)
                fputs(io_vocab_token(v, ids[i]), stdout);
            else
                printf("%d", ids[i]);
        }
        putchar('\n');
    }
    if (ferror(stdin)) {
        cli_error("tokenize", "reading stdin failed");
        goto done;
    }
    if (fflush(stdout) != 0 || ferror(stdout)) {
        cli_error("tokenize", "writing stdout failed");
        goto done;
    }
    rc = CLI_OK;
done:
    free(ids);
    free(line);
    io_tokenizer_free(t);
    io_vocab_free(v);
    return rc;
}
