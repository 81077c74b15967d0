/* launch/hf_io: Hugging Face directories <-> adebert models (see hf_io.h). */
#include "launch/hf_io.h"
#include "io/hf.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

int hfio_is_model_dir(const char *dir)
{
    struct stat sb;
    char path[1200];
    if (!dir || stat(dir, &sb) != 0 || !S_ISDIR(sb.st_mode))
        return 0;
    if (snprintf(path, sizeof path, "%s/%s", dir, IO_HF_CONFIG) >= (int)sizeof path)
        return 0;
    return stat(path, &sb) == 0 && S_ISREG(sb.st_mode);
}

int hfio_has_weights(const char *dir)
{
    char path[1200], err[IO_ERRLEN];
    return io_hf_find_weights(dir, path, sizeof path, err) == 0;
}

/* one report line: printed, or appended to notes */
static void note(char *notes, size_t cap, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
static void note(char *notes, size_t cap, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    if (!notes) {
        vfprintf(stderr, fmt, ap);
    } else {
        size_t o = strnlen(notes, cap);
        if (o + 1 < cap)
            vsnprintf(notes + o, cap - o, fmt, ap);
    }
    va_end(ap);
}

int hfio_inspect(const char *cmd, const char *dir, int lowercase_flag, nn_config *mc, io_vocab **vocab,
                 int *lowercase, char *notes, size_t notes_cap, char err[HFIO_ERRLEN])
{
    *vocab = NULL;
    memset(mc, 0, sizeof *mc);
    char path[1200], ierr[IO_ERRLEN];
    struct stat sb;
    if (stat(dir, &sb) != 0 || !S_ISDIR(sb.st_mode)) {
        snprintf(err, HFIO_ERRLEN, "%.400s: not a directory (want a Hugging Face model directory)", dir);
        return -1;
    }
    if (snprintf(path, sizeof path, "%s/%s", dir, IO_HF_CONFIG) >= (int)sizeof path) {
        snprintf(err, HFIO_ERRLEN, "%.400s: path too long", dir);
        return -1;
    }
    if (io_config_load(path, mc, ierr)) {
        snprintf(err, HFIO_ERRLEN, "%s", ierr);
        return -1;
    }
    snprintf(path, sizeof path, "%s/%s", dir, IO_HF_VOCAB);
    if (stat(path, &sb) != 0) {
        snprintf(err, HFIO_ERRLEN, "%.400s: missing %s (the WordPiece vocabulary)", dir, IO_HF_VOCAB);
        return -1;
    }
    if (io_vocab_load(path, vocab, ierr)) {
        snprintf(err, HFIO_ERRLEN, "%s", ierr);
        return -1;
    }
    if ((int64_t)io_vocab_size(*vocab) > mc->vocab_size) {
        snprintf(err, HFIO_ERRLEN, "%.300s: %zu tokens in %s but config.json's vocab_size is %lld", dir,
                 io_vocab_size(*vocab), IO_HF_VOCAB, (long long)mc->vocab_size);
        goto fail;
    }
    int present = 0, dlc = 1;
    char tnotes[IO_ERRLEN];
    if (io_hf_tokenizer_config(dir, &present, &dlc, tnotes, sizeof tnotes, ierr)) {
        snprintf(err, HFIO_ERRLEN, "%s", ierr);
        goto fail;
    }
    int cased_vocab = io_vocab_is_cased(*vocab);
    if (lowercase_flag >= 0) {
        *lowercase = lowercase_flag;
        if (present && dlc != lowercase_flag)
            note(notes, notes_cap, "adebert %s: note: %s overrides %s's do_lower_case=%s\n", cmd,
                    lowercase_flag ? "--lowercase" : "--cased", IO_HF_TOKENIZER_CONFIG, dlc ? "true" : "false");
    } else if (present) {
        *lowercase = dlc;
    } else {
        *lowercase = 1;
        if (cased_vocab)
            note(notes, notes_cap,
                    "adebert %s: WARNING: %s has no %s, so it lowercases as Hugging Face does, but its vocab "
                    "has uppercase tokens (a cased model?); pass --cased if it was trained cased\n",
                    cmd, dir, IO_HF_TOKENIZER_CONFIG);
    }
    if (tnotes[0])
        note(notes, notes_cap, "adebert %s: warning: %s: %s\n", cmd, IO_HF_TOKENIZER_CONFIG, tnotes);
    return 0;
fail:
    io_vocab_free(*vocab);
    *vocab = NULL;
    return -1;
}

/* names[0..n) as "a, b, c (and K more)" into buf */
static void list_names(char *buf, size_t cap, const char *const *names, size_t n)
{
    size_t o = 0, shown = 0;
    buf[0] = 0;
    for (size_t i = 0; i < n; i++) {
        size_t need = strlen(names[i]) + 2;
        if (o + need + 24 >= cap)
            break;
        o += (size_t)snprintf(buf + o, cap - o, "%s%s", i ? ", " : "", names[i]);
        shown++;
    }
    if (shown < n)
        snprintf(buf + o, cap - o, "%s(and %zu more)", shown ? " " : "", n - shown);
}

int hfio_load_weights(const char *cmd, const char *dir, nn_model *m, uint64_t seed, char *notes, size_t notes_cap,
                      char err[HFIO_ERRLEN])
{
    io_hf_weights w;
    char ierr[IO_ERRLEN], nerr[NN_ERRLEN];
    if (io_hf_weights_open(dir, &w, ierr)) {
        snprintf(err, HFIO_ERRLEN, "%s", ierr);
        return -1;
    }
    size_t np = 0, nfl = nn_model_num_params(m);
    const nn_param *p = nn_model_params(m, &np);
    io_hf_target *t = calloc(np ? np : 1, sizeof *t);
    unsigned char *found = calloc(np ? np : 1, 1);
    float *host = malloc((nfl ? nfl : 1) * sizeof *host);
    const char **missing = calloc(np ? np : 1, sizeof *missing);
    char **unx = NULL;
    size_t nunx = 0;
    int rc = -1;
    if (!t || !found || !host || !missing) {
        snprintf(err, HFIO_ERRLEN, "%.400s: out of memory", dir);
        goto out;
    }
    for (size_t i = 0; i < np; i++) {
        t[i].name = p[i].name;
        t[i].offset = p[i].offset;
        t[i].numel = p[i].numel;
        t[i].ndim = p[i].ndim;
        for (int d = 0; d < p[i].ndim && d < IO_ST_MAX_DIMS; d++)
            t[i].shape[d] = p[i].shape[d];
    }
    if (nn_model_init_weights(m, seed, nerr) || nn_model_get_params(m, host, nfl, nerr)) {
        snprintf(err, HFIO_ERRLEN, "%s", nerr);
        goto out;
    }
    if (io_hf_weights_load(&w, t, np, host, nfl, found, &unx, &nunx, ierr)) {
        snprintf(err, HFIO_ERRLEN, "%s", ierr);
        goto out;
    }
    size_t nmiss = 0, nreq = 0;
    const char *first_req = NULL;
    for (size_t i = 0; i < np; i++) {
        if (found[i])
            continue;
        /* HF itself initialises a missing pooler or classification head (a BertModel,
         * BertForPreTraining or BertForMaskedLM file); the encoder must be there. */
        if (strncmp(p[i].name, "bert.pooler.", 12) == 0 || strncmp(p[i].name, "classifier.", 11) == 0) {
            missing[nmiss++] = p[i].name;
        } else {
            if (!first_req)
                first_req = p[i].name;
            nreq++;
        }
    }
    if (nreq) {
        snprintf(err, HFIO_ERRLEN, "%.250s: tensor %s is missing%s (not a BERT model of this config.json?)", w.path,
                 first_req, nreq > 1 ? " (and others)" : "");
        goto out;
    }
    if (nn_model_set_params(m, host, nfl, nerr)) {
        snprintf(err, HFIO_ERRLEN, "%s", nerr);
        goto out;
    }
    char line[1024];
    if (nmiss) {
        list_names(line, sizeof line, missing, nmiss);
        note(notes, notes_cap, "adebert %s: warning: not in %s, initialised (HF init, seed %llu): %s\n", cmd, w.path,
                (unsigned long long)seed, line);
    }
    if (nunx) {
        list_names(line, sizeof line, (const char *const *)unx, nunx);
        note(notes, notes_cap, "adebert %s: warning: %zu tensor%s of %s not used: %s\n", cmd, nunx, nunx > 1 ? "s" : "",
                w.path, line);
    }
    rc = 0;
out:
    io_hf_free_names(unx, nunx);
    io_hf_weights_free(&w);
    free(t);
    free(found);
    free(host);
    free(missing);
    return rc;
}

int hfio_write_dir(const char *dir, nn_model *m, const nn_config *mc, const io_vocab *vocab, int lowercase,
                   int64_t model_max_length, char err[HFIO_ERRLEN])
{
    size_t np = 0, nfl = nn_model_num_params(m);
    const nn_param *p = nn_model_params(m, &np);
    float *host = malloc((nfl ? nfl : 1) * sizeof *host);
    const char **names = calloc(np ? np : 1, sizeof *names);
    const float **data = calloc(np ? np : 1, sizeof *data);
    int *nd = calloc(np ? np : 1, sizeof *nd);
    int64_t(*shapes)[IO_ST_MAX_DIMS] = calloc(np ? np : 1, sizeof *shapes);
    char *cfg = io_hf_config_json(mc);
    char *tok = io_hf_tokenizer_config_json(lowercase, model_max_length);
    char path[1200], ierr[IO_ERRLEN], nerr[NN_ERRLEN];
    int rc = -1;
    if (!host || !names || !data || !nd || !shapes || !cfg || !tok) {
        snprintf(err, HFIO_ERRLEN, "out of memory");
        goto out;
    }
    if (nn_model_get_params(m, host, nfl, nerr)) {
        snprintf(err, HFIO_ERRLEN, "%s", nerr);
        goto out;
    }
    for (size_t i = 0; i < np; i++) {
        names[i] = p[i].name;
        data[i] = host + p[i].offset;
        nd[i] = p[i].ndim;
        for (int d = 0; d < p[i].ndim; d++)
            shapes[i][d] = p[i].shape[d];
    }
    static const char *const mk[] = {"format"}, *const mv[] = {"pt"};
#define PATH(f)                                                                                                        \
    if (snprintf(path, sizeof path, "%s/%s", dir, f) >= (int)sizeof path) {                                           \
        snprintf(err, HFIO_ERRLEN, "%.400s: path too long", dir);                                                     \
        goto out;                                                                                                      \
    }
    PATH(IO_HF_SAFETENSORS);
    if (io_safetensors_write_f32_meta(path, np, names, data, nd, (const int64_t(*)[IO_ST_MAX_DIMS])shapes, 1, mk, mv,
                                      ierr))
        goto ioerr;
    PATH(IO_HF_CONFIG);
    if (io_hf_write_text(path, cfg, ierr))
        goto ioerr;
    PATH(IO_HF_VOCAB);
    if (io_hf_write_vocab(path, vocab, ierr))
        goto ioerr;
    PATH(IO_HF_TOKENIZER_CONFIG);
    if (io_hf_write_text(path, tok, ierr))
        goto ioerr;
#undef PATH
    rc = 0;
    goto out;
ioerr:
    snprintf(err, HFIO_ERRLEN, "%s", ierr);
out:
    free(host);
    free(names);
    free(data);
    free(nd);
    free(shapes);
    free(cfg);
    free(tok);
    return rc;
}
