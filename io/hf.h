/* io/hf: Hugging Face model directories (DESIGN.md "Model import/export"), as files
 * and names only: which files a directory holds, the weights in it as a table of
 * named tensors (model.safetensors or pytorch_model.bin, through the untrusting
 * readers of io.h), the mapping of the names people find in such files onto the
 * canonical BertForSequenceClassification names, tokenizer_config.json, and the
 * texts an export writes. Nothing here knows about backends or models: launch/hf_io
 * joins this to nn.
 *
 * Errors follow io.h: 0 on success, non-zero with one line in err. */
#ifndef ADEBERT_IO_HF_H
#define ADEBERT_IO_HF_H

#include <stddef.h>
#include <stdint.h>

#include "io/io.h"

/* File names inside an HF directory. */
#define IO_HF_CONFIG "config.json"
#define IO_HF_VOCAB "vocab.txt"
#define IO_HF_TOKENIZER_CONFIG "tokenizer_config.json"
#define IO_HF_SAFETENSORS "model.safetensors"
#define IO_HF_TORCHBIN "pytorch_model.bin"

/* Which weights file `dir` holds: model.safetensors (preferred, as Transformers
 * does) or pytorch_model.bin, written into path[cap]. Returns 0 when one exists,
 * 1 when neither does (path then names the directory), -1 on an error (dir is not a
 * directory, the path is too long, only a sharded *.index.json is present). */
int io_hf_find_weights(const char *dir, char *path, size_t cap, char err[IO_ERRLEN]);

/* The tensors of a weights file, whichever format. */
typedef struct {
    int is_torchbin;    /* 0: safetensors, 1: pytorch_model.bin */
    io_safetensors st;
    io_torchbin tb;
    char path[1024];
} io_hf_weights;

/* Opens model.safetensors or pytorch_model.bin in `dir` (io_hf_find_weights), in the
 * format its name says; a directory without either is an error. */
int io_hf_weights_open(const char *dir, io_hf_weights *w, char err[IO_ERRLEN]);
/* The same on one file, its format chosen by content (zip/legacy pickle magic vs a
 * safetensors header); used by tests. */
int io_hf_weights_open_file(const char *path, io_hf_weights *w, char err[IO_ERRLEN]);
void io_hf_weights_free(io_hf_weights *w);
size_t io_hf_weights_count(const io_hf_weights *w);
/* Name, dtype and shape of tensor i (ndim may be 0 for a scalar). */
const char *io_hf_weights_name(const io_hf_weights *w, size_t i);
void io_hf_weights_info(const io_hf_weights *w, size_t i, io_dtype *dtype, int *ndim, int64_t shape[IO_ST_MAX_DIMS]);
/* Tensor i as fp32 (F32/F16/BF16 only) into dst[n], n = its element count. */
int io_hf_weights_read_f32(const io_hf_weights *w, size_t i, float *dst, size_t n, char err[IO_ERRLEN]);

/* What a file's tensor name means for BertForSequenceClassification. */
typedef enum {
    IO_HF_NAME_PARAM = 0, /* a parameter: its canonical name was written to out */
    IO_HF_NAME_IGNORED,   /* a pretraining head (cls.*) or a buffer (position_ids,
                             token_type_ids): dropped silently */
    IO_HF_NAME_UNKNOWN    /* anything else (reported by the caller, then dropped) */
} io_hf_name_kind;

/* Canonical name of `name`: the `bert.` prefix added to embeddings.* / encoder.* /
 * pooler.* (a BertModel saved alone), old LayerNorm `gamma`/`beta` renamed
 * `weight`/`bias`; classifier.* kept. out[cap] receives it (kind PARAM only). */
io_hf_name_kind io_hf_canonical_name(const char *name, char *out, size_t cap);

/* A tensor the caller wants, in its flat fp32 buffer (like ckpt_tensor). */
typedef struct {
    const char *name; /* canonical */
    size_t offset, numel;
    int ndim;
    int64_t shape[IO_ST_MAX_DIMS];
} io_hf_target;

/* Load every target found in `w` (under any accepted spelling of its name) into
 * buf[offset .. offset + numel) (buf holds buf_n floats); found[i] is set to 1 for
 * those, 0 for the others, whose range of buf is left untouched. Errors: a shape
 * that differs from the target's, two file tensors that map to the same name, a
 * dtype other than F32/F16/BF16 for a target, a target range outside buf.
 * The names of file tensors that map to no target and are not IO_HF_NAME_IGNORED
 * are returned in *unexpected (malloc'd array of malloc'd strings, *n_unexpected
 * entries; free with io_hf_free_names), for the caller to report. */
int io_hf_weights_load(const io_hf_weights *w, const io_hf_target *targets, size_t n, float *buf, size_t buf_n,
                       unsigned char *found, char ***unexpected, size_t *n_unexpected, char err[IO_ERRLEN]);
void io_hf_free_names(char **names, size_t n);

/* tokenizer_config.json in `dir`: *present = 0 when the file does not exist (then
 * *do_lower_case = 1, BertTokenizer's default, as HF does). When present,
 * do_lower_case is read (absent: 1); a value that is not a boolean, or a file that
 * is not a JSON object, is an error. notes[cap] receives a line (or "") about
 * settings adebert's tokenizer does not follow (strip_accents set apart from the
 * casing, tokenize_chinese_chars false), for the caller to print. */
int io_hf_tokenizer_config(const char *dir, int *present, int *do_lower_case, char *notes, size_t notes_cap,
                           char err[IO_ERRLEN]);

/* Export texts (malloc'd, NULL on OOM). config.json: io_config_to_json's fields with
 * id2label {0: Not_AE, 1: Adverse_Event} and the matching label2id when num_labels is
 * 2 (LABEL_i otherwise), and torch_dtype float32. tokenizer_config.json:
 * do_lower_case (= strip accents, as adebert's tokenizer does), tokenizer_class
 * BertTokenizer, model_max_length, the special tokens. */
char *io_hf_config_json(const nn_config *c);
char *io_hf_tokenizer_config_json(int lowercase, int64_t model_max_length);

/* vocab.txt: one token per line, token id = line number (path written directly;
 * the caller makes the directory atomic). */
int io_hf_write_vocab(const char *path, const io_vocab *v, char err[IO_ERRLEN]);
/* A text file (path written directly, fsync'd). */
int io_hf_write_text(const char *path, const char *text, char err[IO_ERRLEN]);

#endif
