/*
 * loadgen.c - load generator for `nuage serve` (or any OpenAI-compatible
 * server): C concurrent clients, each on its own keep-alive connection,
 * send streaming /v1/completions requests with a prompt of P token ids
 * and a fixed output length (ignore_eos), and measure:
 *
 *   - aggregate generated tokens/s (usage.completion_tokens of every
 *     request over the wall time of the whole run),
 *   - time to first token (request sent -> first SSE event with text),
 *     p50 / p99,
 *   - inter-token latency (time between two consecutive text events of a
 *     stream), p50 / p99.
 *
 * Plain HTTP/1.1 over libc sockets, one thread per client; responses are
 * chunked (the server streams), decoded here, then split into SSE events.
 * Prompts are unique: every request's ids are random, seeded by its index
 * and a per-run seed (the clock and pid unless --seed S), so neither a
 * second request nor a second run (the other server, the next repetition)
 * finds its prompt in a prefix cache. --shared-prefix N makes the first N
 * ids of every prompt the same (seeded by the run seed only) and the rest
 * unique: the prefix-reuse case, reported separately. --same-prompt sends
 * one prompt for every request.
 *
 * usage: loadgen [--host H] [--port N] [-c CLIENTS] [-n REQUESTS]
 *                [--prompt-tokens P] [--max-tokens N] [--vocab V] [--same-prompt]
 *                [--shared-prefix N] [--seed S]
 *                [--extra '"response_format":{...}']  (members added to every body,
 *                e.g. a constraint: compare constrained with unconstrained load)
 *                [--header 'Name: value']  (added to every request, up to 8 times:
 *                an API key, an x-nuage-affinity key)
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

static const char *g_host = "127.0.0.1";
static int g_port = 8080, g_clients = 16, g_requests = 0, g_prompt = 64, g_max = 128, g_vocab = 512;
static bool g_same_prompt = false;
static int g_shared_prefix = 0; /* --shared-prefix: ids common to every prompt */
static uint64_t g_seed;         /* --seed, else clock ^ pid: differs per run */
static const char *g_extra = NULL; /* --extra: JSON members added to every body */
static const char *g_headers[8];    /* --header: lines added to every request head */
static int g_n_headers;
static atomic_int g_next;

static double now_s(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

typedef struct {
    double *v;
    size_t n, cap;
} vec;

static void vec_push(vec *a, double x) {
    if (a->n == a->cap) {
        a->cap = a->cap ? 2 * a->cap : 1024;
        a->v = realloc(a->v, a->cap * sizeof *a->v);
        if (!a->v) { fprintf(stderr, "loadgen: out of memory\n"); exit(1); }
    }
    a->v[a->n++] = x;
}

typedef struct {
    vec ttft, itl;
    long tokens, requests, errors;
} stats;

static int dial(void) {
    struct addrinfo hints = {0}, *ai;
    hints.ai_socktype = SOCK_STREAM;
    char port[16];
    snprintf(port, sizeof port, "%d", g_port);
    if (getaddrinfo(g_host, port, &hints, &ai)) return -1;
    int fd = socket(ai->ai_family, SOCK_STREAM, 0);
    if (fd >= 0 && connect(fd, ai->ai_addr, ai->ai_addrlen)) {
        close(fd);
        fd = -1;
    }
    freeaddrinfo(ai);
    if (fd >= 0) {
        int one = 1;
        setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    }
    return fd;
}

/* Growable byte buffer. */
typedef struct {
    char *p;
    size_t n, cap;
} buf;

static void buf_put(buf *b, const char *s, size_t n) {
    if (b->n + n + 1 > b->cap) {
        b->cap = (b->n + n + 1) * 2;
        b->p = realloc(b->p, b->cap);
        if (!b->p) { fprintf(stderr, "loadgen: out of memory\n"); exit(1); }
    }
    memcpy(b->p + b->n, s, n);
    b->n += n;
    b->p[b->n] = 0;
}

static void buf_drop(buf *b, size_t k) {
    memmove(b->p, b->p + k, b->n - k);
    b->n -= k;
    if (b->p) b->p[b->n] = 0;
}

/* One streaming request on fd. Returns false on a connection error. */
static bool one_request(int fd, int idx, stats *st) {
    buf body = {0}, raw = {0}, sse = {0};
    char tmp[64];
    buf_put(&body, "{\"prompt\":[1", 12);
    /* xorshift64 streams: the shared prefix from the run seed alone, the
     * rest from the run seed and the request index (never 0) */
    uint64_t shared = g_seed * 0xD1B54A32D192ED03ULL | 1;
    uint64_t own = (g_seed ^ ((uint64_t)(idx + 1) * 0x9E3779B97F4A7C15ULL)) | 1;
    if (g_same_prompt) own = shared;
    for (int i = 1; i < g_prompt; i++) {
        uint64_t *sx = i < g_shared_prefix ? &shared : &own;
        uint64_t x = *sx;
        x ^= x << 13; x ^= x >> 7; x ^= x << 17;
        *sx = x;
        int n = snprintf(tmp, sizeof tmp, ",%d", 3 + (int)(x % (uint64_t)(g_vocab - 3)));
        buf_put(&body, tmp, (size_t)n);
    }
    int n = snprintf(tmp, sizeof tmp, "],\"max_tokens\":%d,", g_max);
    buf_put(&body, tmp, (size_t)n);
    if (g_extra) {
        buf_put(&body, g_extra, strlen(g_extra));
        buf_put(&body, ",", 1);
    }
    const char *rest = "\"temperature\":0,\"ignore_eos\":true,\"stream\":true,\"stream_options\":{\"include_usage\":true}}";
    buf_put(&body, rest, strlen(rest));
    char head[4096];
    int hl = snprintf(head, sizeof head,
                      "POST /v1/completions HTTP/1.1\r\nHost: %s\r\nContent-Type: application/json\r\nContent-Length: %zu\r\n",
                      g_host, body.n);
    for (int h = 0; h < g_n_headers && hl < (int)sizeof head; h++)
        hl += snprintf(head + hl, sizeof head - (size_t)hl, "%s\r\n", g_headers[h]);
    if (hl < (int)sizeof head) hl += snprintf(head + hl, sizeof head - (size_t)hl, "\r\n");
    if (hl >= (int)sizeof head) { fprintf(stderr, "loadgen: --header lines too long\n"); exit(2); }
    double t0 = now_s(), t_last = 0;
    bool ok = send(fd, head, (size_t)hl, MSG_NOSIGNAL) == hl &&
              send(fd, body.p, body.n, MSG_NOSIGNAL) == (ssize_t)body.n;
    free(body.p);
    if (!ok) return false;

    bool headers_done = false, chunked = false, done = false, first = true;
    long req_tokens = 0;
    long content_left = -1;
    int status = 0;
    long chunk_left = -1; /* bytes of the current chunk still to read; -1: at a size line */
    char rb[16384];
    while (!done) {
        ssize_t k = recv(fd, rb, sizeof rb, 0);
        if (k <= 0) { free(raw.p); free(sse.p); return false; }
        double t = now_s();
        buf_put(&raw, rb, (size_t)k);
        if (!headers_done) {
            while (raw.n >= 2 && raw.p[0] == '\r' && raw.p[1] == '\n') buf_drop(&raw, 2); /* last chunk's CRLF */
            char *e = strstr(raw.p, "\r\n\r\n");
            if (!e) continue;
            sscanf(raw.p, "HTTP/1.1 %d", &status);
            chunked = strcasestr(raw.p, "Transfer-Encoding: chunked") != NULL;
            char *cl = strcasestr(raw.p, "Content-Length:");
            if (cl && cl < e) content_left = strtol(cl + 15, NULL, 10);
            buf_drop(&raw, (size_t)(e + 4 - raw.p));
            headers_done = true;
        }
        /* de-chunk into sse */
        if (!chunked) {
            buf_put(&sse, raw.p, raw.n);
            if (content_left >= 0) {
                content_left -= (long)raw.n;
                if (content_left <= 0) done = true;
            }
            raw.n = 0;
        } else {
            for (;;) {
                if (chunk_left < 0) {
                    char *le = strstr(raw.p, "\r\n");
                    if (!le) break;
                    chunk_left = strtol(raw.p, NULL, 16);
                    buf_drop(&raw, (size_t)(le + 2 - raw.p));
                    if (chunk_left == 0) { done = true; break; }
                }
                if ((long)raw.n < chunk_left + 2) break;
                buf_put(&sse, raw.p, (size_t)chunk_left);
                buf_drop(&raw, (size_t)chunk_left + 2);
                chunk_left = -1;
            }
        }
        if (status != 200) continue;
        /* SSE events */
        char *ev;
        while ((ev = strstr(sse.p ? sse.p : "", "\n\n"))) {
            size_t len = (size_t)(ev - sse.p);
            sse.p[len] = 0;
            const char *d = sse.p;
            if (!strncmp(d, "data: ", 6)) {
                d += 6;
                const char *u = strstr(d, "\"completion_tokens\":");
                const char *tx = strstr(d, "\"text\":\"");
                /* usage: OpenAI sends it in a chunk of its own ("choices":
                 * []); some servers (llama-server) in the last choice chunk */
                if (u) req_tokens = strtol(u + 20, NULL, 10);
                if (u && strstr(d, "\"choices\":[]")) {
                } else if (tx && tx[8] != '"') {
                    if (first) {
                        vec_push(&st->ttft, t - t0);
                        first = false;
                    } else {
                        vec_push(&st->itl, t - t_last);
                    }
                    t_last = t;
                } else if (strstr(d, "\"error\"")) {
                    st->errors++;
                }
            }
            buf_drop(&sse, len + 2);
        }
    }
    if (status != 200) {
        fprintf(stderr, "loadgen: HTTP %d: %.300s\n", status, sse.p ? sse.p : "");
        st->errors++;
    } else {
        st->requests++;
        st->tokens += req_tokens;
    }
    free(raw.p);
    free(sse.p);
    return true;
}

static void *worker(void *arg) {
    stats *st = arg;
    int fd = -1;
    for (;;) {
        int idx = atomic_fetch_add(&g_next, 1);
        if (idx >= g_requests) break;
        for (int attempt = 0; attempt < 2; attempt++) {
            if (fd < 0) fd = dial();
            if (fd < 0) {
                st->errors++;
                break;
            }
            if (one_request(fd, idx, st)) break;
            close(fd);
            fd = -1;
        }
    }
    if (fd >= 0) close(fd);
    return NULL;
}

static int cmp(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

static double pct(vec *a, double p) {
    if (!a->n) return 0;
    size_t i = (size_t)(p * (double)(a->n - 1) + 0.5);
    return a->v[i];
}

int main(int argc, char **argv) {
    bool seeded = false;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
        if (!strcmp(a, "--same-prompt")) { g_same_prompt = true; continue; }
        if (!v) goto usage;
        if (!strcmp(a, "--host")) g_host = v;
        else if (!strcmp(a, "--port")) g_port = atoi(v);
        else if (!strcmp(a, "-c")) g_clients = atoi(v);
        else if (!strcmp(a, "-n")) g_requests = atoi(v);
        else if (!strcmp(a, "--prompt-tokens")) g_prompt = atoi(v);
        else if (!strcmp(a, "--max-tokens")) g_max = atoi(v);
        else if (!strcmp(a, "--vocab")) g_vocab = atoi(v);
        else if (!strcmp(a, "--extra")) g_extra = v;
        else if (!strcmp(a, "--header") && g_n_headers < 8) g_headers[g_n_headers++] = v;
        else if (!strcmp(a, "--shared-prefix")) g_shared_prefix = atoi(v);
        else if (!strcmp(a, "--seed")) { g_seed = strtoull(v, NULL, 10); seeded = true; }
        else goto usage;
        i++;
    }
    if (g_clients < 1 || g_prompt < 1 || g_max < 1 || g_vocab < 4 || g_port <= 0 || g_shared_prefix < 0 ||
        g_shared_prefix > g_prompt)
        goto usage;
    if (!seeded) {
        struct timespec ts;
        clock_gettime(CLOCK_REALTIME, &ts);
        g_seed = (uint64_t)ts.tv_sec * 1000000007ULL ^ (uint64_t)ts.tv_nsec ^ ((uint64_t)getpid() << 32);
    }
    if (g_requests <= 0) g_requests = 4 * g_clients;
    pthread_t *th = calloc((size_t)g_clients, sizeof *th);
    stats *st = calloc((size_t)g_clients, sizeof *st);
    if (!th || !st) return 1;
    double t0 = now_s();
    for (int i = 0; i < g_clients; i++) pthread_create(&th[i], NULL, worker, &st[i]);
    stats all = {0};
    for (int i = 0; i < g_clients; i++) {
        pthread_join(th[i], NULL);
        for (size_t k = 0; k < st[i].ttft.n; k++) vec_push(&all.ttft, st[i].ttft.v[k]);
        for (size_t k = 0; k < st[i].itl.n; k++) vec_push(&all.itl, st[i].itl.v[k]);
        all.tokens += st[i].tokens;
        all.requests += st[i].requests;
        all.errors += st[i].errors;
        free(st[i].ttft.v);
        free(st[i].itl.v);
    }
    double wall = now_s() - t0;
    if (all.ttft.n) qsort(all.ttft.v, all.ttft.n, sizeof(double), cmp); /* NULL when empty */
    if (all.itl.n) qsort(all.itl.v, all.itl.n, sizeof(double), cmp);
    printf("clients %d, requests %ld ok / %ld errors, prompt %d tokens (%s), output %d tokens\n", g_clients,
           all.requests, all.errors, g_prompt,
           g_same_prompt ? "all the same" : g_shared_prefix ? "shared prefix" : "unique", g_max);
    if (g_shared_prefix && !g_same_prompt) printf("shared prefix: %d tokens\n", g_shared_prefix);
    printf("generated %ld tokens in %.2f s: %.1f tok/s\n", all.tokens, wall, (double)all.tokens / wall);
    printf("time to first token: p50 %.1f ms, p99 %.1f ms\n", pct(&all.ttft, 0.5) * 1e3, pct(&all.ttft, 0.99) * 1e3);
    printf("inter-token latency: p50 %.2f ms, p99 %.2f ms\n", pct(&all.itl, 0.5) * 1e3, pct(&all.itl, 0.99) * 1e3);
    free(all.ttft.v);
    free(all.itl.v);
    free(th);
    free(st);
    return all.errors ? 1 : 0;
usage:
    fprintf(stderr, "usage: loadgen [--host H] [--port N] [-c CLIENTS] [-n REQUESTS] [--prompt-tokens P]\n"
                    "               [--max-tokens N] [--vocab V] [--same-prompt] [--shared-prefix N] [--seed S]\n"
                    "               [--extra JSON-MEMBERS] [--header 'Name: value']...\n");
    return 2;
}
