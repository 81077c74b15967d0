/* Training-step benchmark core (no I/O: the callers print). */
#include "nn/nn.h"
#include "nn/philox.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

static int cmp_d(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

void nn_bench_ade_lengths(int32_t *lens, int64_t n, int32_t max_len, uint64_t seed)
{
    const double mu = log(32.0), sigma = log(92.0 / 32.0) / 2.3263478740408408;
    for (int64_t i = 0; i < n; i++) {
        uint64_t a = nn_splitmix64(seed * 0x9E3779B97F4A7C15ull + 2 * (uint64_t)i);
        uint64_t b = nn_splitmix64(seed * 0x9E3779B97F4A7C15ull + 2 * (uint64_t)i + 1);
        double u1 = ((double)(a >> 11) + 0.5) / 9007199254740992.0, u2 = (double)(b >> 11) / 9007199254740992.0;
        double z = sqrt(-2.0 * log(u1)) * cos(6.283185307179586 * u2);
        double L = floor(exp(mu + sigma * z) + 0.5);
        if (L < 8) L = 8;
        if (L > max_len) L = max_len;
        lens[i] = (int32_t)L;
    }
}

int nn_bench_train(const nn_config *cfg, nn_backend *be, const int32_t *lens, int64_t nseq, int warmup, int steps,
                   nn_bench_result *out, char err[NN_ERRLEN])
{
    memset(out, 0, sizeof *out);
    if (nseq < 1 || steps < 1 || warmup < 0 || steps > 100000) {
        snprintf(err, NN_ERRLEN, "bench: need >= 1 sequence and >= 1 step");
        return 1;
    }
    int32_t *off = malloc((size_t)(nseq + 1) * sizeof *off), maxlen = 0;
    int32_t *labels = malloc((size_t)nseq * sizeof *labels);
    uint32_t *sid = malloc((size_t)nseq * sizeof *sid);
    double *t = malloc((size_t)steps * sizeof *t);
    if (!off || !labels || !sid || !t) {
        free(off);
        free(labels);
        free(sid);
        free(t);
        snprintf(err, NN_ERRLEN, "bench: out of memory");
        return 1;
    }
    off[0] = 0;
    for (int64_t s = 0; s < nseq; s++) {
        if (lens[s] < 1 || lens[s] > cfg->max_position_embeddings) {
            snprintf(err, NN_ERRLEN, "bench: sequence length %d out of range", lens[s]);
            free(off);
            free(labels);
            free(sid);
            free(t);
            return 1;
        }
        off[s + 1] = off[s] + lens[s];
        if (lens[s] > maxlen) maxlen = lens[s];
        labels[s] = (int32_t)(s % cfg->num_labels);
        sid[s] = (uint32_t)s;
    }
    int64_t T = off[nseq];
    int32_t *ids = malloc((size_t)T * sizeof *ids);
    nn_model *m = NULL;
    nn_adamw *o = NULL;
    int rc = 1;
    if (!ids) {
        snprintf(err, NN_ERRLEN, "bench: out of memory");
        goto done;
    }
    for (int64_t i = 0; i < T; i++) ids[i] = (int32_t)(1 + nn_splitmix64((uint64_t)i) % (uint64_t)(cfg->vocab_size - 1));
    if (nn_model_create(&m, cfg, be, T, nseq, maxlen, err) || nn_model_init_weights(m, 42, err)) goto done;
    nn_adamw_config oc;
    nn_adamw_config_default(&oc);
    oc.total_steps = warmup + steps + 1;
    if (nn_adamw_create(&o, m, &oc, err)) goto done;
    nn_batch b;
    memset(&b, 0, sizeof b);
    b.nseq = nseq;
    b.ids = ids;
    b.offsets = off;
    b.labels = labels;
    b.sample_ids = sid;
    b.loss_denominator = (double)nseq;
    b.train = 1;
    b.seed = 42;
    for (int i = 0; i < warmup + steps; i++) {
        double t0 = now_s();
        float loss;
        b.epoch = (uint32_t)i;
        nn_model_zero_grad(m);
        if (nn_model_forward(m, &b, &loss, NULL, err) || nn_model_backward(m, err) ||
            nn_adamw_step(o, NULL, NULL, err))
            goto done;
        be->ops->sync(be);
        if (i >= warmup) t[i - warmup] = now_s() - t0;
        out->final_loss = loss;
    }
    qsort(t, (size_t)steps, sizeof *t, cmp_d);
    out->steps = steps;
    out->ms_median = 1e3 * t[steps / 2];
    out->ms_min = 1e3 * t[0];
    out->ms_max = 1e3 * t[steps - 1];
    out->tokens_per_step = (double)T;
    out->tokens_per_s = (double)T / t[steps / 2];
    out->gflops = nn_model_train_flops(cfg, off, nseq) / t[steps / 2] * 1e-9;
    rc = 0;
done:
    nn_adamw_free(o);
    nn_model_free(m);
    free(ids);
    free(off);
    free(labels);
    free(sid);
    free(t);
    return rc;
}
