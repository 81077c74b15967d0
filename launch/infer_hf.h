/* launch/infer_hf: a Hugging Face model folder (adebert export's output, or any
 * BertForSequenceClassification folder `adebert import` accepts) opened as an infer
 * scorer, in memory, without writing a checkpoint: the same infer_ctx that
 * infer_open gives, loaded through hf_io as `adebert import` loads it, closed with
 * infer_close. Kept apart from infer.c so that infer's own changes merge cleanly. */
#ifndef ADEBERT_INFER_HF_H
#define ADEBERT_INFER_HF_H

#include "launch/infer.h"

/* cmd names the subcommand in warnings (hf_io's notes: printed on stderr only on
 * success). max_seq_len 0: min(128, max_position_embeddings), as import records. */
int infer_open_hf(infer_ctx *c, const char *cmd, const char *dir, int64_t max_seqs, int64_t max_seq_len,
                  int threads, char err[MIO_ERRLEN]);

#endif
