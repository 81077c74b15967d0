/* launch/hf_io: Hugging Face model directories <-> adebert models (the glue
 * between io/hf, which knows files and names, and nn, which knows the model).
 * Used by `adebert import`, `adebert export` and `adebert train --model/--init
 * HF_DIR`.
 *
 * Import rules (issue 5): parameters under their canonical HF names, found in the
 * file with or without the `bert.` prefix and with old gamma/beta LayerNorm names;
 * shapes must match config.json; cls.* heads and position_ids/token_type_ids
 * buffers are dropped silently; other unknown tensors are dropped with a warning; a
 * missing pooler or classifier keeps the HF initialisation from the seed
 * (nn_model_init_weights) and is reported by name; any other missing tensor is an
 * error. Reports are lines "adebert CMD: warning: ...": printed on stderr at once
 * when `notes` is NULL, else appended (each ending in '\n') to notes[notes_cap], so
 * that a caller can print them only once the whole command has succeeded (a failing
 * command prints exactly one line). */
#ifndef ADEBERT_HF_IO_H
#define ADEBERT_HF_IO_H

#include <stddef.h>
#include <stdint.h>

#include "io/io.h"
#include "nn/nn.h"

#define HFIO_ERRLEN 512

/* 1 when `dir` is a directory holding config.json (an HF model directory), else 0.
 * Lets `--model X` tell an HF directory from a preset or a config.json file. */
int hfio_is_model_dir(const char *dir);

/* 1 when `dir` holds model.safetensors or pytorch_model.bin, else 0. */
int hfio_has_weights(const char *dir);

/* Reads DIR/config.json (io_config_load), DIR/vocab.txt and the casing: the flag
 * (1 lowercase, 0 cased, -1 none) wins; else tokenizer_config.json's do_lower_case;
 * else lowercase as Transformers does, with a loud warning on stderr when the vocab
 * looks cased. A flag that contradicts tokenizer_config.json is noted (see notes).
 * Also checks that the vocabulary fits config.json's vocab_size.
 * `cmd` names the subcommand in stderr lines. On success *vocab is owned by the
 * caller (io_vocab_free). */
int hfio_inspect(const char *cmd, const char *dir, int lowercase_flag, nn_config *mc, io_vocab **vocab,
                 int *lowercase, char *notes, size_t notes_cap, char err[HFIO_ERRLEN]);

/* Loads DIR's weights into an existing model built from DIR's config: first
 * nn_model_init_weights(seed) for the whole model, then every tensor the file has
 * overwrites its part. Reports initialised and ignored tensors (see notes). The model's parameters are unchanged on failure only if the failure
 * happens before the initialisation (bad directory); otherwise they are undefined. */
int hfio_load_weights(const char *cmd, const char *dir, nn_model *m, uint64_t seed, char *notes, size_t notes_cap,
                      char err[HFIO_ERRLEN]);

/* Writes an HF directory for `m` (model.safetensors with {"format": "pt"},
 * config.json, vocab.txt, tokenizer_config.json) into `dir`, which must exist and
 * should be empty (the caller makes it atomic: a temporary directory renamed). */
int hfio_write_dir(const char *dir, nn_model *m, const nn_config *mc, const io_vocab *vocab, int lowercase,
                   int64_t model_max_length, char err[HFIO_ERRLEN]);

#endif
