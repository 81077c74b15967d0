/* nn/config: the model's architecture as plain data, and its one validator.
 *
 * The rule: this header includes nothing but the C library and nn/config.c links
 * nothing but libm, so it is the one part of nn that io may use. io parses
 * config.json and the presets into an nn_config (io/config.c) and nn builds models
 * from it (nn/model.c): one type, checked in one place, with no copy between them.
 * Nothing here knows of files (io's side) or of backends (nn's side). */
#ifndef ADEBERT_NN_CONFIG_H
#define ADEBERT_NN_CONFIG_H

#include <stdint.h>

#ifndef NN_ERRLEN
#define NN_ERRLEN 256
#endif

/* The subset of a Hugging Face BertConfig that adebert implements. */
typedef struct {
    int64_t vocab_size;
    int64_t hidden_size;
    int64_t num_hidden_layers;
    int64_t num_attention_heads;
    int64_t intermediate_size;
    int64_t max_position_embeddings;
    int64_t type_vocab_size;
    int64_t num_labels;        /* from num_labels, or the size of id2label; default 2 */
    int64_t pad_token_id;      /* default 0 */
    double layer_norm_eps;     /* default 1e-12 */
    double hidden_dropout_prob;
    double attention_probs_dropout_prob;
    double classifier_dropout; /* < 0: null in config.json => hidden_dropout_prob */
} nn_config;

/* Upper bound on parameters adebert accepts from any config (~8 G fp32 values):
 * larger is rejected by validation before anything is allocated. */
#define NN_MODEL_MAX_PARAMS ((int64_t)2 << 30)

/* Sanity: every size > 0 and below fixed bounds, hidden % heads == 0, dropout
 * probabilities in [0, 1), eps in (0, 1), pad_token_id in [0, vocab), and the
 * parameter count (computed in int64 with overflow checks) <= NN_MODEL_MAX_PARAMS.
 * Run by io on every parsed config and by nn before any allocation. 0 ok. */
int nn_config_validate(const nn_config *c, char err[NN_ERRLEN]);

/* Number of fp32 parameters of BertForSequenceClassification for `c`
 * (-1 when it overflows). */
int64_t nn_config_param_count(const nn_config *c);

#endif
