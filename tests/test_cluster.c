/* launch/cluster.c: device default from the job's GPUs, resume refusal after a
 * requeue, the shared-GPU finder, the fake GPU count hook, the CPU list. The
 * environment is injected (a NULL-terminated list of NAME=VALUE). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>

#include "launch/cluster.h"

static const char *fake_env(const char *name, void *ctx)
{
    const char *const *kv = ctx;
    size_t n = strlen(name);
    for (; kv && *kv; kv++)
        if (!strncmp(*kv, name, n) && (*kv)[n] == '=')
            return *kv + n + 1;
    return NULL;
}

static int has_gpus(const char *const *env)
{
    char why[96];
    return cluster_job_has_gpus(fake_env, (void *)env, why, sizeof why);
}

static void job_gpus_from_env(void **state)
{
    (void)state;
    const char *none[] = {NULL};
    const char *zero[] = {"SLURM_GPUS_PER_NODE=0", NULL};
    const char *typed0[] = {"SLURM_GPUS_PER_NODE=v100:0", NULL};
    const char *eight[] = {"SLURM_GPUS_PER_NODE=8", NULL};
    const char *typed[] = {"SLURM_GPUS_PER_NODE=v100:8", NULL};
    const char *mixed[] = {"SLURM_GPUS_PER_NODE=a100:0,v100:2", NULL};
    const char *jobgpus[] = {"SLURM_JOB_GPUS=0,1,2,3", NULL};
    const char *stepgpus[] = {"SLURM_STEP_GPUS=3", NULL};
    const char *cvd[] = {"CUDA_VISIBLE_DEVICES=0,1", NULL};
    const char *cvd_none[] = {"CUDA_VISIBLE_DEVICES=", NULL};
    const char *cvd_m1[] = {"CUDA_VISIBLE_DEVICES=-1", NULL};
    const char *cvd_nodev[] = {"CUDA_VISIBLE_DEVICES=NoDevFiles", NULL};
    assert_int_equal(has_gpus(none), 0);
    assert_int_equal(has_gpus(zero), 0);
    assert_int_equal(has_gpus(typed0), 0);
    assert_int_equal(has_gpus(eight), 1);
    assert_int_equal(has_gpus(typed), 1);
    assert_int_equal(has_gpus(mixed), 1);
    assert_int_equal(has_gpus(jobgpus), 1);
    assert_int_equal(has_gpus(stepgpus), 1);
    assert_int_equal(has_gpus(cvd), 1);
    assert_int_equal(has_gpus(cvd_none), 0);
    assert_int_equal(has_gpus(cvd_m1), 0);
    assert_int_equal(has_gpus(cvd_nodev), 0);
    char why[96];
    assert_int_equal(cluster_job_has_gpus(fake_env, (void *)typed, why, sizeof why), 1);
    assert_string_equal(why, "SLURM_GPUS_PER_NODE=v100:8");
}

static void device_default(void **state)
{
    (void)state;
    const char *gpus[] = {"SLURM_GPUS_PER_NODE=8", NULL};
    const char *none[] = {"SLURM_GPUS_PER_NODE=0", NULL};
    char dev[16], note[160], err[CLUSTER_ERRLEN];
    /* no GPUs: cpu, whatever the build */
    dev[0] = 0;
    assert_int_equal(cluster_default_device(dev, sizeof dev, 1, fake_env, (void *)none, note, sizeof note, err), 0);
    assert_string_equal(dev, "cpu");
    assert_string_equal(note, "");
    /* GPUs + CUDA build: cuda, with a note naming the variable */
    dev[0] = 0;
    assert_int_equal(cluster_default_device(dev, sizeof dev, 1, fake_env, (void *)gpus, note, sizeof note, err), 0);
    assert_string_equal(dev, "cuda");
    assert_non_null(strstr(note, "SLURM_GPUS_PER_NODE=8"));
    /* GPUs, no CUDA in the build: refused, with the way out */
    dev[0] = 0;
    assert_int_equal(cluster_default_device(dev, sizeof dev, 0, fake_env, (void *)gpus, note, sizeof note, err), -1);
    assert_non_null(strstr(err, "built without CUDA"));
    assert_non_null(strstr(err, "--device cpu"));
    assert_null(strchr(err, '\n'));
    /* explicit --device is kept, also --device cpu on a GPU job of a CPU build */
    snprintf(dev, sizeof dev, "cpu");
    assert_int_equal(cluster_default_device(dev, sizeof dev, 0, fake_env, (void *)gpus, note, sizeof note, err), 0);
    assert_string_equal(dev, "cpu");
    assert_string_equal(note, "");
}

static void resume_after_requeue(void **state)
{
    (void)state;
    const char *fresh[] = {NULL};
    const char *zero[] = {"SLURM_RESTART_COUNT=0", NULL};
    const char *requeued[] = {"SLURM_RESTART_COUNT=2", NULL};
    char err[CLUSTER_ERRLEN];
    assert_int_equal(cluster_check_resume_found(0, "/x", fake_env, (void *)fresh, err), 0);
    assert_int_equal(cluster_check_resume_found(0, "/x", fake_env, (void *)zero, err), 0);
    assert_int_equal(cluster_check_resume_found(1, "/x", fake_env, (void *)requeued, err), 0);
    assert_int_equal(cluster_check_resume_found(0, "/scratch/run", fake_env, (void *)requeued, err), -1);
    assert_non_null(strstr(err, "SLURM_RESTART_COUNT=2"));
    assert_non_null(strstr(err, "/scratch/run"));
    assert_non_null(strstr(err, "shared"));
}

static void shared_gpu(void **state)
{
    (void)state;
    int a = -1, b = -1;
    /* two nodes, 2 ranks each, GPU keys 0/1 per node: fine */
    cluster_rank_gpu ok[4] = {{1, 10, 0, 2, 2}, {1, 11, 1, 2, 2}, {2, 10, 0, 2, 2}, {2, 11, 1, 2, 2}};
    assert_int_equal(cluster_find_shared_gpu(ok, 4, &a, &b), 0);
    /* per-task binding: every rank sees one GPU, distinct PCI ids: fine */
    cluster_rank_gpu bound[2] = {{1, 10, 0, 2, 1}, {1, 11, 1, 2, 1}};
    assert_int_equal(cluster_find_shared_gpu(bound, 2, &a, &b), 0);
    /* 3 ranks, 2 GPUs on node 2 */
    cluster_rank_gpu bad[5] = {{1, 10, 0, 2, 2}, {1, 11, 1, 2, 2}, {2, 10, 0, 3, 2}, {2, 11, 1, 3, 2},
                               {2, 10, 2, 3, 2}};
    assert_int_equal(cluster_find_shared_gpu(bad, 5, &a, &b), 1);
    assert_int_equal(a, 2);
    assert_int_equal(b, 4);
}

static void fake_gpu_count(void **state)
{
    (void)state;
    const char *two[] = {"ADEBERT_FAKE_GPU_COUNT=2", NULL};
    char id[64];
    int faked = 0;
    assert_int_equal(cluster_visible_gpus(fake_env, (void *)two, 3, id, sizeof id, &faked), 2);
    assert_int_equal(faked, 1);
    assert_string_equal(id, "fake-gpu-1");
    const char *bad[] = {"ADEBERT_FAKE_GPU_COUNT=x", NULL};
    cluster_visible_gpus(fake_env, (void *)bad, 0, id, sizeof id, &faked);
    assert_int_equal(faked, 0);
}

static void cpu_list(void **state)
{
    (void)state;
    char buf[256];
    int n = 0;
    assert_int_equal(cluster_cpu_list(buf, sizeof buf, &n), 0);
    assert_true(n >= 1);
    assert_true(buf[0] >= '0' && buf[0] <= '9');
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(job_gpus_from_env), cmocka_unit_test(device_default),
        cmocka_unit_test(resume_after_requeue), cmocka_unit_test(shared_gpu),
        cmocka_unit_test(fake_gpu_count), cmocka_unit_test(cpu_list),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
