/* adebert train: options, the banner, the progress bar, stop signals and the loop
 * over epochs and global batches. The machinery (setup, the step, evaluations,
 * checkpoints and resume) is launch/trainer.h; this file decides what is shown and
 * when the job ends. */
#include "dist/dist.h"
#include "dist/sampler.h"
#include "io/io.h"
#include "launch/cli.h"
#include "launch/commands.h"
#include "launch/train_opts.h"
#include "launch/trainer.h"
#include "nn/nn.h"

#include <math.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

/* SIGTERM/SIGUSR1 (Slurm's warning before preemption) are never delivered
 * asynchronously: they stay blocked in every thread (MPI's, OpenMP's, ours) and the
 * main thread collects a pending one once per step, so no library call is ever
 * interrupted by them. */
static int stop_signal_pending(const sigset_t *set)
{
    struct timespec zero = {0, 0};
    int got = 0;
    while (sigtimedwait(set, NULL, &zero) > 0)
        got = 1;
    return got;
}

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

/* A failure on any rank ends the whole job at once, naming rank and host:
 * a rank that merely exits leaves the others blocked in a collective. */
static void die(dist_comm *comm, const char *fmt, ...) __attribute__((format(printf, 2, 3), noreturn));
static void die(dist_comm *comm, const char *fmt, ...)
{
    char msg[TRAINER_ERRLEN];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    if (comm->size > 1)
        dist_abort(comm, 1, msg);
    cli_error("train", "%s", msg);
    exit(CLI_FAIL);
}

/* ------------------------------------------------------------ progress */

typedef struct {
    int tty, quiet;
    double t_last_line, t_start;
    int64_t last_step_printed;
} progress;

static void fmt_duration(double s, char *buf, size_t n)
{
    if (!isfinite(s) || s < 0)
        s = 0;
    long t = (long)(s + 0.5);
    if (t >= 3600)
        snprintf(buf, n, "%ld:%02ld:%02ld", t / 3600, t / 60 % 60, t % 60);
    else
        snprintf(buf, n, "%ld:%02ld", t / 60, t % 60);
}

/* A bar redrawn in place on a terminal; plain lines every ~10% or 30 s otherwise,
 * so Slurm logs stay readable. */
static void progress_show(progress *p, int epoch, int epochs, int64_t step, int64_t total, double loss,
                          double tok_s, int force)
{
    if (p->quiet)
        return;
    double t = now_s();
    double eta = step > 0 ? (t - p->t_start) / (double)step * (double)(total - step) : 0;
    char eta_s[32];
    fmt_duration(eta, eta_s, sizeof eta_s);
    if (p->tty) {
        if (!force && t - p->t_last_line < 0.2 && step < total)
            return;
        int width = 24, fill = total > 0 ? (int)((double)width * (double)step / (double)total) : 0;
        char bar[32];
        for (int i = 0; i < width; i++)
            bar[i] = i < fill ? '#' : '.';
        bar[width] = '\0';
        fprintf(stderr, "\r  epoch %d/%d [%s] step %lld/%lld  loss %.4f  %.0f tok/s  ETA %s   ", epoch, epochs,
                bar, (long long)step, (long long)total, loss, tok_s, eta_s);
        p->t_last_line = t;
    } else {
        int64_t every = total / 10 > 0 ? total / 10 : 1;
        if (!force && step - p->last_step_printed < every && t - p->t_last_line < 30)
            return;
        fprintf(stderr, "  epoch %d/%d step %lld/%lld loss %.4f %.0f tok/s ETA %s\n", epoch, epochs,
                (long long)step, (long long)total, loss, tok_s, eta_s);
        p->t_last_line = t;
        p->last_step_printed = step;
    }
    fflush(stderr);
}

static void progress_clear(progress *p)
{
    if (p->tty && !p->quiet) {
        fprintf(stderr, "\r%100s\r", "");
        fflush(stderr);
    }
}

static char *command_line(int argc, char **argv)
{
    size_t n = 16;
    for (int i = 0; i < argc; i++)
        n += strlen(argv[i]) * 4 + 3;
    char *s = malloc(n), *p = s;
    if (!s)
        return NULL;
    p += sprintf(p, "adebert");
    for (int i = 0; i < argc; i++) {
        *p++ = ' ';
        /* single-quote anything not plainly safe for a shell */
        int plain = *argv[i] != '\0';
        for (const char *c = argv[i]; *c; c++)
            if (!strchr("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-_=./,:+@%", *c))
                plain = 0;
        if (plain) {
            p += sprintf(p, "%s", argv[i]);
            continue;
        }
        *p++ = '\'';
        for (const char *c = argv[i]; *c; c++) {
            if (*c == '\'')
                p += sprintf(p, "'\\''");
            else
                *p++ = *c;
        }
        *p++ = '\'';
    }
    *p++ = '\n';
    *p = '\0';
    return s;
}

/* What the run is, before its first step (rank 0). */
static void print_banner(const trainer_info *in, dist_comm *comm)
{
    const train_opts *o = in->o;
    char desc[256];
    if (io_splitdir_is(o->data))
        printf("adebert train: split folder %s: train %zu (%zu positive), val %zu, test %zu\n", o->data, in->n_train,
               in->n_train_pos, in->n_val, in->n_test);
    else
        printf("adebert train: %s view %s, split %s (seed %llu): train %zu (%zu positive), val %zu, test %zu\n",
               o->data, io_view_name(o->view), io_split_name(o->split), (unsigned long long)o->split_seed,
               in->n_train, in->n_train_pos, in->n_val, in->n_test);
    if (in->augment_sha256)
        printf("  augment: %s (sha256 %.8s\u2026): %zu of %zu rows used (%zu positive, %zu negative) -> train only; "
               "%zu duplicate training rows\n",
               o->augment, in->augment_sha256, in->aug_used, in->aug_in_file, in->aug_used_pos,
               in->aug_used - in->aug_used_pos, in->aug_dup_train);
    printf("  model %s: %lld layers x %lld hidden, %zu parameters; %s, %s\n", o->model,
           (long long)in->cfg->num_hidden_layers, (long long)in->cfg->hidden_size, in->n_params,
           o->lowercase ? "lowercased" : "cased", o->vocab);
    if (in->cuda) {
        char nd[256];
        printf("  %s; CUDA backend on %s, %s GEMMs, gradients: %s (%s on the wire); %d rank(s) x %lld "
               "sequences max per step\n",
               dist_describe(comm, desc, sizeof desc), nn_cuda_device_name(in->be), o->precision,
               dist_nccl_describe(in->nccl, nd, sizeof nd), o->reduce_precision, comm->size,
               (long long)in->max_local);
    } else {
        char isa[64] = "";
        if (*nn_backend_cpu_isa(in->be)) snprintf(isa, sizeof isa, " (oneDNN %s)", nn_backend_cpu_isa(in->be));
        printf("  %s; CPU backend (%s), %s GEMMs%s%s, %d rank(s) x %lld sequences max per step\n",
               dist_describe(comm, desc, sizeof desc), nn_cpu_blas_name(), o->precision, isa, in->precision_note,
               comm->size, (long long)in->max_local);
    }
    printf("  %d epochs x %lld steps (global batch %d), %lld steps in all, warmup %lld, lr %g -> %s\n", o->epochs,
           (long long)in->steps_per_epoch, o->batch_size, (long long)in->total_steps, (long long)in->warmup_steps,
           o->lr, o->out);
    if (in->resumed_from >= 0)
        printf("  resumed_from_step %lld: epoch %lld, batch %lld of it; %lld steps to go\n",
               (long long)in->resumed_from, (long long)in->start_epoch + 1, (long long)in->start_batch,
               (long long)(in->total_steps - in->resumed_from));
    if (o->split != IO_SPLIT_GROUPED && o->view == IO_VIEW_HF)
        printf("  note: the %s split of the hf view shares sentences between train and test; "
               "--split grouped leaks none (adebert data stats)\n",
               io_split_name(o->split));
    fflush(stdout);
}

int cmd_train(int argc, char **argv)
{
    train_opts opts;
    int prc = train_opts_parse(&opts, argc, argv);
    if (prc)
        return prc == 1 ? CLI_OK : CLI_USAGE;
    dist_comm comm;
    char derr[DIST_ERRLEN], err[TRAINER_ERRLEN];
    /* Blocked before MPI_Init so that every thread created from here on inherits it. */
    sigset_t stop_set;
    cli_block_signals(&stop_set, SIGTERM, SIGUSR1);
    /* A file-size limit (ulimit -f, a quota) must make a checkpoint write fail with
     * EFBIG, reported and cleaned up, not kill the job with SIGXFSZ. */
    signal(SIGXFSZ, SIG_IGN);
    if (dist_init(&comm, NULL, NULL, derr)) {
        cli_error("train", "%s", derr);
        return CLI_FAIL;
    }
    int root = comm.rank == 0;
    char *cmd = command_line(argc - 1, argv + 1);
    if (!cmd)
        die(&comm, "out of memory");
    trainer *t = NULL;
    if (trainer_open(&t, &opts, &comm, cmd, err))
        die(&comm, "%s", err);
    free(cmd);
    const trainer_info *in = trainer_get_info(t);
    const train_opts *o = in->o;
    if (root)
        print_banner(in, &comm);

    const int64_t total = in->total_steps;
    progress pg = {isatty(2), o->quiet || !root, 0, now_s(), 0};
    double t_start = now_s(), comm_total = 0, eval_total = 0;
    int64_t tokens_since = 0, step = in->first_step;
    double t_since = now_s();
    int stopped = 0;
    uint32_t *global = malloc((size_t)o->batch_size * sizeof *global);
    if (!global)
        die(&comm, "out of memory");
    for (int epoch = (int)in->start_epoch; epoch < o->epochs && step < total && !stopped; epoch++) {
        dist_epoch_plan plan;
        if (trainer_plan_epoch(t, epoch, &plan, err))
            die(&comm, "%s", err);
        size_t b0 = epoch == in->start_epoch ? (size_t)in->start_batch : 0;
        for (size_t b = b0; b < plan.n_batches && step < total; b++) {
            size_t n_global = plan.batch_start[b + 1] - plan.batch_start[b];
            memcpy(global, plan.order + plan.batch_start[b], n_global * sizeof *global);
            trainer_step_result s;
            if (trainer_step(t, global, n_global, epoch, &s, err))
                die(&comm, "%s", err);
            step++;
            comm_total += s.comm_s;
            tokens_since += s.tokens;
            double el = now_s() - t_since;
            progress_show(&pg, epoch + 1, o->epochs, step, total, s.mean_loss,
                          el > 0 ? (double)tokens_since / el : 0, 0);
            /* Every rank stops at the same step: OR the flag each step. */
            int64_t flag = stop_signal_pending(&stop_set) || (o->stop_at >= 0 && step == o->stop_at);
            if (dist_allreduce_max_i64(&comm, &flag, 1, derr))
                die(&comm, "stop flag all-reduce: %s", derr);
            int last_of_epoch = b + 1 == plan.n_batches || step == total;
            int eval_now = o->eval_every ? (step % o->eval_every == 0 || step == total) : last_of_epoch;
            if (flag)
                stopped = 1;
            if (eval_now) {
                progress_clear(&pg);
                double secs = now_s() - t_start;
                double tok_s = (now_s() - t_since) > 0 ? (double)tokens_since / (now_s() - t_since) : 0;
                double t_eval = now_s();
                if (trainer_evaluate(t, epoch + 1, secs, tok_s, err))
                    die(&comm, "%s", err);
                eval_total += now_s() - t_eval;
                tokens_since = 0;
                t_since = now_s();
            }
            /* A checkpoint after this step: where the next step starts, and the loop's sums. */
            int due = o->save_every > 0 ? (step % o->save_every == 0 || step == total)
                                        : o->save_every < 0 && (last_of_epoch || step == total);
            if (o->save_every != 0 && (due || stopped)) {
                int end_of_epoch = b + 1 == plan.n_batches;
                progress_clear(&pg);
                double t_save = now_s();
                if (trainer_save(t, end_of_epoch ? epoch + 1 : epoch, end_of_epoch ? 0 : (int64_t)(b + 1), err))
                    die(&comm, "%s", err);
                eval_total += now_s() - t_save; /* not training time */
            }
            if (stopped)
                break;
        }
        dist_sampler_plan_free(&plan);
        if (trainer_check_replicas(t, err))
            die(&comm, "%s", err);
    }
    free(global);
    progress_clear(&pg);
    if (root && o->dump_params[0] && trainer_dump_params(t, o->dump_params, err))
        die(&comm, "%s", err);
    double wall = now_s() - t_start, train_s = wall - eval_total;
    if (root) {
        printf("done: %lld steps in %.1f s: training %.1f s (%.1f ms/step, %.1f%% of it waiting on the gradient "
               "reduction), evaluation %.1f s; metrics in %s/%s\n",
               (long long)(step - in->first_step), wall, train_s,
               step > in->first_step ? 1000.0 * train_s / (double)(step - in->first_step) : 0.0,
               train_s > 0 ? 100.0 * comm_total / train_s : 0.0, eval_total, o->out, IO_METRICS_FILE);
        if (in->cuda)
            printf("  peak device memory %.0f MiB on %s\n", (double)nn_cuda_peak_bytes(in->be) / 1048576.0,
                   nn_cuda_device_name(in->be));
        fflush(stdout);
    }
    int rc = CLI_OK;
    if (stopped) {
        if (root)
            fprintf(stderr, "adebert train: stopped by a signal at step %lld; %s; exit 75 so Slurm requeues\n",
                    (long long)step,
                    o->save_every ? "checkpoint saved, continue with --resume" : "nothing saved (--save-every none)");
        rc = 75;
    } else if (root) {
        /* the schedule is complete: table runners and Slurm arrays skip this run */
        char done[512];
        snprintf(done, sizeof done, "{\"steps\":%lld,\"seconds\":%.1f,\"training_seconds\":%.1f}\n",
                 (long long)step, wall, train_s);
        char path[1200];
        snprintf(path, sizeof path, "%s/done.json", o->out);
        if (cli_write_file(path, done, strlen(done), err, sizeof err))
            fprintf(stderr, "adebert train: warning: %s\n", err);
    }
    trainer_close(t);
    dist_finalize(&comm);
    return rc;
}
