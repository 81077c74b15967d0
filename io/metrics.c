/* Binary classification metrics and the metrics.jsonl log (contract in io.h).
 *
 * The AUCs come from one sort of (score, label) pairs, highest score first, walked
 * in groups of equal score. Grouping is what makes ties right: a tie between a
 * positive and a negative is worth one half in ROC-AUC, and average precision only
 * has a point at each distinct score, exactly as scikit-learn's
 * _binary_clf_curve builds it. The result depends on the multiset of pairs only,
 * so neither row order nor the sort's stability matters, and the gathered scores
 * of N ranks give the 1-rank value.
 *
 * The log is written with numbers formatted here rather than by cJSON: cJSON
 * 1.7's printer accepts "%1.15g" when it reads back within an epsilon, so it
 * neither round-trips exactly nor promises the same digits as another printer;
 * the shortest exact "%.*g" does both. cJSON still builds the object and escapes
 * strings. */
#include "io/io_internal.h"

#include <cjson/cJSON.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

/* ------------------------------------------------------------ confusion */

static int check_labels(const uint8_t *label, size_t n, char err[IO_ERRLEN])
{
    for (size_t i = 0; i < n; i++)
        if (label[i] > 1) return io_fail(err, "metrics: label of row %zu is %u, not 0/1", i, (unsigned)label[i]);
    return 0;
}

static int check_args(const void *score, const uint8_t *label, size_t n, char err[IO_ERRLEN])
{
    if (n > 0 && (!score || !label)) return io_fail(err, "metrics: NULL score or label array");
    return check_labels(label, n, err);
}

static void tally(io_confusion *cm, int pred, uint8_t y)
{
    if (pred) {
        if (y) cm->tp++;
        else cm->fp++;
    } else {
        if (y) cm->fn++;
        else cm->tn++;
    }
}

int io_confusion_add_f32(io_confusion *cm, const float *score, const uint8_t *label, size_t n,
                         double threshold, char err[IO_ERRLEN])
{
    if (!cm) return io_fail(err, "metrics: NULL confusion matrix");
    if (isnan(threshold)) return io_fail(err, "metrics: threshold is NaN");
    if (check_args(score, label, n, err)) return -1;
    for (size_t i = 0; i < n; i++)
        if (isnan(score[i])) return io_fail(err, "metrics: score of row %zu is NaN", i);
    /* compared in double: a float 0.5f is exactly the default threshold */
    for (size_t i = 0; i < n; i++) tally(cm, (double)score[i] >= threshold, label[i]);
    return 0;
}

int io_confusion_add_f64(io_confusion *cm, const double *score, const uint8_t *label, size_t n,
                         double threshold, char err[IO_ERRLEN])
{
    if (!cm) return io_fail(err, "metrics: NULL confusion matrix");
    if (isnan(threshold)) return io_fail(err, "metrics: threshold is NaN");
    if (check_args(score, label, n, err)) return -1;
    for (size_t i = 0; i < n; i++)
        if (isnan(score[i])) return io_fail(err, "metrics: score of row %zu is NaN", i);
    for (size_t i = 0; i < n; i++) tally(cm, score[i] >= threshold, label[i]);
    return 0;
}

int io_confusion_check(const io_confusion *cm, int64_t expected_rows, char err[IO_ERRLEN])
{
    if (cm->tp < 0 || cm->fp < 0 || cm->tn < 0 || cm->fn < 0)
        return io_fail(err, "metrics: negative count in confusion matrix (tp %" PRId64 " fp %" PRId64 " tn %" PRId64
                         " fn %" PRId64 ")",
                    cm->tp, cm->fp, cm->tn, cm->fn);
    int64_t total = cm->tp + cm->fp + cm->tn + cm->fn;
    if (total != expected_rows)
        return io_fail(err,
                    "metrics: confusion matrix counts %" PRId64 " rows (tp %" PRId64 " fp %" PRId64 " tn %" PRId64
                    " fn %" PRId64 "), the split has %" PRId64,
                    total, cm->tp, cm->fp, cm->tn, cm->fn, expected_rows);
    return 0;
}

static double ratio0(double num, double den) { return den > 0 ? num / den : 0.0; }

void io_metrics_from_confusion(const io_confusion *cm, io_metrics *m)
{
    m->cm = *cm;
    double tp = (double)cm->tp, fp = (double)cm->fp, tn = (double)cm->tn, fn = (double)cm->fn;
    m->precision = ratio0(tp, tp + fp);
    m->recall = ratio0(tp, tp + fn);
    /* 2tp / (2tp + fp + fn) equals 2PR / (P + R) but needs one rounding only, and
     * is 0 (not 0/0) when there are no positives at all. */
    m->f1 = ratio0(2 * tp, 2 * tp + fp + fn);
    m->accuracy = ratio0(tp + tn, tp + fp + tn + fn);
}

/* ------------------------------------------------------------------ AUCs */

typedef struct {
    double s;
    uint8_t y;
} scored;

static int by_score_desc(const void *a, const void *b)
{
    double x = ((const scored *)a)->s, y = ((const scored *)b)->s;
    return (x < y) - (x > y);
}

/* Takes ownership of nothing; sorts `p` in place. */
static void auc_sorted(scored *p, size_t n, io_metrics *m)
{
    qsort(p, n, sizeof *p, by_score_desc);
    uint64_t npos = 0, nneg = 0;
    for (size_t i = 0; i < n; i++) {
        if (p[i].y) npos++;
        else nneg++;
    }
    /* u2 = 2 x Mann-Whitney U, an exact integer: positive above negative counts 2,
     * a tie 1. It fits 64 bits for any n below 2^31. */
    uint64_t u2 = 0, tps = 0, fps = 0;
    double ap = 0.0, recall_prev = 0.0;
    for (size_t i = 0; i < n;) {
        size_t j = i;
        uint64_t g1 = 0, g0 = 0;
        while (j < n && p[j].s == p[i].s) {
            if (p[j].y) g1++;
            else g0++;
            j++;
        }
        u2 += g0 * (2 * tps + g1);
        tps += g1;
        fps += g0;
        if (npos > 0) {
            /* sklearn: recall_k = tps_k / P, AP = sum (recall_k - recall_{k-1}) * precision_k */
            double recall = (double)tps / (double)npos;
            ap += (recall - recall_prev) * ((double)tps / (double)(tps + fps));
            recall_prev = recall;
        }
        i = j;
    }
    m->roc_auc_defined = npos > 0 && nneg > 0;
    m->roc_auc = m->roc_auc_defined ? (double)u2 / (2.0 * (double)npos * (double)nneg) : NAN;
    m->pr_auc_defined = npos > 0;
    m->pr_auc = m->pr_auc_defined ? ap : NAN;
}

/* Float scores widen exactly to double (ties stay ties): the f32 entry points that
 * need a copy anyway delegate to the f64 ones. NULL only for NULL input or OOM. */
static double *widen(const float *score, size_t n)
{
    if (!score) return NULL;
    double *d = malloc((n ? n : 1) * sizeof *d);
    if (d)
        for (size_t i = 0; i < n; i++) d[i] = (double)score[i];
    return d;
}

int io_metrics_auc_f32(const float *score, const uint8_t *label, size_t n, io_metrics *m, char err[IO_ERRLEN])
{
    double *d = widen(score, n);
    if (score && !d) return io_fail(err, "metrics: out of memory for %zu scores", n);
    int rc = io_metrics_auc_f64(d, label, n, m, err);
    free(d);
    return rc;
}

int io_metrics_auc_f64(const double *score, const uint8_t *label, size_t n, io_metrics *m, char err[IO_ERRLEN])
{
    if (!m) return io_fail(err, "metrics: NULL output");
    if (check_args(score, label, n, err)) return -1;
    scored *p = malloc((n ? n : 1) * sizeof *p);
    if (!p) return io_fail(err, "metrics: out of memory for %zu scores", n);
    for (size_t i = 0; i < n; i++) {
        if (isnan(score[i])) {
            free(p);
            return io_fail(err, "metrics: score of row %zu is NaN", i);
        }
        p[i].s = score[i];
        p[i].y = label[i];
    }
    auc_sorted(p, n, m);
    free(p);
    return 0;
}

int io_metrics_compute_f32(const float *score, const uint8_t *label, size_t n, double threshold, io_metrics *m,
                           char err[IO_ERRLEN])
{
    double *d = widen(score, n);
    if (score && !d) return io_fail(err, "metrics: out of memory for %zu scores", n);
    int rc = io_metrics_compute_f64(d, label, n, threshold, m, err);
    free(d);
    return rc;
}

int io_metrics_compute_f64(const double *score, const uint8_t *label, size_t n, double threshold, io_metrics *m,
                           char err[IO_ERRLEN])
{
    if (!m) return io_fail(err, "metrics: NULL output");
    memset(m, 0, sizeof *m);
    io_confusion cm = {0, 0, 0, 0};
    if (io_confusion_add_f64(&cm, score, label, n, threshold, err)) return -1;
    io_metrics_from_confusion(&cm, m);
    return io_metrics_auc_f64(score, label, n, m, err);
}

/* ------------------------------------------------------------ JSON lines */

/* Keys of the schema, in the order they are written (DESIGN.md "Metrics"). */
static const char *const schema_keys[] = {
    "schema_version", "split",    "epoch",     "step",   "lr",       "train_loss", "eval_loss",
    "precision",      "recall",   "f1",        "accuracy", "roc_auc", "pr_auc",    "tp",
    "fp",             "tn",       "fn",        "grad_norm", "loss_scale", "seconds", "tokens_per_s"};
#define N_SCHEMA_KEYS (sizeof schema_keys / sizeof schema_keys[0])

static int is_schema_key(const char *k)
{
    for (size_t i = 0; i < N_SCHEMA_KEYS; i++)
        if (strcmp(k, schema_keys[i]) == 0) return 1;
    return 0;
}

/* The shortest "%.*g" that reads back to the same double. printf and strtod are
 * correctly rounded in glibc, so the digits are a function of the bits alone. The
 * C locale is assumed (adebert never calls setlocale). */
static void fmt_double(double v, char buf[40])
{
    if (v == 0) { /* also -0: no "-0" in the log */
        strcpy(buf, "0");
        return;
    }
    for (int prec = 1; prec <= 17; prec++) {
        snprintf(buf, 40, "%.*g", prec, v);
        if (strtod(buf, NULL) == v) return;
    }
}

static int add_double(cJSON *o, const char *key, double v)
{
    cJSON *it;
    if (!isfinite(v)) {
        it = cJSON_CreateNull();
    } else {
        char buf[40];
        fmt_double(v, buf);
        it = cJSON_CreateRaw(buf);
    }
    if (!it) return -1;
    cJSON_AddItemToObject(o, key, it);
    return 0;
}

static int add_int(cJSON *o, const char *key, int64_t v)
{
    char buf[32];
    snprintf(buf, sizeof buf, "%" PRId64, v);
    cJSON *it = cJSON_CreateRaw(buf);
    if (!it) return -1;
    cJSON_AddItemToObject(o, key, it);
    return 0;
}

static int split_ok(const char *s) { return strcmp(s, "val") == 0 || strcmp(s, "test") == 0; }

int io_metrics_format(const io_metrics_record *r, char **line, char err[IO_ERRLEN])
{
    if (!line) return io_fail(err, "metrics: NULL output");
    *line = NULL;
    if (!r) return io_fail(err, "metrics: NULL record");
    if (strnlen(r->split, sizeof r->split) == sizeof r->split || !split_ok(r->split))
        return io_fail(err, "metrics: split must be \"val\" or \"test\"");
    if (r->n_extra > 0 && !r->extra) return io_fail(err, "metrics: NULL extra keys");
    for (size_t i = 0; i < r->n_extra; i++) {
        const io_metrics_extra *e = &r->extra[i];
        if (!e->key || !*e->key) return io_fail(err, "metrics: extra key %zu is empty", i);
        if (is_schema_key(e->key)) return io_fail(err, "metrics: extra key '%s' is a schema key", e->key);
        if (e->is_string && !e->str) return io_fail(err, "metrics: extra key '%s' has a NULL string", e->key);
        for (size_t j = 0; j < i; j++)
            if (strcmp(r->extra[j].key, e->key) == 0) return io_fail(err, "metrics: extra key '%s' repeated", e->key);
    }

    cJSON *o = cJSON_CreateObject();
    if (!o) return io_fail(err, "metrics: out of memory");
    const io_metrics *m = &r->m;
    int bad = 0;
    bad |= add_int(o, "schema_version", r->schema_version);
    bad |= !cJSON_AddStringToObject(o, "split", r->split);
    bad |= add_int(o, "epoch", r->epoch);
    bad |= add_int(o, "step", r->step);
    bad |= add_double(o, "lr", r->lr);
    bad |= add_double(o, "train_loss", r->train_loss);
    bad |= add_double(o, "eval_loss", r->eval_loss);
    bad |= add_double(o, "precision", m->precision);
    bad |= add_double(o, "recall", m->recall);
    bad |= add_double(o, "f1", m->f1);
    bad |= add_double(o, "accuracy", m->accuracy);
    bad |= add_double(o, "roc_auc", m->roc_auc_defined ? m->roc_auc : NAN);
    bad |= add_double(o, "pr_auc", m->pr_auc_defined ? m->pr_auc : NAN);
    bad |= add_int(o, "tp", m->cm.tp);
    bad |= add_int(o, "fp", m->cm.fp);
    bad |= add_int(o, "tn", m->cm.tn);
    bad |= add_int(o, "fn", m->cm.fn);
    bad |= add_double(o, "grad_norm", r->grad_norm);
    bad |= add_double(o, "loss_scale", r->loss_scale);
    bad |= add_double(o, "seconds", r->seconds);
    bad |= add_double(o, "tokens_per_s", r->tokens_per_s);
    for (size_t i = 0; i < r->n_extra && !bad; i++) {
        const io_metrics_extra *e = &r->extra[i];
        if (e->is_string) bad |= !cJSON_AddStringToObject(o, e->key, e->str);
        else bad |= add_double(o, e->key, e->num);
    }
    char *s = bad ? NULL : cJSON_PrintUnformatted(o);
    cJSON_Delete(o);
    if (!s) return io_fail(err, "metrics: out of memory formatting a record");
    *line = s;
    return 0;
}

static int write_all(int fd, const char *buf, size_t len)
{
    while (len > 0) {
        ssize_t w = write(fd, buf, len);
        if (w < 0) {
            if (errno == EINTR) continue;
            return -1;
        }
        buf += w;
        len -= (size_t)w;
    }
    return 0;
}

/* A new file's name is only durable once its directory is synced. */
static void sync_parent_dir(const char *path)
{
    const char *slash = strrchr(path, '/');
    char dir[4096];
    if (!slash) {
        strcpy(dir, ".");
    } else if (slash == path) {
        strcpy(dir, "/");
    } else {
        size_t k = (size_t)(slash - path);
        if (k >= sizeof dir) return;
        memcpy(dir, path, k);
        dir[k] = 0;
    }
    int fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (fd < 0) return;
    (void)fsync(fd);
    close(fd);
}

int io_metrics_append(const char *path, const io_metrics_record *r, char err[IO_ERRLEN])
{
    if (!path) return io_fail(err, "metrics: NULL path");
    char *json = NULL;
    if (io_metrics_format(r, &json, err)) return -1;

    int created = 1;
    int fd = open(path, O_RDWR | O_APPEND | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
    if (fd < 0 && errno == EEXIST) {
        created = 0;
        fd = open(path, O_RDWR | O_APPEND | O_CLOEXEC);
    }
    if (fd < 0) {
        int e = errno;
        free(json);
        return io_fail(err, "%s: cannot open for appending: %s", path, strerror(e));
    }
    /* exactly 0600 whatever the umask: the run's history is private to the user */
    if (created && fchmod(fd, 0600) != 0) {
        int e = errno;
        close(fd);
        free(json);
        return io_fail(err, "%s: chmod 0600: %s", path, strerror(e));
    }
    struct stat st;
    int lead_nl = 0;
    if (fstat(fd, &st) != 0) {
        int e = errno;
        close(fd);
        free(json);
        return io_fail(err, "%s: stat: %s", path, strerror(e));
    }
    if (st.st_size > 0) {
        char last = '\n';
        if (pread(fd, &last, 1, st.st_size - 1) == 1 && last != '\n') lead_nl = 1;
    }
    size_t jl = strlen(json);
    char *buf = malloc(jl + 2);
    if (!buf) {
        close(fd);
        free(json);
        return io_fail(err, "metrics: out of memory");
    }
    size_t k = 0;
    if (lead_nl) buf[k++] = '\n';
    memcpy(buf + k, json, jl);
    k += jl;
    buf[k++] = '\n';
    free(json);
    /* one write() of the whole line: with O_APPEND a concurrent reader (a plot, a
     * tail -f) never sees half a record, save on a full disk */
    int rc = write_all(fd, buf, k);
    int e = errno;
    free(buf);
    if (rc != 0) {
        close(fd);
        return io_fail(err, "%s: write: %s", path, strerror(e));
    }
    if (fsync(fd) != 0) {
        e = errno;
        close(fd);
        return io_fail(err, "%s: fsync: %s", path, strerror(e));
    }
    if (close(fd) != 0) {
        e = errno;
        return io_fail(err, "%s: close: %s", path, strerror(e));
    }
    if (created) sync_parent_dir(path);
    return 0;
}

/* ----------------------------------------------------------------- reader */

void io_metrics_log_free(io_metrics_log *log)
{
    if (!log) return;
    for (size_t i = 0; i < log->n; i++) free((void *)log->rec[i].extra);
    free(log->rec);
    log->rec = NULL;
    log->n = 0;
}

static int get_num(const cJSON *o, const char *key, double *v, size_t lineno, char err[IO_ERRLEN])
{
    const cJSON *it = cJSON_GetObjectItemCaseSensitive(o, key);
    if (!it) return io_fail(err, "metrics line %zu: missing \"%s\"", lineno, key);
    if (cJSON_IsNull(it)) {
        *v = NAN;
        return 0;
    }
    if (!cJSON_IsNumber(it)) return io_fail(err, "metrics line %zu: \"%s\" is not a number", lineno, key);
    *v = it->valuedouble;
    return 0;
}

static int get_i64(const cJSON *o, const char *key, int64_t *v, size_t lineno, char err[IO_ERRLEN])
{
    const cJSON *it = cJSON_GetObjectItemCaseSensitive(o, key);
    if (!it) return io_fail(err, "metrics line %zu: missing \"%s\"", lineno, key);
    /* integers beyond 2^53 would already have been rounded by the parser */
    if (!cJSON_IsNumber(it) || it->valuedouble != floor(it->valuedouble) || fabs(it->valuedouble) > 9007199254740992.0)
        return io_fail(err, "metrics line %zu: \"%s\" is not an integer", lineno, key);
    *v = (int64_t)it->valuedouble;
    return 0;
}

static int parse_record(const cJSON *o, io_metrics_record *r, size_t lineno, char err[IO_ERRLEN])
{
    memset(r, 0, sizeof *r);
    if (!cJSON_IsObject(o)) return io_fail(err, "metrics line %zu: not a JSON object", lineno);
    int64_t ver = 0;
    if (get_i64(o, "schema_version", &ver, lineno, err)) return -1;
    if (ver < 1 || ver > IO_METRICS_SCHEMA_VERSION)
        return io_fail(err, "metrics line %zu: schema_version %" PRId64 " (this build reads 1..%d)", lineno, ver,
                    IO_METRICS_SCHEMA_VERSION);
    r->schema_version = (int)ver;
    const cJSON *sp = cJSON_GetObjectItemCaseSensitive(o, "split");
    if (!cJSON_IsString(sp) || !split_ok(sp->valuestring))
        return io_fail(err, "metrics line %zu: \"split\" is not \"val\" or \"test\"", lineno);
    strcpy(r->split, sp->valuestring);
    io_metrics *m = &r->m;
    if (get_i64(o, "epoch", &r->epoch, lineno, err) || get_i64(o, "step", &r->step, lineno, err) ||
        get_num(o, "lr", &r->lr, lineno, err) || get_num(o, "train_loss", &r->train_loss, lineno, err) ||
        get_num(o, "eval_loss", &r->eval_loss, lineno, err) || get_num(o, "precision", &m->precision, lineno, err) ||
        get_num(o, "recall", &m->recall, lineno, err) || get_num(o, "f1", &m->f1, lineno, err) ||
        get_num(o, "accuracy", &m->accuracy, lineno, err) || get_num(o, "roc_auc", &m->roc_auc, lineno, err) ||
        get_num(o, "pr_auc", &m->pr_auc, lineno, err) || get_i64(o, "tp", &m->cm.tp, lineno, err) ||
        get_i64(o, "fp", &m->cm.fp, lineno, err) || get_i64(o, "tn", &m->cm.tn, lineno, err) ||
        get_i64(o, "fn", &m->cm.fn, lineno, err) || get_num(o, "grad_norm", &r->grad_norm, lineno, err) ||
        get_num(o, "loss_scale", &r->loss_scale, lineno, err) || get_num(o, "seconds", &r->seconds, lineno, err) ||
        get_num(o, "tokens_per_s", &r->tokens_per_s, lineno, err))
        return -1;
    m->roc_auc_defined = !isnan(m->roc_auc);
    m->pr_auc_defined = !isnan(m->pr_auc);

    /* extras: one block = the array, then every key and string */
    size_t n_extra = 0, bytes = 0;
    for (const cJSON *c = o->child; c; c = c->next) {
        if (!c->string) return io_fail(err, "metrics line %zu: member without a key", lineno);
        if (is_schema_key(c->string)) continue;
        if (!cJSON_IsNumber(c) && !cJSON_IsNull(c) && !cJSON_IsString(c))
            return io_fail(err, "metrics line %zu: extra key \"%s\" is not a number, null or string", lineno, c->string);
        n_extra++;
        bytes += strlen(c->string) + 1;
        if (cJSON_IsString(c)) bytes += strlen(c->valuestring) + 1;
    }
    if (n_extra == 0) return 0;
    io_metrics_extra *ex = malloc(n_extra * sizeof *ex + bytes);
    if (!ex) return io_fail(err, "metrics line %zu: out of memory", lineno);
    char *pool = (char *)(ex + n_extra);
    size_t k = 0;
    for (const cJSON *c = o->child; c; c = c->next) {
        if (is_schema_key(c->string)) continue;
        size_t kl = strlen(c->string) + 1;
        memcpy(pool, c->string, kl);
        ex[k].key = pool;
        pool += kl;
        ex[k].is_string = cJSON_IsString(c);
        ex[k].str = NULL;
        ex[k].num = NAN;
        if (ex[k].is_string) {
            size_t sl = strlen(c->valuestring) + 1;
            memcpy(pool, c->valuestring, sl);
            ex[k].str = pool;
            pool += sl;
        } else if (cJSON_IsNumber(c)) {
            ex[k].num = c->valuedouble;
        }
        k++;
    }
    r->n_extra = n_extra;
    r->extra = ex;
    return 0;
}

int io_metrics_parse(const char *text, size_t len, io_metrics_log *out, char err[IO_ERRLEN])
{
    if (!out) return io_fail(err, "metrics: NULL output");
    memset(out, 0, sizeof *out);
    if (len > 0 && !text) return io_fail(err, "metrics: NULL text");
    size_t cap = 0, lineno = 0;
    for (size_t pos = 0; pos < len;) {
        const char *nl = memchr(text + pos, '\n', len - pos);
        size_t end = nl ? (size_t)(nl - text) : len;
        lineno++;
        size_t b = pos, e = end;
        while (b < e && (text[b] == ' ' || text[b] == '\t' || text[b] == '\r')) b++;
        while (e > b && (text[e - 1] == ' ' || text[e - 1] == '\t' || text[e - 1] == '\r')) e--;
        pos = end + 1;
        if (b == e) continue;
        if (out->n == cap) {
            size_t nc = cap ? 2 * cap : 16;
            io_metrics_record *nr = realloc(out->rec, nc * sizeof *nr);
            if (!nr) {
                io_metrics_log_free(out);
                return io_fail(err, "metrics: out of memory");
            }
            out->rec = nr;
            cap = nc;
        }
        cJSON *o = cJSON_ParseWithLength(text + b, e - b);
        if (!o) {
            io_metrics_log_free(out);
            return io_fail(err, "metrics line %zu: not valid JSON", lineno);
        }
        int rc = parse_record(o, &out->rec[out->n], lineno, err);
        cJSON_Delete(o);
        if (rc) {
            io_metrics_log_free(out);
            return -1;
        }
        out->n++;
    }
    return 0;
}

int io_metrics_read(const char *path, io_metrics_log *out, char err[IO_ERRLEN])
{
    if (!out) return io_fail(err, "metrics: NULL output");
    memset(out, 0, sizeof *out);
    if (!path) return io_fail(err, "metrics: NULL path");
    FILE *f = fopen(path, "rb");
    if (!f) return io_fail(err, "%s: %s", path, strerror(errno));
    size_t cap = 1 << 16, n = 0;
    char *buf = malloc(cap);
    if (!buf) {
        fclose(f);
        return io_fail(err, "%s: out of memory", path);
    }
    for (;;) {
        if (n == cap) {
            char *nb = realloc(buf, cap * 2);
            if (!nb) {
                free(buf);
                fclose(f);
                return io_fail(err, "%s: out of memory", path);
            }
            buf = nb;
            cap *= 2;
        }
        size_t got = fread(buf + n, 1, cap - n, f);
        n += got;
        if (got == 0) break;
    }
    int rd_err = ferror(f);
    fclose(f);
    if (rd_err) {
        free(buf);
        return io_fail(err, "%s: read error", path);
    }
    char inner[IO_ERRLEN];
    int rc = io_metrics_parse(buf, n, out, inner);
    free(buf);
    if (rc) return io_fail(err, "%s: %s", path, inner);
    return 0;
}
