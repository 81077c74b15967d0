/* adebert export: an adebert checkpoint -> a Hugging Face model directory. */
#include "launch/cli.h"
#include "launch/commands.h"
#include "launch/hf_io.h"
#include "launch/model_io.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <libgen.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

static const char *const export_usage =
    "usage: adebert export --checkpoint CKPT.h5 --out DIR [--force]\n"
    "\n"
    "Writes the model of an adebert checkpoint as a directory that Hugging Face\n"
    "Transformers loads with BertForSequenceClassification.from_pretrained(DIR) and\n"
    "AutoTokenizer.from_pretrained(DIR):\n"
    "  model.safetensors      fp32 parameters under their HF names\n"
    "  config.json            architecture, id2label {0: Not_AE, 1: Adverse_Event}\n"
    "  vocab.txt              the checkpoint's WordPiece vocabulary\n"
    "  tokenizer_config.json  the casing used in training (do_lower_case) and\n"
    "                         model_max_length = the checkpoint's max_seq_len\n"
    "The directory is built under DIR.tmp.HOST.PID.XXXXXX and renamed into place when\n"
    "complete; such folders left behind by killed exports are removed first.\n"
    "\n"
    "  --checkpoint CKPT.h5   the checkpoint (train, import)\n"
    "  --out DIR              the directory to create (may exist if empty)\n"
    "  --force                replace an existing non-empty DIR (it may hold only\n"
    "                         files, e.g. an earlier export)\n";

enum { OPT_FORCE = 256 };

#ifdef ADEBERT_HAVE_HDF5
/* 0: absent or empty directory; 1: a directory holding only regular files; -1 (err
 * filled): not a directory, holds other things, or unreadable. *exists set. */
static int out_state(const char *path, int *exists, char *err, size_t cap)
{
    struct stat sb;
    *exists = 0;
    if (lstat(path, &sb) != 0) {
        if (errno == ENOENT)
            return 0;
        snprintf(err, cap, "%s: cannot stat (%s)", path, strerror(errno));
        return -1;
    }
    *exists = 1;
    if (!S_ISDIR(sb.st_mode)) {
        snprintf(err, cap, "%s exists and is not a directory", path);
        return -1;
    }
    DIR *d = opendir(path);
    if (!d) {
        snprintf(err, cap, "%s: cannot open (%s)", path, strerror(errno));
        return -1;
    }
    int files = 0, other = 0;
    struct dirent *e;
    char p[4200];
    while ((e = readdir(d))) {
        if (!strcmp(e->d_name, ".") || !strcmp(e->d_name, ".."))
            continue;
        snprintf(p, sizeof p, "%s/%s", path, e->d_name);
        if (lstat(p, &sb) == 0 && S_ISREG(sb.st_mode))
            files++;
        else
            other++;
    }
    closedir(d);
    if (other) {
        snprintf(err, cap, "%s holds subdirectories or special files; not replacing it", path);
        return -1;
    }
    return files ? 1 : 0;
}

/* Remove a directory holding only regular files (ours: a temporary or a replaced
 * export). Best effort. */
static void remove_flat_dir(const char *path)
{
    DIR *d = opendir(path);
    if (d) {
        struct dirent *e;
        char p[4200];
        struct stat sb;
        while ((e = readdir(d))) {
            if (!strcmp(e->d_name, ".") || !strcmp(e->d_name, ".."))
                continue;
            snprintf(p, sizeof p, "%s/%s", path, e->d_name);
            if (lstat(p, &sb) == 0 && S_ISREG(sb.st_mode))
                unlink(p);
        }
        closedir(d);
    }
    rmdir(path);
}

static int fsync_path(const char *path)
{
    int fd = open(path, O_RDONLY | O_DIRECTORY);
    if (fd < 0)
        return -1;
    int rc = fsync(fd);
    close(fd);
    return rc;
}
#endif

int cmd_export(int argc, char **argv)
{
    const char *ckpt = NULL, *out_arg = NULL;
    int force = 0;
    static const struct option opts[] = {{"checkpoint", required_argument, NULL, 'c'},
                                         {"out", required_argument, NULL, 'o'},
                                         {"force", no_argument, NULL, OPT_FORCE},
                                         {"help", no_argument, NULL, 'h'},
                                         {0, 0, 0, 0}};
    optind = 1;
    int ch;
    while ((ch = cli_getopt(argc, argv, "export", ":h", opts)) != -1) {
        switch (ch) {
        case 'c': ckpt = optarg; break;
        case 'o': out_arg = optarg; break;
        case OPT_FORCE: force = 1; break;
        case 'h': fputs(export_usage, stdout); return CLI_OK;
        default: return CLI_USAGE;
        }
    }
    if (optind < argc) {
        cli_error("export", "unexpected argument '%s' (see --help)", argv[optind]);
        return CLI_USAGE;
    }
    if (!ckpt || !out_arg) {
        cli_error("export", "--checkpoint CKPT.h5 and --out DIR are required (see --help)");
        return CLI_USAGE;
    }
#ifndef ADEBERT_HAVE_HDF5
    (void)force;
    cli_error("export", "checkpoints need HDF5, and this adebert was built without it (ADEBERT_HDF5=OFF)");
    return CLI_FAIL;
#else
    char out[4096];
    if (snprintf(out, sizeof out, "%s", out_arg) >= (int)sizeof out - 32) {
        cli_error("export", "--out path too long");
        return CLI_USAGE;
    }
    for (size_t n = strlen(out); n > 1 && out[n - 1] == '/'; n--)
        out[n - 1] = 0;
    if (!strcmp(out, "/") || !strcmp(out, ".") || !strcmp(out, "..")) {
        cli_error("export", "--out must name a new directory, not '%s'", out_arg);
        return CLI_USAGE;
    }
    char err[MIO_ERRLEN > HFIO_ERRLEN ? MIO_ERRLEN : HFIO_ERRLEN], nerr[NN_ERRLEN];
    int exists = 0;
    int st = out_state(out, &exists, err, sizeof err);
    if (st < 0) {
        cli_error("export", "%s", err);
        return CLI_FAIL;
    }
    if (st > 0 && !force) {
        cli_error("export", "%s exists and is not empty (pass --force to replace it)", out);
        return CLI_FAIL;
    }

    nn_backend *be = NULL;
    nn_model *m = NULL;
    mio_info info;
    memset(&info, 0, sizeof info);
    char tmp[4200] = "", old[4200] = "";
    int rc = CLI_FAIL;
    if (nn_backend_cpu_create(&be, 0, nerr, sizeof nerr)) {
        cli_error("export", "CPU backend: %s", nerr);
        goto done;
    }
    if (mio_open_model(ckpt, be, 1, 2, &info, &m, err)) {
        cli_error("export", "%s", err);
        goto done;
    }
    /* DIR.tmp.HOST.PID.XXXXXX; those left behind by killed exports go first */
    char ierr[IO_ERRLEN];
    if (io_tmp_create_dir(out, tmp, sizeof tmp, ierr)) {
        cli_error("export", "%s", ierr);
        tmp[0] = 0;
        goto done;
    }
    /* mkdtemp makes it 0700; the export is for other tools: a plain mkdir's mode */
    mode_t um = umask(0);
    umask(um);
    chmod(tmp, 0777 & ~um);
    if (hfio_write_dir(tmp, m, &info.mc, info.vocab, info.data.lowercase, info.data.max_seq_len, err)) {
        cli_error("export", "%s", err);
        goto done;
    }
    if (fsync_path(tmp)) {
        cli_error("export", "%s: fsync failed (%s)", tmp, strerror(errno));
        goto done;
    }
    if (st > 0) {
        /* move the old export aside first: rename cannot replace a non-empty directory */
        snprintf(old, sizeof old, "%s.old-XXXXXX", out);
        if (!mkdtemp(old) || rename(out, old) != 0) {
            cli_error("export", "%s: cannot move the old directory aside (%s)", out, strerror(errno));
            if (old[0])
                rmdir(old);
            old[0] = 0;
            goto done;
        }
    }
    /* an absent or empty `out` is replaced atomically */
    if (rename(tmp, out) != 0) {
        cli_error("export", "%s: cannot rename into place (%s)", out, strerror(errno));
        if (old[0] && rename(old, out) == 0)
            old[0] = 0;
        goto done;
    }
    tmp[0] = 0;
    char parent[4200];
    snprintf(parent, sizeof parent, "%s", out);
    fsync_path(dirname(parent));
    if (old[0]) {
        remove_flat_dir(old);
        old[0] = 0;
    }
    printf("exported %s -> %s (%s, max_seq_len %d)\n", ckpt, out, info.data.lowercase ? "lowercase" : "cased",
           info.data.max_seq_len);
    rc = CLI_OK;
done:
    if (tmp[0])
        remove_flat_dir(tmp);
    if (old[0])
        rmdir(old);
    nn_model_free(m);
    mio_info_free(&info);
    nn_backend_destroy(be);
    (void)exists;
    return rc;
#endif
}
