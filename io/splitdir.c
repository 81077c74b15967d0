/* Split folders (`adebert data split`): the rows of train, val and test as three
 * JSONL files plus a manifest with their sha256, so that adebert, a baseline and a
 * Hugging Face peer can be shown to have used the same rows. */
#include "io/io.h"
#include "io/io_internal.h"

#include <cjson/cJSON.h>
#include <errno.h>
#include <fcntl.h>
#include <nettle/sha2.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

static const char *const PARTS[3] = {"train", "val", "test"};

static int join(char *out, size_t cap, const char *dir, const char *name, char err[IO_ERRLEN])
{
    if ((size_t)snprintf(out, cap, "%s/%s", dir, name) >= cap)
        return io_fail(err, "%.200s: path too long", dir);
    return 0;
}

int io_splitdir_is(const char *path)
{
    char p[4096];
    struct stat st;
    if (!path || stat(path, &st) != 0 || !S_ISDIR(st.st_mode))
        return 0;
    if ((size_t)snprintf(p, sizeof p, "%s/%s", path, IO_SPLITDIR_MANIFEST) >= sizeof p)
        return 0;
    return access(p, F_OK) == 0;
}

int io_sha256_file(const char *path, char hex[65], char err[IO_ERRLEN])
{
    FILE *f = fopen(path, "rb");
    if (!f)
        return io_fail(err, "%.300s: cannot open: %s", path, strerror(errno));
    struct sha256_ctx ctx;
    sha256_init(&ctx);
    uint8_t buf[1 << 16];
    size_t n;
    while ((n = fread(buf, 1, sizeof buf, f)) > 0)
        sha256_update(&ctx, n, buf);
    int bad = ferror(f);
    fclose(f);
    if (bad)
        return io_fail(err, "%.300s: read error", path);
    uint8_t d[SHA256_DIGEST_SIZE];
    sha256_digest(&ctx, sizeof d, d);
    io_hex32(d, hex);
    return 0;
}

/* The manifest as a cJSON object, or NULL with err filled. */
static cJSON *read_manifest(const char *dir, char err[IO_ERRLEN])
{
    char p[4096];
    if (join(p, sizeof p, dir, IO_SPLITDIR_MANIFEST, err))
        return NULL;
    FILE *f = fopen(p, "rb");
    if (!f) {
        io_fail(err, "%.300s: cannot open: %s", p, strerror(errno));
        return NULL;
    }
    char *buf = malloc(1 << 20);
    size_t n = buf ? fread(buf, 1, (1 << 20) - 1, f) : 0;
    int too_big = buf && n == (1 << 20) - 1 && fgetc(f) != EOF;
    fclose(f);
    if (!buf || too_big) {
        free(buf);
        io_fail(err, "%.300s: %s", p, buf ? "larger than 1 MiB" : "out of memory");
        return NULL;
    }
    buf[n] = '\0';
    cJSON *m = cJSON_Parse(buf);
    free(buf);
    const cJSON *files = cJSON_GetObjectItemCaseSensitive(m, "files");
    const cJSON *fmt = cJSON_GetObjectItemCaseSensitive(m, "format");
    if (!cJSON_IsObject(m) || !cJSON_IsString(fmt) || strcmp(fmt->valuestring, "adebert-split") ||
        !cJSON_IsObject(files)) {
        cJSON_Delete(m);
        io_fail(err, "%.300s: not an adebert split manifest", p);
        return NULL;
    }
    for (int k = 0; k < 3; k++) {
        const cJSON *e = cJSON_GetObjectItemCaseSensitive(files, PARTS[k]);
        const cJSON *sha = cJSON_GetObjectItemCaseSensitive(e, "sha256");
        const cJSON *rows = cJSON_GetObjectItemCaseSensitive(e, "rows");
        if (!cJSON_IsString(sha) || strlen(sha->valuestring) != 64 || !cJSON_IsNumber(rows) ||
            rows->valuedouble < 0 || rows->valuedouble > 4e9) {
            cJSON_Delete(m);
            io_fail(err, "%.300s: files.%s needs sha256 and rows", p, PARTS[k]);
            return NULL;
        }
    }
    return m;
}

static size_t part_rows(const cJSON *m, int k)
{
    const cJSON *e = cJSON_GetObjectItemCaseSensitive(cJSON_GetObjectItemCaseSensitive(m, "files"), PARTS[k]);
    return (size_t)cJSON_GetObjectItemCaseSensitive(e, "rows")->valuedouble;
}

int io_splitdir_split(const char *dir, size_t n_rows, io_split *out, char err[IO_ERRLEN])
{
    memset(out, 0, sizeof *out);
    cJSON *m = read_manifest(dir, err);
    if (!m)
        return -1;
    size_t n[3];
    for (int k = 0; k < 3; k++)
        n[k] = part_rows(m, k);
    cJSON_Delete(m);
    if (n[0] + n[1] + n[2] != n_rows)
        return io_fail(err, "%.300s: the manifest counts %zu rows, the files hold %zu", dir, n[0] + n[1] + n[2],
                       n_rows);
    uint32_t **lists[3] = {&out->train, &out->val, &out->test};
    size_t *counts[3] = {&out->n_train, &out->n_val, &out->n_test};
    size_t base = 0;
    for (int k = 0; k < 3; k++) {
        *lists[k] = malloc((n[k] ? n[k] : 1) * sizeof(uint32_t));
        if (!*lists[k]) {
            io_split_free(out);
            return io_fail(err, "out of memory");
        }
        for (size_t i = 0; i < n[k]; i++)
            (*lists[k])[i] = (uint32_t)(base + i);
        *counts[k] = n[k];
        base += n[k];
    }
    return 0;
}

int io_splitdir_load(const char *dir, io_corpus *out, char err[IO_ERRLEN])
{
    memset(out, 0, sizeof *out);
    cJSON *m = read_manifest(dir, err);
    if (!m)
        return -1;
    const cJSON *files = cJSON_GetObjectItemCaseSensitive(m, "files");
    io_corpus part[3];
    memset(part, 0, sizeof part);
    int rc = 0;
    for (int k = 0; k < 3 && rc == 0; k++) {
        char p[4096], name[16], hex[65];
        snprintf(name, sizeof name, "%s.jsonl", PARTS[k]);
        const char *want =
            cJSON_GetObjectItemCaseSensitive(cJSON_GetObjectItemCaseSensitive(files, PARTS[k]), "sha256")->valuestring;
        if ((rc = join(p, sizeof p, dir, name, err)) || (rc = io_sha256_file(p, hex, err)))
            break;
        if (strcmp(hex, want)) {
            rc = io_fail(err, "%.300s: sha256 does not match %s (the file was changed)", p, IO_SPLITDIR_MANIFEST);
            break;
        }
        /* an empty part (a study protocol without validation) is an empty file */
        struct stat st;
        if (stat(p, &st) == 0 && st.st_size == 0)
            continue;
        if ((rc = io_corpus_load_file(p, IO_VIEW_HF, &part[k], err)))
            break;
        if (part[k].n != part_rows(m, k))
            rc = io_fail(err, "%.300s: %zu rows, the manifest says %zu", p, part[k].n, part_rows(m, k));
    }
    cJSON_Delete(m);
    if (rc == 0) {
        /* one corpus: train rows, then val, then test */
        size_t n = part[0].n + part[1].n + part[2].n, bytes = 0;
        for (int k = 0; k < 3; k++)
            bytes += part[k].arena_size;
        out->n = n;
        out->text = malloc((n ? n : 1) * sizeof *out->text);
        out->len = malloc((n ? n : 1) * sizeof *out->len);
        out->label = malloc(n ? n : 1);
        out->pmid = malloc((n ? n : 1) * sizeof *out->pmid);
        out->arena = malloc(bytes ? bytes : 1);
        out->arena_size = bytes;
        if (!out->text || !out->len || !out->label || !out->pmid || !out->arena) {
            rc = io_fail(err, "out of memory");
        } else {
            size_t row = 0, at = 0;
            for (int k = 0; k < 3; k++) {
                if (part[k].arena_size)
                    memcpy(out->arena + at, part[k].arena, part[k].arena_size);
                for (size_t i = 0; i < part[k].n; i++, row++) {
                    out->text[row] = out->arena + at + (size_t)(part[k].text[i] - part[k].arena);
                    out->len[row] = part[k].len[i];
                    out->label[row] = part[k].label[i];
                    out->pmid[row] = part[k].pmid[i];
                }
                at += part[k].arena_size;
            }
        }
    }
    for (int k = 0; k < 3; k++)
        io_corpus_free(&part[k]);
    if (rc)
        io_corpus_free(out);
    return rc;
}

int io_splitdir_hashes(const char *dir, char **json, char err[IO_ERRLEN])
{
    *json = NULL;
    cJSON *m = read_manifest(dir, err);
    if (!m)
        return -1;
    char p[4096], hex[65];
    if (join(p, sizeof p, dir, IO_SPLITDIR_MANIFEST, err) || io_sha256_file(p, hex, err)) {
        cJSON_Delete(m);
        return -1;
    }
    cJSON *o = cJSON_CreateObject();
    cJSON_AddStringToObject(o, "manifest", hex);
    const cJSON *files = cJSON_GetObjectItemCaseSensitive(m, "files");
    for (int k = 0; k < 3; k++)
        cJSON_AddStringToObject(
            o, PARTS[k],
            cJSON_GetObjectItemCaseSensitive(cJSON_GetObjectItemCaseSensitive(files, PARTS[k]), "sha256")->valuestring);
    *json = cJSON_PrintUnformatted(o);
    cJSON_Delete(o);
    cJSON_Delete(m);
    return *json ? 0 : io_fail(err, "out of memory");
}

/* One part's rows as JSONL into dir/name (mode 0600: corpus text may be patient
 * data), hashed as written. */
static int write_part(const char *dir, const char *name, const io_corpus *c, const uint32_t *rows, size_t n,
                      char hex[65], size_t *positives, char err[IO_ERRLEN])
{
    char p[4096];
    if (join(p, sizeof p, dir, name, err))
        return -1;
    int fd = open(p, O_WRONLY | O_CREAT | O_EXCL, 0600);
    FILE *f = fd >= 0 ? fdopen(fd, "wb") : NULL;
    if (!f) {
        if (fd >= 0)
            close(fd);
        return io_fail(err, "%.300s: cannot create: %s", p, strerror(errno));
    }
    struct sha256_ctx ctx;
    sha256_init(&ctx);
    int rc = 0;
    *positives = 0;
    for (size_t i = 0; i < n && rc == 0; i++) {
        uint32_t r = rows[i];
        cJSON *o = cJSON_CreateObject();
        cJSON_AddNumberToObject(o, "id", (double)r);
        cJSON_AddStringToObject(o, "text", c->text[r]);
        cJSON_AddNumberToObject(o, "label", c->label[r]);
        cJSON_AddNumberToObject(o, "group", c->pmid ? (double)c->pmid[r] : -1.0);
        char *line = cJSON_PrintUnformatted(o);
        cJSON_Delete(o);
        if (!line) {
            rc = io_fail(err, "out of memory");
            break;
        }
        size_t len = strlen(line);
        line[len] = '\n';
        if (fwrite(line, 1, len + 1, f) != len + 1)
            rc = io_fail(err, "%.300s: write failed: %s", p, strerror(errno));
        sha256_update(&ctx, len + 1, (const uint8_t *)line);
        free(line);
        *positives += c->label[r];
    }
    if (fflush(f) != 0 || fsync(fileno(f)) != 0)
        rc = rc ? rc : io_fail(err, "%.300s: write failed: %s", p, strerror(errno));
    if (fclose(f) != 0)
        rc = rc ? rc : io_fail(err, "%.300s: write failed: %s", p, strerror(errno));
    uint8_t d[SHA256_DIGEST_SIZE];
    sha256_digest(&ctx, sizeof d, d);
    io_hex32(d, hex);
    return rc;
}

static void remove_tree(const char *dir)
{
    char p[4096];
    const char *names[] = {"train.jsonl", "val.jsonl", "test.jsonl", IO_SPLITDIR_MANIFEST};
    for (size_t i = 0; i < sizeof names / sizeof *names; i++)
        if ((size_t)snprintf(p, sizeof p, "%s/%s", dir, names[i]) < sizeof p)
            unlink(p);
    rmdir(dir);
}

int io_splitdir_write(const char *dir, const io_corpus *c, const io_split *s, const char *options_json,
                      char err[IO_ERRLEN])
{
    struct stat st;
    if (stat(dir, &st) == 0)
        return io_fail(err, "%.300s already exists", dir);
    /* built in DIR.tmp.HOST.PID.XXXXXX (0700), renamed into place when complete */
    char tmp[4200];
    if (io_tmp_create_dir(dir, tmp, sizeof tmp, err))
        return -1;
    cJSON *m = options_json ? cJSON_Parse(options_json) : cJSON_CreateObject();
    if (!cJSON_IsObject(m)) {
        cJSON_Delete(m);
        remove_tree(tmp);
        return io_fail(err, "split options: not a JSON object");
    }
    cJSON_AddStringToObject(m, "format", "adebert-split");
    cJSON_AddNumberToObject(m, "version", 1);
    cJSON *files = cJSON_AddObjectToObject(m, "files");
    const uint32_t *lists[3] = {s->train, s->val, s->test};
    const size_t counts[3] = {s->n_train, s->n_val, s->n_test};
    int rc = 0;
    for (int k = 0; k < 3 && rc == 0; k++) {
        char name[16], hex[65];
        size_t pos = 0;
        snprintf(name, sizeof name, "%s.jsonl", PARTS[k]);
        rc = write_part(tmp, name, c, lists[k], counts[k], hex, &pos, err);
        cJSON *e = cJSON_AddObjectToObject(files, PARTS[k]);
        cJSON_AddStringToObject(e, "file", name);
        cJSON_AddNumberToObject(e, "rows", (double)counts[k]);
        cJSON_AddNumberToObject(e, "positives", (double)pos);
        cJSON_AddStringToObject(e, "sha256", hex);
    }
    char *text = rc ? NULL : cJSON_Print(m);
    cJSON_Delete(m);
    if (rc == 0) {
        char p[4096];
        if (!text)
            rc = io_fail(err, "out of memory");
        else if ((rc = join(p, sizeof p, tmp, IO_SPLITDIR_MANIFEST, err)) == 0) {
            int fd = open(p, O_WRONLY | O_CREAT | O_EXCL, 0600);
            size_t len = strlen(text);
            if (fd < 0 || write(fd, text, len) != (ssize_t)len || write(fd, "\n", 1) != 1 || fsync(fd) != 0)
                rc = io_fail(err, "%.300s: write failed: %s", p, strerror(errno));
            if (fd >= 0)
                close(fd);
        }
    }
    free(text);
    if (rc == 0 && rename(tmp, dir) != 0)
        rc = io_fail(err, "%.300s: cannot rename into place: %s", dir, strerror(errno));
    if (rc)
        remove_tree(tmp);
    return rc;
}
