/* A signal handler that does nothing, a timer firing it every 50 us, and dnnl_sgemm in
 * a loop with malloc/free around it. argv[1] "block": the signal blocked (control). */
#include <oneapi/dnnl/dnnl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/time.h>
static volatile sig_atomic_t hits;
static void on_alarm(int s) { (void)s; hits = hits + 1; }
int main(int argc, char **argv)
{
    int block = argc > 1 && !strcmp(argv[1], "block");
    int iters = argc > 2 ? atoi(argv[2]) : 4000;
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_alarm;
    sa.sa_flags = SA_RESTART;
    sigaction(SIGALRM, &sa, NULL);
    if (block) {
        sigset_t s;
        sigemptyset(&s);
        sigaddset(&s, SIGALRM);
        sigprocmask(SIG_BLOCK, &s, NULL);
    }
    struct itimerval it = {{0, 50}, {0, 50}};
    setitimer(ITIMER_REAL, &it, NULL);
    for (int i = 0; i < iters; i++) {
        int m = 32 + i % 97, n = 256 + (i % 5) * 128, k = 384 + (i % 3) * 256;
        float *A = malloc((size_t)m * k * 4), *B = malloc((size_t)k * n * 4), *C = malloc((size_t)m * n * 4);
        for (long j = 0; j < (long)m * k; j++) A[j] = (float)(j % 7) * 0.1f;
        for (long j = 0; j < (long)k * n; j++) B[j] = (float)(j % 5) * 0.1f;
        dnnl_sgemm(i & 1 ? 'T' : 'N', 'N', m, n, k, 1.0f, A, i & 1 ? m : k, B, n, 0.0f, C, n);
        free(A);
        free(B);
        free(C);
    }
    printf("%s: %d GEMMs, %d signals handled, no heap error\n", block ? "blocked" : "handler", iters, (int)hits);
    return 0;
}
