/* pytorch_model.bin reader: the zip and legacy formats of torch.save, read with a
 * restricted unpickler that builds values and never calls anything. The file is
 * untrusted: every length, offset, count and stride is checked before it is used,
 * and all work is bounded by the input size and the caps below. */
#include "io/io_internal.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#define TB_MAX_PICKLE ((size_t)256 << 20) /* a BERT state dict pickle is ~50 KB */
#define TB_MAX_STACK 65536u               /* stack depth */
#define TB_MAX_MARKS 4096u                /* nested MARKs */
#define TB_MAX_MEMO (1u << 20)            /* memo slots */
#define TB_MAX_VALUES (1u << 22)          /* objects built by all pickles */
#define TB_MAX_STORAGES (1u << 20)
#define TB_MAX_ZIP_ENTRIES (1u << 20)
#define TB_MAX_KEY 256                    /* storage key length */
#define TB_GLOBAL_MAX 128                 /* module + name length */

/* ------------------------------------------------------------------ helpers */

static uint64_t rd_le(const uint8_t *p, int n)
{
    uint64_t v = 0;
    for (int i = n - 1; i >= 0; i--) v = (v << 8) | p[i];
    return v;
}

/* A printable, bounded copy of untrusted bytes for error messages. */
static const char *show(char *buf, size_t cap, const uint8_t *s, size_t n)
{
    size_t o = 0;
    for (size_t i = 0; i < n && o + 4 < cap; i++) buf[o++] = (s[i] >= 32 && s[i] < 127) ? (char)s[i] : '?';
    if (n > 0 && o + 4 >= cap) { buf[o++] = '.'; buf[o++] = '.'; buf[o++] = '.'; }
    buf[o] = 0;
    return buf;
}

static const struct {
    const char *cls;
    io_dtype dt;
    int size;
} STORAGES[] = {{"FloatStorage", IO_DT_F32, 4},  {"HalfStorage", IO_DT_F16, 2},
                {"BFloat16Storage", IO_DT_BF16, 2}, {"DoubleStorage", IO_DT_F64, 8},
                {"LongStorage", IO_DT_I64, 8},   {"IntStorage", IO_DT_I32, 4},
                {"ShortStorage", IO_DT_I16, 2},  {"CharStorage", IO_DT_I8, 1},
                {"ByteStorage", IO_DT_U8, 1},    {"BoolStorage", IO_DT_BOOL, 1}};
#define N_STORAGE_CLASSES (sizeof STORAGES / sizeof STORAGES[0])

static int dt_size(io_dtype d)
{
    for (size_t i = 0; i < N_STORAGE_CLASSES; i++)
        if (STORAGES[i].dt == d) return STORAGES[i].size;
    return 1;
}

static const char *dt_name(io_dtype d)
{
    for (size_t i = 0; i < N_STORAGE_CLASSES; i++)
        if (STORAGES[i].dt == d) return STORAGES[i].cls;
    return "?";
}

/* ------------------------------------------------------------------- values */

enum { V_NONE, V_BOOL, V_INT, V_BIGINT, V_FLOAT, V_STR, V_TUPLE, V_LIST, V_DICT, V_GLOBAL, V_STORAGE, V_TENSOR };

enum { G_ORDEREDDICT = 1, G_REBUILD_TENSOR, G_REBUILD_TENSOR_V2, G_REBUILD_PARAM, G_REBUILD_PARAM_STATE,
       G_STORAGE = 100 /* + index into STORAGES */ };

typedef struct {
    uint8_t kind;
    int64_t i;        /* BOOL/INT value, GLOBAL id, STORAGE/TENSOR index */
    uint64_t a, b;    /* STR/BIGINT: byte offset and length in the pickle buffer;
                         STORAGE: view offset and view numel in elements */
    uint32_t n, cap;  /* TUPLE/LIST: items; DICT: 2 x pairs (key, value, ...) */
    uint32_t *items;
} tb_val;

typedef struct {
    const uint8_t *key;
    size_t klen;
    io_dtype dtype;
    uint64_t numel;
    uint64_t begin;
    int located;
} tb_storage;

typedef struct {
    size_t storage;
    int64_t offset;
    int ndim;
    int64_t shape[IO_ST_MAX_DIMS], stride[IO_ST_MAX_DIMS];
    int64_t numel;
} tb_tensor;

typedef struct {
    const uint8_t *file; /* whole input: strings point into it */
    size_t file_len;
    tb_val *v;
    size_t nv, capv;
    tb_storage *st;
    size_t nst, capst;
    uint32_t *st_hash; /* open addressing, index + 1; 0 = empty */
    size_t hcap;
    tb_tensor *t;
    size_t nt, capt;
    char *err;
} tb_ctx;

static int grow(void **p, size_t *cap, size_t need, size_t elem, size_t max)
{
    if (need <= *cap) return 0;
    if (need > max) return -1;
    size_t nc = *cap ? *cap : 16;
    while (nc < need) nc *= 2;
    if (nc > max) nc = max;
    void *q = realloc(*p, nc * elem);
    if (!q) return -1;
    *p = q;
    *cap = nc;
    return 0;
}

static void ctx_free(tb_ctx *c)
{
    for (size_t i = 0; i < c->nv; i++) free(c->v[i].items);
    free(c->v);
    free(c->st);
    free(c->st_hash);
    free(c->t);
    memset(c, 0, sizeof *c);
}

static long new_val(tb_ctx *c, int kind)
{
    if (grow((void **)&c->v, &c->capv, c->nv + 1, sizeof *c->v, TB_MAX_VALUES))
        return io_fail(c->err, "pickle: more than %u objects, or out of memory", TB_MAX_VALUES), -1;
    tb_val *x = &c->v[c->nv];
    memset(x, 0, sizeof *x);
    x->kind = (uint8_t)kind;
    return (long)c->nv++;
}

static int add_item(tb_ctx *c, uint32_t obj, uint32_t item)
{
    tb_val *x = &c->v[obj];
    if (x->n == UINT32_MAX - 1) return io_fail(c->err, "pickle: container too large");
    if (x->n == x->cap) {
        uint32_t nc = x->cap ? (x->cap > UINT32_MAX / 4 ? UINT32_MAX - 1 : x->cap * 2) : 8;
        uint32_t *q = realloc(x->items, (size_t)nc * sizeof *q);
        if (!q) return io_fail(c->err, "pickle: out of memory");
        x->items = q;
        x->cap = nc;
    }
    x->items[x->n++] = item;
    return 0;
}

static int str_eq(const tb_ctx *c, const tb_val *x, const char *s)
{
    size_t n = strlen(s);
    return x->kind == V_STR && x->b == n && memcmp(c->file + x->a, s, n) == 0;
}

/* ----------------------------------------------------------------- storages */

static uint64_t hash_bytes(const uint8_t *p, size_t n)
{
    uint64_t h = 1469598103934665603ull;
    for (size_t i = 0; i < n; i++) h = (h ^ p[i]) * 1099511628211ull;
    return h;
}

static long storage_find(const tb_ctx *c, const uint8_t *key, size_t klen)
{
    if (!c->hcap) return -1;
    for (size_t h = hash_bytes(key, klen) & (c->hcap - 1);; h = (h + 1) & (c->hcap - 1)) {
        uint32_t e = c->st_hash[h];
        if (!e) return -1;
        const tb_storage *s = &c->st[e - 1];
        if (s->klen == klen && memcmp(s->key, key, klen) == 0) return (long)(e - 1);
    }
}

/* The storage with this key, registering it on first sight; the same key must
 * always come with the same dtype and size. */
static long storage_get(tb_ctx *c, const uint8_t *key, size_t klen, io_dtype dt, uint64_t numel)
{
    char kb[80];
    long i = storage_find(c, key, klen);
    if (i >= 0) {
        if (c->st[i].dtype != dt || c->st[i].numel != numel)
            return io_fail(c->err, "pickle: storage %s is referenced as %s[%llu] and as %s[%llu]",
                           show(kb, sizeof kb, key, klen), dt_name(c->st[i].dtype),
                           (unsigned long long)c->st[i].numel, dt_name(dt), (unsigned long long)numel),
                   -1;
        return i;
    }
    if (grow((void **)&c->st, &c->capst, c->nst + 1, sizeof *c->st, TB_MAX_STORAGES))
        return io_fail(c->err, "pickle: more than %u storages, or out of memory", TB_MAX_STORAGES), -1;
    if (2 * (c->nst + 1) > c->hcap) { /* rehash at half load */
        size_t nh = c->hcap ? c->hcap * 2 : 64;
        uint32_t *h = calloc(nh, sizeof *h);
        if (!h) return io_fail(c->err, "pickle: out of memory"), -1;
        for (size_t k = 0; k < c->nst; k++) {
            size_t p = hash_bytes(c->st[k].key, c->st[k].klen) & (nh - 1);
            while (h[p]) p = (p + 1) & (nh - 1);
            h[p] = (uint32_t)(k + 1);
        }
        free(c->st_hash);
        c->st_hash = h;
        c->hcap = nh;
    }
    tb_storage *s = &c->st[c->nst];
    memset(s, 0, sizeof *s);
    s->key = key;
    s->klen = klen;
    s->dtype = dt;
    s->numel = numel;
    size_t p = hash_bytes(key, klen) & (c->hcap - 1);
    while (c->st_hash[p]) p = (p + 1) & (c->hcap - 1);
    c->st_hash[p] = (uint32_t)(c->nst + 1);
    return (long)c->nst++;
}

/* --------------------------------------------------------------- unpickler */

typedef struct {
    tb_ctx *c;
    const uint8_t *p; /* == c->file + base */
    size_t base, len, pos;
    uint32_t *stack;
    size_t sp, capstack;
    size_t marks[TB_MAX_MARKS];
    size_t nmarks;
    uint32_t *memo; /* index + 1; 0 = unset */
    size_t capmemo, nmemo;
    int allow_pid;
} unpickler;

static int need(unpickler *u, size_t n, const char *what)
{
    if (u->len - u->pos < n)
        return io_fail(u->c->err, "pickle: truncated %s at byte %zu", what, u->pos);
    return 0;
}

static int push(unpickler *u, long v)
{
    if (v < 0) return -1;
    if (grow((void **)&u->stack, &u->capstack, u->sp + 1, sizeof *u->stack, TB_MAX_STACK))
        return io_fail(u->c->err, "pickle: stack deeper than %u at byte %zu", TB_MAX_STACK, u->pos);
    u->stack[u->sp++] = (uint32_t)v;
    return 0;
}

static int pop(unpickler *u, uint32_t *v)
{
    size_t floor_ = u->nmarks ? u->marks[u->nmarks - 1] : 0;
    if (u->sp <= floor_) return io_fail(u->c->err, "pickle: stack underflow at byte %zu", u->pos);
    *v = u->stack[--u->sp];
    return 0;
}

static int pop_mark(unpickler *u, size_t *start)
{
    if (!u->nmarks) return io_fail(u->c->err, "pickle: no MARK for the opcode at byte %zu", u->pos);
    *start = u->marks[--u->nmarks];
    return 0;
}

static int memo_put(unpickler *u, uint64_t idx)
{
    if (!u->sp) return io_fail(u->c->err, "pickle: memo store from an empty stack at byte %zu", u->pos);
    if (idx >= TB_MAX_MEMO) return io_fail(u->c->err, "pickle: memo index %llu too large", (unsigned long long)idx);
    size_t old = u->capmemo;
    if (grow((void **)&u->memo, &u->capmemo, (size_t)idx + 1, sizeof *u->memo, TB_MAX_MEMO))
        return io_fail(u->c->err, "pickle: out of memory");
    if (u->capmemo > old) memset(u->memo + old, 0, (u->capmemo - old) * sizeof *u->memo);
    if (!u->memo[idx]) u->nmemo++;
    u->memo[idx] = u->stack[u->sp - 1] + 1;
    return 0;
}

static int memo_get(unpickler *u, uint64_t idx)
{
    if (idx >= u->capmemo || !u->memo[idx])
        return io_fail(u->c->err, "pickle: memo index %llu read before it was set", (unsigned long long)idx);
    return push(u, (long)u->memo[idx] - 1);
}

static int resolve_global(unpickler *u, const uint8_t *mod, size_t ml, const uint8_t *name, size_t nl)
{
    tb_ctx *c = u->c;
#define IS(s, l, lit) ((l) == sizeof(lit) - 1 && memcmp((s), (lit), (l)) == 0)
    int id = 0;
    if (IS(mod, ml, "collections") && IS(name, nl, "OrderedDict")) id = G_ORDEREDDICT;
    else if (IS(mod, ml, "torch._utils") && IS(name, nl, "_rebuild_tensor")) id = G_REBUILD_TENSOR;
    else if (IS(mod, ml, "torch._utils") && IS(name, nl, "_rebuild_tensor_v2")) id = G_REBUILD_TENSOR_V2;
    else if (IS(mod, ml, "torch._utils") && IS(name, nl, "_rebuild_parameter")) id = G_REBUILD_PARAM;
    else if (IS(mod, ml, "torch._utils") && IS(name, nl, "_rebuild_parameter_with_state")) id = G_REBUILD_PARAM_STATE;
    else if (IS(mod, ml, "torch"))
        for (size_t i = 0; i < N_STORAGE_CLASSES; i++)
            if (nl == strlen(STORAGES[i].cls) && memcmp(name, STORAGES[i].cls, nl) == 0) id = G_STORAGE + (int)i;
#undef IS
    if (!id) {
        char mb[64], nb[64];
        return io_fail(c->err,
                       "pickle asks for %s.%s at byte %zu: refused (only tensor rebuilding is allowed)",
                       show(mb, sizeof mb, mod, ml), show(nb, sizeof nb, name, nl), u->pos);
    }
    long v = new_val(c, V_GLOBAL);
    if (v < 0) return -1;
    c->v[v].i = id;
    return push(u, v);
}

/* Read an int64 from a value: INT only (BOOL is not an int here). */
static int as_int(unpickler *u, uint32_t v, int64_t *out, const char *what)
{
    if (u->c->v[v].kind != V_INT) return io_fail(u->c->err, "pickle: %s is not an integer (byte %zu)", what, u->pos);
    *out = u->c->v[v].i;
    return 0;
}

static int int_tuple(unpickler *u, uint32_t v, int64_t *out, int *n, const char *what)
{
    const tb_val *x = &u->c->v[v];
    if (x->kind != V_TUPLE) return io_fail(u->c->err, "pickle: tensor %s is not a tuple (byte %zu)", what, u->pos);
    if (x->n > IO_ST_MAX_DIMS)
        return io_fail(u->c->err, "pickle: tensor with %u dims (max %d) at byte %zu", x->n, IO_ST_MAX_DIMS, u->pos);
    for (uint32_t i = 0; i < x->n; i++) {
        if (as_int(u, x->items[i], &out[i], what)) return -1;
        if (out[i] < 0) return io_fail(u->c->err, "pickle: negative tensor %s at byte %zu", what, u->pos);
    }
    *n = (int)x->n;
    return 0;
}

/* _rebuild_tensor(storage, offset, size, stride, ...): checks that every element
 * the tensor addresses lies inside the storage (view). */
static long rebuild_tensor(unpickler *u, const tb_val *args)
{
    tb_ctx *c = u->c;
    const tb_val *sv = &c->v[args->items[0]];
    if (sv->kind != V_STORAGE) return io_fail(c->err, "pickle: tensor rebuilt from a non-storage (byte %zu)", u->pos), -1;
    tb_tensor t;
    memset(&t, 0, sizeof t);
    int64_t off = 0;
    int nd_size = 0, nd_stride = 0;
    if (as_int(u, args->items[1], &off, "storage offset") || int_tuple(u, args->items[2], t.shape, &nd_size, "size") ||
        int_tuple(u, args->items[3], t.stride, &nd_stride, "stride"))
        return -1;
    if (nd_size != nd_stride)
        return io_fail(c->err, "pickle: tensor size has %d dims but stride %d (byte %zu)", nd_size, nd_stride, u->pos), -1;
    if (off < 0) return io_fail(c->err, "pickle: negative storage offset at byte %zu", u->pos), -1;
    t.ndim = nd_size;
    uint64_t view_n = sv->b, numel = 1, last = (uint64_t)off;
    if (last > view_n)
        return io_fail(c->err, "pickle: storage offset %lld past a storage of %llu elements (byte %zu)", (long long)off,
                       (unsigned long long)view_n, u->pos), -1;
    int empty = 0;
    for (int d = 0; d < t.ndim; d++)
        if (t.shape[d] == 0) empty = 1;
    for (int d = 0; d < t.ndim; d++) {
        uint64_t s = (uint64_t)t.shape[d];
        if (s && numel > ((uint64_t)1 << 62) / s)
            return io_fail(c->err, "pickle: tensor shape overflows at byte %zu", u->pos), -1;
        numel *= s;
        if (!empty) {
            /* (s-1)*stride must stay below the view size to be valid at all */
            uint64_t st = (uint64_t)t.stride[d];
            if (s > 1 && st && (s - 1) > view_n / st)
                return io_fail(c->err, "pickle: tensor strides reach past its storage (byte %zu)", u->pos), -1;
            last += (s - 1) * st;
            if (last > ((uint64_t)1 << 62))
                return io_fail(c->err, "pickle: tensor strides reach past its storage (byte %zu)", u->pos), -1;
        }
    }
    if (!empty && last >= view_n)
        return io_fail(c->err,
                       "pickle: tensor (offset %lld) addresses element %llu of a storage of %llu elements (byte %zu)",
                       (long long)off, (unsigned long long)last, (unsigned long long)view_n, u->pos),
               -1;
    t.numel = (int64_t)numel;
    t.offset = off + (int64_t)sv->a;
    t.storage = (size_t)sv->i;
    if (grow((void **)&c->t, &c->capt, c->nt + 1, sizeof *c->t, TB_MAX_VALUES))
        return io_fail(c->err, "pickle: out of memory"), -1;
    c->t[c->nt] = t;
    long v = new_val(c, V_TENSOR);
    if (v < 0) return -1;
    c->v[v].i = (int64_t)c->nt++;
    return v;
}

static int do_reduce(unpickler *u)
{
    tb_ctx *c = u->c;
    uint32_t fa = 0, aa = 0;
    if (pop(u, &aa) || pop(u, &fa)) return -1;
    const tb_val *f = &c->v[fa], *args = &c->v[aa];
    if (f->kind != V_GLOBAL) return io_fail(c->err, "pickle: REDUCE of a non-callable at byte %zu", u->pos);
    if (args->kind != V_TUPLE) return io_fail(c->err, "pickle: REDUCE arguments are not a tuple at byte %zu", u->pos);
    long r = -1;
    switch (f->i) {
    case G_ORDEREDDICT:
        if (args->n != 0) return io_fail(c->err, "pickle: OrderedDict called with arguments at byte %zu", u->pos);
        r = new_val(c, V_DICT);
        break;
    case G_REBUILD_TENSOR:
        if (args->n != 4) return io_fail(c->err, "pickle: _rebuild_tensor takes 4 arguments, got %u", args->n);
        r = rebuild_tensor(u, args);
        break;
    case G_REBUILD_TENSOR_V2:
        if (args->n != 6 && args->n != 7)
            return io_fail(c->err, "pickle: _rebuild_tensor_v2 takes 6 or 7 arguments, got %u", args->n);
        r = rebuild_tensor(u, args);
        break;
    case G_REBUILD_PARAM:
    case G_REBUILD_PARAM_STATE:
        if (args->n != (f->i == G_REBUILD_PARAM ? 3u : 4u))
            return io_fail(c->err, "pickle: _rebuild_parameter with %u arguments", args->n);
        if (c->v[args->items[0]].kind != V_TENSOR)
            return io_fail(c->err, "pickle: _rebuild_parameter of a non-tensor at byte %zu", u->pos);
        r = (long)args->items[0];
        break;
    default:
        return io_fail(c->err, "pickle: torch.%s called directly at byte %zu: refused", STORAGES[f->i - G_STORAGE].cls,
                       u->pos);
    }
    return push(u, r);
}

static int do_persid(unpickler *u)
{
    tb_ctx *c = u->c;
    uint32_t pa = 0;
    if (pop(u, &pa)) return -1;
    if (!u->allow_pid) return io_fail(c->err, "pickle: persistent id where none may appear (byte %zu)", u->pos);
    const tb_val *pid = &c->v[pa];
    if (pid->kind != V_TUPLE || pid->n < 1 || !str_eq(c, &c->v[pid->items[0]], "storage"))
        return io_fail(c->err, "pickle: persistent id at byte %zu is not a ('storage', ...) tuple", u->pos);
    if (pid->n != 5 && pid->n != 6)
        return io_fail(c->err, "pickle: storage persistent id with %u fields at byte %zu", pid->n, u->pos);
    const tb_val *cls = &c->v[pid->items[1]], *key = &c->v[pid->items[2]], *loc = &c->v[pid->items[3]];
    int64_t numel = 0;
    if (cls->kind != V_GLOBAL || cls->i < G_STORAGE)
        return io_fail(c->err, "pickle: storage type at byte %zu is not a torch storage class", u->pos);
    if (key->kind != V_STR || key->b == 0 || key->b > TB_MAX_KEY || loc->kind != V_STR)
        return io_fail(c->err, "pickle: bad storage key or location at byte %zu", u->pos);
    if (as_int(u, pid->items[4], &numel, "storage size")) return -1;
    if (numel < 0 || numel > ((int64_t)1 << 62))
        return io_fail(c->err, "pickle: bad storage size %lld at byte %zu", (long long)numel, u->pos);
    io_dtype dt = STORAGES[cls->i - G_STORAGE].dt;
    long s = storage_get(c, c->file + key->a, (size_t)key->b, dt, (uint64_t)numel);
    if (s < 0) return -1;
    uint64_t voff = 0, vn = (uint64_t)numel;
    if (pid->n == 6 && c->v[pid->items[5]].kind != V_NONE) { /* legacy view: (view_key, offset, size) */
        const tb_val *vm = &c->v[pid->items[5]];
        int64_t o = 0, n = 0;
        if (vm->kind != V_TUPLE || vm->n != 3 || c->v[vm->items[0]].kind != V_STR ||
            as_int(u, vm->items[1], &o, "view offset") || as_int(u, vm->items[2], &n, "view size"))
            return io_fail(c->err, "pickle: bad storage view at byte %zu", u->pos);
        if (o < 0 || n < 0 || (uint64_t)o > (uint64_t)numel || (uint64_t)n > (uint64_t)numel - (uint64_t)o)
            return io_fail(c->err, "pickle: storage view [%lld, +%lld) outside a storage of %lld elements", (long long)o,
                           (long long)n, (long long)numel);
        voff = (uint64_t)o;
        vn = (uint64_t)n;
    }
    long v = new_val(c, V_STORAGE);
    if (v < 0) return -1;
    c->v[v].i = s;
    c->v[v].a = voff;
    c->v[v].b = vn;
    return push(u, v);
}

static int push_str(unpickler *u, size_t n)
{
    if (u->len - u->pos < n) return io_fail(u->c->err, "pickle: truncated string at byte %zu", u->pos);
    long v = new_val(u->c, V_STR);
    if (v < 0) return -1;
    u->c->v[v].a = u->base + u->pos;
    u->c->v[v].b = n;
    u->pos += n;
    return push(u, v);
}

static int push_int(unpickler *u, int64_t i, int kind)
{
    long v = new_val(u->c, kind);
    if (v < 0) return -1;
    u->c->v[v].i = i;
    return push(u, v);
}

static int make_tuple(unpickler *u, size_t start)
{
    long v = new_val(u->c, V_TUPLE);
    if (v < 0) return -1;
    for (size_t k = start; k < u->sp; k++)
        if (add_item(u->c, (uint32_t)v, u->stack[k])) return -1;
    u->sp = start;
    return push(u, v);
}

static int read_line(unpickler *u, const uint8_t **s, size_t *n)
{
    size_t lim = u->len - u->pos < TB_GLOBAL_MAX ? u->len - u->pos : TB_GLOBAL_MAX;
    const uint8_t *nl = memchr(u->p + u->pos, '\n', lim);
    if (!nl) return io_fail(u->c->err, "pickle: unterminated or overlong GLOBAL at byte %zu", u->pos);
    *s = u->p + u->pos;
    *n = (size_t)(nl - *s);
    u->pos += *n + 1;
    return 0;
}

/* Runs one pickle from p[0..len) (p = c->file + base); *result gets the value at
 * STOP and *used the bytes consumed. */
static int unpickle(tb_ctx *c, size_t base, size_t len, int allow_pid, uint32_t *result, size_t *used)
{
    unpickler u;
    memset(&u, 0, sizeof u);
    u.c = c;
    u.base = base;
    u.p = c->file + base;
    u.len = len;
    u.allow_pid = allow_pid;
    int rc = -1;
    for (;;) {
        if (u.pos >= u.len) { io_fail(c->err, "pickle: ends without STOP"); break; }
        size_t at = u.pos;
        uint8_t op = u.p[u.pos++];
        int e = 0;
        uint32_t a = 0, b = 0;
        size_t start = 0;
        switch (op) {
        case 0x80: /* PROTO */
            if ((e = need(&u, 1, "PROTO"))) break;
            if (u.p[u.pos] > 5) e = io_fail(c->err, "pickle: protocol %d is unknown", u.p[u.pos]);
            u.pos++;
            break;
        case 0x95: /* FRAME: a length hint */
            if (!(e = need(&u, 8, "FRAME"))) u.pos += 8;
            break;
        case '.': /* STOP */
            if (pop(&u, result)) goto out;
            *used = u.pos;
            rc = 0;
            goto out;
        case '(': /* MARK */
            if (u.nmarks == TB_MAX_MARKS) { e = io_fail(c->err, "pickle: more than %u nested MARKs", TB_MAX_MARKS); break; }
            u.marks[u.nmarks++] = u.sp;
            break;
        case '}': e = push(&u, new_val(c, V_DICT)); break;
        case ']': e = push(&u, new_val(c, V_LIST)); break;
        case ')': e = push(&u, new_val(c, V_TUPLE)); break;
        case 'N': e = push(&u, new_val(c, V_NONE)); break;
        case 0x88: e = push_int(&u, 1, V_BOOL); break;
        case 0x89: e = push_int(&u, 0, V_BOOL); break;
        case 'K': /* BININT1 */
            if (!(e = need(&u, 1, "BININT1"))) { e = push_int(&u, u.p[u.pos], V_INT); u.pos += 1; }
            break;
        case 'M': /* BININT2 */
            if (!(e = need(&u, 2, "BININT2"))) { e = push_int(&u, (int64_t)rd_le(u.p + u.pos, 2), V_INT); u.pos += 2; }
            break;
        case 'J': /* BININT: signed 32-bit */
            if (!(e = need(&u, 4, "BININT"))) {
                e = push_int(&u, (int64_t)(int32_t)(uint32_t)rd_le(u.p + u.pos, 4), V_INT);
                u.pos += 4;
            }
            break;
        case 0x8a: { /* LONG1: n bytes, two's complement little-endian */
            if ((e = need(&u, 1, "LONG1"))) break;
            size_t n = u.p[u.pos++];
            if ((e = need(&u, n, "LONG1"))) break;
            if (n <= 8) {
                uint64_t x = n ? rd_le(u.p + u.pos, (int)n) : 0;
                if (n && n < 8 && (u.p[u.pos + n - 1] & 0x80)) x |= ~(uint64_t)0 << (8 * n); /* sign-extend */
                int64_t s;
                memcpy(&s, &x, sizeof s);
                e = push_int(&u, s, V_INT);
            } else {
                long v = new_val(c, V_BIGINT);
                if (v < 0) { e = -1; break; }
                c->v[v].a = base + u.pos;
                c->v[v].b = n;
                e = push(&u, v);
            }
            u.pos += n;
            break;
        }
        case 'G': /* BINFLOAT: a number we never use */
            if (!(e = need(&u, 8, "BINFLOAT"))) { u.pos += 8; e = push(&u, new_val(c, V_FLOAT)); }
            break;
        case 'X': /* BINUNICODE */
        case 'T': /* BINSTRING */
            if (!(e = need(&u, 4, "string length"))) {
                uint64_t n = rd_le(u.p + u.pos, 4);
                u.pos += 4;
                e = push_str(&u, (size_t)n);
            }
            break;
        case 0x8c: /* SHORT_BINUNICODE */
        case 'U':  /* SHORT_BINSTRING */
            if (!(e = need(&u, 1, "string length"))) { size_t n = u.p[u.pos++]; e = push_str(&u, n); }
            break;
        case 0x8d: /* BINUNICODE8 */
            if (!(e = need(&u, 8, "string length"))) {
                uint64_t n = rd_le(u.p + u.pos, 8);
                u.pos += 8;
                e = n > u.len ? io_fail(c->err, "pickle: truncated string at byte %zu", u.pos) : push_str(&u, (size_t)n);
            }
            break;
        case 't': /* TUPLE */
            if (!(e = pop_mark(&u, &start))) e = make_tuple(&u, start);
            break;
        case 0x85: case 0x86: case 0x87: { /* TUPLE1..3 */
            size_t k = (size_t)(op - 0x84), fl = u.nmarks ? u.marks[u.nmarks - 1] : 0;
            if (u.sp < fl + k) { e = io_fail(c->err, "pickle: stack underflow at byte %zu", at); break; }
            e = make_tuple(&u, u.sp - k);
            break;
        }
        case 'q': /* BINPUT */
            if (!(e = need(&u, 1, "BINPUT"))) { e = memo_put(&u, u.p[u.pos]); u.pos += 1; }
            break;
        case 'r': /* LONG_BINPUT */
            if (!(e = need(&u, 4, "LONG_BINPUT"))) { e = memo_put(&u, rd_le(u.p + u.pos, 4)); u.pos += 4; }
            break;
        case 0x94: /* MEMOIZE: slot len(memo) */
            e = memo_put(&u, u.nmemo);
            break;
        case 'h': /* BINGET */
            if (!(e = need(&u, 1, "BINGET"))) { e = memo_get(&u, u.p[u.pos]); u.pos += 1; }
            break;
        case 'j': /* LONG_BINGET */
            if (!(e = need(&u, 4, "LONG_BINGET"))) { e = memo_get(&u, rd_le(u.p + u.pos, 4)); u.pos += 4; }
            break;
        case 'c': { /* GLOBAL module\nname\n */
            const uint8_t *m = NULL, *n = NULL;
            size_t ml = 0, nl = 0;
            if (!(e = read_line(&u, &m, &ml)) && !(e = read_line(&u, &n, &nl))) e = resolve_global(&u, m, ml, n, nl);
            break;
        }
        case 0x93: /* STACK_GLOBAL */
            if ((e = pop(&u, &b)) || (e = pop(&u, &a))) break;
            if (c->v[a].kind != V_STR || c->v[b].kind != V_STR || c->v[a].b > TB_GLOBAL_MAX || c->v[b].b > TB_GLOBAL_MAX) {
                e = io_fail(c->err, "pickle: STACK_GLOBAL of non-strings at byte %zu", at);
                break;
            }
            e = resolve_global(&u, c->file + c->v[a].a, (size_t)c->v[a].b, c->file + c->v[b].a, (size_t)c->v[b].b);
            break;
        case 'R': e = do_reduce(&u); break;
        case 'Q': e = do_persid(&u); break;
        case 'b': /* BUILD: only OrderedDict's attribute dict (`_metadata`), dropped */
            if ((e = pop(&u, &b))) break;
            if (!u.sp || c->v[u.stack[u.sp - 1]].kind != V_DICT || (c->v[b].kind != V_DICT && c->v[b].kind != V_NONE))
                e = io_fail(c->err, "pickle: BUILD of something other than a dict at byte %zu: refused", at);
            break;
        case 's': /* SETITEM */
            if ((e = pop(&u, &b)) || (e = pop(&u, &a))) break;
            if (!u.sp || c->v[u.stack[u.sp - 1]].kind != V_DICT) {
                e = io_fail(c->err, "pickle: SETITEM on a non-dict at byte %zu", at);
                break;
            }
            if (!(e = add_item(c, u.stack[u.sp - 1], a))) e = add_item(c, u.stack[u.sp - 1], b);
            break;
        case 'u': /* SETITEMS */
            if ((e = pop_mark(&u, &start))) break;
            if (start == 0 || c->v[u.stack[start - 1]].kind != V_DICT || (u.sp - start) % 2) {
                e = io_fail(c->err, "pickle: SETITEMS on a non-dict or an odd item count at byte %zu", at);
                break;
            }
            for (size_t k = start; k < u.sp && !e; k++) e = add_item(c, u.stack[start - 1], u.stack[k]);
            u.sp = start;
            break;
        case 'a': /* APPEND */
            if ((e = pop(&u, &a))) break;
            if (!u.sp || c->v[u.stack[u.sp - 1]].kind != V_LIST) {
                e = io_fail(c->err, "pickle: APPEND to a non-list at byte %zu", at);
                break;
            }
            e = add_item(c, u.stack[u.sp - 1], a);
            break;
        case 'e': /* APPENDS */
            if ((e = pop_mark(&u, &start))) break;
            if (start == 0 || c->v[u.stack[start - 1]].kind != V_LIST) {
                e = io_fail(c->err, "pickle: APPENDS to a non-list at byte %zu", at);
                break;
            }
            for (size_t k = start; k < u.sp && !e; k++) e = add_item(c, u.stack[start - 1], u.stack[k]);
            u.sp = start;
            break;
        default:
            e = io_fail(c->err, "pickle: opcode 0x%02x at byte %zu is not one torch.save emits for tensors: refused",
                        op, at);
        }
        if (e) break;
    }
out:
    free(u.stack);
    free(u.memo);
    return rc;
}

/* ---------------------------------------------------------------------- zip */

typedef struct {
    const uint8_t *name;
    size_t nlen;
    uint64_t csize, usize, lho;
    uint32_t crc;
    int method, flags;
} zent;

/* CRC-32 (zip's, reflected 0xEDB88320), slicing by 4; the table lives on the
 * caller's stack (no global state). */
typedef struct {
    uint32_t t[4][256];
} crc_tab;
#define crc_table (tab->t)

static void crc_init(crc_tab *tab)
{
    for (uint32_t i = 0; i < 256; i++) {
        uint32_t c = i;
        for (int k = 0; k < 8; k++) c = c & 1 ? 0xedb88320u ^ (c >> 1) : c >> 1;
        crc_table[0][i] = c;
    }
    for (uint32_t i = 0; i < 256; i++)
        for (int t = 1; t < 4; t++) crc_table[t][i] = (crc_table[t - 1][i] >> 8) ^ crc_table[0][crc_table[t - 1][i] & 0xff];
}

static uint32_t crc32_of(const crc_tab *tab, const uint8_t *p, uint64_t n)
{
    uint32_t c = 0xffffffffu;
    for (; n >= 4; n -= 4, p += 4) {
        c ^= (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
        c = crc_table[3][c & 0xff] ^ crc_table[2][(c >> 8) & 0xff] ^ crc_table[1][(c >> 16) & 0xff] ^
            crc_table[0][c >> 24];
    }
    while (n--) c = crc_table[0][(c ^ *p++) & 0xff] ^ (c >> 8);
    return c ^ 0xffffffffu;
}

static int zent_cmp(const void *x, const void *y)
{
    const zent *a = x, *b = y;
    size_t n = a->nlen < b->nlen ? a->nlen : b->nlen;
    int r = memcmp(a->name, b->name, n);
    return r ? r : (a->nlen < b->nlen ? -1 : a->nlen > b->nlen);
}

typedef struct {
    zent *e;
    size_t n;
} zdir;

static int zip_read_dir(const uint8_t *f, size_t len, zdir *z, char *err)
{
    memset(z, 0, sizeof *z);
    if (len < 22) return io_fail(err, "zip: file too short (%zu bytes)", len);
    size_t eocd = (size_t)-1;
    size_t lo = len - 22 > 65535 ? len - 22 - 65535 : 0;
    for (size_t p = len - 22 + 1; p-- > lo;)
        if (rd_le(f + p, 4) == 0x06054b50) { eocd = p; break; }
    if (eocd == (size_t)-1) return io_fail(err, "zip: no end-of-central-directory record (truncated file?)");
    uint64_t n = rd_le(f + eocd + 10, 2), cdsize = rd_le(f + eocd + 12, 4), cdoff = rd_le(f + eocd + 16, 4);
    if (n == 0xffff || cdsize == 0xffffffffu || cdoff == 0xffffffffu) { /* zip64 */
        if (eocd < 20 || rd_le(f + eocd - 20, 4) != 0x07064b50) return io_fail(err, "zip: zip64 locator missing");
        uint64_t z64 = rd_le(f + eocd - 20 + 8, 8);
        if (z64 > len || len - z64 < 56 || rd_le(f + z64, 4) != 0x06064b50)
            return io_fail(err, "zip: zip64 end-of-central-directory record outside the file or corrupt");
        n = rd_le(f + z64 + 32, 8);
        cdsize = rd_le(f + z64 + 40, 8);
        cdoff = rd_le(f + z64 + 48, 8);
    }
    if (cdoff > len || cdsize > len - cdoff)
        return io_fail(err, "zip: central directory [%llu, +%llu) lies outside the file (%zu bytes)",
                       (unsigned long long)cdoff, (unsigned long long)cdsize, len);
    if (n > cdsize / 46 || n > TB_MAX_ZIP_ENTRIES)
        return io_fail(err, "zip: %llu entries cannot fit a central directory of %llu bytes", (unsigned long long)n,
                       (unsigned long long)cdsize);
    z->e = calloc(n ? (size_t)n : 1, sizeof *z->e);
    if (!z->e) return io_fail(err, "zip: out of memory");
    const uint8_t *p = f + cdoff, *end = f + cdoff + cdsize;
    for (uint64_t i = 0; i < n; i++) {
        if (end - p < 46 || rd_le(p, 4) != 0x02014b50)
            return io_fail(err, "zip: central directory entry %llu is corrupt", (unsigned long long)i);
        zent *e = &z->e[z->n];
        e->flags = (int)rd_le(p + 8, 2);
        e->method = (int)rd_le(p + 10, 2);
        e->crc = (uint32_t)rd_le(p + 16, 4);
        e->csize = rd_le(p + 20, 4);
        e->usize = rd_le(p + 24, 4);
        size_t nl = (size_t)rd_le(p + 28, 2), el = (size_t)rd_le(p + 30, 2), cl = (size_t)rd_le(p + 32, 2);
        e->lho = rd_le(p + 42, 4);
        if ((size_t)(end - p) - 46 < nl + el + cl)
            return io_fail(err, "zip: central directory entry %llu runs past the directory", (unsigned long long)i);
        e->name = p + 46;
        e->nlen = nl;
        /* zip64 extended information: the fields that were 0xffffffff, in order */
        const uint8_t *x = p + 46 + nl, *xe = x + el;
        while (xe - x >= 4) {
            size_t id = (size_t)rd_le(x, 2), sz = (size_t)rd_le(x + 2, 2);
            if ((size_t)(xe - x) - 4 < sz) break;
            if (id == 1) {
                const uint8_t *q = x + 4, *qe = x + 4 + sz;
                uint64_t *fields[3] = {&e->usize, &e->csize, &e->lho};
                for (int k = 0; k < 3; k++)
                    if (*fields[k] == 0xffffffffu) {
                        if (qe - q < 8) return io_fail(err, "zip: truncated zip64 field in entry %llu", (unsigned long long)i);
                        *fields[k] = rd_le(q, 8);
                        q += 8;
                    }
            }
            x += 4 + sz;
        }
        p += 46 + nl + el + cl;
        z->n++;
    }
    qsort(z->e, z->n, sizeof *z->e, zent_cmp);
    for (size_t i = 1; i < z->n; i++)
        if (zent_cmp(&z->e[i - 1], &z->e[i]) == 0) {
            char nb[80];
            return io_fail(err, "zip: entry %s appears twice", show(nb, sizeof nb, z->e[i].name, z->e[i].nlen));
        }
    return 0;
}

static const zent *zip_find(const zdir *z, const uint8_t *name, size_t nlen)
{
    zent key;
    memset(&key, 0, sizeof key);
    key.name = name;
    key.nlen = nlen;
    return z->n ? bsearch(&key, z->e, z->n, sizeof *z->e, zent_cmp) : NULL;
}

/* The byte range of a stored entry's data, checked against the file. */
static int zip_data(const crc_tab *tab, const uint8_t *f, size_t len, const zent *e, uint64_t *begin, char *err)
{
    char nb[80];
    show(nb, sizeof nb, e->name, e->nlen);
    if (e->flags & 1) return io_fail(err, "zip: entry %s is encrypted", nb);
    if (e->method != 0)
        return io_fail(err,
                       "zip: entry %s is compressed (method %d); torch.save stores entries uncompressed and only "
                       "that is supported",
                       nb, e->method);
    if (e->csize != e->usize) return io_fail(err, "zip: stored entry %s has different packed and unpacked sizes", nb);
    if (e->lho > len || len - e->lho < 30 || rd_le(f + e->lho, 4) != 0x04034b50)
        return io_fail(err, "zip: local header of entry %s is missing or outside the file", nb);
    uint64_t d = e->lho + 30 + rd_le(f + e->lho + 26, 2) + rd_le(f + e->lho + 28, 2);
    if (d > len || e->csize > len - d)
        return io_fail(err, "zip: entry %s ([%llu, +%llu)) runs past the end of the file (%zu bytes)", nb,
                       (unsigned long long)d, (unsigned long long)e->csize, len);
    uint32_t crc = crc32_of(tab, f + d, e->csize);
#ifndef FUZZING_BUILD_MODE_UNSAFE_FOR_PRODUCTION /* let the fuzzer's mutations reach the pickle */
    if (crc != e->crc) return io_fail(err, "zip: entry %s fails its CRC-32 check (corrupt file)", nb);
#else
    (void)crc;
#endif
    *begin = d;
    return 0;
}

/* ------------------------------------------------------------------ formats */

static int parse_zip(tb_ctx *c, uint32_t *root)
{
    const uint8_t *f = c->file;
    size_t len = c->file_len;
    zdir z;
    int rc = -1;
    uint8_t *name = NULL;
    crc_tab tab;
    crc_init(&tab);
    if (zip_read_dir(f, len, &z, c->err)) goto out;
    if (!z.n) { io_fail(c->err, "zip: archive has no entries"); goto out; }
    /* torch's reader: the archive name is the first record's directory (in file
     * order: the smallest local header offset). */
    const zent *first = &z.e[0];
    for (size_t i = 1; i < z.n; i++)
        if (z.e[i].lho < first->lho) first = &z.e[i];
    const uint8_t *slash = memchr(first->name, '/', first->nlen);
    if (!slash) { io_fail(c->err, "zip: first entry is not inside an archive directory"); goto out; }
    size_t pl = (size_t)(slash - first->name) + 1; /* prefix including '/' */
    name = malloc(pl + 16 + TB_MAX_KEY);
    if (!name) { io_fail(c->err, "out of memory"); goto out; }
    memcpy(name, first->name, pl);

    memcpy(name + pl, "byteorder", 9);
    const zent *bo = zip_find(&z, name, pl + 9);
    if (bo) {
        uint64_t b0;
        if (zip_data(&tab, f, len, bo, &b0, c->err)) goto out;
        if (!(bo->usize == 6 && memcmp(f + b0, "little", 6) == 0)) {
            io_fail(c->err, "zip: byteorder is not \"little\": big-endian files are not supported");
            goto out;
        }
    }
    memcpy(name + pl, "data.pkl", 8);
    const zent *pk = zip_find(&z, name, pl + 8);
    char nb[80];
    if (!pk) {
        io_fail(c->err, "zip: no %s entry (not a torch.save archive?)", show(nb, sizeof nb, name, pl + 8));
        goto out;
    }
    uint64_t pb;
    if (zip_data(&tab, f, len, pk, &pb, c->err)) goto out;
    if (pk->usize > TB_MAX_PICKLE) { io_fail(c->err, "zip: data.pkl larger than %zu bytes", TB_MAX_PICKLE); goto out; }
    size_t used;
    if (unpickle(c, (size_t)pb, (size_t)pk->usize, 1, root, &used)) goto out;
    for (size_t i = 0; i < c->nst; i++) {
        tb_storage *s = &c->st[i];
        memcpy(name + pl, "data/", 5);
        memcpy(name + pl + 5, s->key, s->klen);
        const zent *e = zip_find(&z, name, pl + 5 + s->klen);
        if (!e) {
            char eb[80];
            io_fail(c->err, "zip: storage %s has no entry %s", show(nb, sizeof nb, s->key, s->klen),
                    show(eb, sizeof eb, name, pl + 5 + s->klen));
            goto out;
        }
        if (zip_data(&tab, f, len, e, &s->begin, c->err)) goto out;
        uint64_t es = (uint64_t)dt_size(s->dtype);
        if (s->numel > e->usize / es) {
            io_fail(c->err, "zip: storage %s holds %llu %s elements but its entry has only %llu bytes",
                    show(nb, sizeof nb, s->key, s->klen), (unsigned long long)s->numel, dt_name(s->dtype),
                    (unsigned long long)e->usize);
            goto out;
        }
        s->located = 1;
    }
    rc = 0;
out:
    free(name);
    free(z.e);
    return rc;
}

static const uint8_t LEGACY_MAGIC[10] = {0x6c, 0xfc, 0x9c, 0x46, 0xf9, 0x20, 0x6a, 0xa8, 0x50, 0x19};

static int parse_legacy(tb_ctx *c, uint32_t *root)
{
    size_t pos = 0, used;
    uint32_t v;
    const size_t len = c->file_len;
    if (len > 262 && memcmp(c->file + 257, "ustar", 5) == 0)
        return io_fail(c->err, "legacy tar format (torch < 0.4) is not supported: re-save with a newer torch");
    if (len < 2 || c->file[0] != 0x80)
        return io_fail(c->err, "neither a zip archive nor a legacy torch.save file");
    /* magic number */
    if (unpickle(c, pos, len - pos, 0, &v, &used)) return -1;
    if (c->v[v].kind != V_BIGINT || c->v[v].b != sizeof LEGACY_MAGIC ||
        memcmp(c->file + c->v[v].a, LEGACY_MAGIC, sizeof LEGACY_MAGIC) != 0)
        return io_fail(c->err, "legacy: bad magic number (not a torch.save file)");
    pos += used;
    if (unpickle(c, pos, len - pos, 0, &v, &used)) return -1;
    if (c->v[v].kind != V_INT || c->v[v].i != 1001)
        return io_fail(c->err, "legacy: unknown protocol version (want 1001)");
    pos += used;
    if (unpickle(c, pos, len - pos, 0, &v, &used)) return -1;
    if (c->v[v].kind != V_DICT) return io_fail(c->err, "legacy: system info is not a dict");
    for (uint32_t k = 0; k + 1 < c->v[v].n; k += 2)
        if (str_eq(c, &c->v[c->v[v].items[k]], "little_endian")) {
            const tb_val *x = &c->v[c->v[v].items[k + 1]];
            if (x->kind != V_BOOL || x->i != 1) return io_fail(c->err, "legacy: big-endian files are not supported");
        }
    pos += used;
    if (unpickle(c, pos, len - pos, 1, root, &used)) return -1;
    pos += used;
    if (unpickle(c, pos, len - pos, 0, &v, &used)) return -1;
    pos += used;
    const tb_val *keys = &c->v[v];
    if (keys->kind != V_LIST) return io_fail(c->err, "legacy: storage key list is not a list");
    char nb[80];
    for (uint32_t k = 0; k < keys->n; k++) {
        const tb_val *kv = &c->v[keys->items[k]];
        if (kv->kind != V_STR) return io_fail(c->err, "legacy: storage key %u is not a string", k);
        long s = storage_find(c, c->file + kv->a, (size_t)kv->b);
        if (s < 0)
            return io_fail(c->err, "legacy: storage %s is not used by any tensor",
                           show(nb, sizeof nb, c->file + kv->a, (size_t)kv->b));
        tb_storage *st = &c->st[s];
        if (st->located) return io_fail(c->err, "legacy: storage %s is listed twice", show(nb, sizeof nb, st->key, st->klen));
        if (len - pos < 8) return io_fail(c->err, "legacy: file ends before storage %s", show(nb, sizeof nb, st->key, st->klen));
        uint64_t numel = rd_le(c->file + pos, 8), es = (uint64_t)dt_size(st->dtype);
        pos += 8;
        if (numel != st->numel)
            return io_fail(c->err, "legacy: storage %s has %llu elements in the file but %llu in the pickle",
                           show(nb, sizeof nb, st->key, st->klen), (unsigned long long)numel,
                           (unsigned long long)st->numel);
        if (numel > (len - pos) / es)
            return io_fail(c->err, "legacy: storage %s (%llu %s elements) runs past the end of the file",
                           show(nb, sizeof nb, st->key, st->klen), (unsigned long long)numel, dt_name(st->dtype));
        st->begin = pos;
        st->located = 1;
        pos += (size_t)(numel * es);
    }
    for (size_t i = 0; i < c->nst; i++)
        if (!c->st[i].located)
            return io_fail(c->err, "legacy: storage %s has no data", show(nb, sizeof nb, c->st[i].key, c->st[i].klen));
    return 0;
}

static int cmp_names(const void *a, const void *b)
{
    return strcmp((*(const io_tb_tensor *const *)a)->name, (*(const io_tb_tensor *const *)b)->name);
}

/* Build the public table from the root dict. */
static int collect(tb_ctx *c, uint32_t root, io_torchbin *out)
{
    const tb_val *d = &c->v[root];
    char nb[80];
    if (d->kind != V_DICT) return io_fail(c->err, "the saved object is not a dict of tensors (a state dict)");
    size_t n = d->n / 2;
    out->tensors = calloc(n ? n : 1, sizeof *out->tensors);
    out->storages = calloc(c->nst ? c->nst : 1, sizeof *out->storages);
    if (!out->tensors || !out->storages) return io_fail(c->err, "out of memory");
    for (size_t i = 0; i < c->nst; i++) {
        io_tb_storage *s = &out->storages[i];
        s->key = malloc(c->st[i].klen + 1);
        if (!s->key) return io_fail(c->err, "out of memory");
        out->n_storages = i + 1;
        memcpy(s->key, c->st[i].key, c->st[i].klen);
        s->key[c->st[i].klen] = 0;
        s->dtype = c->st[i].dtype;
        s->numel = (int64_t)c->st[i].numel;
        s->begin = c->st[i].begin;
    }
    for (size_t i = 0; i < n; i++) {
        const tb_val *k = &c->v[d->items[2 * i]], *v = &c->v[d->items[2 * i + 1]];
        if (k->kind != V_STR) return io_fail(c->err, "state dict key %zu is not a string", i);
        const uint8_t *ks = c->file + k->a;
        if (memchr(ks, 0, (size_t)k->b)) return io_fail(c->err, "state dict key %zu contains a NUL byte", i);
        if (v->kind != V_TENSOR)
            return io_fail(c->err, "state dict entry %s is not a tensor (only a flat dict of tensors is supported)",
                           show(nb, sizeof nb, ks, (size_t)k->b));
        io_tb_tensor *t = &out->tensors[i];
        t->name = malloc((size_t)k->b + 1);
        if (!t->name) return io_fail(c->err, "out of memory");
        out->n = i + 1;
        memcpy(t->name, ks, (size_t)k->b);
        t->name[k->b] = 0;
        const tb_tensor *src = &c->t[v->i];
        t->dtype = c->st[src->storage].dtype;
        t->ndim = src->ndim;
        memcpy(t->shape, src->shape, sizeof t->shape);
        memcpy(t->stride, src->stride, sizeof t->stride);
        t->numel = src->numel;
        t->offset = src->offset;
        t->storage = src->storage;
    }
    if (n > 1) {
        io_tb_tensor **ix = malloc(n * sizeof *ix);
        if (!ix) return io_fail(c->err, "out of memory");
        for (size_t i = 0; i < n; i++) ix[i] = &out->tensors[i];
        qsort(ix, n, sizeof *ix, cmp_names);
        int dup = 0;
        for (size_t i = 1; i < n && !dup; i++)
            if (strcmp(ix[i]->name, ix[i - 1]->name) == 0) {
                io_fail(c->err, "state dict entry %s appears twice",
                        show(nb, sizeof nb, (const uint8_t *)ix[i]->name, strlen(ix[i]->name)));
                dup = 1;
            }
        free(ix);
        if (dup) return -1;
    }
    return 0;
}

static int parse_map(io_torchbin *out, char *err)
{
    tb_ctx c;
    memset(&c, 0, sizeof c);
    c.file = out->map;
    c.file_len = out->map_size;
    c.err = err;
    uint32_t root = 0;
    int is_zip = out->map_size >= 4 && rd_le(c.file, 4) == 0x04034b50;
    out->legacy = !is_zip;
    int rc = is_zip ? parse_zip(&c, &root) : parse_legacy(&c, &root);
    if (!rc) rc = collect(&c, root, out);
    ctx_free(&c);
    return rc;
}

/* ---------------------------------------------------------------------- API */

void io_torchbin_free(io_torchbin *b)
{
    if (!b) return;
    for (size_t i = 0; i < b->n && b->tensors; i++) free(b->tensors[i].name);
    free(b->tensors);
    for (size_t i = 0; i < b->n_storages && b->storages; i++) free(b->storages[i].key);
    free(b->storages);
    if (b->map) {
        if (b->mapped) munmap(b->map, b->map_size);
        else free(b->map);
    }
    memset(b, 0, sizeof *b);
}

int io_torchbin_parse(const void *buf, size_t len, io_torchbin *out, char err[IO_ERRLEN])
{
    memset(out, 0, sizeof *out);
    out->map = malloc(len ? len : 1);
    if (!out->map) return io_fail(err, "torch.save: out of memory");
    if (len) memcpy(out->map, buf, len);
    out->map_size = len;
    char inner[IO_ERRLEN];
    if (parse_map(out, inner)) {
        io_torchbin_free(out);
        return io_fail(err, "torch.save: %.230s", inner);
    }
    return 0;
}

int io_torchbin_open(const char *path, io_torchbin *out, char err[IO_ERRLEN])
{
    memset(out, 0, sizeof *out);
    int fd = open(path, O_RDONLY);
    if (fd < 0) return io_fail(err, "%s: cannot open (%s)", path, strerror(errno));
    struct stat sb;
    if (fstat(fd, &sb) != 0 || !S_ISREG(sb.st_mode)) {
        close(fd);
        return io_fail(err, "%s: not a regular file", path);
    }
    if (sb.st_size == 0) {
        close(fd);
        return io_fail(err, "%s: empty file", path);
    }
    void *m = mmap(NULL, (size_t)sb.st_size, PROT_READ, MAP_PRIVATE, fd, 0);
    close(fd);
    if (m == MAP_FAILED) return io_fail(err, "%s: mmap failed (%s)", path, strerror(errno));
    out->map = m;
    out->map_size = (size_t)sb.st_size;
    out->mapped = 1;
    char inner[IO_ERRLEN];
    if (parse_map(out, inner)) {
        io_torchbin_free(out);
        return io_fail(err, "%.100s: %.150s", path, inner);
    }
    return 0;
}

long io_torchbin_find(const io_torchbin *b, const char *name)
{
    for (size_t i = 0; i < b->n; i++)
        if (strcmp(b->tensors[i].name, name) == 0) return (long)i;
    return -1;
}

int io_torchbin_read_f32(const io_torchbin *b, size_t index, float *dst, size_t n, char err[IO_ERRLEN])
{
    if (index >= b->n) return io_fail(err, "torch.save: tensor index %zu out of range (%zu tensors)", index, b->n);
    const io_tb_tensor *t = &b->tensors[index];
    if ((uint64_t)n != (uint64_t)t->numel)
        return io_fail(err, "torch.save: tensor %.80s has %lld values, expected %zu", t->name, (long long)t->numel, n);
    if (t->dtype != IO_DT_F32 && t->dtype != IO_DT_F16 && t->dtype != IO_DT_BF16)
        return io_fail(err, "torch.save: tensor %.80s is %s, not Float/Half/BFloat16", t->name, dt_name(t->dtype));
    if (!n) return 0;
    const io_tb_storage *s = &b->storages[t->storage];
    const uint8_t *base = (const uint8_t *)b->map + s->begin;
    int64_t idx[IO_ST_MAX_DIMS] = {0};
    uint64_t e = (uint64_t)t->offset; /* element index in the storage; bounds checked at open */
    for (size_t i = 0; i < n; i++) {
        const uint8_t *p;
        switch (t->dtype) {
        case IO_DT_F32: {
            p = base + 4 * e;
            uint32_t u = (uint32_t)rd_le(p, 4);
            memcpy(&dst[i], &u, 4);
            break;
        }
        case IO_DT_F16:
            p = base + 2 * e;
            dst[i] = io_half_to_float((uint16_t)rd_le(p, 2));
            break;
        default: {
            p = base + 2 * e;
            uint32_t u = (uint32_t)rd_le(p, 2) << 16;
            memcpy(&dst[i], &u, 4);
            break;
        }
        }
        /* odometer over the shape, last dimension fastest */
        for (int d = t->ndim - 1; d >= 0; d--) {
            if (++idx[d] < t->shape[d]) { e += (uint64_t)t->stride[d]; break; }
            e -= (uint64_t)t->stride[d] * (uint64_t)(t->shape[d] - 1);
            idx[d] = 0;
        }
    }
    return 0;
}
