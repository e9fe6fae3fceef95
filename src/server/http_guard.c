/*
 * http_guard.c - connection bookkeeping of the HTTP layer: deadlines for
 * the request head and body, an idle keep-alive limit, and a global cap
 * that sheds the oldest idle connection first.
 *
 * Why. libmicrohttpd's own timeout restarts on every byte received, so a
 * client sending one header byte per second holds a connection forever,
 * and its connection limit refuses newcomers rather than dropping the
 * stale ones. The server runs libmicrohttpd in event-driven mode (a small
 * pool of epoll threads, http.c), where an idle connection costs only its
 * socket and a small memory pool; this file bounds how long each one may
 * stay idle and how many there may be.
 *
 * Model. Every connection has a record (nuage__conn, libmicrohttpd's
 * socket context) in one of four states: HEAD (waiting for a complete
 * request head: deadline head_s from the first byte's connection or the
 * previous answer), BODY (receiving the body: deadline body_s plus one
 * second per MiB received, i.e. a floor of 1 MiB/s after body_s), BUSY
 * (the server is working on it or sending: no deadline here) and IDLE
 * (keep-alive between requests: deadline idle_s). HEAD and IDLE records
 * sit on the "waiting" list in the order they entered it, so its head is
 * the oldest idle connection: the one shed when a new connection would
 * exceed max_conns. A sweeper thread wakes every 200 ms and shuts down
 * (shutdown(2), never close: the descriptor stays libmicrohttpd's) every
 * connection past its deadline; libmicrohttpd then sees end of file and
 * closes it, and the record goes with its CLOSED notification.
 *
 * Half-closed bodies. A client that sent a head with a Content-Length
 * (or chunked framing), part of the body, then shut down its sending side
 * can never complete its request; libmicrohttpd would wait for the body
 * deadline. The sweeper checks every BODY connection: end of file seen
 * (POLLRDHUP) with no unread byte left, on two sweeps in a row without
 * progress in between (so that libmicrohttpd had time to take a body
 * that did arrive whole), means the body ended early: it writes a 400
 * (incomplete_body) on the socket and shuts it down, as for a deadline.
 * A complete request followed by a half-close is BUSY by then, never
 * touched (http.c answers it in full). The same for an incomplete head,
 * checked while its connection is young (200 ms to 1 s in HEAD state:
 * the walk starts at the newest, so a flood of old slow connections
 * costs nothing here): it is closed without an answer.
 *
 * Locking. One mutex guards the lists, the counts and the records' state;
 * shutdown() is called with it held so that a descriptor is never shut
 * after libmicrohttpd closed (and the kernel possibly reused) it: the
 * CLOSED notification takes the same mutex before the descriptor goes.
 * Leaf lock: nothing else is taken under it.
 */
#define _GNU_SOURCE /* POLLRDHUP */
#include "server/http.h"

#include <errno.h>
#include <poll.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <time.h>

struct nuage__conn {
    nuage__conn *prev, *next;  /* on the waiting list (HEAD/IDLE) or the busy list */
    int fd;
    int state;                 /* NUAGE__CONN_* */
    int64_t since_ms;          /* monotonic time it entered `state` */
    uint64_t body_bytes;       /* received in BODY state */
    bool shed;                 /* already shut down */
    bool eof_seen;             /* BODY: end of file and nothing unread at the last sweep */
    uint64_t eof_bytes;        /* body_bytes then */
    int64_t eof_since;         /* since_ms then */
};

typedef struct {
    nuage__conn *head, *tail;
} nuage__clist;

struct nuage__guard {
    pthread_mutex_t mu;
    pthread_cond_t cv;
    pthread_t sweeper;
    bool stop;
    nuage__guard_params p;
    nuage__clist waiting, busy;
    int n;                     /* connections open */
    int n_dying;               /* of which shut down, not yet closed */
    _Atomic uint64_t n_shed;   /* connections shed or timed out */
};

static void nuage__clist_push(nuage__clist *l, nuage__conn *c) {
    c->next = NULL;
    c->prev = l->tail;
    if (l->tail) l->tail->next = c;
    else l->head = c;
    l->tail = c;
}

static void nuage__clist_del(nuage__clist *l, nuage__conn *c) {
    if (c->prev) c->prev->next = c->next;
    else l->head = c->next;
    if (c->next) c->next->prev = c->prev;
    else l->tail = c->prev;
    c->prev = c->next = NULL;
}

static nuage__clist *nuage__list_of(nuage__guard *g, int state) {
    return state == NUAGE__CONN_HEAD || state == NUAGE__CONN_IDLE ? &g->waiting : &g->busy;
}

/* Shut c's socket down (g->mu held). */
static void nuage__shed(nuage__guard *g, nuage__conn *c) {
    if (c->shed) return;
    c->shed = true;
    g->n_dying++;
    shutdown(c->fd, SHUT_RDWR);
    atomic_fetch_add(&g->n_shed, 1);
}

/* Deadline of c in monotonic ms, or INT64_MAX. */
static int64_t nuage__deadline(const nuage__guard *g, const nuage__conn *c) {
    switch (c->state) {
    case NUAGE__CONN_HEAD: return c->since_ms + (int64_t)g->p.head_s * 1000;
    case NUAGE__CONN_IDLE: return c->since_ms + (int64_t)g->p.idle_s * 1000;
    case NUAGE__CONN_BODY:
        return c->since_ms + (int64_t)g->p.body_s * 1000 + (int64_t)(c->body_bytes >> 20) * 1000;
    default: return INT64_MAX;
    }
}

/* The peer shut down its sending side and every byte it sent was read. */
static bool nuage__peer_done(int fd) {
    struct pollfd p = {.fd = fd, .events = POLLRDHUP};
    if (poll(&p, 1, 0) != 1 || !(p.revents & (POLLRDHUP | POLLHUP))) return false;
    int pending = 0;
    return ioctl(fd, FIONREAD, &pending) == 0 && pending == 0;
}

/* c's body ended before its end: answer 400 on the socket, shut it down
 * (g->mu held). */
static void nuage__body_cut(nuage__guard *g, nuage__conn *c) {
    static const char body[] =
        "{\"error\":{\"message\":\"The request body ended early: the client closed its sending side before"
        " the whole body arrived.\",\"type\":\"invalid_request_error\",\"param\":null,"
        "\"code\":\"incomplete_body\"}}";
    char msg[512];
    int n = snprintf(msg, sizeof msg,
                     "HTTP/1.1 400 Bad Request\r\nContent-Type: application/json\r\nContent-Length: %zu\r\n"
                     "Connection: close\r\n\r\n%s", sizeof body - 1, body);
    if (n > 0 && (size_t)n < sizeof msg) (void)send(c->fd, msg, (size_t)n, MSG_NOSIGNAL | MSG_DONTWAIT);
    nuage__shed(g, c);
}

static void *nuage__sweep(void *arg) {
    nuage__guard *g = arg;
    pthread_mutex_lock(&g->mu);
    while (!g->stop) {
        struct timespec ts;
        clock_gettime(CLOCK_MONOTONIC, &ts);
        ts.tv_nsec += 200 * 1000000L;
        if (ts.tv_nsec >= 1000000000L) {
            ts.tv_sec++;
            ts.tv_nsec -= 1000000000L;
        }
        pthread_cond_timedwait(&g->cv, &g->mu, &ts);
        int64_t now = nuage__mono_ms();
        for (nuage__clist *l = &g->waiting; l; l = l == &g->waiting ? &g->busy : NULL)
            for (nuage__conn *c = l->head; c; c = c->next)
                if (!c->shed && now >= nuage__deadline(g, c)) nuage__shed(g, c);
        /* a young HEAD connection whose client half-closed before its head
         * was complete: close it (newest first; older ones wait for the
         * head deadline, which bounds this walk under a slowloris flood) */
        for (nuage__conn *c = g->waiting.tail; c && now - c->since_ms < 1000; c = c->prev) {
            if (c->shed || c->state != NUAGE__CONN_HEAD || now - c->since_ms < 200) continue;
            if (!nuage__peer_done(c->fd)) {
                c->eof_seen = false;
            } else if (c->eof_seen && c->eof_since == c->since_ms) {
                nuage__shed(g, c);
            } else {
                c->eof_seen = true;
                c->eof_since = c->since_ms;
            }
        }
        for (nuage__conn *c = g->busy.head; c; c = c->next) {
            if (c->shed || c->state != NUAGE__CONN_BODY) continue;
            if (!nuage__peer_done(c->fd)) {
                c->eof_seen = false;
            } else if (c->eof_seen && c->eof_bytes == c->body_bytes && c->eof_since == c->since_ms) {
                nuage__body_cut(g, c);
            } else {
                c->eof_seen = true;
                c->eof_bytes = c->body_bytes;
                c->eof_since = c->since_ms;
            }
        }
    }
    pthread_mutex_unlock(&g->mu);
    return NULL;
}

int nuage__guard_new(const nuage__guard_params *p, nuage__guard **out) {
    *out = NULL;
    nuage__guard *g = calloc(1, sizeof *g);
    if (!g) return NUAGE_E_NOMEM;
    g->p = *p;
    pthread_condattr_t ca;
    pthread_condattr_init(&ca);
    pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
    pthread_mutex_init(&g->mu, NULL);
    pthread_cond_init(&g->cv, &ca);
    pthread_condattr_destroy(&ca);
    atomic_init(&g->n_shed, 0);
    if (pthread_create(&g->sweeper, NULL, nuage__sweep, g)) goto fail_thread;
    *out = g;
    return 0;
fail_thread:
    pthread_cond_destroy(&g->cv);
    pthread_mutex_destroy(&g->mu);
    free(g);
    return NUAGE_E_NOMEM;
}

void nuage__guard_free(nuage__guard *g) {
    if (!g) return;
    pthread_mutex_lock(&g->mu);
    g->stop = true;
    pthread_cond_signal(&g->cv);
    pthread_mutex_unlock(&g->mu);
    pthread_join(g->sweeper, NULL);
    /* records left: connections libmicrohttpd closed without notifying
     * (none when it was stopped first) */
    for (nuage__clist *l = &g->waiting; l; l = l == &g->waiting ? &g->busy : NULL)
        while (l->head) {
            nuage__conn *c = l->head;
            nuage__clist_del(l, c);
            free(c);
        }
    pthread_cond_destroy(&g->cv);
    pthread_mutex_destroy(&g->mu);
    free(g);
}

nuage__conn *nuage__guard_open(nuage__guard *g, int fd) {
    nuage__conn *c = calloc(1, sizeof *c);
    if (!c) {
        shutdown(fd, SHUT_RDWR);
        return NULL;
    }
    c->fd = fd;
    c->state = NUAGE__CONN_HEAD;
    pthread_mutex_lock(&g->mu);
    c->since_ms = nuage__mono_ms();
    nuage__clist_push(&g->waiting, c);
    g->n++;
    if (g->n - g->n_dying > g->p.max_conns) {
        /* full: shed the oldest idle connection (the newcomer itself when
         * every other one is busy) */
        nuage__conn *o = g->waiting.head;
        while (o && o->shed) o = o->next;
        nuage__shed(g, o ? o : c);
    }
    pthread_mutex_unlock(&g->mu);
    return c;
}

void nuage__guard_close(nuage__guard *g, nuage__conn *c) {
    if (!c) return;
    pthread_mutex_lock(&g->mu);
    nuage__clist_del(nuage__list_of(g, c->state), c);
    g->n--;
    if (c->shed) g->n_dying--;
    pthread_mutex_unlock(&g->mu);
    free(c);
}

void nuage__guard_state(nuage__guard *g, nuage__conn *c, int state) {
    if (!c) return;
    pthread_mutex_lock(&g->mu);
    if (c->state != state) {
        nuage__clist_del(nuage__list_of(g, c->state), c);
        c->state = state;
        c->body_bytes = 0;
        nuage__clist_push(nuage__list_of(g, state), c);
    }
    c->since_ms = nuage__mono_ms();
    pthread_mutex_unlock(&g->mu);
}

void nuage__guard_body(nuage__guard *g, nuage__conn *c, size_t n) {
    if (!c) return;
    pthread_mutex_lock(&g->mu);
    c->body_bytes += n;
    pthread_mutex_unlock(&g->mu);
}

int nuage__guard_count(nuage__guard *g) {
    pthread_mutex_lock(&g->mu);
    int n = g->n;
    pthread_mutex_unlock(&g->mu);
    return n;
}

uint64_t nuage__guard_shed_total(nuage__guard *g) { return atomic_load(&g->n_shed); }
