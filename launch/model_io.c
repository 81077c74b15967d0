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
    if (io_split_make(c, d->split, d->seed, d->test_fraction, d->val_fraction, out, err))
        return -1;
    if (d->limit > 0)
        io_split_limit(out, (size_t)d->limit, (size_t)(d->limit / 4 > 0 ? d->limit / 4 : 1), d->seed);
    return 0;
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
    char *s = cJSON_PrintUnformatted(o);
    cJSON_Delete(o);
    return s;
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
    const char *bad = NULL;
    cJSON *x;
    if (!cJSON_IsString(x = cJSON_GetObjectItemCaseSensitive(o, "data")) ||
        snprintf(d->data, sizeof d->data, "%s", x->valuestring) >= (int)sizeof d->data)
        bad = "data";
    else if (!cJSON_IsString(x = cJSON_GetObjectItemCaseSensitive(o, "view")) || io_view_parse(x->valuestring, &d->view))
        bad = "view";
    else if (!cJSON_IsString(x = cJSON_GetObjectItemCaseSensitive(o, "split")) ||
             io_split_parse(x->valuestring, &d->split))
        bad = "split";
    else if (!cJSON_IsString(x = cJSON_GetObjectItemCaseSensitive(o, "seed")) || cli_parse_u64(x->valuestring, &d->seed))
        bad = "seed";
    else if (!cJSON_IsNumber(x = cJSON_GetObjectItemCaseSensitive(o, "test_fraction")) ||
             !(x->valuedouble > 0 && x->valuedouble < 1))
        bad = "test_fraction";
    else if ((d->test_fraction = x->valuedouble),
             !cJSON_IsNumber(x = cJSON_GetObjectItemCaseSensitive(o, "val_fraction")) ||
                 !(x->valuedouble >= 0 && x->valuedouble < 1))
        bad = "val_fraction";
    else if ((d->val_fraction = x->valuedouble),
             !cJSON_IsNumber(x = cJSON_GetObjectItemCaseSensitive(o, "limit")) || !(x->valuedouble >= 0) ||
                 x->valuedouble > 9e15)
        bad = "limit";
    else if ((d->limit = (int64_t)x->valuedouble),
             !cJSON_IsNumber(x = cJSON_GetObjectItemCaseSensitive(o, "max_seq_len")) || x->valuedouble < 2 ||
                 x->valuedouble > 1 << 20)
        bad = "max_seq_len";
    else if ((d->max_seq_len = (int)x->valuedouble), !cJSON_IsBool(x = cJSON_GetObjectItemCaseSensitive(o, "lowercase")))
        bad = "lowercase";
    else
        d->lowercase = cJSON_IsTrue(x);
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
    cli_nn_config(&info->cfg, &info->mc);
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

/* host staging: the model's buffers may live on a device */
int mio_load_params(const char *path, nn_model *m, nn_adamw *opt, char err[MIO_ERRLEN])
{
    ckpt_tensor *tab = NULL;
    size_t nt = 0;
    if (mio_table(m, &tab, &nt, err))
        return -1;
    size_t n = nn_model_num_params(m);
    float *p = malloc(n * sizeof *p);
    float *mm = opt ? malloc(n * sizeof *mm) : NULL;
    float *vv = opt ? malloc(n * sizeof *vv) : NULL;
    ckpt_state st;
    char ierr[IO_ERRLEN], nerr[NN_ERRLEN];
    int rc = -1;
    if (!p || (opt && (!mm || !vv))) {
        snprintf(err, MIO_ERRLEN, "out of memory");
        goto out;
    }
    if (ckpt_read(path, tab, nt, p, mm, vv, &st, ierr)) {
        snprintf(err, MIO_ERRLEN, "%s", ierr);
        goto out;
    }
    if (nn_model_set_params(m, p, n, nerr)) {
        snprintf(err, MIO_ERRLEN, "%s", nerr);
        ckpt_state_free(&st);
        goto out;
    }
    if (opt) {
        nn_backend *be = nn_model_backend(m);
        be->ops->upload(be, nn_adamw_m(opt), mm, n * sizeof *mm);
        be->ops->upload(be, nn_adamw_v(opt), vv, n * sizeof *vv);
        be->ops->sync(be);
        nn_adamw_set_step(opt, st.step);
    }
    ckpt_state_free(&st);
    rc = 0;
out:
    free(tab);
    free(p);
    free(mm);
    free(vv);
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
    if (nn_model_create(model, &info->cfg, be, max_seqs * max_seq_len, max_seqs, max_seq_len, nerr)) {
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
    ckpt_tensor *tab = NULL;
    size_t nt = 0;
    if (mio_table(m, &tab, &nt, err))
        return -1;
    size_t n = nn_model_num_params(m);
    float *p = malloc(n * sizeof *p);
    float *mm = opt ? malloc(n * sizeof *mm) : NULL;
    float *vv = opt ? malloc(n * sizeof *vv) : NULL;
    char *cfg = io_config_to_json(a->mc);
    char *data = mio_data_to_json(a->data, a->data_extra);
    size_t nv = io_vocab_size(a->vocab);
    const char **toks = malloc((nv ? nv : 1) * sizeof *toks);
    char ierr[IO_ERRLEN], nerr[NN_ERRLEN];
    int rc = -1;
    if (!p || (opt && (!mm || !vv)) || !cfg || !data || !toks) {
        snprintf(err, MIO_ERRLEN, "out of memory");
        goto out;
    }
    if (nn_model_get_params(m, p, n, nerr)) {
        snprintf(err, MIO_ERRLEN, "%s", nerr);
        goto out;
    }
    if (opt) {
        nn_backend *be = nn_model_backend(m);
        be->ops->download(be, mm, nn_adamw_m(opt), n * sizeof *mm);
        be->ops->download(be, vv, nn_adamw_v(opt), n * sizeof *vv);
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
    if (ckpt_write(path, tab, nt, p, mm, vv, &st, ierr)) {
        snprintf(err, MIO_ERRLEN, "%s", ierr);
        goto out;
    }
    rc = 0;
out:
    free(tab);
    free(p);
    free(mm);
    free(vv);
    free(cfg);
    free(data);
    free(toks);
    return rc;
}

#endif
