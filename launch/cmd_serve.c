/* adebert serve: an HTTP(S) inference endpoint with dynamic batching.
 *
 * Threads:
 *  - libmicrohttpd's pool (--workers) parses HTTP, checks auth and limits, parses
 *    the JSON (serve_request.c), tokenizes (under one mutex: the tokenizer keeps
 *    state), then suspends the connection and queues a job of n sequences;
 *  - one batcher thread packs queued sequences, oldest first, into one forward of up
 *    to --max-batch sequences (infer_batch on packed ids: no padding), waiting at
 *    most --max-wait-ms after the oldest arrival for a fuller batch, writes each p
 *    back into its job and resumes the connection once a job is complete; a job
 *    still unscheduled at its deadline (--queue-timeout-ms) is resumed with 503;
 *  - the main thread waits for SIGTERM/SIGINT (blocked everywhere, taken with
 *    sigwait), then stops accepting (MHD_quiesce_daemon), lets in-flight requests
 *    finish, stops the batcher and the daemon, and exits 0.
 * A sequence's score does not depend on its batch neighbours (attention runs per
 * sequence on the packed stream), so batching changes throughput, not results.
 *
 * PHI: request text never reaches a log line, an error message or a metric; logs
 * carry request ids, routes, status codes, sizes and timings. The raw URL is never
 * logged either (a query string can carry anything). */
#include "launch/cli.h"
#include "launch/commands.h"
#include "launch/infer.h"
#include "launch/infer_hf.h"
#include "launch/serve_request.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <math.h>
#include <netinet/in.h>
#include <pthread.h>
#include <signal.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <microhttpd.h>
#include <nettle/sha2.h>

static const char *const serve_usage =
    "usage: adebert serve --checkpoint CKPT.h5|--model HF_DIR [--device cpu] [--host 127.0.0.1]\n"
    "                     [--port 8080] [--tls-cert PEM --tls-key PEM] [--token-file FILE]\n"
    "                     [--threshold 0.5] [--max-batch 32] [--max-wait-ms 5] [--batch-wait adaptive|fixed]\n"
    "                     [--workers 4]\n"
    "                     [--max-body-bytes 1048576] [--max-text-bytes 16384] [--max-inputs 64]\n"
    "                     [--max-connections 256] [--max-queue 1024] [--queue-timeout-ms 10000]\n"
    "                     [--max-seq-len N] [--threads T] [--precision fp32|bf16|auto]\n"
    "                     [--no-access-log] [--insecure-http]\n"
    "\n"
    "Serves p(ADE) over HTTPS (HTTP on loopback), with dynamic batching. JSON in and out:\n"
    "  POST /invocations, POST /v1/classify   {\"inputs\": \"text\" | [\"t1\", ...],\n"
    "                                         \"parameters\": {\"threshold\": 0.6}}\n"
    "     -> [{\"label\": \"Adverse_Event\"|\"Not_AE\", \"score\": P_OF_LABEL,\n"
    "          \"p_adverse_event\": P, \"threshold\": T}, ...]  one per input, in order\n"
    "  GET /ping (SageMaker), /healthz (liveness), /readyz (model loaded, not draining),\n"
    "  GET /metrics (Prometheus text format)\n"
    "Scores equal `adebert predict`'s on the same text, whatever the batch.\n"
    "\n"
    "  --checkpoint CKPT  an adebert HDF5 checkpoint\n"
    "  --model HF_DIR     a Hugging Face model folder (adebert export's output)\n"
    "  --device cpu       the backend (only cpu for now)\n"
    "  --host ADDR        numeric IPv4/IPv6 address to bind [default: 127.0.0.1]; a\n"
    "                     non-loopback address needs TLS or --insecure-http\n"
    "  --port N           TCP port, 0 for any free one (printed) [default: 8080]\n"
    "  --tls-cert PEM     certificate chain (PEM); with --tls-key, serve HTTPS only\n"
    "  --tls-key PEM      private key (PEM); must not be readable by group or others\n"
    "                     (TLS 1.2+, AEAD ciphers with forward secrecy only)\n"
    "  --token-file FILE  require `Authorization: Bearer TOKEN` (FILE holds TOKEN, >= 16\n"
    "                     characters, mode 0600) on /invocations, /v1/classify, /metrics\n"
    "  --threshold P      default decision threshold, per request within [0, 1] [0.5]\n"
    "  --max-batch N      sequences per forward pass [default: 32]\n"
    "  --max-wait-ms T    longest wait for a fuller batch after the oldest request [5]\n"
    "  --batch-wait W     adaptive: wait only while requests in flight are not yet queued\n"
    "                     (a lone client is never delayed); fixed: always wait up to T\n"
    "                     [default: adaptive]\n"
    "  --workers N        HTTP worker threads (libmicrohttpd thread pool) [default: 4]\n"
    "  --max-body-bytes B largest request body [default: 1048576]\n"
    "  --max-text-bytes B largest text in bytes [default: 16384]\n"
    "  --max-inputs N     most texts per request [default: 64]\n"
    "  --max-connections N  concurrent connections [default: 256]\n"
    "  --max-queue N      most sequences waiting; more gets 503 + Retry-After [1024]\n"
    "  --queue-timeout-ms T  a request not started within T gets 503 + Retry-After [10000]\n"
    "  --max-seq-len N    tokens per text (truncation) [default: the checkpoint's;\n"
    "                     min(128, max_position_embeddings) for --model]\n"
    "  --threads T        OpenMP threads of the forward [OMP_NUM_THREADS, else all cores]\n"
    INFER_PRECISION_HELP
    "  --no-access-log    no line per request on stderr (ids, codes, sizes, timings)\n"
    "  --insecure-http    allow plain HTTP on a non-loopback address (behind a TLS proxy)\n"
    "\n"
    "SIGTERM/SIGINT: stop accepting, answer the requests in flight, exit 0.\n"
    "Request text never appears in logs, errors or metrics.\n";

/* TLS 1.2 and 1.3 only; AEAD ciphers with ephemeral key exchange only. */
#define SRV_TLS_PRIORITIES                                                                                          \
    "NORMAL:-VERS-ALL:+VERS-TLS1.3:+VERS-TLS1.2:-CIPHER-ALL:+AES-256-GCM:+AES-128-GCM:+CHACHA20-POLY1305:"        \
    "-MAC-ALL:+AEAD:-KX-ALL:+ECDHE-ECDSA:+ECDHE-RSA:%SERVER_PRECEDENCE"
#define SRV_MAX_DEPTH 8
#define SRV_MAX_PEM (1 << 20)
#define SRV_DRAIN_EXTRA_S 10.0

/* ------------------------------------------------------------ metrics */
enum { R_PING, R_INVOCATIONS, R_CLASSIFY, R_HEALTHZ, R_READYZ, R_METRICS, R_OTHER, R_N };
static const char *const route_name[R_N] = {"/ping", "/invocations", "/v1/classify", "/healthz",
                                            "/readyz", "/metrics",     "other"};
static const int tracked_code[] = {200, 400, 401, 404, 405, 413, 500, 503};
#define N_CODES (sizeof tracked_code / sizeof tracked_code[0] + 1) /* + "other" */
/* error kinds: the request parser's classes, then the server's own */
enum { E_BODY_TOO_LARGE = SRQ_NCODES, E_UNAUTHORIZED, E_NOT_FOUND, E_METHOD, E_QUEUE_FULL, E_QUEUE_TIMEOUT,
       E_INTERNAL, E_N };
static const char *const server_err_name[E_N - SRQ_NCODES] = {
    "body_too_large", "unauthorized", "not_found", "method_not_allowed", "queue_full", "queue_timeout", "internal"};
static const double batch_le[] = {1, 2, 4, 8, 16, 32, 64, 128, 256};
static const double lat_le[] = {0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10};
#define N_BATCH_LE (sizeof batch_le / sizeof batch_le[0])
#define N_LAT_LE (sizeof lat_le / sizeof lat_le[0])

typedef struct {
    pthread_mutex_t mu;
    uint64_t requests[R_N][N_CODES];
    uint64_t errors[E_N];
    uint64_t batch_hist[N_BATCH_LE + 1], batch_count, batch_sum;
    uint64_t lat_hist[N_LAT_LE + 1], lat_count;
    double lat_sum, forward_s;
    uint64_t inputs;
} srv_metrics;

/* ------------------------------------------------------------ server state */
enum { J_QUEUED, J_DONE, J_FAILED, J_TIMEOUT };

typedef struct srv_job {
    struct srv_job *next;
    struct MHD_Connection *conn;
    size_t n, sched, done;  /* sequences: total, handed to a forward, scored */
    const int32_t **seq;
    size_t *len;
    double *p;
    int32_t *ids;
    double arrival, deadline; /* monotonic seconds */
    int state;
} srv_job;

typedef struct {
    const char *ckpt, *hf_dir, *host, *tls_cert, *tls_key, *token_file, *precision;
    unsigned port;
    double threshold;
    size_t max_batch, max_wait_ms, workers, max_body, max_text, max_inputs, max_conn, max_queue, queue_timeout_ms,
        max_seq_len, threads;
    int access_log, insecure_http;
    int fixed_wait; /* --batch-wait fixed: always wait --max-wait-ms for a fuller batch */
} srv_opts;

typedef struct {
    srv_opts o;
    int tls;
    infer_ctx ic;
    pthread_mutex_t tok_mu; /* the tokenizer keeps per-call state */
    /* queue: mu guards everything below it */
    pthread_mutex_t mu;
    pthread_cond_t cv;
    srv_job *head, *tail;
    size_t pending;      /* sequences queued, not yet handed to a forward */
    size_t inflight;     /* requests begun and not completed */
    size_t queued_jobs;  /* requests in the queue (some of their sequences unscheduled) */
    int draining;        /* SIGTERM seen: readyz 503, Connection: close */
    int stop_batcher;    /* the batcher exits once the queue is empty */
    uint64_t next_id;
    uint8_t token_hash[SHA256_DIGEST_SIZE];
    int has_token;
    int listening;          /* before: libmicrohttpd's messages are kept for the one error line */
    char start_log[256];
    srv_metrics m;
} srv;

typedef struct {
    uint64_t id;
    double t0;
    int route, code, err_kind, queued;
    char *body;
    size_t body_len, body_cap, body_seen;
    int body_over;
    double threshold;
    srv_job job;
} srv_req;

static double mono_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

static void abs_deadline(double mono_target, struct timespec *ts)
{
    /* the condition variable runs on CLOCK_MONOTONIC (pthread_condattr_setclock) */
    double s = floor(mono_target);
    ts->tv_sec = (time_t)s;
    ts->tv_nsec = (long)((mono_target - s) * 1e9);
    if (ts->tv_nsec >= 1000000000L)
        ts->tv_sec++, ts->tv_nsec -= 1000000000L;
}

static void secure_wipe(void *p, size_t n)
{
    volatile unsigned char *v = p;
    while (n--)
        *v++ = 0;
}

/* ------------------------------------------------------------ files */
/* Reads a whole small file. private_file: refuse one that group or others may read
 * or write (keys and tokens). */
static int read_small_file(const char *what, const char *path, int private_file, char **out, size_t *len,
                           char *err, size_t errlen)
{
    *out = NULL;
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) {
        snprintf(err, errlen, "%s %s: %s", what, path, strerror(errno));
        return -1;
    }
    struct stat sb;
    if (fstat(fd, &sb) || !S_ISREG(sb.st_mode)) {
        snprintf(err, errlen, "%s %s: not a regular file", what, path);
        close(fd);
        return -1;
    }
    if (private_file && (sb.st_mode & 077)) {
        snprintf(err, errlen, "%s %s is accessible to group or others (mode %04o); chmod 600 it", what, path,
                 (unsigned)(sb.st_mode & 07777));
        close(fd);
        return -1;
    }
    if (sb.st_size > SRV_MAX_PEM) {
        snprintf(err, errlen, "%s %s: larger than %d bytes", what, path, SRV_MAX_PEM);
        close(fd);
        return -1;
    }
    size_t n = (size_t)sb.st_size, got = 0;
    char *b = malloc(n + 1);
    if (!b) {
        snprintf(err, errlen, "out of memory");
        close(fd);
        return -1;
    }
    while (got < n) {
        ssize_t r = read(fd, b + got, n - got);
        if (r <= 0) {
            if (r < 0 && errno == EINTR)
                continue;
            snprintf(err, errlen, "%s %s: read failed", what, path);
            secure_wipe(b, n);
            free(b);
            close(fd);
            return -1;
        }
        got += (size_t)r;
    }
    close(fd);
    b[n] = '\0';
    *out = b;
    *len = n;
    return 0;
}

/* Constant time in the token's content: both sides are hashed, the digests compared
 * with no early exit (the length of the presented token leaks nothing either). */
static int token_ok(const srv *s, const char *presented, size_t n)
{
    struct sha256_ctx h;
    uint8_t d[SHA256_DIGEST_SIZE];
    sha256_init(&h);
    sha256_update(&h, n, (const uint8_t *)presented);
    sha256_digest(&h, sizeof d, d);
    unsigned diff = 0;
    for (size_t i = 0; i < sizeof d; i++)
        diff |= (unsigned)(d[i] ^ s->token_hash[i]);
    return diff == 0;
}

/* ------------------------------------------------------------ responses */
static enum MHD_Result respond(srv *s, srv_req *r, struct MHD_Connection *conn, int code, const char *ctype,
                               char *body, size_t len, int extra)
{
    /* body is malloc'd and handed over */
    struct MHD_Response *resp =
        body ? MHD_create_response_from_buffer(len, body, MHD_RESPMEM_MUST_FREE)
             : MHD_create_response_from_buffer(0, (void *)"", MHD_RESPMEM_PERSISTENT);
    if (!resp) {
        free(body);
        return MHD_NO;
    }
    MHD_add_response_header(resp, MHD_HTTP_HEADER_CONTENT_TYPE, ctype);
    MHD_add_response_header(resp, MHD_HTTP_HEADER_CACHE_CONTROL, "no-store");
    MHD_add_response_header(resp, "X-Content-Type-Options", "nosniff");
    if (s->tls)
        MHD_add_response_header(resp, "Strict-Transport-Security", "max-age=31536000");
    if (code == 503)
        MHD_add_response_header(resp, MHD_HTTP_HEADER_RETRY_AFTER, "1");
    if (code == 401)
        MHD_add_response_header(resp, MHD_HTTP_HEADER_WWW_AUTHENTICATE, "Bearer");
    if (code == 405)
        MHD_add_response_header(resp, MHD_HTTP_HEADER_ALLOW, extra ? "POST" : "GET");
    pthread_mutex_lock(&s->mu);
    int draining = s->draining;
    pthread_mutex_unlock(&s->mu);
    if (draining)
        MHD_add_response_header(resp, MHD_HTTP_HEADER_CONNECTION, "close");
    r->code = code;
    enum MHD_Result ret = MHD_queue_response(conn, (unsigned)code, resp);
    MHD_destroy_response(resp);
    return ret;
}

static enum MHD_Result respond_error(srv *s, srv_req *r, struct MHD_Connection *conn, int code, int kind,
                                     const char *msg, int extra)
{
    size_t len = 0;
    char *b = srq_format_error(code, msg, &len);
    r->err_kind = kind;
    return respond(s, r, conn, code, "application/json", b, len, extra);
}

static enum MHD_Result respond_text(srv *s, srv_req *r, struct MHD_Connection *conn, int code, const char *text)
{
    size_t n = strlen(text);
    char *b = malloc(n + 1);
    if (b)
        memcpy(b, text, n + 1);
    return respond(s, r, conn, code, "application/json", b, n, 0);
}

/* ------------------------------------------------------------ /metrics */
typedef struct {
    char *s;
    size_t n, cap;
    int oom;
} sbuf;

static void sb_printf(sbuf *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void sb_printf(sbuf *b, const char *fmt, ...)
{
    if (b->oom)
        return;
    for (;;) {
        va_list ap;
        va_start(ap, fmt);
        int w = vsnprintf(b->s + b->n, b->cap - b->n, fmt, ap);
        va_end(ap);
        if (w < 0) {
            b->oom = 1;
            return;
        }
        if ((size_t)w < b->cap - b->n) {
            b->n += (size_t)w;
            return;
        }
        size_t nc = b->cap * 2 + (size_t)w + 1;
        char *ns = realloc(b->s, nc);
        if (!ns) {
            b->oom = 1;
            return;
        }
        b->s = ns;
        b->cap = nc;
    }
}

static char *metrics_text(srv *s, size_t *len)
{
    sbuf b = {malloc(8192), 0, 8192, 0};
    if (!b.s)
        return NULL;
    pthread_mutex_lock(&s->mu);
    size_t depth = s->pending, inflight = s->inflight;
    int draining = s->draining;
    pthread_mutex_unlock(&s->mu);
    srv_metrics m;
    pthread_mutex_lock(&s->m.mu);
    m = s->m;
    pthread_mutex_unlock(&s->m.mu);

    sb_printf(&b, "# HELP adebert_requests_total HTTP requests by path and status code.\n"
                  "# TYPE adebert_requests_total counter\n");
    for (int r = 0; r < R_N; r++)
        for (size_t c = 0; c < N_CODES; c++) {
            if (!m.requests[r][c])
                continue;
            char code[16];
            if (c < N_CODES - 1)
                snprintf(code, sizeof code, "%d", tracked_code[c]);
            else
                snprintf(code, sizeof code, "other");
            sb_printf(&b, "adebert_requests_total{path=\"%s\",code=\"%s\"} %llu\n", route_name[r], code,
                      (unsigned long long)m.requests[r][c]);
        }
    sb_printf(&b, "# HELP adebert_errors_total Failed requests by kind.\n# TYPE adebert_errors_total counter\n");
    for (int k = 1; k < E_N; k++) {
        const char *name = k < SRQ_NCODES ? srq_code_name((srq_code)k) : server_err_name[k - SRQ_NCODES];
        sb_printf(&b, "adebert_errors_total{kind=\"%s\"} %llu\n", name, (unsigned long long)m.errors[k]);
    }
    sb_printf(&b, "# HELP adebert_inputs_total Texts scored.\n# TYPE adebert_inputs_total counter\n"
                  "adebert_inputs_total %llu\n",
              (unsigned long long)m.inputs);
    sb_printf(&b, "# HELP adebert_batch_size Sequences per forward pass.\n# TYPE adebert_batch_size histogram\n");
    uint64_t cum = 0;
    for (size_t i = 0; i <= N_BATCH_LE; i++) {
        cum += m.batch_hist[i];
        if (i < N_BATCH_LE)
            sb_printf(&b, "adebert_batch_size_bucket{le=\"%g\"} %llu\n", batch_le[i], (unsigned long long)cum);
        else
            sb_printf(&b, "adebert_batch_size_bucket{le=\"+Inf\"} %llu\n", (unsigned long long)cum);
    }
    sb_printf(&b, "adebert_batch_size_sum %llu\nadebert_batch_size_count %llu\n", (unsigned long long)m.batch_sum,
              (unsigned long long)m.batch_count);
    sb_printf(&b, "# HELP adebert_request_duration_seconds Time from request headers to response.\n"
                  "# TYPE adebert_request_duration_seconds histogram\n");
    cum = 0;
    for (size_t i = 0; i <= N_LAT_LE; i++) {
        cum += m.lat_hist[i];
        if (i < N_LAT_LE)
            sb_printf(&b, "adebert_request_duration_seconds_bucket{le=\"%g\"} %llu\n", lat_le[i],
                      (unsigned long long)cum);
        else
            sb_printf(&b, "adebert_request_duration_seconds_bucket{le=\"+Inf\"} %llu\n", (unsigned long long)cum);
    }
    sb_printf(&b, "adebert_request_duration_seconds_sum %.9g\nadebert_request_duration_seconds_count %llu\n",
              m.lat_sum, (unsigned long long)m.lat_count);
    sb_printf(&b, "# HELP adebert_forward_seconds_total Time spent in forward passes.\n"
                  "# TYPE adebert_forward_seconds_total counter\nadebert_forward_seconds_total %.9g\n",
              m.forward_s);
    sb_printf(&b, "# HELP adebert_queue_depth Sequences waiting for a forward pass.\n# TYPE adebert_queue_depth gauge\n"
                  "adebert_queue_depth %zu\n",
              depth);
    sb_printf(&b, "# HELP adebert_requests_in_flight Requests begun and not yet answered.\n"
                  "# TYPE adebert_requests_in_flight gauge\nadebert_requests_in_flight %zu\n",
              inflight);
    sb_printf(&b, "# HELP adebert_ready 1 when the model is loaded and the server is not draining.\n"
                  "# TYPE adebert_ready gauge\nadebert_ready %d\n",
              !draining);
    if (b.oom) {
        free(b.s);
        return NULL;
    }
    *len = b.n;
    return b.s;
}

/* ------------------------------------------------------------ batcher */
static void job_unlink(srv *s, srv_job *j)
{
    srv_job **pp = &s->head, *prev = NULL;
    while (*pp && *pp != j)
        prev = *pp, pp = &(*pp)->next;
    if (!*pp)
        return;
    *pp = j->next;
    if (s->tail == j)
        s->tail = prev;
    j->next = NULL;
    s->queued_jobs--;
}

typedef struct {
    srv *s;
    const int32_t **seq;
    size_t *len;
    double *p;
    srv_job **owner;
    size_t *idx;
} batcher_args;

static void *batcher_main(void *arg)
{
    batcher_args *a = arg;
    srv *s = a->s;
    const size_t B = s->o.max_batch;
    const double max_wait = (double)s->o.max_wait_ms / 1000.0;
    char err[MIO_ERRLEN];
    pthread_mutex_lock(&s->mu);
    for (;;) {
        double now = mono_s();
        /* jobs not started by their deadline: 503, never a hang */
        for (srv_job *j = s->head, *nx; j; j = nx) {
            nx = j->next;
            if (j->sched == 0 && now >= j->deadline) {
                job_unlink(s, j);
                s->pending -= j->n;
                j->state = J_TIMEOUT;
                MHD_resume_connection(j->conn);
            }
        }
        if (!s->head) {
            if (s->stop_batcher)
                break;
            pthread_cond_wait(&s->cv, &s->mu);
            continue;
        }
        /* Wait for a fuller batch only while more may come: not when draining, and
         * (adaptive, the default) not when every request in flight is already queued
         * (one client alone would otherwise pay --max-wait-ms on every request). Under
         * load batches fill while the previous forward runs. */
        int more_coming = s->o.fixed_wait || s->inflight > s->queued_jobs;
        if (s->pending < B && !s->stop_batcher && !s->draining && more_coming) {
            double wake = s->head->arrival + max_wait;
            if (s->head->deadline < wake)
                wake = s->head->deadline;
            if (now < wake) {
                struct timespec ts;
                abs_deadline(wake, &ts);
                pthread_cond_timedwait(&s->cv, &s->mu, &ts);
                continue;
            }
        }
        /* pack: oldest first; a job larger than the room left spans forwards */
        size_t k = 0;
        while (s->head && k < B) {
            srv_job *j = s->head;
            size_t take = j->n - j->sched;
            if (take > B - k)
                take = B - k;
            for (size_t i = 0; i < take; i++, k++) {
                a->seq[k] = j->seq[j->sched + i];
                a->len[k] = j->len[j->sched + i];
                a->owner[k] = j;
                a->idx[k] = j->sched + i;
            }
            j->sched += take;
            s->pending -= take;
            if (j->sched == j->n)
                job_unlink(s, j);
        }
        pthread_mutex_unlock(&s->mu);

        double t0 = mono_s();
        int rc = infer_batch(&s->ic, (int64_t)k, a->seq, a->len, NULL, a->p, NULL, err);
        double dt = mono_s() - t0;
        if (rc)
            fprintf(stderr, "adebert serve: forward of %zu sequences failed: %s\n", k, err);
        pthread_mutex_lock(&s->m.mu);
        size_t bi = 0;
        while (bi < N_BATCH_LE && (double)k > batch_le[bi])
            bi++;
        s->m.batch_hist[bi]++;
        s->m.batch_count++;
        s->m.batch_sum += k;
        s->m.forward_s += dt;
        if (!rc)
            s->m.inputs += k;
        pthread_mutex_unlock(&s->m.mu);

        pthread_mutex_lock(&s->mu);
        for (size_t i = 0; i < k; i++) {
            srv_job *j = a->owner[i];
            j->p[a->idx[i]] = a->p[i];
            if (rc)
                j->state = J_FAILED;
            if (++j->done == j->n) {
                if (j->state == J_QUEUED)
                    j->state = J_DONE;
                MHD_resume_connection(j->conn);
            }
        }
    }
    pthread_mutex_unlock(&s->mu);
    return NULL;
}

/* ------------------------------------------------------------ handlers */
static int route_of(const char *url)
{
    for (int r = 0; r < R_OTHER; r++)
        if (!strcmp(url, route_name[r]))
            return r;
    return R_OTHER;
}

static enum MHD_Result classify_start(srv *s, srv_req *r, struct MHD_Connection *conn)
{
    char err[SRQ_ERRLEN], ierr[IO_ERRLEN];
    if (r->body_over) {
        snprintf(err, sizeof err, "body: larger than the limit of %zu bytes", s->o.max_body);
        return respond_error(s, r, conn, 413, E_BODY_TOO_LARGE, err, 1);
    }
    srq_limits lim = {s->o.max_inputs, s->o.max_text, SRV_MAX_DEPTH};
    srq_request q;
    srq_code c = srq_parse(r->body ? r->body : "", r->body_len, &lim, &q, err);
    /* the body is no longer needed: drop the PHI as soon as possible */
    if (r->body) {
        secure_wipe(r->body, r->body_len);
        free(r->body);
        r->body = NULL;
    }
    if (c != SRQ_OK)
        return respond_error(s, r, conn, srq_http_status(c), (int)c, err, 1);

    srv_job *j = &r->job;
    size_t n = q.n, L = (size_t)s->ic.max_seq_len;
    j->n = n;
    j->ids = malloc(n * L * sizeof *j->ids);
    j->seq = malloc(n * sizeof *j->seq);
    j->len = malloc(n * sizeof *j->len);
    j->p = malloc(n * sizeof *j->p);
    if (!j->ids || !j->seq || !j->len || !j->p) {
        srq_free(&q);
        return respond_error(s, r, conn, 500, E_INTERNAL, "out of memory", 1);
    }
    r->threshold = q.has_threshold ? q.threshold : s->o.threshold;
    pthread_mutex_lock(&s->tok_mu);
    size_t bad = n;
    for (size_t i = 0; i < n && bad == n; i++) {
        j->seq[i] = j->ids + i * L;
        if (infer_encode(&s->ic, q.text[i], q.len[i], j->ids + i * L, &j->len[i], ierr))
            bad = i;
    }
    pthread_mutex_unlock(&s->tok_mu);
    srq_free(&q);
    if (bad < n) {
        /* the parser checked UTF-8 already; the tokenizer's message names no text */
        snprintf(err, sizeof err, "inputs[%zu]: %s", bad, ierr);
        return respond_error(s, r, conn, 400, SRQ_UTF8, err, 1);
    }

    pthread_mutex_lock(&s->mu);
    if (s->stop_batcher || s->pending + n > s->o.max_queue) {
        pthread_mutex_unlock(&s->mu);
        return respond_error(s, r, conn, 503, E_QUEUE_FULL, "the server is at capacity; retry later", 1);
    }
    j->arrival = mono_s();
    j->deadline = j->arrival + (double)s->o.queue_timeout_ms / 1000.0;
    j->state = J_QUEUED;
    j->conn = conn;
    /* suspended before the batcher can see the job, so its resume always finds the
     * connection suspended */
    MHD_suspend_connection(conn);
    if (s->tail)
        s->tail->next = j;
    else
        s->head = j;
    s->tail = j;
    s->queued_jobs++;
    s->pending += n;
    r->queued = 1;
    pthread_cond_signal(&s->cv);
    pthread_mutex_unlock(&s->mu);
    return MHD_YES;
}

static enum MHD_Result classify_finish(srv *s, srv_req *r, struct MHD_Connection *conn)
{
    srv_job *j = &r->job;
    pthread_mutex_lock(&s->mu);
    int state = j->state;
    pthread_mutex_unlock(&s->mu);
    if (state == J_TIMEOUT)
        return respond_error(s, r, conn, 503, E_QUEUE_TIMEOUT, "the request waited past the queue timeout; retry later",
                             1);
    if (state != J_DONE)
        return respond_error(s, r, conn, 500, E_INTERNAL, "scoring failed", 1);
    size_t len = 0;
    char *b = srq_format_results(j->n, j->p, r->threshold, &len);
    if (!b)
        return respond_error(s, r, conn, 500, E_INTERNAL, "out of memory", 1);
    return respond(s, r, conn, 200, "application/json", b, len, 1);
}

static enum MHD_Result on_request(void *cls, struct MHD_Connection *conn, const char *url, const char *method,
                                  const char *version, const char *upload, size_t *upload_size, void **con_cls)
{
    srv *s = cls;
    srv_req *r = *con_cls;
    if (!r) {
        r = calloc(1, sizeof *r);
        if (!r)
            return MHD_NO;
        r->t0 = mono_s();
        r->route = route_of(url);
        pthread_mutex_lock(&s->mu);
        r->id = ++s->next_id;
        s->inflight++;
        pthread_mutex_unlock(&s->mu);
        *con_cls = r;
        int post = r->route == R_INVOCATIONS || r->route == R_CLASSIFY;
        int is_get = !strcmp(method, MHD_HTTP_METHOD_GET);
        int is_post = !strcmp(method, MHD_HTTP_METHOD_POST);
        if (r->route == R_OTHER)
            return respond_error(s, r, conn, 404, E_NOT_FOUND, "no such path", 0);
        if ((post && !is_post) || (!post && !is_get))
            return respond_error(s, r, conn, 405, E_METHOD, "method not allowed", post);
        if (s->has_token && (post || r->route == R_METRICS)) {
            const char *h = MHD_lookup_connection_value(conn, MHD_HEADER_KIND, MHD_HTTP_HEADER_AUTHORIZATION);
            int ok = h && !strncmp(h, "Bearer ", 7) && token_ok(s, h + 7, strlen(h + 7));
            if (!ok)
                return respond_error(s, r, conn, 401, E_UNAUTHORIZED, "unauthorized", post);
        }
        if (post) {
            const char *cl = MHD_lookup_connection_value(conn, MHD_HEADER_KIND, MHD_HTTP_HEADER_CONTENT_LENGTH);
            size_t want = 0;
            if (cl && cli_parse_size(cl, 0, SIZE_MAX, &want) == 0 && want > s->o.max_body) {
                /* A body somewhat past the limit is read and dropped, then answered
                 * 413: answering before it arrives closes the connection under a
                 * client still sending (curl, Python's http.client and most others
                 * send without Expect: 100-continue), which then sees a reset or a
                 * TLS EOF instead of the 413. Far past the limit: 413 at once. */
                if (want <= 4 * s->o.max_body + 65536) {
                    r->body_over = 1;
                    return MHD_YES;
                }
                char err[SRQ_ERRLEN];
                snprintf(err, sizeof err, "body: larger than the limit of %zu bytes", s->o.max_body);
                return respond_error(s, r, conn, 413, E_BODY_TOO_LARGE, err, 1);
            }
            if (want) {
                r->body = malloc(want + 1);
                if (!r->body)
                    return respond_error(s, r, conn, 500, E_INTERNAL, "out of memory", 1);
                r->body_cap = want + 1;
            }
        }
        return MHD_YES;
    }
    if (*upload_size) {
        size_t n = *upload_size;
        *upload_size = 0;
        r->body_seen += n;
        if (r->body_over || r->body_len + n > s->o.max_body) {
            /* chunked upload past the limit: drop what comes, answer 413 at the end;
             * a client that keeps streaming far past it loses the connection */
            r->body_over = 1;
            if (r->body) {
                secure_wipe(r->body, r->body_len);
                free(r->body);
                r->body = NULL;
                r->body_len = r->body_cap = 0;
            }
            return r->body_seen > 4 * s->o.max_body + 65536 ? MHD_NO : MHD_YES;
        }
        if (r->body_len + n + 1 > r->body_cap) {
            size_t nc = r->body_cap ? r->body_cap : 4096;
            while (nc < r->body_len + n + 1)
                nc *= 2;
            if (nc > s->o.max_body + 1)
                nc = s->o.max_body + 1;
            char *nb = malloc(nc);
            if (!nb)
                return MHD_NO;
            if (r->body) {
                memcpy(nb, r->body, r->body_len);
                secure_wipe(r->body, r->body_len);
                free(r->body);
            }
            r->body = nb;
            r->body_cap = nc;
        }
        memcpy(r->body + r->body_len, upload, n);
        r->body_len += n;
        return MHD_YES;
    }
    /* the whole request is here (or, for a queued job, the batcher resumed it) */
    switch (r->route) {
    case R_PING:
    case R_HEALTHZ: return respond_text(s, r, conn, 200, "{\"status\": \"ok\"}\n");
    case R_READYZ: {
        pthread_mutex_lock(&s->mu);
        int draining = s->draining;
        pthread_mutex_unlock(&s->mu);
        return draining ? respond_text(s, r, conn, 503, "{\"status\": \"draining\"}\n")
                        : respond_text(s, r, conn, 200, "{\"status\": \"ready\"}\n");
    }
    case R_METRICS: {
        size_t len = 0;
        char *b = metrics_text(s, &len);
        if (!b)
            return respond_error(s, r, conn, 500, E_INTERNAL, "out of memory", 0);
        return respond(s, r, conn, 200, "text/plain; version=0.0.4; charset=utf-8", b, len, 0);
    }
    default: return r->queued ? classify_finish(s, r, conn) : classify_start(s, r, conn);
    }
}

static void on_completed(void *cls, struct MHD_Connection *conn, void **con_cls, enum MHD_RequestTerminationCode toe)
{
    srv *s = cls;
    srv_req *r = *con_cls;
    if (!r)
        return;
    *con_cls = NULL;
    double dt = mono_s() - r->t0;
    int code = r->code ? r->code : 0;
    pthread_mutex_lock(&s->m.mu);
    size_t ci = N_CODES - 1;
    for (size_t i = 0; i < N_CODES - 1; i++)
        if (tracked_code[i] == code)
            ci = i;
    s->m.requests[r->route][ci]++;
    if (r->err_kind > 0 && r->err_kind < E_N)
        s->m.errors[r->err_kind]++;
    size_t li = 0;
    while (li < N_LAT_LE && dt > lat_le[li])
        li++;
    s->m.lat_hist[li]++;
    s->m.lat_count++;
    s->m.lat_sum += dt;
    pthread_mutex_unlock(&s->m.mu);
    if (s->o.access_log)
        fprintf(stderr, "adebert serve: request %llu %s %d inputs=%zu body_bytes=%zu ms=%.3f%s\n",
                (unsigned long long)r->id, route_name[r->route], code, r->job.n, r->body_seen, 1000.0 * dt,
                toe == MHD_REQUEST_TERMINATED_COMPLETED_OK ? "" : " (connection ended early)");
    if (r->body) {
        secure_wipe(r->body, r->body_len);
        free(r->body);
    }
    free(r->job.ids);
    free(r->job.seq);
    free(r->job.len);
    free(r->job.p);
    free(r);
    pthread_mutex_lock(&s->mu);
    s->inflight--;
    pthread_mutex_unlock(&s->mu);
}

static void mhd_log(void *cls, const char *fmt, va_list ap)
{
    /* libmicrohttpd's own diagnostics (TLS handshake failures, resource limits):
     * about connections, never about request content */
    char line[512];
    vsnprintf(line, sizeof line, fmt, ap);
    size_t n = strlen(line);
    while (n && (line[n - 1] == '\n' || line[n - 1] == '\r'))
        line[--n] = '\0';
    srv *s = cls;
    pthread_mutex_lock(&s->mu);
    int listening = s->listening;
    if (!listening && !s->start_log[0])
        snprintf(s->start_log, sizeof s->start_log, "%s", line);
    pthread_mutex_unlock(&s->mu);
    if (!listening)
        return;
    fprintf(stderr, "adebert serve: libmicrohttpd: %s\n", line);
}

/* ------------------------------------------------------------ options */
enum {
    OPT_MODEL = 256, OPT_DEVICE, OPT_HOST, OPT_PORT, OPT_CERT, OPT_KEY, OPT_TOKEN, OPT_THRESHOLD, OPT_MAX_BATCH,
    OPT_MAX_WAIT, OPT_WORKERS, OPT_MAX_BODY, OPT_MAX_TEXT, OPT_MAX_INPUTS, OPT_MAX_CONN, OPT_MAX_QUEUE,
    OPT_QUEUE_TIMEOUT, OPT_MAX_SEQ_LEN, OPT_THREADS, OPT_NO_LOG, OPT_INSECURE, OPT_PRECISION, OPT_BATCH_WAIT
};

static int parse_opts(int argc, char **argv, srv_opts *o)
{
    memset(o, 0, sizeof *o);
    o->host = "127.0.0.1";
    o->port = 8080;
    o->threshold = IO_METRICS_THRESHOLD;
    o->max_batch = 32;
    o->max_wait_ms = 5;
    o->workers = 4;
    o->max_body = 1u << 20;
    o->max_text = 16384;
    o->max_inputs = 64;
    o->max_conn = 256;
    o->max_queue = 1024;
    o->queue_timeout_ms = 10000;
    o->access_log = 1;
    static const struct option opts[] = {{"checkpoint", required_argument, NULL, 'c'},
                                         {"model", required_argument, NULL, OPT_MODEL},
                                         {"device", required_argument, NULL, OPT_DEVICE},
                                         {"host", required_argument, NULL, OPT_HOST},
                                         {"port", required_argument, NULL, OPT_PORT},
                                         {"tls-cert", required_argument, NULL, OPT_CERT},
                                         {"tls-key", required_argument, NULL, OPT_KEY},
                                         {"token-file", required_argument, NULL, OPT_TOKEN},
                                         {"threshold", required_argument, NULL, OPT_THRESHOLD},
                                         {"max-batch", required_argument, NULL, OPT_MAX_BATCH},
                                         {"max-wait-ms", required_argument, NULL, OPT_MAX_WAIT},
                                         {"workers", required_argument, NULL, OPT_WORKERS},
                                         {"max-body-bytes", required_argument, NULL, OPT_MAX_BODY},
                                         {"max-text-bytes", required_argument, NULL, OPT_MAX_TEXT},
                                         {"max-inputs", required_argument, NULL, OPT_MAX_INPUTS},
                                         {"max-connections", required_argument, NULL, OPT_MAX_CONN},
                                         {"max-queue", required_argument, NULL, OPT_MAX_QUEUE},
                                         {"queue-timeout-ms", required_argument, NULL, OPT_QUEUE_TIMEOUT},
                                         {"max-seq-len", required_argument, NULL, OPT_MAX_SEQ_LEN},
                                         {"threads", required_argument, NULL, OPT_THREADS},
                                         {"precision", required_argument, NULL, OPT_PRECISION},
                                         {"no-access-log", no_argument, NULL, OPT_NO_LOG},
                                         {"insecure-http", no_argument, NULL, OPT_INSECURE},
                                         {"batch-wait", required_argument, NULL, OPT_BATCH_WAIT},
                                         {"help", no_argument, NULL, 'h'},
                                         {0, 0, 0, 0}};
    optind = 1;
    int ch;
    while ((ch = cli_getopt(argc, argv, "serve", ":h", opts)) != -1) {
        const char *bad = NULL;
        size_t v = 0;
        switch (ch) {
        case 'c': o->ckpt = optarg; break;
        case OPT_MODEL: o->hf_dir = optarg; break;
        case OPT_DEVICE:
            if (strcmp(optarg, "cpu")) {
                cli_error("serve", "--device %s: serve runs on the CPU backend only (--device cpu)", optarg);
                return CLI_USAGE;
            }
            break;
        case OPT_HOST: o->host = optarg; break;
        case OPT_PORT:
            if (cli_parse_size(optarg, 0, 65535, &v))
                bad = "--port must be an integer in [0, 65535]";
            o->port = (unsigned)v;
            break;
        case OPT_CERT: o->tls_cert = optarg; break;
        case OPT_KEY: o->tls_key = optarg; break;
        case OPT_TOKEN: o->token_file = optarg; break;
        case OPT_THRESHOLD: {
            char *end = NULL;
            errno = 0;
            double t = strtod(optarg, &end);
            if (errno || !*optarg || *end || !(t >= 0.0 && t <= 1.0))
                bad = "--threshold must be a number in [0, 1]";
            o->threshold = t;
            break;
        }
#define SIZE_OPT(id, field, lo, hi, msg)                                                                            \
    case id:                                                                                                       \
        if (cli_parse_size(optarg, lo, hi, &o->field))                                                             \
            bad = msg;                                                                                             \
        break;
            SIZE_OPT(OPT_MAX_BATCH, max_batch, 1, 4096, "--max-batch must be an integer in [1, 4096]")
            SIZE_OPT(OPT_MAX_WAIT, max_wait_ms, 0, 10000, "--max-wait-ms must be an integer in [0, 10000]")
            SIZE_OPT(OPT_WORKERS, workers, 1, 1024, "--workers must be an integer in [1, 1024]")
            SIZE_OPT(OPT_MAX_BODY, max_body, 64, (size_t)1 << 30, "--max-body-bytes must be an integer in [64, 2^30]")
            SIZE_OPT(OPT_MAX_TEXT, max_text, 1, (size_t)1 << 30, "--max-text-bytes must be an integer in [1, 2^30]")
            SIZE_OPT(OPT_MAX_INPUTS, max_inputs, 1, 1u << 20, "--max-inputs must be an integer in [1, 1048576]")
            SIZE_OPT(OPT_MAX_CONN, max_conn, 1, 65536, "--max-connections must be an integer in [1, 65536]")
            SIZE_OPT(OPT_MAX_QUEUE, max_queue, 1, 1u << 24, "--max-queue must be an integer in [1, 16777216]")
            SIZE_OPT(OPT_QUEUE_TIMEOUT, queue_timeout_ms, 1, 3600000,
                     "--queue-timeout-ms must be an integer in [1, 3600000]")
            SIZE_OPT(OPT_MAX_SEQ_LEN, max_seq_len, 2, 65536, "--max-seq-len must be an integer in [2, 65536]")
            SIZE_OPT(OPT_THREADS, threads, 0, 4096, "--threads must be an integer in [0, 4096]")
#undef SIZE_OPT
        case OPT_PRECISION:
            o->precision = optarg;
            if (infer_precision_valid(optarg))
                bad = "--precision must be fp32, bf16 or auto";
            break;
        case OPT_NO_LOG: o->access_log = 0; break;
        case OPT_INSECURE: o->insecure_http = 1; break;
        case OPT_BATCH_WAIT:
            if (!strcmp(optarg, "fixed"))
                o->fixed_wait = 1;
            else if (!strcmp(optarg, "adaptive"))
                o->fixed_wait = 0;
            else
                bad = "--batch-wait must be adaptive or fixed";
            break;
        case 'h': fputs(serve_usage, stdout); return -1;
        default: return CLI_USAGE;
        }
        if (bad) {
            cli_error("serve", "%s, not '%s'", bad, optarg);
            return CLI_USAGE;
        }
    }
    if (optind < argc) {
        cli_error("serve", "unexpected argument '%s' (see --help)", argv[optind]);
        return CLI_USAGE;
    }
    if (!!o->ckpt == !!o->hf_dir || (o->ckpt && !*o->ckpt) || (o->hf_dir && !*o->hf_dir)) {
        cli_error("serve", "exactly one of --checkpoint CKPT.h5 and --model HF_DIR is required (see --help)");
        return CLI_USAGE;
    }
    if (!!o->tls_cert != !!o->tls_key) {
        cli_error("serve", "--tls-cert and --tls-key go together");
        return CLI_USAGE;
    }
    if (o->max_inputs > o->max_queue) {
        cli_error("serve", "--max-inputs %zu exceeds --max-queue %zu: such a request could never be queued",
                  o->max_inputs, o->max_queue);
        return CLI_USAGE;
    }
    return 0;
}

/* ------------------------------------------------------------ main */
int cmd_serve(int argc, char **argv)
{
    /* First, before any thread can exist: SIGTERM/SIGINT stay blocked in every thread
     * (OpenMP's, libmicrohttpd's, the batcher) and the main thread takes them with
     * sigwait. A thread that did not block them would take a SIGTERM with the default
     * action (killed, no drain). */
    sigset_t stop_set;
    cli_block_signals(&stop_set, SIGTERM, SIGINT);
    signal(SIGPIPE, SIG_IGN);
    srv *s = calloc(1, sizeof *s);
    if (!s) {
        cli_error("serve", "out of memory");
        return CLI_FAIL;
    }
    int prc = parse_opts(argc, argv, &s->o);
    if (prc) {
        free(s);
        return prc < 0 ? CLI_OK : prc;
    }
    srv_opts *o = &s->o;
    s->tls = o->tls_cert != NULL;

    /* the address: numeric only, so that what is checked is what is bound */
    struct sockaddr_storage ss;
    memset(&ss, 0, sizeof ss);
    int v6 = 0, loopback = 0;
    struct sockaddr_in *a4 = (struct sockaddr_in *)&ss;
    struct sockaddr_in6 *a6 = (struct sockaddr_in6 *)&ss;
    if (inet_pton(AF_INET, o->host, &a4->sin_addr) == 1) {
        a4->sin_family = AF_INET;
        a4->sin_port = htons((uint16_t)o->port);
        loopback = (ntohl(a4->sin_addr.s_addr) >> 24) == 127;
    } else if (inet_pton(AF_INET6, o->host, &a6->sin6_addr) == 1) {
        v6 = 1;
        a6->sin6_family = AF_INET6;
        a6->sin6_port = htons((uint16_t)o->port);
        loopback = IN6_IS_ADDR_LOOPBACK(&a6->sin6_addr);
    } else {
        cli_error("serve", "--host '%s' is not a numeric IPv4 or IPv6 address", o->host);
        free(s);
        return CLI_USAGE;
    }
    if (!loopback && !s->tls && !o->insecure_http) {
        cli_error("serve",
                  "--host %s is not a loopback address: serving PHI off this machine needs --tls-cert/--tls-key "
                  "(or --insecure-http behind a TLS-terminating proxy)",
                  o->host);
        free(s);
        return CLI_USAGE;
    }

    int rc = CLI_FAIL;
    char err[1024];
    char *cert = NULL, *key = NULL, *token = NULL;
    size_t cert_len = 0, key_len = 0, token_len = 0;
    struct MHD_Daemon *d = NULL;
    pthread_t batcher;
    int batcher_started = 0, mu_init = 0;
    batcher_args ba;
    memset(&ba, 0, sizeof ba);

    if (s->tls && (read_small_file("--tls-cert", o->tls_cert, 0, &cert, &cert_len, err, sizeof err) ||
                   read_small_file("--tls-key", o->tls_key, 1, &key, &key_len, err, sizeof err))) {
        cli_error("serve", "%s", err);
        goto done;
    }
    if (o->token_file) {
        if (read_small_file("--token-file", o->token_file, 1, &token, &token_len, err, sizeof err)) {
            cli_error("serve", "%s", err);
            goto done;
        }
        while (token_len && (token[token_len - 1] == '\n' || token[token_len - 1] == '\r' ||
                             token[token_len - 1] == ' ' || token[token_len - 1] == '\t'))
            token[--token_len] = '\0';
        int ws = 0;
        for (size_t i = 0; i < token_len; i++)
            ws |= token[i] == ' ' || token[i] == '\t' || token[i] == '\n' || token[i] == '\r' ||
                  (unsigned char)token[i] < 0x21;
        if (token_len < 16 || ws) {
            cli_error("serve", "--token-file %s: the token must be one line of at least 16 printable characters "
                               "without spaces", o->token_file);
            goto done;
        }
        struct sha256_ctx h;
        sha256_init(&h);
        sha256_update(&h, token_len, (const uint8_t *)token);
        sha256_digest(&h, sizeof s->token_hash, s->token_hash);
        s->has_token = 1;
        secure_wipe(token, token_len);
    }


    char merr[MIO_ERRLEN];
    int orc = o->ckpt ? infer_open(&s->ic, o->ckpt, (int64_t)o->max_batch, (int64_t)o->max_seq_len, (int)o->threads,
                                   merr)
                      : infer_open_hf(&s->ic, "serve", o->hf_dir, (int64_t)o->max_batch, (int64_t)o->max_seq_len,
                                      (int)o->threads, merr);
    if (!orc && o->precision)
        orc = infer_set_precision(&s->ic, o->precision, merr);
    if (orc) {
        cli_error("serve", "%s", merr);
        goto done;
    }

    pthread_condattr_t ca;
    pthread_condattr_init(&ca);
    pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
    pthread_cond_init(&s->cv, &ca);
    pthread_condattr_destroy(&ca);
    pthread_mutex_init(&s->mu, NULL);
    pthread_mutex_init(&s->tok_mu, NULL);
    pthread_mutex_init(&s->m.mu, NULL);
    mu_init = 1;

    size_t B = o->max_batch;
    ba.s = s;
    ba.seq = malloc(B * sizeof *ba.seq);
    ba.len = malloc(B * sizeof *ba.len);
    ba.p = malloc(B * sizeof *ba.p);
    ba.owner = malloc(B * sizeof *ba.owner);
    ba.idx = malloc(B * sizeof *ba.idx);
    if (!ba.seq || !ba.len || !ba.p || !ba.owner || !ba.idx) {
        cli_error("serve", "out of memory");
        goto done;
    }
    if (pthread_create(&batcher, NULL, batcher_main, &ba)) {
        cli_error("serve", "could not start the batcher thread");
        goto done;
    }
    batcher_started = 1;

    unsigned flags = MHD_USE_INTERNAL_POLLING_THREAD | MHD_ALLOW_SUSPEND_RESUME | MHD_USE_ITC | MHD_USE_AUTO |
                     MHD_USE_ERROR_LOG;
    if (v6)
        flags |= MHD_USE_IPv6;
    if (s->tls)
        flags |= MHD_USE_TLS;
    struct MHD_OptionItem tls_opts[] = {
        {MHD_OPTION_HTTPS_MEM_CERT, 0, cert},
        {MHD_OPTION_HTTPS_MEM_KEY, 0, key},
        {MHD_OPTION_HTTPS_PRIORITIES, 0, (void *)SRV_TLS_PRIORITIES},
        {MHD_OPTION_END, 0, NULL},
    };
    d = MHD_start_daemon(flags, (uint16_t)o->port, NULL, NULL, on_request, s,
                         MHD_OPTION_EXTERNAL_LOGGER, mhd_log, s, /* first: it applies from here on */
                         MHD_OPTION_SOCK_ADDR, (struct sockaddr *)&ss,
                         MHD_OPTION_THREAD_POOL_SIZE, (unsigned)o->workers,
                         MHD_OPTION_CONNECTION_LIMIT, (unsigned)o->max_conn,
                         MHD_OPTION_CONNECTION_TIMEOUT, (unsigned)30,
                         MHD_OPTION_NOTIFY_COMPLETED, on_completed, s,
                         MHD_OPTION_ARRAY, s->tls ? tls_opts : tls_opts + 3,
                         MHD_OPTION_END);
    if (!d) {
        if (s->start_log[0])
            cli_error("serve", "could not listen on %s port %u: %s", o->host, o->port, s->start_log);
        else
            cli_error("serve", "could not listen on %s port %u%s", o->host, o->port,
                      s->tls ? " (port in use, or the TLS certificate/key are not a valid PEM pair)" : " (port in use?)");
        goto done;
    }
    pthread_mutex_lock(&s->mu);
    s->listening = 1;
    pthread_mutex_unlock(&s->mu);
    const union MHD_DaemonInfo *di = MHD_get_daemon_info(d, MHD_DAEMON_INFO_BIND_PORT);
    unsigned port = di ? di->port : o->port;
    fprintf(stderr,
            "adebert serve: listening on %s://%s%s%s:%u (%s %s, max_seq_len %lld, %s GEMMs, max batch %zu, "
            "max wait %zu ms, %zu workers%s)\n",
            s->tls ? "https" : "http", v6 ? "[" : "", o->host, v6 ? "]" : "", port, o->ckpt ? "checkpoint" : "model",
            o->ckpt ? o->ckpt : o->hf_dir, (long long)s->ic.max_seq_len, s->ic.precision, o->max_batch,
            o->max_wait_ms, o->workers, s->has_token ? ", bearer token required" : "");

    int sig = 0;
    while (sigwait(&stop_set, &sig) != 0)
        ;
    /* drain: no new connections; requests already begun are answered */
    pthread_mutex_lock(&s->mu);
    s->draining = 1;
    pthread_cond_signal(&s->cv);
    size_t left = s->inflight;
    pthread_mutex_unlock(&s->mu);
    fprintf(stderr, "adebert serve: %s: draining %zu request%s in flight\n", sig == SIGINT ? "SIGINT" : "SIGTERM",
            left, left == 1 ? "" : "s");
    MHD_socket lsock = MHD_quiesce_daemon(d);
    if (lsock != MHD_INVALID_SOCKET)
        close(lsock);
    double give_up = mono_s() + (double)o->queue_timeout_ms / 1000.0 + SRV_DRAIN_EXTRA_S;
    while (mono_s() < give_up) {
        pthread_mutex_lock(&s->mu);
        left = s->inflight;
        pthread_mutex_unlock(&s->mu);
        if (!left)
            break;
        struct timespec ts = {0, 10 * 1000 * 1000};
        nanosleep(&ts, NULL);
    }
    rc = left ? CLI_FAIL : CLI_OK;
    if (left)
        fprintf(stderr, "adebert serve: %zu request%s still open at the drain deadline; closing them\n", left,
                left == 1 ? "" : "s");
done:
    if (batcher_started) {
        pthread_mutex_lock(&s->mu);
        s->stop_batcher = 1;
        pthread_cond_signal(&s->cv);
        pthread_mutex_unlock(&s->mu);
        pthread_join(batcher, NULL);
    }
    if (d)
        MHD_stop_daemon(d);
    if (rc == CLI_OK) {
        unsigned long long served = 0;
        for (int r = 0; r < R_N; r++)
            for (size_t c = 0; c < N_CODES; c++)
                served += s->m.requests[r][c];
        fprintf(stderr, "adebert serve: stopped after %llu requests\n", served);
    }
    if (mu_init) {
        pthread_mutex_destroy(&s->mu);
        pthread_mutex_destroy(&s->tok_mu);
        pthread_mutex_destroy(&s->m.mu);
        pthread_cond_destroy(&s->cv);
    }
    free(ba.seq);
    free(ba.len);
    free(ba.p);
    free(ba.owner);
    free(ba.idx);
    if (key) {
        secure_wipe(key, key_len);
        free(key);
    }
    free(cert);
    free(token);
    infer_close(&s->ic);
    secure_wipe(s->token_hash, sizeof s->token_hash);
    free(s);
    return rc;
}
