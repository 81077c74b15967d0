/* Cluster checks of `adebert train`: device default, resume after requeue, ranks vs
 * GPUs, binding. Contract in launch/cluster.h. */
#define _GNU_SOURCE
#include "launch/cluster.h"

#include "nn/nn.h"

#include <errno.h>
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const char *env_get(cluster_getenv_fn get, void *ctx, const char *name)
{
    const char *v = get ? get(name, ctx) : getenv(name);
    return v ? v : "";
}

/* "8", "v100:8", "gpu:v100:8", "v100:4,a100:2": any count > 0. */
static int gres_count_positive(const char *s)
{
    while (*s) {
        const char *end = strchr(s, ',');
        size_t n = end ? (size_t)(end - s) : strlen(s);
        const char *last = s;
        for (size_t i = 0; i < n; i++)
            if (s[i] == ':')
                last = s + i + 1;
        char *stop = NULL;
        errno = 0;
        long v = strtol(last, &stop, 10);
        if (!errno && stop != last && v > 0)
            return 1;
        if (!end)
            break;
        s = end + 1;
    }
    return 0;
}

/* CUDA_VISIBLE_DEVICES / SLURM_*_GPUS naming at least one device. */
static int names_devices(const char *s)
{
    if (!*s || !strcmp(s, "-1") || !strcmp(s, "none") || !strcmp(s, "NoDevFiles") || !strcmp(s, "N/A"))
        return 0;
    return 1;
}

int cluster_job_has_gpus(cluster_getenv_fn get, void *ctx, char *why, size_t why_len)
{
    static const char *const lists[] = {"SLURM_STEP_GPUS", "SLURM_JOB_GPUS", "CUDA_VISIBLE_DEVICES"};
    const char *v = env_get(get, ctx, "SLURM_GPUS_PER_NODE");
    const char *name = NULL;
    if (*v && gres_count_positive(v))
        name = "SLURM_GPUS_PER_NODE";
    for (size_t i = 0; !name && i < sizeof lists / sizeof lists[0]; i++) {
        v = env_get(get, ctx, lists[i]);
        if (names_devices(v))
            name = lists[i];
    }
    if (!name)
        return 0;
    if (why && why_len)
        snprintf(why, why_len, "%s=%.40s", name, v);
    return 1;
}

int cluster_default_device(char *device, size_t device_len, int built_with_cuda, cluster_getenv_fn get,
                           void *ctx, char *note, size_t note_len, char err[CLUSTER_ERRLEN])
{
    char why[96];
    if (note && note_len)
        note[0] = 0;
    if (device[0])
        return 0;
    if (!cluster_job_has_gpus(get, ctx, why, sizeof why)) {
        snprintf(device, device_len, "cpu");
        return 0;
    }
    if (!built_with_cuda) {
        snprintf(err, CLUSTER_ERRLEN,
                 "the job has GPUs (%s) but this adebert was built without CUDA: rebuild with the CUDA toolkit "
                 "(-DADEBERT_CUDA=ON), or pass --device cpu to train on the CPU anyway",
                 why);
        return -1;
    }
    snprintf(device, device_len, "cuda");
    if (note && note_len)
        snprintf(note, note_len, "--device cuda by default: the job has GPUs (%s)", why);
    return 0;
}

int cluster_check_resume_found(int found, const char *run_dir, cluster_getenv_fn get, void *ctx,
                               char err[CLUSTER_ERRLEN])
{
    const char *rc = env_get(get, ctx, "SLURM_RESTART_COUNT");
    char *end = NULL;
    long n = strtol(rc, &end, 10);
    if (found || !*rc || *end || n <= 0)
        return 0;
    snprintf(err, CLUSTER_ERRLEN,
             "--resume: requeued job (SLURM_RESTART_COUNT=%ld) but no checkpoint in %.200s: --out must be on "
             "storage shared by all nodes (a node-local run directory is empty on the new node); not starting "
             "over",
             n, run_dir);
    return -1;
}

int cluster_find_shared_gpu(const cluster_rank_gpu *v, int n, int *a, int *b)
{
    for (int i = 0; i < n; i++)
        for (int j = i + 1; j < n; j++)
            if (v[i].host_key == v[j].host_key && v[i].gpu_key == v[j].gpu_key) {
                *a = i;
                *b = j;
                return 1;
            }
    return 0;
}

int cluster_visible_gpus(cluster_getenv_fn get, void *ctx, int dev, char *id, size_t id_len, int *faked)
{
    const char *fake = env_get(get, ctx, "ADEBERT_FAKE_GPU_COUNT");
    *faked = 0;
    if (*fake) {
        char *end = NULL;
        long n = strtol(fake, &end, 10);
        if (!*end && n >= 0 && n < 1024) {
            *faked = 1;
            if (id && id_len)
                snprintf(id, id_len, "fake-gpu-%d", n > 0 ? dev % (int)n : -1);
            return (int)n;
        }
    }
    char buf[256];
    int count = nn_cuda_device_summary(buf, sizeof buf);
    if (id && id_len && (count <= 0 || nn_cuda_device_pci(dev % (count > 0 ? count : 1), id, id_len)))
        snprintf(id, id_len, "?");
    return count;
}

static uint64_t fnv1a(const char *s)
{
    uint64_t h = 1469598103934665603ull;
    for (; *s; s++) {
        h ^= (unsigned char)*s;
        h *= 1099511628211ull;
    }
    return h;
}

#define RG_FIELDS 7 /* per rank in the gather: host hi/lo, gpu hi/lo, local rank, local size, visible */

int cluster_check_ranks_vs_gpus(dist_comm *c, cluster_getenv_fn get, void *ctx, char err[CLUSTER_ERRLEN])
{
    char id[64], derr[DIST_ERRLEN];
    int faked = 0;
    int visible = cluster_visible_gpus(get, ctx, c->local_rank, id, sizeof id, &faked);
    uint64_t hk = fnv1a(c->host), gk = fnv1a(id);
    double mine[RG_FIELDS] = {(double)(hk >> 32),   (double)(hk & 0xffffffffu), (double)(gk >> 32),
                              (double)(gk & 0xffffffffu), (double)c->local_rank, (double)c->local_size,
                              (double)visible};
    double *all = NULL;
    if (c->rank == 0) {
        all = malloc((size_t)c->size * RG_FIELDS * sizeof *all);
        if (!all) {
            snprintf(err, CLUSTER_ERRLEN, "out of memory");
            return -1; /* rank 0 ends the job; the others wait in the gather */
        }
    }
    if (dist_gather_f64(c, mine, RG_FIELDS, all, c->rank == 0 ? (size_t)c->size * RG_FIELDS : 0, derr)) {
        free(all);
        snprintf(err, CLUSTER_ERRLEN, "ranks vs GPUs check: %s", derr);
        return -1;
    }
    int32_t verdict = 0; /* 0 ok, 1 refused */
    if (c->rank == 0) {
        cluster_rank_gpu *v = calloc((size_t)c->size, sizeof *v);
        if (!v) {
            free(all);
            snprintf(err, CLUSTER_ERRLEN, "out of memory");
            return -1;
        }
        for (int i = 0; i < c->size; i++) {
            const double *f = all + (size_t)i * RG_FIELDS;
            v[i].host_key = (uint64_t)f[0] << 32 | (uint64_t)f[1];
            v[i].gpu_key = (uint64_t)f[2] << 32 | (uint64_t)f[3];
            v[i].local_rank = (int)f[4];
            v[i].local_size = (int)f[5];
            v[i].visible = (int)f[6];
        }
        int a = -1, b = -1, none = 0;
        for (int i = 0; i < c->size; i++)
            none |= v[i].visible <= 0; /* the device set-up names the reason itself */
        if (none) {
            verdict = 0;
        } else if (cluster_find_shared_gpu(v, c->size, &a, &b)) {
            verdict = 1;
            snprintf(err, CLUSTER_ERRLEN,
                     "--device cuda: %d ranks on one node but %d GPU(s) visible to each%s: ranks %d and %d "
                     "(local ranks %d and %d) would share a GPU; start at most one rank per GPU "
                     "(--ntasks-per-node / -np)",
                     v[a].local_size, v[a].visible, faked ? " (ADEBERT_FAKE_GPU_COUNT test hook)" : "", a, b,
                     v[a].local_rank, v[b].local_rank);
        }
        free(v);
        free(all);
    }
    if (dist_bcast_bytes(c, &verdict, sizeof verdict, derr)) {
        snprintf(err, CLUSTER_ERRLEN, "ranks vs GPUs check: %s", derr);
        return -1;
    }
    if (!verdict)
        return 0;
    if (c->rank != 0) {
        /* rank 0 reports and ends the job; a barrier it never joins keeps us quiet */
        (void)dist_barrier(c, derr);
        snprintf(err, CLUSTER_ERRLEN, "--device cuda: ranks vs GPUs check failed (see rank 0)");
    }
    return -1;
}

int cluster_cpu_list(char *buf, size_t len, int *ncpus)
{
    cpu_set_t set;
    CPU_ZERO(&set);
    if (sched_getaffinity(0, sizeof set, &set)) {
        snprintf(buf, len, "? (%s)", strerror(errno));
        *ncpus = 0;
        return -1;
    }
    size_t pos = 0;
    int n = 0;
    buf[0] = 0;
    for (int i = 0; i < CPU_SETSIZE; i++) {
        if (!CPU_ISSET(i, &set))
            continue;
        int j = i;
        while (j + 1 < CPU_SETSIZE && CPU_ISSET(j + 1, &set))
            j++;
        n += j - i + 1;
        int w = i == j ? snprintf(buf + pos, pos < len ? len - pos : 0, "%s%d", pos ? "," : "", i)
                       : snprintf(buf + pos, pos < len ? len - pos : 0, "%s%d-%d", pos ? "," : "", i, j);
        if (w > 0)
            pos += (size_t)w;
        i = j;
    }
    if (pos >= len && len > 4)
        snprintf(buf + len - 4, 4, "...");
    *ncpus = n;
    return 0;
}

void cluster_print_binding(const dist_comm *c, const char *device, int gpu, const char *note)
{
    const char *force = getenv("ADEBERT_PRINT_BINDING");
    if (force && *force ? !strcmp(force, "0")
                        : c->size <= 1 && gpu < 0 && !(getenv("SLURM_JOB_ID") && *getenv("SLURM_JOB_ID")))
        return; /* a one-rank CPU run outside Slurm: nothing to check */
    char cpus[256], id[64] = "";
    int ncpus = 0;
    cluster_cpu_list(cpus, sizeof cpus, &ncpus);
    const char *omp = getenv("OMP_NUM_THREADS");
    if (gpu >= 0 && nn_cuda_device_pci(gpu, id, sizeof id))
        snprintf(id, sizeof id, "?");
    char gdesc[96];
    if (gpu >= 0)
        snprintf(gdesc, sizeof gdesc, "GPU %d (PCI %s)", gpu, id);
    else
        snprintf(gdesc, sizeof gdesc, "no GPU");
    fprintf(stderr, "adebert train: binding: rank %d (local %d of %d) on %s: %d CPU(s) %s, OMP_NUM_THREADS=%s, %s, %s%s%s\n",
            c->rank, c->local_rank, c->local_size, c->host, ncpus, cpus, omp && *omp ? omp : "unset", device,
            gdesc, note && *note ? "; " : "", note && *note ? note : "");
    fflush(stderr);
}
