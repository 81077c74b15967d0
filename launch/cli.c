#include "launch/cli.h"

#include <errno.h>
#include <getopt.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

void cli_error(const char *cmd, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    fprintf(stderr, "adebert%s%s: ", cmd ? " " : "", cmd ? cmd : "");
    vfprintf(stderr, fmt, ap);
    fputc('\n', stderr);
    va_end(ap);
}

int cli_parse_u64(const char *s, uint64_t *out)
{
    if (!s || !*s || *s == '-' || *s == '+')
        return -1;
    errno = 0;
    char *end = NULL;
    unsigned long long v = strtoull(s, &end, 10);
    if (errno || *end)
        return -1;
    *out = (uint64_t)v;
    return 0;
}

int cli_parse_size(const char *s, size_t min, size_t max, size_t *out)
{
    uint64_t v;
    if (cli_parse_u64(s, &v) || v < min || v > max)
        return -1;
    *out = (size_t)v;
    return 0;
}

int cli_parse_fraction(const char *s, double *out)
{
    if (!s || !*s)
        return -1;
    errno = 0;
    char *end = NULL;
    double v = strtod(s, &end);
    if (errno || *end || !isfinite(v) || v < 0.0 || v >= 1.0)
        return -1;
    *out = v;
    return 0;
}

const char *cli_data_dir(const char *flag_value)
{
    if (flag_value && *flag_value)
        return flag_value;
    const char *env = getenv("ADEBERT_DATA");
    if (env && *env)
        return env;
    return ADEBERT_DEFAULT_DATA;
}

int cli_resolve_lowercase(const char *cmd, int flag, int vocab_is_cased)
{
    if (flag >= 0)
        return flag;
    fprintf(stderr, "adebert %s: note: no --lowercase/--cased given; using %s (the vocab %s uppercase tokens)\n",
            cmd, vocab_is_cased ? "--cased" : "--lowercase", vocab_is_cased ? "has" : "has no");
    return !vocab_is_cased;
}

int cli_getopt(int argc, char **argv, const char *cmd, const char *shortopts, const struct option *longopts)
{
    opterr = 0;
    int idx = 0;
    int c = getopt_long(argc, argv, shortopts, longopts, &idx);
    if (c == '?') {
        if (optopt)
            cli_error(cmd, "option -%c is unknown or needs a value (see --help)", optopt);
        else
            cli_error(cmd, "unknown option or missing value: '%s' (see --help)", argv[optind - 1]);
    } else if (c == ':') {
        cli_error(cmd, "option '%s' needs a value (see --help)", argv[optind - 1]);
    }
    return c;
}

void cli_nn_config(nn_config *n, const io_model_config *c)
{
    n->vocab_size = c->vocab_size;
    n->hidden_size = c->hidden_size;
    n->num_hidden_layers = c->num_hidden_layers;
    n->num_attention_heads = c->num_attention_heads;
    n->intermediate_size = c->intermediate_size;
    n->max_position_embeddings = c->max_position_embeddings;
    n->type_vocab_size = c->type_vocab_size;
    n->num_labels = c->num_labels;
    n->pad_token_id = c->pad_token_id;
    n->layer_norm_eps = c->layer_norm_eps;
    n->hidden_dropout_prob = c->hidden_dropout_prob;
    n->attention_probs_dropout_prob = c->attention_probs_dropout_prob;
    n->classifier_dropout = c->classifier_dropout;
}
