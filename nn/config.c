/* nn/config: the architecture validator (see nn/config.h). */
#include "nn/config.h"

#include <math.h>
#include <stdio.h>

/* a*b + c with overflow detection on non-negative int64 */
static int mad(int64_t a, int64_t b, int64_t c, int64_t *r)
{
    if (a < 0 || b < 0 || c < 0) return 1;
    if (a != 0 && b > (INT64_MAX - c) / a) return 1;
    *r = a * b + c;
    return 0;
}

int64_t nn_config_param_count(const nn_config *c)
{
    int64_t H = c->hidden_size, I = c->intermediate_size, t = 0, layer = 0, x;
    /* embeddings */
    if (mad(c->vocab_size, H, 0, &t) || mad(c->max_position_embeddings, H, t, &t) ||
        mad(c->type_vocab_size, H, t, &t) || mad(2, H, t, &t))
        return -1;
    /* layer: qkv+o (4 H^2 + 4H), 2 LN (4H), FFN (2 I H + I + H) */
    if (mad(4 * H, H, 4 * H + 4 * H + H, &layer) || mad(2 * I, H, I, &x) || x > INT64_MAX - layer)
        return -1;
    layer += x;
    if (mad(c->num_hidden_layers, layer, t, &t)) return -1;
    /* pooler + classifier */
    if (mad(H, H, H, &x) || x > INT64_MAX - t) return -1;
    t += x;
    if (mad(c->num_labels, H, c->num_labels, &x) || x > INT64_MAX - t) return -1;
    return t + x;
}

#define CHECK_RANGE(field, lo, hi)                                                              \
    do {                                                                                        \
        if (c->field < (lo) || c->field > (hi)) {                                               \
            snprintf(err, NN_ERRLEN, "config: %s = %lld out of range [%lld, %lld]", #field,     \
                     (long long)c->field, (long long)(lo), (long long)(hi));                    \
            return 1;                                                                           \
        }                                                                                       \
    } while (0)

int nn_config_validate(const nn_config *c, char err[NN_ERRLEN])
{
    CHECK_RANGE(vocab_size, 1, (int64_t)1 << 24);
    CHECK_RANGE(hidden_size, 1, (int64_t)1 << 16);
    CHECK_RANGE(num_hidden_layers, 1, 1024);
    CHECK_RANGE(num_attention_heads, 1, c->hidden_size);
    CHECK_RANGE(intermediate_size, 1, (int64_t)1 << 18);
    CHECK_RANGE(max_position_embeddings, 1, (int64_t)1 << 16);
    CHECK_RANGE(type_vocab_size, 1, (int64_t)1 << 16);
    CHECK_RANGE(num_labels, 2, (int64_t)1 << 16);
    CHECK_RANGE(pad_token_id, 0, c->vocab_size - 1);
    if (c->hidden_size % c->num_attention_heads != 0) {
        snprintf(err, NN_ERRLEN, "config: hidden_size %lld is not a multiple of num_attention_heads %lld",
                 (long long)c->hidden_size, (long long)c->num_attention_heads);
        return 1;
    }
    if (!(c->layer_norm_eps > 0 && c->layer_norm_eps < 1)) {
        snprintf(err, NN_ERRLEN, "config: layer_norm_eps must be in (0, 1)");
        return 1;
    }
    if (!(c->hidden_dropout_prob >= 0 && c->hidden_dropout_prob < 1) ||
        !(c->attention_probs_dropout_prob >= 0 && c->attention_probs_dropout_prob < 1) ||
        !(c->classifier_dropout < 1) || isnan(c->classifier_dropout)) {
        snprintf(err, NN_ERRLEN, "config: dropout probabilities must be in [0, 1)");
        return 1;
    }
    int64_t n = nn_config_param_count(c);
    if (n < 0 || n > NN_MODEL_MAX_PARAMS) {
        snprintf(err, NN_ERRLEN, "config: %s parameters (limit %lld)", n < 0 ? "overflowing" : "too many",
                 (long long)NN_MODEL_MAX_PARAMS);
        return 1;
    }
    return 0;
}
