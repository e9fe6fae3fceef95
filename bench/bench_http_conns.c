/*
 * bench_http_conns.c - the HTTP layer under 10,000 hostile connections
 * (issue 12, item 1).
 *
 * A child process runs the server (nuage_server_new; it answers GET
 * /health from its worker threads through the same path as every
 * endpoint). The parent keeps N connections (default 10,000) open to it
 * from 40 loopback addresses (127.0.0.2-41, under the per-address cap):
 * half are slowloris clients that send one header byte per second and
 * never finish, half are idle (connected, silent); whenever the server
 * closes one (the whole-head deadline), it is reconnected at once, so the
 * pressure never drops. Meanwhile a normal client on 127.0.0.1 sends GET
 * /health ten times a second and measures time to first byte.
 *
 * Prints: connections held, the server's resident memory before and with
 * them (per connection), TTFB p50/p99/max and failures, and how many
 * connections the server shed or timed out (reconnections).
 *
 * Usage: bench_http_conns [connections] [seconds]   (default 10000 30)
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "server/http.h"

static double now_s(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

static long rss_kib(pid_t pid) {
    char path[64], line[256];
    snprintf(path, sizeof path, "/proc/%d/status", (int)pid);
    FILE *f = fopen(path, "r");
    long v = 0;
    while (f && fgets(line, sizeof line, f))
        if (!strncmp(line, "VmRSS:", 6)) v = strtol(line + 6, NULL, 10);
    if (f) fclose(f);
    return v;
}

static int connect_from(int src, int port, bool nonblock) {
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC | (nonblock ? SOCK_NONBLOCK : 0), 0);
    if (fd < 0) return -1;
    struct sockaddr_in a = {0};
    a.sin_family = AF_INET;
    a.sin_addr.s_addr = htonl(0x7f000000u | (uint32_t)src);
    if (bind(fd, (struct sockaddr *)&a, sizeof a)) goto fail;
    a.sin_port = htons((uint16_t)port);
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (connect(fd, (struct sockaddr *)&a, sizeof a) && errno != EINPROGRESS) goto fail;
    return fd;
fail:
    close(fd);
    return -1;
}

static int cmp_d(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

static volatile sig_atomic_t g_stop;
static void on_term(int sig) {
    (void)sig;
    g_stop = 1;
}

static int run_server(int wfd) {
    signal(SIGTERM, on_term);
    nuage_server_params p = nuage_server_default_params();
    p.port = 0;
    p.log_requests = false;
    nuage_server *s = NULL;
    char err[256];
    if (nuage_server_new(&p, &s, err, sizeof err)) {
        fprintf(stderr, "server: %s\n", err);
        return 1;
    }
    int port = nuage_server_port(s);
    if (write(wfd, &port, sizeof port) != sizeof port) return 1;
    close(wfd);
    while (!g_stop) pause();
    fprintf(stderr, "server: %llu connections shed or timed out\n",
            (unsigned long long)nuage__guard_shed_total(s->guard));
    nuage_server_free(s);
    return 0;
}

int main(int argc, char **argv) {
    int n = argc > 1 ? atoi(argv[1]) : 10000;
    double secs = argc > 2 ? atof(argv[2]) : 30;
    struct rlimit rl;
    getrlimit(RLIMIT_NOFILE, &rl);
    rl.rlim_cur = rl.rlim_max;
    setrlimit(RLIMIT_NOFILE, &rl);
    if (rl.rlim_cur != RLIM_INFINITY && (rlim_t)n + 256 > rl.rlim_cur) {
        fprintf(stderr, "RLIMIT_NOFILE %llu is too low for %d connections\n", (unsigned long long)rl.rlim_cur, n);
        return 1;
    }
    int pp[2];
    if (pipe(pp)) return 1;
    pid_t pid = fork();
    if (pid == 0) {
        close(pp[0]);
        /* stderr quiet: libmicrohttpd logs every dropped connection */
        if (!getenv("BENCH_VERBOSE")) {
            FILE *f = freopen("/dev/null", "w", stderr);
            (void)f;
        }
        _exit(run_server(pp[1]));
    }
    close(pp[1]);
    int port = 0;
    if (read(pp[0], &port, sizeof port) != sizeof port) return 1;
    struct timespec pause_ts = {0, 300 * 1000000L};
    nanosleep(&pause_ts, NULL);
    long rss0 = rss_kib(pid);

    int *fds = calloc((size_t)n, sizeof *fds);
    int ep = epoll_create1(EPOLL_CLOEXEC);
    long reconnects = 0;
    for (int i = 0; i < n; i++) {
        fds[i] = connect_from(2 + i % 40, port, true);
        if (fds[i] < 0) {
            fprintf(stderr, "connect %d: %s\n", i, strerror(errno));
            return 1;
        }
        struct epoll_event ev = {.events = EPOLLIN | EPOLLRDHUP, .data.u32 = (uint32_t)i};
        epoll_ctl(ep, EPOLL_CTL_ADD, fds[i], &ev);
        if (i % 2 == 0) (void)send(fds[i], "GET /health HTTP/1.1\r\nHost: x\r\nX-Slow: ", 39, MSG_NOSIGNAL);
    }
    nanosleep(&pause_ts, NULL);
    long rss1 = rss_kib(pid);
    double t_open = now_s();
    printf("%d connections open (half slowloris, half idle)\n", n);
    printf("server RSS: %ld KiB before, %ld KiB with them: %.1f KiB per connection\n", rss0, rss1,
           (double)(rss1 - rss0) / n);

    size_t cap = (size_t)(secs * 10 + 16), k = 0;
    double *ttfb = calloc(cap, sizeof *ttfb);
    int fails = 0;
    double next_drip = now_s() + 1, next_req = now_s();
    long rss_max = rss1;
    while (now_s() - t_open < secs) {
        struct epoll_event evs[256];
        int m = epoll_wait(ep, evs, 256, 10);
        for (int e = 0; e < m; e++) {
            int i = (int)evs[e].data.u32;
            char b[256];
            ssize_t r = recv(fds[i], b, sizeof b, MSG_DONTWAIT);
            if (r > 0 || (r < 0 && errno == EAGAIN)) continue;
            /* closed by the server: come back at once */
            epoll_ctl(ep, EPOLL_CTL_DEL, fds[i], NULL);
            close(fds[i]);
            fds[i] = connect_from(2 + i % 40, port, true);
            reconnects++;
            if (fds[i] < 0) continue;
            struct epoll_event ev = {.events = EPOLLIN | EPOLLRDHUP, .data.u32 = (uint32_t)i};
            epoll_ctl(ep, EPOLL_CTL_ADD, fds[i], &ev);
            if (i % 2 == 0) (void)send(fds[i], "GET /health HTTP/1.1\r\nHost: x\r\nX-Slow: ", 39, MSG_NOSIGNAL);
        }
        double t = now_s();
        if (t >= next_drip) {
            for (int i = 0; i < n; i += 2)
                if (fds[i] >= 0) (void)send(fds[i], "a", 1, MSG_NOSIGNAL | MSG_DONTWAIT);
            next_drip = t + 1;
            long r = rss_kib(pid);
            if (r > rss_max) rss_max = r;
        }
        if (t >= next_req && k < cap) {
            next_req = t + 0.1;
            int fd = connect_from(1, port, false);
            struct timeval tv = {5, 0};
            if (fd >= 0) setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
            const char *g = "GET /health HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n";
            double t0 = now_s();
            char b[1024];
            ssize_t r = fd >= 0 && send(fd, g, strlen(g), MSG_NOSIGNAL) > 0 ? recv(fd, b, sizeof b, 0) : -1;
            if (r > 0 && !strncmp(b, "HTTP/1.1 ", 9)) ttfb[k++] = now_s() - t0;
            else fails++;
            if (fd >= 0) close(fd);
        }
    }
    qsort(ttfb, k, sizeof *ttfb, cmp_d);
    printf("normal requests: %zu answered, %d failed; TTFB p50 %.2f ms, p99 %.2f ms, max %.2f ms\n", k, fails,
           k ? ttfb[k / 2] * 1e3 : 0, k ? ttfb[(k * 99) / 100 < k ? (k * 99) / 100 : k - 1] * 1e3 : 0,
           k ? ttfb[k - 1] * 1e3 : 0);
    printf("server RSS peak %ld KiB; %ld hostile connections closed by the server and reopened in %.0f s\n", rss_max,
           reconnects, secs);
    for (int i = 0; i < n; i++)
        if (fds[i] >= 0) close(fds[i]);
    kill(pid, SIGTERM);
    int st;
    waitpid(pid, &st, 0);
    int rc = fails || !k ? 1 : 0;
    free(fds);
    free(ttfb);
    return rc;
}
