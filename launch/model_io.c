/* launch/model_io: checkpoints as models (see model_io.h). */
#include "launch/model_io.h"
#include "launch/cli.h"

#include <cjson/cJSON.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#ifndef ADEBERT_VERSION
#define ADEBERT_VERSION "unknown"
#endif

int mio_make_split(const io_corpus *c, const mio_data *d, io_split *out, char err[IO_ERRLEN])
{
    if (io_splitdir_is(d->data) ? io_splitdir_split(d->data, c->n, out, err)
                                : io_split_make(c, d->split, d->seed, d->test_fraction, d->val_fraction, out, err))
        return -1;
    mio_limit_split(out, d);
    return 0;
}

void mio_limit_split(io_split *s, const mio_data *d)
{
    if (d->limit > 0)
        io_split_limit(s, (size_t)d->limit, (size_t)(d->limit / 4 > 0 ? d->limit / 4 : 1), d->seed);
}

char *mio_data_to_json(const mio_data *d, const char *extra)
{
    cJSON *o = extra ? cJSON_Parse(extra) : cJSON_CreateObject();
    if (!cJSON_IsObject(o)) {
        cJSON_Delete(o);
        return NULL;
    }
    cJSON_AddStringToObject(o, "data", d->data);
    cJSON_AddStringToObject(o, "view", io_view_name(d->view));
    cJSON_AddStringToObject(o, "split", io_split_name(d->split));
    /* seeds are 64-bit: a string, so no double rounds them */
    char seed[32];
    snprintf(seed, sizeof seed, "%llu", (unsigned long long)d->seed);
    cJSON_AddStringToObject(o, "seed", seed);
    cJSON_AddNumberToObject(o, "test_fraction", d->test_fraction);
    cJSON_AddNumberToObject(o, "val_fraction", d->val_fraction);
    cJSON_AddNumberToObject(o, "limit", (double)d->limit);
    cJSON_AddNumberToObject(o, "max_seq_len", d->max_seq_len);
    cJSON_AddBoolToObject(o, "lowercase", d->lowercase);
    /* a split folder: its files' sha256, so that runs can be shown to share rows */
    char *hashes = NULL, herr[IO_ERRLEN];
    if (io_splitdir_is(d->data) && io_splitdir_hashes(d->data, &hashes, herr) == 0)
        cJSON_AddItemToObject(o, "split_sha256", cJSON_Parse(hashes));
    free(hashes);
    char *s = cJSON_PrintUnformatted(o);
    cJSON_Delete(o);
    return s;
}

/* The member `key` of o as a string / a number in [lo, hi]; NULL / NAN when it is
 * absent, of another type or out of range. */
static const char *member_str(const cJSON *o, const char *key)
{
    const cJSON *x = cJSON_GetObjectItemCaseSensitive(o, key);
    return cJSON_IsString(x) ? x->valuestring : NULL;
}

static double member_num(const cJSON *o, const char *key, double lo, double hi)
{
    const cJSON *x = cJSON_GetObjectItemCaseSensitive(o, key);
    return cJSON_IsNumber(x) && x->valuedouble >= lo && x->valuedouble <= hi ? x->valuedouble : NAN;
}

int mio_data_from_json(const char *json, mio_data *d, char err[MIO_ERRLEN])
{
    memset(d, 0, sizeof *d);
    cJSON *o = json ? cJSON_Parse(json) : NULL;
    if (!cJSON_IsObject(o)) {
        cJSON_Delete(o);
        snprintf(err, MIO_ERRLEN, "data settings: not a JSON object");
        return -1;
    }
    const char *data = member_str(o, "data"), *view = member_str(o, "view"), *split = member_str(o, "split");
    const char *seed = member_str(o, "seed");
    double test = member_num(o, "test_fraction", 0, 1), val = member_num(o, "val_fraction", 0, 1);
    double limit = member_num(o, "limit", 0, 9e15), len = member_num(o, "max_seq_len", 2, 1 << 20);
    const cJSON *lower = cJSON_GetObjectItemCaseSensitive(o, "lowercase");
    const char *bad = NULL;
    if (!data || snprintf(d->data, sizeof d->data, "%s", data) >= (int)sizeof d->data)
        bad = "data";
    else if (!view || io_view_parse(view, &d->view))
        bad = "view";
    else if (!split || io_split_parse(split, &d->split))
        bad = "split";
    else if (!seed || cli_parse_u64(seed, &d->seed))
        bad = "seed";
    else if (!(test > 0 && test < 1))
        bad = "test_fraction";
    else if (!(val < 1)) /* NaN too */
        bad = "val_fraction";
    else if (isnan(limit))
        bad = "limit";
    else if (isnan(len))
        bad = "max_seq_len";
    else if (!cJSON_IsBool(lower))
        bad = "lowercase";
    if (!bad) {
        d->test_fraction = test;
        d->val_fraction = val;
        d->limit = (int64_t)limit;
        d->max_seq_len = (int)len;
        d->lowercase = cJSON_IsTrue(lower);
    }
    cJSON_Delete(o);
    if (bad) {
        snprintf(err, MIO_ERRLEN, "data settings: '%s' missing or invalid", bad);
        return -1;
    }
    return 0;
}

void mio_info_free(mio_info *i)
{
    if (!i)
        return;
    io_vocab_free(i->vocab);
    free(i->metrics);
    free(i->data_json);
    memset(i, 0, sizeof *i);
}

#ifndef ADEBERT_HAVE_HDF5

static int no_hdf5(const char *path, char err[MIO_ERRLEN])
{
    snprintf(err, MIO_ERRLEN, "%.400s: checkpoints need HDF5, and this adebert was built without it (ADEBERT_HDF5=OFF)",
             path ? path : "checkpoint");
    return -1;
}

int mio_open(const char *path, mio_info *info, char err[MIO_ERRLEN])
{
    memset(info, 0, sizeof *info);
    return no_hdf5(path, err);
}

int mio_load_params(const char *path, nn_model *m, nn_adamw *opt, char err[MIO_ERRLEN])
{
    return no_hdf5(path, err);
}

int mio_open_model(const char *path, nn_backend *be, int64_t max_seqs, int64_t max_seq_len, mio_info *info,
                   nn_model **model, char err[MIO_ERRLEN])
{
    memset(info, 0, sizeof *info);
    *model = NULL;
    return no_hdf5(path, err);
}

int mio_save(const char *path, nn_model *m, nn_adamw *opt, const mio_save_args *a, char err[MIO_ERRLEN])
{
    return no_hdf5(path, err);
}

#else

int mio_table(const nn_model *m, ckpt_tensor **out, size_t *n, char err[MIO_ERRLEN])
{
    size_t np = 0;
    const nn_param *p = nn_model_params(m, &np);
    ckpt_tensor *t = calloc(np ? np : 1, sizeof *t);
    if (!t) {
        snprintf(err, MIO_ERRLEN, "out of memory");
        return -1;
    }
    for (size_t i = 0; i < np; i++) {
        t[i].name = p[i].name;
        t[i].offset = p[i].offset;
        t[i].numel = p[i].numel;
        t[i].ndim = p[i].ndim;
        for (int d = 0; d < p[i].ndim; d++)
            t[i].shape[d] = p[i].shape[d];
    }
    *out = t;
    *n = np;
    return 0;
}

int mio_open(const char *path, mio_info *info, char err[MIO_ERRLEN])
{
    memset(info, 0, sizeof *info);
    ckpt_state st;
    char ierr[IO_ERRLEN];
    if (ckpt_read_state(path, &st, ierr)) {
        snprintf(err, MIO_ERRLEN, "%s", ierr);
        return -1;
    }
    int rc = -1;
    if (!st.config_json || io_config_parse(st.config_json, strlen(st.config_json), &info->mc, ierr)) {
        snprintf(err, MIO_ERRLEN, "%.300s: its model config: %.150s", path, st.config_json ? ierr : "missing");
        goto out;
    }
    char derr[MIO_ERRLEN];
    if (mio_data_from_json(st.data_json, &info->data, derr)) {
        snprintf(err, MIO_ERRLEN, "%.300s: %.200s", path, derr);
        goto out;
    }
    if (st.vocab_n == 0) {
        snprintf(err, MIO_ERRLEN, "%.400s: holds no vocabulary", path);
        goto out;
    }
    if (io_vocab_from_tokens(st.vocab, st.vocab_n, path, &info->vocab, ierr)) {
        snprintf(err, MIO_ERRLEN, "%s", ierr);
        goto out;
    }
    if ((int64_t)io_vocab_size(info->vocab) > info->mc.vocab_size) {
        snprintf(err, MIO_ERRLEN, "%.300s: %zu vocabulary tokens but the model's vocab_size is %lld", path,
                 io_vocab_size(info->vocab), (long long)info->mc.vocab_size);
        goto out;
    }
    info->data.lowercase = st.lowercase;
    info->data_json = strdup(st.data_json);
    if (!info->data_json) {
        snprintf(err, MIO_ERRLEN, "out of memory");
        goto out;
    }
    info->epoch = st.epoch;
    info->step = st.step;
    if (st.metrics_len) {
        info->metrics = malloc(st.metrics_len + 1);
        if (!info->metrics) {
            snprintf(err, MIO_ERRLEN, "out of memory");
            goto out;
        }
        memcpy(info->metrics, st.metrics, st.metrics_len);
        info->metrics[st.metrics_len] = '\0';
        info->metrics_len = st.metrics_len;
    }
    rc = 0;
out:
    ckpt_state_free(&st);
    if (rc)
        mio_info_free(info);
    return rc;
}

/* Host copies of the flat buffers and their tensor table, between a model (whose
 * buffers may live on a device) and a checkpoint file. */
typedef struct {
    ckpt_tensor *tab;
    size_t nt, n;     /* tensors; floats per buffer */
    float *p, *m, *v; /* parameters; AdamW moments (with_optim only) */
} staging;

static void staging_free(staging *h)
{
    free(h->tab);
    free(h->p);
    free(h->m);
    free(h->v);
}

static int staging_alloc(staging *h, nn_model *m, int with_optim, char err[MIO_ERRLEN])
{
    memset(h, 0, sizeof *h);
    if (mio_table(m, &h->tab, &h->nt, err))
        return -1;
    h->n = nn_model_num_params(m);
    h->p = malloc(h->n * sizeof *h->p);
    h->m = with_optim ? malloc(h->n * sizeof *h->m) : NULL;
    h->v = with_optim ? malloc(h->n * sizeof *h->v) : NULL;
    if (!h->p || (with_optim && (!h->m || !h->v))) {
        staging_free(h);
        snprintf(err, MIO_ERRLEN, "out of memory");
        return -1;
    }
    return 0;
}

int mio_load_params(const char *path, nn_model *m, nn_adamw *opt, char err[MIO_ERRLEN])
{
    staging h;
    if (staging_alloc(&h, m, opt != NULL, err))
        return -1;
    size_t n = h.n;
    ckpt_state st;
    char ierr[IO_ERRLEN], nerr[NN_ERRLEN];
    int rc = -1;
    if (ckpt_read(path, h.tab, h.nt, h.p, h.m, h.v, &st, ierr)) {
        snprintf(err, MIO_ERRLEN, "%s", ierr);
        goto out;
    }
    if (nn_model_set_params(m, h.p, n, nerr)) {
        snprintf(err, MIO_ERRLEN, "%s", nerr);
        ckpt_state_free(&st);
        goto out;
    }
    if (opt) {
        nn_backend *be = nn_model_backend(m);
        be->ops->upload(be, nn_adamw_m(opt), h.m, n * sizeof *h.m);
        be->ops->upload(be, nn_adamw_v(opt), h.v, n * sizeof *h.v);
        be->ops->sync(be);
        nn_adamw_set_step(opt, st.step);
    }
    ckpt_state_free(&st);
    rc = 0;
out:
    staging_free(&h);
    return rc;
}

int mio_open_model(const char *path, nn_backend *be, int64_t max_seqs, int64_t max_seq_len, mio_info *info,
                   nn_model **model, char err[MIO_ERRLEN])
{
    *model = NULL;
    if (mio_open(path, info, err))
        return -1;
    if (max_seq_len <= 0)
        max_seq_len = info->data.max_seq_len;
    if (max_seq_len > info->mc.max_position_embeddings)
        max_seq_len = info->mc.max_position_embeddings;
    char nerr[NN_ERRLEN];
    if (nn_model_create_inference(model, &info->mc, be, max_seqs * max_seq_len, max_seqs, max_seq_len, nerr)) {
        snprintf(err, MIO_ERRLEN, "%s", nerr);
        mio_info_free(info);
        return -1;
    }
    if (mio_load_params(path, *model, NULL, err)) {
        nn_model_free(*model);
        *model = NULL;
        mio_info_free(info);
        return -1;
    }
    return 0;
}

int mio_save(const char *path, nn_model *m, nn_adamw *opt, const mio_save_args *a, char err[MIO_ERRLEN])
{
    staging h;
    if (staging_alloc(&h, m, opt != NULL, err))
        return -1;
    size_t n = h.n;
    char *cfg = io_config_to_json(a->mc);
    char *data = mio_data_to_json(a->data, a->data_extra);
    size_t nv = io_vocab_size(a->vocab);
    const char **toks = malloc((nv ? nv : 1) * sizeof *toks);
    char ierr[IO_ERRLEN], nerr[NN_ERRLEN];
    int rc = -1;
    if (!cfg || !data || !toks) {
        snprintf(err, MIO_ERRLEN, "out of memory");
        goto out;
    }
    if (nn_model_get_params(m, h.p, n, nerr)) {
        snprintf(err, MIO_ERRLEN, "%s", nerr);
        goto out;
    }
    if (opt) {
        nn_backend *be = nn_model_backend(m);
        be->ops->download(be, h.m, nn_adamw_m(opt), n * sizeof *h.m);
        be->ops->download(be, h.v, nn_adamw_v(opt), n * sizeof *h.v);
    }
    for (size_t i = 0; i < nv; i++)
        toks[i] = io_vocab_token(a->vocab, (int32_t)i);
    ckpt_state st;
    memset(&st, 0, sizeof st);
    st.adebert_version = ADEBERT_VERSION;
    st.epoch = a->epoch;
    st.step = a->step;
    st.batch_in_epoch = a->batch_in_epoch;
    st.seed = a->seed;
    memcpy(st.rng_counters, a->rng_counters, sizeof st.rng_counters);
    st.loss_scale = a->loss_scale;
    st.good_steps = a->good_steps;
    st.lowercase = a->data->lowercase;
    st.config_json = cfg;
    st.data_json = data;
    st.vocab_n = nv;
    st.vocab = toks;
    st.metrics = a->metrics;
    st.metrics_len = a->metrics ? a->metrics_len : 0;
    if (ckpt_write(path, h.tab, h.nt, h.p, h.m, h.v, &st, ierr)) {
        snprintf(err, MIO_ERRLEN, "%s", ierr);
        goto out;
    }
    rc = 0;
out:
    staging_free(&h);
    free(cfg);
    free(data);
    free(toks);
    return rc;
}

#endif
