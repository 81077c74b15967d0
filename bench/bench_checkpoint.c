/* Save/verify/load time of an HDF5 checkpoint of BERT-base for sequence
 * classification (109,483,778 params; model + both AdamW moments = 1.31 GB).
 *   bench_checkpoint [PATH]   (default ./bench_checkpoint.h5; deleted afterwards)
 * Buffers are filled with pseudo-random bits; timings include fsync. The first load
 * is from the page cache (the file was just written); run as root, the page cache is
 * then dropped and a cold load is timed too. */
#ifndef ADEBERT_HAVE_HDF5
#include <stdio.h>
int main(void)
{
    fprintf(stderr, "bench_checkpoint: built without HDF5 (ADEBERT_HDF5=OFF)\n");
    return 1;
}
#else
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "io/checkpoint.h"

#define MAXT 256
static ckpt_tensor T[MAXT];
static char NAMES[MAXT][96];
static size_t NT, NF;

static void add(const char *name, int ndim, int64_t a, int64_t b)
{
    snprintf(NAMES[NT], sizeof NAMES[NT], "%s", name);
    T[NT].name = NAMES[NT];
    T[NT].ndim = ndim;
    T[NT].shape[0] = a;
    T[NT].shape[1] = b;
    T[NT].numel = (size_t)(ndim == 1 ? a : a * b);
    T[NT].offset = NF;
    NF += T[NT].numel;
    NT++;
}

static void linear(const char *pre, int64_t out, int64_t in)
{
    char n[96];
    snprintf(n, sizeof n, "%.80s.weight", pre);
    add(n, 2, out, in);
    snprintf(n, sizeof n, "%.80s.bias", pre);
    add(n, 1, out, 0);
}

static void layernorm(const char *pre, int64_t h)
{
    char n[96];
    snprintf(n, sizeof n, "%.80s.weight", pre);
    add(n, 1, h, 0);
    snprintf(n, sizeof n, "%.80s.bias", pre);
    add(n, 1, h, 0);
}

static void bert_base(void)
{
    const int64_t V = 30522, H = 768, L = 12, I = 3072, P = 512;
    add("bert.embeddings.word_embeddings.weight", 2, V, H);
    add("bert.embeddings.position_embeddings.weight", 2, P, H);
    add("bert.embeddings.token_type_embeddings.weight", 2, 2, H);
    layernorm("bert.embeddings.LayerNorm", H);
    for (int l = 0; l < L; l++) {
        char p[96];
        const char *sub[] = {"attention.self.query", "attention.self.key", "attention.self.value",
                             "attention.output.dense"};
        for (int s = 0; s < 4; s++) {
            snprintf(p, sizeof p, "bert.encoder.layer.%d.%s", l, sub[s]);
            linear(p, H, H);
        }
        snprintf(p, sizeof p, "bert.encoder.layer.%d.attention.output.LayerNorm", l);
        layernorm(p, H);
        snprintf(p, sizeof p, "bert.encoder.layer.%d.intermediate.dense", l);
        linear(p, I, H);
        snprintf(p, sizeof p, "bert.encoder.layer.%d.output.dense", l);
        linear(p, H, I);
        snprintf(p, sizeof p, "bert.encoder.layer.%d.output.LayerNorm", l);
        layernorm(p, H);
    }
    linear("bert.pooler.dense", H, H);
    linear("classifier", 2, H);
}

static double now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec + ts.tv_nsec * 1e-9;
}

int main(int argc, char **argv)
{
    const char *path = argc > 1 ? argv[1] : "bench_checkpoint.h5";
    bert_base();
    if (NF != 109483778u) {
        fprintf(stderr, "bench_checkpoint: table has %zu params, expected 109483778\n", NF);
        return 1;
    }
    float *buf[3], *back[3];
    uint64_t x = 88172645463325252ULL;
    for (int b = 0; b < 3; b++) {
        buf[b] = malloc(NF * sizeof(float));
        back[b] = malloc(NF * sizeof(float));
        if (!buf[b] || !back[b]) { fprintf(stderr, "bench_checkpoint: out of memory\n"); return 1; }
        memset(back[b], 0, NF * sizeof(float)); /* touched, as a trainer's buffers are */
        uint32_t *u = (uint32_t *)buf[b];
        for (size_t i = 0; i < NF; i++) {
            x ^= x << 13; x ^= x >> 7; x ^= x << 17;
            u[i] = (uint32_t)(x >> 20) | 0x3c000000u; /* finite floats of mixed magnitude */
        }
    }
    const char *vocab[] = {"[PAD]", "[UNK]", "[CLS]", "[SEP]"};
    ckpt_state st;
    memset(&st, 0, sizeof st);
    st.adebert_version = "bench";
    st.config_json = "{\"model\":\"base\"}";
    st.data_json = "{}";
    st.vocab = vocab;
    st.vocab_n = 4;
    st.loss_scale = 1.0;
    char err[IO_ERRLEN];

    double t0 = now();
    uint64_t h;
    for (int b = 0; b < 3; b++) ckpt_buffer_checksum(T, NT, buf[b], &h, err);
    double t_hash = now() - t0;

    t0 = now();
    if (ckpt_write(path, T, NT, buf[0], buf[1], buf[2], &st, err)) { fprintf(stderr, "%s\n", err); return 1; }
    double t_save = now() - t0;
    struct stat sb;
    stat(path, &sb);

    t0 = now();
    if (ckpt_verify(path, 0, err)) { fprintf(stderr, "%s\n", err); return 1; }
    double t_v0 = now() - t0;
    t0 = now();
    if (ckpt_verify(path, 1, err)) { fprintf(stderr, "%s\n", err); return 1; }
    double t_v1 = now() - t0;
    t0 = now();
    if (ckpt_read(path, T, NT, back[0], back[1], back[2], NULL, err)) { fprintf(stderr, "%s\n", err); return 1; }
    double t_load = now() - t0;
    /* Cold cache (root only): drop the page cache, then load again. */
    double t_cold = -1;
    FILE *dc = fopen("/proc/sys/vm/drop_caches", "w");
    if (dc) {
        /* the file is already fsync'd by ckpt_write */
        int ok = fputs("3\n", dc) >= 0;
        ok = fclose(dc) == 0 && ok;
        if (ok) {
            t0 = now();
            if (ckpt_read(path, T, NT, back[0], back[1], back[2], NULL, err)) { fprintf(stderr, "%s\n", err); return 1; }
            t_cold = now() - t0;
        }
    }
    int same = 1;
    for (int b = 0; b < 3; b++) same = same && memcmp(buf[b], back[b], NF * sizeof(float)) == 0;
    unlink(path);

    printf("base: %zu tensors, %zu params x 3 buffers = %.3f GB of fp32; file %.3f GB\n", NT, NF,
           3.0 * NF * 4 / 1e9, sb.st_size / 1e9);
    printf("xxh64 of the 3 buffers : %7.3f s (%.2f GB/s)\n", t_hash, 3.0 * NF * 4 / 1e9 / t_hash);
    printf("save (incl. fsync)     : %7.3f s (%.2f GB/s)\n", t_save, sb.st_size / 1e9 / t_save);
    printf("verify, cheap (full=0) : %7.3f s\n", t_v0);
    printf("verify, full           : %7.3f s\n", t_v1);
    printf("load (model + m + v)   : %7.3f s (%.2f GB/s)\n", t_load, sb.st_size / 1e9 / t_load);
    if (t_cold >= 0) printf("load, cold page cache  : %7.3f s (%.2f GB/s)\n", t_cold, sb.st_size / 1e9 / t_cold);
    else printf("load, cold page cache  : not measured (needs root to drop caches)\n");
    printf("round trip bit-exact   : %s\n", same ? "yes" : "NO");
    for (int b = 0; b < 3; b++) { free(buf[b]); free(back[b]); }
    return same ? 0 : 1;
}
#endif
