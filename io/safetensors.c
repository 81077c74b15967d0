/* Minimal safetensors reader/writer. The header is untrusted input: every size
 * and offset is checked before it is used. */
#include "io/io_internal.h"

#include <cjson/cJSON.h>
#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#define ST_MAX_HEADER ((uint64_t)100 << 20) /* the format's own limit */

static const struct {
    const char *name;
    io_dtype dt;
    int size;
} DTYPES[] = {{"F32", IO_DT_F32, 4}, {"F16", IO_DT_F16, 2}, {"BF16", IO_DT_BF16, 2},
              {"F64", IO_DT_F64, 8}, {"I64", IO_DT_I64, 8}, {"I32", IO_DT_I32, 4},
              {"I16", IO_DT_I16, 2}, {"I8", IO_DT_I8, 1},   {"U8", IO_DT_U8, 1},
              {"BOOL", IO_DT_BOOL, 1}};

static int dtype_size(io_dtype d)
{
    for (size_t i = 0; i < sizeof DTYPES / sizeof DTYPES[0]; i++)
        if (DTYPES[i].dt == d) return DTYPES[i].size;
    return 0;
}

void io_safetensors_free(io_safetensors *st)
{
    if (!st) return;
    for (size_t i = 0; i < st->n && st->tensors; i++) free(st->tensors[i].name);
    free(st->tensors);
    if (st->map) {
        if (st->mapped) munmap(st->map, st->map_size);
        else free(st->map);
    }
    memset(st, 0, sizeof *st);
}

static int cmp_begin(const void *a, const void *b)
{
    const io_st_tensor *x = *(const io_st_tensor *const *)a, *y = *(const io_st_tensor *const *)b;
    return x->begin < y->begin ? -1 : x->begin > y->begin ? 1 : 0;
}

static int cmp_name(const void *a, const void *b)
{
    const io_st_tensor *x = *(const io_st_tensor *const *)a, *y = *(const io_st_tensor *const *)b;
    return strcmp(x->name, y->name);
}

/* Parse the header of st->map[0..map_size). */
static int parse_header(io_safetensors *st, char err[IO_ERRLEN])
{
    const uint8_t *b = st->map;
    if (st->map_size < 8) {
        snprintf(err, IO_ERRLEN, "safetensors: file shorter than its 8-byte header length");
        return 1;
    }
    uint64_t hl = 0;
    for (int i = 7; i >= 0; i--) hl = (hl << 8) | b[i];
    if (hl < 2 || hl > ST_MAX_HEADER || hl > st->map_size - 8) {
        snprintf(err, IO_ERRLEN, "safetensors: header length %llu does not fit the file (%zu bytes)",
                 (unsigned long long)hl, st->map_size);
        return 1;
    }
    st->data = b + 8 + hl;
    st->data_size = st->map_size - 8 - hl;
    cJSON *root = cJSON_ParseWithLength((const char *)b + 8, (size_t)hl);
    if (!root || !cJSON_IsObject(root)) {
        snprintf(err, IO_ERRLEN, "safetensors: header is not a JSON object");
        cJSON_Delete(root);
        return 1;
    }
    size_t cnt = 0;
    for (const cJSON *it = root->child; it; it = it->next) cnt++;
    st->tensors = calloc(cnt ? cnt : 1, sizeof *st->tensors);
    if (!st->tensors) {
        snprintf(err, IO_ERRLEN, "safetensors: out of memory");
        cJSON_Delete(root);
        return 1;
    }
    int rc = 0;
    for (const cJSON *it = root->child; it && !rc; it = it->next) {
        if (!it->string) { rc = 1; snprintf(err, IO_ERRLEN, "safetensors: unnamed header entry"); break; }
        if (strcmp(it->string, "__metadata__") == 0) continue;
        io_st_tensor *t = &st->tensors[st->n];
        const cJSON *dt = cJSON_GetObjectItemCaseSensitive(it, "dtype");
        const cJSON *sh = cJSON_GetObjectItemCaseSensitive(it, "shape");
        const cJSON *off = cJSON_GetObjectItemCaseSensitive(it, "data_offsets");
        if (!cJSON_IsObject(it) || !cJSON_IsString(dt) || !cJSON_IsArray(sh) || !cJSON_IsArray(off) ||
            cJSON_GetArraySize(off) != 2) {
            snprintf(err, IO_ERRLEN, "safetensors: tensor entry %zu lacks dtype/shape/data_offsets", st->n);
            rc = 1;
            break;
        }
        t->name = strdup(it->string);
        if (!t->name) { rc = 1; snprintf(err, IO_ERRLEN, "safetensors: out of memory"); break; }
        st->n++;
        int found = 0;
        for (size_t i = 0; i < sizeof DTYPES / sizeof DTYPES[0]; i++)
            if (strcmp(dt->valuestring, DTYPES[i].name) == 0) { t->dtype = DTYPES[i].dt; found = 1; }
        if (!found) {
            snprintf(err, IO_ERRLEN, "safetensors: tensor %.80s has unsupported dtype %.16s", t->name,
                     dt->valuestring);
            rc = 1;
            break;
        }
        int nd = cJSON_GetArraySize(sh);
        if (nd > IO_ST_MAX_DIMS) {
            snprintf(err, IO_ERRLEN, "safetensors: tensor %.80s has %d dims (max %d)", t->name, nd, IO_ST_MAX_DIMS);
            rc = 1;
            break;
        }
        t->ndim = nd;
        /* numel * dtype size must not overflow: bound by the data size as we go. */
        uint64_t numel = 1, limit = st->data_size;
        for (int d = 0; d < nd; d++) {
            const cJSON *x = cJSON_GetArrayItem(sh, d);
            if (!cJSON_IsNumber(x) || !(x->valuedouble >= 0) || x->valuedouble > 9.0e15 ||
                x->valuedouble != floor(x->valuedouble)) {
                snprintf(err, IO_ERRLEN, "safetensors: tensor %.80s has a bad shape", t->name);
                rc = 1;
                break;
            }
            t->shape[d] = (int64_t)x->valuedouble;
            uint64_t s = (uint64_t)t->shape[d];
            if (s != 0 && numel > limit / s) numel = limit + 1; /* too big: caught below */
            else numel *= s;
        }
        if (rc) break;
        const cJSON *o0 = cJSON_GetArrayItem(off, 0), *o1 = cJSON_GetArrayItem(off, 1);
        if (!cJSON_IsNumber(o0) || !cJSON_IsNumber(o1) || !(o0->valuedouble >= 0) || !(o1->valuedouble >= 0) ||
            o0->valuedouble > 1.8e19 || o1->valuedouble > 1.8e19 || o0->valuedouble != floor(o0->valuedouble) ||
            o1->valuedouble != floor(o1->valuedouble)) {
            snprintf(err, IO_ERRLEN, "safetensors: tensor %.80s has bad data_offsets", t->name);
            rc = 1;
            break;
        }
        t->begin = (uint64_t)o0->valuedouble;
        t->end = (uint64_t)o1->valuedouble;
        uint64_t es = (uint64_t)dtype_size(t->dtype);
        if (t->end < t->begin || t->end > st->data_size || numel > limit || numel > (limit + 1) / es ||
            numel * es != t->end - t->begin) {
            snprintf(err, IO_ERRLEN,
                     "safetensors: tensor %.80s: offsets [%llu, %llu) do not match its shape or the data size %llu",
                     t->name, (unsigned long long)t->begin, (unsigned long long)t->end,
                     (unsigned long long)st->data_size);
            rc = 1;
            break;
        }
        t->numel = (int64_t)numel;
    }
    cJSON_Delete(root);
    if (rc) return 1;
    if (st->n > 1) {
        io_st_tensor **ix = malloc(st->n * sizeof *ix);
        if (!ix) { snprintf(err, IO_ERRLEN, "safetensors: out of memory"); return 1; }
        for (size_t i = 0; i < st->n; i++) ix[i] = &st->tensors[i];
        qsort(ix, st->n, sizeof *ix, cmp_begin);
        for (size_t i = 1; i < st->n && !rc; i++)
            if (ix[i]->begin < ix[i - 1]->end) {
                snprintf(err, IO_ERRLEN, "safetensors: tensors %.80s and %.80s overlap", ix[i - 1]->name, ix[i]->name);
                rc = 1;
            }
        qsort(ix, st->n, sizeof *ix, cmp_name);
        for (size_t i = 1; i < st->n && !rc; i++)
            if (strcmp(ix[i]->name, ix[i - 1]->name) == 0) {
                snprintf(err, IO_ERRLEN, "safetensors: tensor %.80s appears twice", ix[i]->name);
                rc = 1;
            }
        free(ix);
    }
    return rc;
}

int io_safetensors_parse(const void *buf, size_t len, io_safetensors *out, char err[IO_ERRLEN])
{
    memset(out, 0, sizeof *out);
    out->map = malloc(len ? len : 1);
    if (!out->map) {
        snprintf(err, IO_ERRLEN, "safetensors: out of memory");
        return 1;
    }
    if (len) memcpy(out->map, buf, len);
    out->map_size = len;
    out->mapped = 0;
    if (parse_header(out, err)) {
        io_safetensors_free(out);
        return 1;
    }
    return 0;
}

int io_safetensors_open(const char *path, io_safetensors *out, char err[IO_ERRLEN])
{
    memset(out, 0, sizeof *out);
    int fd = open(path, O_RDONLY);
    if (fd < 0) {
        snprintf(err, IO_ERRLEN, "%s: cannot open (%s)", path, strerror(errno));
        return 1;
    }
    struct stat sb;
    if (fstat(fd, &sb) != 0 || !S_ISREG(sb.st_mode)) {
        snprintf(err, IO_ERRLEN, "%s: not a regular file", path);
        close(fd);
        return 1;
    }
    if (sb.st_size < 8) {
        snprintf(err, IO_ERRLEN, "%s: safetensors: file shorter than its 8-byte header length", path);
        close(fd);
        return 1;
    }
    void *m = mmap(NULL, (size_t)sb.st_size, PROT_READ, MAP_PRIVATE, fd, 0);
    close(fd);
    if (m == MAP_FAILED) {
        snprintf(err, IO_ERRLEN, "%s: mmap failed (%s)", path, strerror(errno));
        return 1;
    }
    out->map = m;
    out->map_size = (size_t)sb.st_size;
    out->mapped = 1;
    char inner[IO_ERRLEN];
    if (parse_header(out, inner)) {
        snprintf(err, IO_ERRLEN, "%.100s: %.150s", path, inner);
        io_safetensors_free(out);
        return 1;
    }
    return 0;
}

const io_st_tensor *io_safetensors_find(const io_safetensors *st, const char *name)
{
    for (size_t i = 0; i < st->n; i++)
        if (strcmp(st->tensors[i].name, name) == 0) return &st->tensors[i];
    return NULL;
}

int io_safetensors_read_f32(const io_safetensors *st, const io_st_tensor *t, float *dst, size_t n,
                            char err[IO_ERRLEN])
{
    if ((uint64_t)n != (uint64_t)t->numel) {
        snprintf(err, IO_ERRLEN, "safetensors: tensor %.80s has %lld values, expected %zu", t->name,
                 (long long)t->numel, n);
        return 1;
    }
    const uint8_t *p = st->data + t->begin;
    switch (t->dtype) {
    case IO_DT_F32:
        for (size_t i = 0; i < n; i++) {
            uint32_t u = (uint32_t)p[4 * i] | (uint32_t)p[4 * i + 1] << 8 | (uint32_t)p[4 * i + 2] << 16 |
                         (uint32_t)p[4 * i + 3] << 24;
            memcpy(&dst[i], &u, 4);
        }
        return 0;
    case IO_DT_F16:
        for (size_t i = 0; i < n; i++) dst[i] = io_half_to_float((uint16_t)(p[2 * i] | p[2 * i + 1] << 8));
        return 0;
    case IO_DT_BF16:
        for (size_t i = 0; i < n; i++) {
            uint32_t u = ((uint32_t)p[2 * i] | (uint32_t)p[2 * i + 1] << 8) << 16;
            memcpy(&dst[i], &u, 4);
        }
        return 0;
    default:
        snprintf(err, IO_ERRLEN, "safetensors: tensor %.80s is not F32/F16/BF16", t->name);
        return 1;
    }
}

int io_safetensors_write_f32(const char *path, size_t n, const char *const *names, const float *const *data,
                             const int *ndims, const int64_t (*shapes)[IO_ST_MAX_DIMS], char err[IO_ERRLEN])
{
    return io_safetensors_write_f32_meta(path, n, names, data, ndims, shapes, 0, NULL, NULL, err);
}

int io_safetensors_write_f32_meta(const char *path, size_t n, const char *const *names, const float *const *data,
                                  const int *ndims, const int64_t (*shapes)[IO_ST_MAX_DIMS], size_t n_meta,
                                  const char *const *meta_keys, const char *const *meta_values, char err[IO_ERRLEN])
{
    cJSON *root = cJSON_CreateObject();
    uint64_t off = 0;
    int rc = 0;
    if (root && n_meta) {
        cJSON *md = cJSON_AddObjectToObject(root, "__metadata__");
        for (size_t i = 0; i < n_meta && md; i++)
            if (!cJSON_AddStringToObject(md, meta_keys[i], meta_values[i])) rc = 1;
        if (!md) rc = 1;
    }
    for (size_t i = 0; i < n && root; i++) {
        cJSON *e = cJSON_AddObjectToObject(root, names[i]);
        cJSON *sh = e ? cJSON_AddArrayToObject(e, "shape") : NULL;
        cJSON *of = e ? cJSON_AddArrayToObject(e, "data_offsets") : NULL;
        if (!sh || !of) { rc = 1; break; }
        cJSON_AddStringToObject(e, "dtype", "F32");
        uint64_t numel = 1;
        for (int d = 0; d < ndims[i]; d++) {
            cJSON_AddItemToArray(sh, cJSON_CreateNumber((double)shapes[i][d]));
            numel *= (uint64_t)shapes[i][d];
        }
        cJSON_AddItemToArray(of, cJSON_CreateNumber((double)off));
        off += numel * 4;
        cJSON_AddItemToArray(of, cJSON_CreateNumber((double)off));
    }
    char *hdr = (root && !rc) ? cJSON_PrintUnformatted(root) : NULL;
    cJSON_Delete(root);
    if (!hdr) {
        snprintf(err, IO_ERRLEN, "%s: out of memory building the header", path);
        return 1;
    }
    size_t hl = strlen(hdr), pad = (8 - hl % 8) % 8; /* keep data 8-byte aligned */
    /* PATH.tmp.HOST.PID.XXXXXX (0600, io/io.h), renamed into place when complete */
    size_t tlen = strlen(path) + IO_TMP_HOSTLEN + 40;
    char *tmp = malloc(tlen);
    if (!tmp) { free(hdr); snprintf(err, IO_ERRLEN, "%s: out of memory", path); return 1; }
    int fd = io_tmp_create_file(path, tmp, tlen, err);
    if (fd >= 0) { /* mkstemp makes it 0600; a model file is for other tools: fopen's mode */
        mode_t um = umask(0);
        umask(um);
        (void)fchmod(fd, 0666 & ~um);
    }
    FILE *f = fd >= 0 ? fdopen(fd, "wb") : NULL;
    if (!f) {
        if (fd >= 0) {
            snprintf(err, IO_ERRLEN, "%s: cannot create (%s)", tmp, strerror(errno));
            close(fd);
            unlink(tmp);
        }
        free(hdr);
        free(tmp);
        return 1;
    }
    uint8_t lenb[8];
    uint64_t total = hl + pad;
    for (int i = 0; i < 8; i++) lenb[i] = (uint8_t)(total >> (8 * i));
    int ok = fwrite(lenb, 1, 8, f) == 8 && fwrite(hdr, 1, hl, f) == hl;
    for (size_t i = 0; i < pad && ok; i++) ok = fputc(' ', f) != EOF;
    enum { CHUNK = 16384 };
    uint8_t *chunk = malloc(4 * CHUNK);
    ok = ok && chunk;
    for (size_t i = 0; i < n && ok; i++) {
        uint64_t numel = 1;
        for (int d = 0; d < ndims[i]; d++) numel *= (uint64_t)shapes[i][d];
        for (uint64_t j = 0; j < numel && ok; j += CHUNK) {
            size_t m = numel - j < CHUNK ? (size_t)(numel - j) : CHUNK;
            for (size_t k = 0; k < m; k++) {
                uint32_t u;
                memcpy(&u, &data[i][j + k], 4);
                chunk[4 * k] = (uint8_t)u;
                chunk[4 * k + 1] = (uint8_t)(u >> 8);
                chunk[4 * k + 2] = (uint8_t)(u >> 16);
                chunk[4 * k + 3] = (uint8_t)(u >> 24);
            }
            ok = fwrite(chunk, 4, m, f) == m;
        }
    }
    free(chunk);
    ok = ok && fflush(f) == 0 && fsync(fileno(f)) == 0;
    ok = (fclose(f) == 0) && ok;
    free(hdr);
    if (!ok || rename(tmp, path) != 0) {
        snprintf(err, IO_ERRLEN, "%s: write failed (%s)", path, strerror(errno));
        unlink(tmp);
        free(tmp);
        return 1;
    }
    free(tmp);
    return 0;
}
