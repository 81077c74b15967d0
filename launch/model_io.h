/* launch/model_io: a trained model as files. What train, eval, predict, import and
 * export share: the checkpoint's tensor table from the model's parameter table, the
 * data settings recorded with it, and "open a checkpoint as a ready model".
 *
 * Checkpoint contents written by adebert (io/checkpoint.h has the HDF5 layout):
 *   config_json  the model's Hugging Face config.json text (io_config_to_json)
 *   data_json    the data settings (mio_data below) as a JSON object
 *   vocab        the WordPiece vocabulary, token id = index
 *   lowercase    the tokenizer casing used in training
 * Without HDF5 (ADEBERT_HDF5=OFF) the checkpoint functions fail with one line
 * saying so; the rest works. */
#ifndef ADEBERT_MODEL_IO_H
#define ADEBERT_MODEL_IO_H

#include <stddef.h>
#include <stdint.h>

#include "io/io.h"
#include "nn/nn.h"

#ifdef ADEBERT_HAVE_HDF5
#include "io/checkpoint.h"
#endif

#define MIO_ERRLEN 512

/* Data settings: which rows "train/val/test" are, and how text becomes ids. */
typedef struct {
    char data[1024];     /* corpus folder used in training (informational) */
    io_view view;
    io_split_kind split;
    uint64_t seed;
    double test_fraction, val_fraction;
    int64_t limit;       /* --limit (0: all rows) */
    int max_seq_len;
    int lowercase;
} mio_data;

/* The train/val/test rows these settings name: the split, then --limit's cap (at
 * most `limit` train rows and limit/4 validation and test rows). Train and eval
 * both call this, so "the test split" is the same rows for both. */
int mio_make_split(const io_corpus *c, const mio_data *d, io_split *out, char err[IO_ERRLEN]);
/* --limit's cap alone (mio_make_split's second half), for a caller that looks at the
 * whole split first: train checks --augment rows against every val/test row. */
void mio_limit_split(io_split *s, const mio_data *d);

/* JSON object text (malloc'd) / parse back (unknown keys ignored; missing ones are
 * errors). extra (may be NULL): a JSON object whose members are added as well. */
char *mio_data_to_json(const mio_data *d, const char *extra);
int mio_data_from_json(const char *json, mio_data *d, char err[MIO_ERRLEN]);

/* A model opened from a checkpoint. */
typedef struct {
    nn_config mc;
    io_vocab *vocab;     /* from the checkpoint's /tokenizer/vocab */
    mio_data data;
    int64_t epoch, step; /* of the checkpoint */
    char *metrics;       /* metrics.jsonl text stored in it (may be NULL) */
    size_t metrics_len;
    char *data_json;     /* the whole data settings object as stored (members that
                            train adds, e.g. "train" and "loop", are for it to read) */
} mio_info;

void mio_info_free(mio_info *i);

/* Reads the state of CKPT (verified checksums), parses its config and data
 * settings and rebuilds its vocab. No tensors are read. */
int mio_open(const char *path, mio_info *info, char err[MIO_ERRLEN]);

/* Loads CKPT's parameters (and, when opt is not NULL, its AdamW moments and step)
 * into a model whose configuration must match the checkpoint's. */
int mio_load_params(const char *path, nn_model *m, nn_adamw *opt, char err[MIO_ERRLEN]);

/* mio_open + a forward-only model (nn_model_create_inference) on `be` with an arena
 * for batches of up to max_seqs sequences of up to max_seq_len tokens (0: the
 * checkpoint's max_seq_len) + its parameters. */
int mio_open_model(const char *path, nn_backend *be, int64_t max_seqs, int64_t max_seq_len, mio_info *info,
                   nn_model **model, char err[MIO_ERRLEN]);

#ifdef ADEBERT_HAVE_HDF5
/* The checkpoint view of the model's parameter table (malloc'd; names point into
 * the model, which must outlive the table). */
int mio_table(const nn_model *m, ckpt_tensor **out, size_t *n, char err[MIO_ERRLEN]);
#endif

/* Everything needed to save: the model and (optionally) its optimizer, plus the
 * state fields of io/checkpoint.h that the caller knows. Writes atomically. */
typedef struct {
    const nn_config *mc;
    const mio_data *data;
    const io_vocab *vocab;
    int64_t epoch, step, batch_in_epoch;
    uint64_t seed;
    uint64_t rng_counters[4];
    double loss_scale;
    int64_t good_steps;
    const char *metrics; /* may be NULL */
    size_t metrics_len;
    const char *data_extra; /* JSON object merged into the data settings (may be NULL) */
} mio_save_args;

int mio_save(const char *path, nn_model *m, nn_adamw *opt, const mio_save_args *a, char err[MIO_ERRLEN]);

#endif
