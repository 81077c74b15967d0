/* AdamW with torch.optim.AdamW semantics, HF's linear warmup/decay schedule and
 * clipping by the global gradient norm (torch.nn.utils.clip_grad_norm_). */
#include "nn/nn.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

struct nn_adamw {
    nn_adamw_config cfg;
    nn_model *model;
    float *m, *v;
    int64_t step; /* optimizer steps done */
};

void nn_adamw_config_default(nn_adamw_config *c)
{
    c->lr = 2e-5;
    c->beta1 = 0.9;
    c->beta2 = 0.999;
    c->eps = 1e-8;
    c->weight_decay = 0.01;
    c->max_grad_norm = 1.0;
    c->warmup_steps = 0;
    c->total_steps = 1;
}

double nn_lr_factor(const nn_adamw_config *c, int64_t step)
{
    /* transformers.get_linear_schedule_with_warmup, lr_lambda(current_step) */
    if (step < c->warmup_steps) return (double)step / (double)(c->warmup_steps > 1 ? c->warmup_steps : 1);
    int64_t span = c->total_steps - c->warmup_steps;
    double f = (double)(c->total_steps - step) / (double)(span > 1 ? span : 1);
    return f > 0.0 ? f : 0.0;
}

int64_t nn_warmup_from_ratio(double ratio, int64_t total_steps)
{
    if (!(ratio > 0)) return 0;
    return (int64_t)ceil(ratio * (double)total_steps);
}

int nn_adamw_create(nn_adamw **out, nn_model *model, const nn_adamw_config *c, char err[NN_ERRLEN])
{
    *out = NULL;
    if (!(c->lr >= 0) || !(c->beta1 >= 0 && c->beta1 < 1) || !(c->beta2 >= 0 && c->beta2 < 1) || !(c->eps > 0) ||
        !(c->weight_decay >= 0) || c->warmup_steps < 0 || c->total_steps < 1 || isnan(c->max_grad_norm)) {
        snprintf(err, NN_ERRLEN, "adamw: invalid hyper-parameters");
        return 1;
    }
    nn_adamw *o = calloc(1, sizeof *o);
    if (!o) {
        snprintf(err, NN_ERRLEN, "adamw: out of memory");
        return 1;
    }
    nn_backend *be = nn_model_backend(model);
    size_t n = nn_model_num_params(model);
    o->cfg = *c;
    o->model = model;
    o->m = be->ops->alloc(be, n * sizeof(float));
    o->v = o->m ? be->ops->alloc(be, n * sizeof(float)) : NULL;
    if (!o->v) {
        snprintf(err, NN_ERRLEN, "adamw: cannot allocate moments (%zu floats x 2)", n);
        nn_adamw_free(o);
        return 1;
    }
    *out = o;
    return 0;
}

void nn_adamw_free(nn_adamw *o)
{
    if (!o) return;
    nn_backend *be = nn_model_backend(o->model);
    if (o->m) be->ops->free(be, o->m);
    if (o->v) be->ops->free(be, o->v);
    free(o);
}

int64_t nn_adamw_steps_done(const nn_adamw *o) { return o->step; }
float *nn_adamw_m(nn_adamw *o) { return o->m; }
float *nn_adamw_v(nn_adamw *o) { return o->v; }
void nn_adamw_set_step(nn_adamw *o, int64_t step) { o->step = step; }

int nn_adamw_step(nn_adamw *o, double *grad_norm, double *lr_used, char err[NN_ERRLEN])
{
    int skipped = 0;
    if (nn_adamw_step_scaled(o, 1.0, grad_norm, lr_used, &skipped, err))
        return 1;
    if (skipped) {
        snprintf(err, NN_ERRLEN, "adamw: gradient norm is not finite");
        return 1;
    }
    return 0;
}

int nn_adamw_step_scaled(nn_adamw *o, double loss_scale, double *grad_norm, double *lr_used, int *skipped,
                         char err[NN_ERRLEN])
{
    nn_model *mdl = o->model;
    nn_backend *be = nn_model_backend(mdl);
    const nn_backend_ops *op = be->ops;
    float *P = nn_model_param_buf(mdl), *G = nn_model_grad_buf(mdl);
    size_t n = nn_model_num_params(mdl), np = 0;
    *skipped = 0;
    if (!(loss_scale > 0) || !isfinite(loss_scale)) {
        snprintf(err, NN_ERRLEN, "adamw: loss scale %g is not a positive number", loss_scale);
        return 1;
    }
    double norm = sqrt(op->sumsq(be, G, (int64_t)n));
    if (!isfinite(norm)) {
        /* an overflow under loss scaling: no update, the schedule moves on */
        *skipped = 1;
        o->step += 1;
        if (grad_norm) *grad_norm = norm;
        if (lr_used) *lr_used = 0;
        return 0;
    }
    norm /= loss_scale; /* exact for the powers of two the scaler uses */
    double unscale = 1.0 / loss_scale;
    float gscale = (float)unscale;
    if (o->cfg.max_grad_norm > 0) {
        /* torch: clip_coef = max_norm / (total_norm + 1e-6), applied when < 1 */
        double coef = o->cfg.max_grad_norm / (norm + 1e-6);
        if (coef < 1.0) gscale = (float)((double)(float)coef * unscale);
    }
    double lr = o->cfg.lr * nn_lr_factor(&o->cfg, o->step);
    int64_t t = o->step + 1;
    nn_adamw_args a;
    a.lr = (float)lr;
    a.beta1 = (float)o->cfg.beta1;
    a.beta2 = (float)o->cfg.beta2;
    a.eps = (float)o->cfg.eps;
    a.one_minus_beta1 = (float)(1.0 - o->cfg.beta1);
    a.one_minus_beta2 = (float)(1.0 - o->cfg.beta2);
    a.step_size = (float)(lr / (1.0 - pow(o->cfg.beta1, (double)t)));
    a.bc2_sqrt = (float)sqrt(1.0 - pow(o->cfg.beta2, (double)t));
    a.grad_scale = gscale;
    const nn_param *ps = nn_model_params(mdl, &np);
    /* consecutive tensors with the same decay flag form one call */
    size_t i = 0;
    while (i < np) {
        size_t j = i;
        while (j + 1 < np && ps[j + 1].decay == ps[i].decay) j++;
        a.weight_decay = ps[i].decay ? (float)o->cfg.weight_decay : 0.0f;
        size_t off = ps[i].offset, len = ps[j].offset + ps[j].numel - off;
        op->adamw(be, P + off, G + off, o->m + off, o->v + off, (int64_t)len, &a);
        i = j + 1;
    }
    op->sync(be);
    o->step = t;
    if (grad_norm) *grad_norm = norm;
    if (lr_used) *lr_used = lr;
    return 0;
}
