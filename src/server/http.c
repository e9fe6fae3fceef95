/*
 * http.c - the HTTP layer of `nuage serve`: libmicrohttpd setup, routing,
 * request bodies, responses (buffered or streamed) and the request log.
 *
 * Threading model. libmicrohttpd runs event-driven: a small pool of epoll
 * threads (params.threads, default 2) reads and writes every connection,
 * so an idle or slow connection costs a socket and a small memory pool,
 * never a thread. When a request is complete its connection is suspended
 * and a worker thread is started for it (one per request being answered,
 * not per connection): it parses the JSON, renders the chat template,
 * tokenizes, submits to the scheduler and, for a non-streamed answer,
 * waits for it -- all the per-request CPU work outside the model happens
 * there, in parallel, never on the scheduler thread nor on an event loop.
 * It then hands the answer over and resumes the connection. A streamed
 * answer keeps its worker: it pumps the stream (api_gen.c's reader, which
 * blocks until the scheduler produced more text) into a bounded buffer,
 * from which libmicrohttpd's content reader takes on the event loop,
 * suspending the connection while the buffer is empty (see nuage__pump).
 * A body of known size that is too large to hold (a file download) is a
 * nuage__source: libmicrohttpd's content reader pulls it block by block
 * (NUAGE__SOURCE_BLOCK) on the event loop as the socket drains.
 * Keep-alive, chunked transfer encoding and pipelining are
 * libmicrohttpd's. The worker holds a dup of the socket for its
 * client-gone checks, so that the descriptor it polls is never one the
 * kernel gave to another connection meanwhile.
 *
 * Half-closed clients. A client that sends its request and then shuts
 * down its sending side (HTTP/1.0 clients, some proxies) is still there:
 * end of file alone never cancels a request. Only a reset or a failed
 * write does (nuage__client_gone; for a non-streamed HTTP/1.1 request it
 * writes one interim "102 Processing" to find out).
 *
 * Lock order. The scheduler's mutex and a job's mutex (nuage__gen.mu) are
 * never held together: a job's mutex is a leaf taken by the scheduler's
 * callbacks (which run without the scheduler's mutex) and by the HTTP
 * thread that drains the job, and nothing -- in particular no
 * nuage_sched_* call -- is made while holding it. The server object itself
 * has no lock: its fields are written before `state` becomes READY
 * (a sequentially consistent store) and only read afterwards.
 *
 * Limits. JSON request bodies are capped (413: a body up to 16x the cap
 * with a Content-Length is read and dropped first, so clients that send it
 * all before reading see the answer rather than a reset; a larger
 * Content-Length is refused at once; a chunked body is answered the
 * moment it passes the cap and read no further than a short lingering
 * window; nothing over the cap is kept in memory). POST /v1/files is
 * streamed to the store instead (api_files.c, up to 512 MB per file) after
 * its caller was authenticated from the head. Header size is bounded by
 * the connection memory limit (libmicrohttpd answers 431). Connections
 * (http_guard.c): the whole request head must arrive within
 * head_timeout_s (not per byte), the body within body_timeout_s plus one
 * second per MiB, a keep-alive connection may idle idle_timeout_s; at
 * max_connections the oldest idle connection is shed for a new one; at
 * most max_per_ip connections per client address.
 *
 * Per-request memory. Everything a request allocates hangs off its
 * nuage__hreq (the body) or its generation job (reference counted, see
 * api_gen.c); the request-completed callback releases both, whether the
 * request ended normally or the client vanished.
 *
 * Platform. Before routing, every request except /health and /metrics is
 * authenticated (platform/auth.c): the caller's tenant, limits and allowed
 * deployments land in q->auth, where the endpoints -- and the files and
 * batches modules added with nuage_server_add_route -- find them. A
 * request's "model" names a deployment of the registry (platform/deploy.c);
 * the request holds a reference on that deployment's current instance from
 * then until it completed, so a deployment replaced meanwhile keeps
 * serving it on the old weights. Responses of an authenticated tenant
 * carry the x-ratelimit-* headers; generation requests are admitted by the
 * rate limiter and metered in api_gen.c.
 */
#define _GNU_SOURCE /* POLLRDHUP */
#include "server/http.h"
#include "server/metering.h"

#include "server/api_batch.h"

#include "platform/thinking.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <microhttpd.h>
#include <netdb.h>
#include <poll.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/uio.h>
#include <time.h>
#include <unistd.h>

/* ---- small utilities ------------------------------------------------------- */

void nuage__new_id(nuage_server *s, const char *prefix, char *buf, size_t cap) {
    uint64_t n = atomic_fetch_add(&s->id_counter, 1);
    uint64_t x = (n + 1) * 0x9E3779B97F4A7C15ULL ^ s->id_salt;
    x ^= x >> 33;
    x *= 0xFF51AFD7ED558CCDULL;
    x ^= x >> 33;
    snprintf(buf, cap, "%s-%016llx%08llx", prefix, (unsigned long long)x,
             (unsigned long long)(n & 0xFFFFFFFFULL));
}

const char *nuage__fingerprint(const nuage_deployment *d) {
    return d && d->version && d->version[0] ? d->version : "nuage";
}

static void nuage__model_404(nuage__hresp *r, const char *name) {
    nuage__resp_error(r, 404, "invalid_request_error", "model_not_found", "model",
                      "The model '%.200s' does not exist or you do not have access to it.", name);
}

bool nuage__require_store(nuage__hreq *q, nuage__hresp *r) {
    if (q->srv->store) return true;
    nuage__resp_error(r, 501, "invalid_request_error", "not_implemented", NULL,
                      "The Files and Batch APIs need a database: start the server with --db.");
    return false;
}

bool nuage__split_id(nuage__hreq *q, nuage__hresp *r, const char *sub, const char *actions,
                     char *id, size_t cap, const char **action) {
    const char *s = sub[0] == '/' ? sub + 1 : sub;
    const char *slash = strchr(s, '/');
    size_t idl = slash ? (size_t)(slash - s) : strlen(s);
    bool ok = idl > 0 && idl < cap;
    *action = "";
    if (ok && slash) {
        const char *a = slash + 1;
        size_t al = strlen(a);
        ok = false;
        for (const char *p = actions; al && p && *p;) {
            const char *bar = strchr(p, '|');
            size_t pl = bar ? (size_t)(bar - p) : strlen(p);
            if (pl == al && !memcmp(p, a, al)) {
                ok = true;
                *action = a;
            }
            p = bar ? bar + 1 : NULL;
        }
    }
    if (!ok) {
        nuage__resp_error(r, 404, "invalid_request_error", "not_found", NULL,
                          "Invalid URL (%s %.200s)", q->method, q->path);
        return false;
    }
    memcpy(id, s, idl);
    id[idl] = 0;
    return true;
}

nuage_deployment *nuage__find_deployment(nuage__hreq *q, const char *name, nuage__hresp *r) {
    nuage_server *s = q->srv;
    nuage_deployment *d = s->reg ? nuage_registry_acquire(s->reg, name) : NULL;
    if (d && !nuage_auth_allows(&q->auth, d->name)) {
        nuage_deployment_release(d);
        d = NULL;
    }
    if (!d) {
        if (name && *name) nuage__model_404(r, name);
        else nuage__resp_error(r, 404, "invalid_request_error", "model_not_found", "model",
                               "No model is deployed; name one in 'model'.");
    }
    return d;
}

/* Copy d's default request parameters into body where absent. */
static void nuage__apply_defaults(const nuage_deployment *d, json_t *body) {
    if (!d->cfg.sampling) return;
    const char *k;
    json_t *v;
    json_object_foreach(d->cfg.sampling, k, v) {
        json_t *have = json_object_get(body, k);
        if (have && !json_is_null(have)) continue;
        bool is_max = !strcmp(k, "max_tokens") || !strcmp(k, "max_completion_tokens");
        if (is_max) {
            json_t *a = json_object_get(body, "max_tokens"), *b = json_object_get(body, "max_completion_tokens");
            if ((a && !json_is_null(a)) || (b && !json_is_null(b))) continue;
        }
        json_object_set(body, k, v);
    }
}

nuage_deployment *nuage__use_deployment(nuage__hreq *q, json_t *body, nuage__hresp *r) {
    nuage__apierr e = {0};
    const char *name = NULL;
    if (!nuage__get_string(body, "model", &name, NULL, &e)) {
        nuage__resp_apierr(r, &e);
        return NULL;
    }
    nuage_deployment *d = nuage__find_deployment(q, name, r);
    if (!d) return NULL;
    if (d->kind == NUAGE_DEPLOY_ROUTER) {
        /* The router decides on reasoning_effort: a bad one is the
         * client's error about that field, not about the model. */
        const char *effort = nuage_thinking_effort_of(body);
        nuage_thinking_config tc = nuage_thinking_default();
        int budget;
        if (effort && (!*effort || nuage_thinking_budget(&tc, effort, &budget))) {
            nuage__resp_error(r, 400, "invalid_request_error", NULL, "reasoning_effort",
                              "Invalid value for 'reasoning_effort': expected 'none', 'minimal', 'low', 'medium' or 'high'.");
            nuage_deployment_release(d);
            return NULL;
        }
        nuage_router_hook h = nuage_registry_router(q->srv->reg);
        char target[64], msg[300] = "";
        int rc = h.route ? h.route(h.ud, d, body, q->auth.tenant_id, target, sizeof target, msg, sizeof msg) : 0;
        nuage_deployment *t = NULL;
        if (!h.route) {
            nuage__resp_error(r, 501, "server_error", "router_unavailable", "model",
                              "The deployment '%s' is a router, and this server has no router module.", d->name);
        } else if (rc) {
            nuage__resp_error(r, 400, "invalid_request_error", "routing_failed", "model", "%s",
                              msg[0] ? msg : "The router could not choose a deployment for this request.");
        } else if (!(t = nuage_registry_acquire(q->srv->reg, target)) || t->kind != NUAGE_DEPLOY_MODEL) {
            nuage__resp_error(r, 503, "server_error", "routing_failed", "model",
                              "The router '%s' chose '%.64s', which is not a loaded model deployment.", d->name, target);
            nuage_deployment_release(t);
            t = NULL;
        }
        if (t) snprintf(q->router, sizeof q->router, "%s", d->name);
        nuage_deployment_release(d);
        if (!t) return NULL;
        d = t;
    }
    nuage__apply_defaults(d, body);
    nuage_deployment_release(q->dep);
    q->dep = d;
    return d;
}

/* The request a worker thread serves: its socket (a dup of the
 * connection's) and whether an interim "102 Processing" may still be sent
 * on it to find out whether a peer that closed its sending side is still
 * there (HTTP/1.1, nothing of the answer written yet). */
static _Thread_local struct {
    int fd;
    bool may_probe, probed;
} nuage__tl = {-1, false, false};

bool nuage__client_gone(int fd) {
    if (fd < 0) return false;
    struct pollfd p = {.fd = fd, .events = POLLIN | POLLRDHUP};
    int r = poll(&p, 1, 0);
    if (r <= 0) return false;
    /* A reset (or an error) means the client left. */
    if (p.revents & (POLLERR | POLLHUP | POLLNVAL)) return true;
    bool eof = p.revents & POLLRDHUP;
    if (!eof && (p.revents & POLLIN)) {
        char c;
        ssize_t k = recv(fd, &c, 1, MSG_PEEK | MSG_DONTWAIT);
        if (k == 0) eof = true;
        if (k < 0 && errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR) return true;
    }
    /* End of file alone is a half-close (shutdown(SHUT_WR) after the
     * request, as HTTP/1.0 clients and proxies do): the client still
     * reads. Only a failed write tells that it closed completely: probe
     * once with an interim response, which HTTP/1.1 clients skip; a
     * closed peer answers it with a reset, seen by the next check. */
    if (eof && fd == nuage__tl.fd && nuage__tl.may_probe && !nuage__tl.probed) {
        static const char probe[] = "HTTP/1.1 102 Processing\r\n\r\n";
        nuage__tl.probed = true;
        ssize_t k = send(fd, probe, sizeof probe - 1, MSG_NOSIGNAL | MSG_DONTWAIT);
        if (k < 0 && (errno == EPIPE || errno == ECONNRESET)) return true;
    }
    return false;
}

/* ---- responses --------------------------------------------------------------- */

void nuage__resp_json(nuage__hresp *r, int status, json_t *j) {
    char *s = j ? json_dumps(j, JSON_COMPACT) : NULL;
    json_decref(j);
    if (!s) {
        static const char oom[] = "{\"error\":{\"message\":\"out of memory\",\"type\":\"server_error\",\"param\":null,\"code\":null}}";
        s = strdup(oom);
        status = 500;
    }
    r->status = status;
    r->body = s;
    r->len = s ? strlen(s) : 0;
    r->content_type = "application/json";
}

void nuage__resp_apierr(nuage__hresp *r, const nuage__apierr *e) {
    nuage__resp_json(r, e->status ? e->status : 400, nuage__err_json(e));
}

void nuage__resp_error(nuage__hresp *r, int status, const char *type, const char *code,
                       const char *param, const char *fmt, ...) {
    nuage__apierr e = {0};
    e.status = status;
    e.type = type;
    e.code = code;
    snprintf(e.param, sizeof e.param, "%s", param ? param : "");
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(e.message, sizeof e.message, fmt, ap);
    va_end(ap);
    nuage__resp_apierr(r, &e);
}

json_t *nuage__hreq_json(nuage__hreq *q, nuage__hresp *r) {
    if (!q->body || q->len == 0) {
        nuage__resp_error(r, 400, "invalid_request_error", NULL, NULL,
                          "We could not parse the JSON body of your request: the body is empty.");
        return NULL;
    }
    json_error_t je;
    json_t *j = json_loadb(q->body, q->len, JSON_REJECT_DUPLICATES, &je);
    if (!j) {
        nuage__resp_error(r, 400, "invalid_request_error", NULL, NULL,
                          "We could not parse the JSON body of your request: %s (line %d, column %d).",
                          je.text, je.line, je.column);
        return NULL;
    }
    if (!json_is_object(j)) {
        json_decref(j);
        nuage__resp_error(r, 400, "invalid_request_error", NULL, NULL,
                          "The request body must be a JSON object.");
        return NULL;
    }
    return j;
}

bool nuage__require_ready(nuage_server *s, nuage__hresp *r) {
    int st = atomic_load(&s->state);
    if (st == NUAGE__STATE_READY) return true;
    r->retry_after = st == NUAGE__STATE_LOADING ? 5 : 10;
    if (st == NUAGE__STATE_LOADING)
        nuage__resp_error(r, 503, "server_error", "model_loading", NULL, "The model is loading. Retry later.");
    else
        nuage__resp_error(r, 503, "server_error", "server_shutting_down", NULL, "The server is shutting down.");
    return false;
}

/* ---- routing ------------------------------------------------------------------ */

typedef struct {
    const char *path;
    const char *method;
    void (*fn)(nuage__hreq *, nuage__hresp *);
} nuage__route;

static void nuage__api_models_list(nuage__hreq *q, nuage__hresp *r) { nuage__api_models(q, r, NULL); }

static const nuage__route nuage__routes[] = {
    {"/v1/chat/completions", "POST", nuage__api_chat},
    {"/chat/completions", "POST", nuage__api_chat},
    {"/v1/completions", "POST", nuage__api_completions},
    {"/completions", "POST", nuage__api_completions},
    {"/v1/embeddings", "POST", nuage__api_embeddings},
    {"/embeddings", "POST", nuage__api_embeddings},
    {"/v1/models", "GET", nuage__api_models_list},
    {"/models", "GET", nuage__api_models_list},
    {"/tokenize", "POST", nuage__api_tokenize},
    {"/detokenize", "POST", nuage__api_detokenize},
    {"/health", "GET", nuage__api_health},
    {"/v1/health", "GET", nuage__api_health},
    {"/metrics", "GET", nuage__api_metrics},
    {"/v1/usage", "GET", nuage__api_usage},
};

int nuage_server_add_route(nuage_server *s, const char *prefix, nuage__route_fn fn) {
    if (s->n_ext >= NUAGE__MAX_EXT_ROUTES || !prefix || strlen(prefix) >= sizeof s->ext[0].prefix)
        return NUAGE_E_NOMEM;
    snprintf(s->ext[s->n_ext].prefix, sizeof s->ext[0].prefix, "%s", prefix);
    s->ext[s->n_ext].fn = fn;
    s->n_ext++;
    return 0;
}

/* Authenticate q (fills q->auth). false with r filled (401 / 503). */
static bool nuage__authenticate(nuage__hreq *q, nuage__hresp *r) {
    nuage_server *s = q->srv;
    const char *authz = MHD_lookup_connection_value(q->conn, MHD_HEADER_KIND, MHD_HTTP_HEADER_AUTHORIZATION);
    const char *apikey = MHD_lookup_connection_value(q->conn, MHD_HEADER_KIND, "api-key");
    char msg[300];
    int rc = nuage_auth_check(s->auth, authz, apikey, &q->auth, msg, sizeof msg);
    if (rc == 0) return true;
    atomic_fetch_add(&s->metrics.auth_failures, 1);
    if (rc == NUAGE_E_RANGE)
        nuage__resp_error(r, 401, "invalid_request_error", "invalid_api_key", NULL, "%s", msg);
    else {
        /* The store is unreachable (a cluster's database outage): a clean
         * 503 that a balancer or client retries, never work admitted
         * without its key checked. */
        r->retry_after_ms = 1000;
        nuage__resp_error(r, 503, "server_error", "store_unavailable", NULL, "%s", msg);
    }
    return false;
}

/* Dispatch q; fills r and, for 405, the allowed method in *allow. */
static void nuage__dispatch(nuage__hreq *q, const char *url, nuage__hresp *r, const char **allow) {
    bool is_get = !strcmp(q->method, "GET") || !strcmp(q->method, "HEAD");
    bool open = !strcmp(url, "/health") || !strcmp(url, "/v1/health") || !strcmp(url, "/metrics");
    /* The console's files are public (no secrets in them; the page asks
     * for a key and sends it with its own API calls). */
    if (!q->srv->p.no_console && nuage__console_serve(q, r, url, allow)) return;
    /* While loading, nothing of the platform exists yet (every endpoint
     * but health and metrics answers 503 then). */
    bool loading = atomic_load(&q->srv->state) == NUAGE__STATE_LOADING;
    if (!open && !loading && !nuage__authenticate(q, r)) return;
    if (!strcmp(url, "/admin") || !strncmp(url, "/admin/", 7)) {
        if (!q->auth.admin) {
            nuage__resp_error(r, 403, "invalid_request_error", "permission_denied", NULL,
                              "This endpoint needs an admin key.");
            return;
        }
        nuage__api_admin(q, r, url + 6);
        return;
    }
    for (int i = 0; i < q->srv->n_ext; i++) {
        const char *pre = q->srv->ext[i].prefix;
        size_t l = strlen(pre);
        if (!strncmp(url, pre, l) && (url[l] == 0 || url[l] == '/')) {
            q->srv->ext[i].fn(q, r, url + l);
            return;
        }
    }
    /* Billing fails closed (server/metering.h). */
    if (nuage__metered_route(q->method, url) && !nuage__metering_admit(q->srv, r)) return;
    for (size_t i = 0; i < sizeof nuage__routes / sizeof *nuage__routes; i++) {
        const nuage__route *rt = &nuage__routes[i];
        if (strcmp(url, rt->path)) continue;
        bool ok = !strcmp(q->method, rt->method) || (is_get && !strcmp(rt->method, "GET"));
        if (!ok) {
            *allow = rt->method;
            nuage__resp_error(r, 405, "invalid_request_error", "method_not_allowed", NULL,
                              "Method %s is not allowed on %s (use %s).", q->method, rt->path, rt->method);
            return;
        }
        rt->fn(q, r);
        return;
    }
    if (!strncmp(url, "/v1/responses", 13) && (url[13] == 0 || url[13] == '/')) {
        nuage__api_responses(q, r, url + 13); /* api_responses.c */
        return;
    }
    const char *mp[] = {"/v1/models/", "/models/"};
    for (int k = 0; k < 2; k++) {
        size_t l = strlen(mp[k]);
        if (!strncmp(url, mp[k], l) && url[l]) {
            if (!is_get) {
                *allow = "GET";
                nuage__resp_error(r, 405, "invalid_request_error", "method_not_allowed", NULL,
                                  "Method %s is not allowed on %s (use GET).", q->method, q->path);
                return;
            }
            nuage__api_models(q, r, url + l);
            return;
        }
    }
    nuage__resp_error(r, 404, "invalid_request_error", "not_found", NULL, "Invalid URL (%s %.200s)",
                      q->method, q->path);
}

/* ---- libmicrohttpd glue --------------------------------------------------------- */

/*
 * A streamed answer crosses threads through a pump: the request's worker
 * thread reads the stream (blocking until the scheduler produced more)
 * into a bounded buffer; libmicrohttpd's content reader, on an event loop
 * thread, takes from it, and suspends the connection when it is empty
 * (the worker resumes it after adding bytes). Two references: the
 * worker's and the response's (released by its free callback, which also
 * marks the pump closed so that the worker stops).
 */
typedef struct {
    pthread_mutex_t mu;
    pthread_cond_t cv;
    nuage__stream st;
    int fd;                        /* the worker's dup of the socket, -1 once closed */
    struct MHD_Connection *conn;
    size_t n, off;                 /* buf[off, n) not yet sent */
    bool eof, err;                 /* the stream ended / failed */
    bool closed;                   /* libmicrohttpd is done with the response */
    bool suspended;                /* the reader suspended the connection */
    int refs;
    char buf[64 * 1024];
} nuage__pump;

#define NUAGE__PUMP_CHUNK (16 * 1024)

static void nuage__pump_unref(nuage__pump *pm) {
    pthread_mutex_lock(&pm->mu);
    int left = --pm->refs;
    pthread_mutex_unlock(&pm->mu);
    if (left) return;
    pthread_cond_destroy(&pm->cv);
    pthread_mutex_destroy(&pm->mu);
    free(pm);
}

static ssize_t nuage__mhd_reader(void *cls, uint64_t pos, char *buf, size_t max) {
    (void)pos;
    nuage__pump *pm = cls;
    ssize_t k = 0;
    pthread_mutex_lock(&pm->mu);
    if (pm->n > pm->off) {
        size_t m = pm->n - pm->off < max ? pm->n - pm->off : max;
        memcpy(buf, pm->buf + pm->off, m);
        pm->off += m;
        pthread_cond_signal(&pm->cv);
        k = (ssize_t)m;
    } else if (pm->err) {
        k = MHD_CONTENT_READER_END_WITH_ERROR;
    } else if (pm->eof) {
        k = MHD_CONTENT_READER_END_OF_STREAM;
    } else {
        pm->suspended = true;
        MHD_suspend_connection(pm->conn);
    }
    pthread_mutex_unlock(&pm->mu);
    return k;
}

static void nuage__mhd_free(void *cls) {
    nuage__pump *pm = cls;
    pthread_mutex_lock(&pm->mu);
    pm->closed = true;
    /* Cut short (client gone, write failed): wake a worker blocked on the
     * stream through its client-gone checks. */
    if (!pm->eof && pm->fd >= 0) shutdown(pm->fd, SHUT_RDWR);
    pthread_cond_signal(&pm->cv);
    pthread_mutex_unlock(&pm->mu);
    nuage__pump_unref(pm);
}

/* The worker's half: stream -> buffer until the end, an error or the
 * response is dropped; then close the stream and the socket dup. */
static void nuage__pump_run(nuage__pump *pm) {
    char tmp[NUAGE__PUMP_CHUNK];
    for (;;) {
        pthread_mutex_lock(&pm->mu);
        while (!pm->closed && pm->n - pm->off > sizeof pm->buf - sizeof tmp) pthread_cond_wait(&pm->cv, &pm->mu);
        if (pm->closed) {
            pthread_mutex_unlock(&pm->mu);
            break;
        }
        if (pm->off) {
            memmove(pm->buf, pm->buf + pm->off, pm->n - pm->off);
            pm->n -= pm->off;
            pm->off = 0;
        }
        pthread_mutex_unlock(&pm->mu);
        ssize_t k = pm->st.read(pm->st.self, tmp, sizeof tmp);
        pthread_mutex_lock(&pm->mu);
        if (k > 0 && !pm->closed) {
            memcpy(pm->buf + pm->n, tmp, (size_t)k);
            pm->n += (size_t)k;
        } else if (k == -1) {
            pm->eof = true;
        } else if (k < 0) {
            pm->err = true;
        }
        if (pm->suspended && !pm->closed) {
            pm->suspended = false;
            MHD_resume_connection(pm->conn);
        }
        bool stop = pm->eof || pm->err || pm->closed;
        pthread_mutex_unlock(&pm->mu);
        if (stop) break;
    }
    pm->st.close(pm->st.self);
    pthread_mutex_lock(&pm->mu);
    int fd = pm->fd;
    pm->fd = -1;
    pthread_mutex_unlock(&pm->mu);
    if (fd >= 0) close(fd);
    nuage__pump_unref(pm);
}

/* "1.5s" / "12m0.0s" (OpenAI's x-ratelimit-reset-* format). */
static void nuage__reset_text(int64_t ms, char *buf, size_t cap) {
    if (ms < 0) ms = 0;
    if (ms >= 60000) snprintf(buf, cap, "%lldm%.3gs", (long long)(ms / 60000), (double)(ms % 60000) / 1e3);
    else snprintf(buf, cap, "%.3gs", (double)ms / 1e3);
}

/* The deployment and rate-limit headers of q's answer. */
static void nuage__platform_headers(nuage__hreq *q, struct MHD_Response *resp) {
    nuage_server *s = q->srv;
    if (q->dep) {
        MHD_add_response_header(resp, "x-nuage-deployment", q->dep->name);
        if (q->dep->version[0]) MHD_add_response_header(resp, "x-nuage-model-version", q->dep->version);
        if (q->router[0]) MHD_add_response_header(resp, "x-nuage-router", q->router);
    }
    if (!q->auth.authenticated || !q->auth.tenant_id || !s->quota) return;
    nuage_quota_info in;
    if (q->has_rl) {
        in = q->rl;
    } else {
        /* Not a metered request: report the window of its deployment (or
         * of the default one) without counting anything. */
        memset(&in, 0, sizeof in);
        int64_t reqs = 0, toks = 0;
        nuage_deployment *d = q->dep ? q->dep : nuage_registry_acquire(s->reg, NULL);
        if (d) nuage_quota_usage(s->quota, q->auth.tenant_id, d->name, nuage__mono_ms(), &reqs, &toks);
        if (d && d != q->dep) nuage_deployment_release(d);
        in.limit_requests = q->auth.rpm;
        in.limit_tokens = q->auth.tpm;
        in.remaining_requests = q->auth.rpm ? (q->auth.rpm > reqs ? q->auth.rpm - reqs : 0) : -1;
        in.remaining_tokens = q->auth.tpm ? (q->auth.tpm > toks ? q->auth.tpm - toks : 0) : -1;
        in.reset_requests_ms = reqs ? NUAGE_QUOTA_WINDOW_MS : 0;
        in.reset_tokens_ms = toks ? NUAGE_QUOTA_WINDOW_MS : 0;
    }
    char v[32];
    if (in.limit_requests > 0) {
        snprintf(v, sizeof v, "%lld", (long long)in.limit_requests);
        MHD_add_response_header(resp, "x-ratelimit-limit-requests", v);
        snprintf(v, sizeof v, "%lld", (long long)(in.remaining_requests > 0 ? in.remaining_requests : 0));
        MHD_add_response_header(resp, "x-ratelimit-remaining-requests", v);
        nuage__reset_text(in.reset_requests_ms, v, sizeof v);
        MHD_add_response_header(resp, "x-ratelimit-reset-requests", v);
    }
    if (in.limit_tokens > 0) {
        snprintf(v, sizeof v, "%lld", (long long)in.limit_tokens);
        MHD_add_response_header(resp, "x-ratelimit-limit-tokens", v);
        snprintf(v, sizeof v, "%lld", (long long)(in.remaining_tokens > 0 ? in.remaining_tokens : 0));
        MHD_add_response_header(resp, "x-ratelimit-remaining-tokens", v);
        nuage__reset_text(in.reset_tokens_ms, v, sizeof v);
        MHD_add_response_header(resp, "x-ratelimit-reset-tokens", v);
    }
}

/* libmicrohttpd's side of a nuage__source. */
static ssize_t nuage__source_reader(void *cls, uint64_t pos, char *buf, size_t max) {
    nuage__source *src = cls;
    if (pos >= src->size) return MHD_CONTENT_READER_END_OF_STREAM;
    ssize_t k = src->read(src, pos, buf, max);
    return k > 0 ? k : MHD_CONTENT_READER_END_WITH_ERROR;
}

static void nuage__source_free(void *cls) {
    nuage__source *src = cls;
    src->free(src);
}

#define NUAGE__SOURCE_BLOCK (128 * 1024)

/* Queue r on the connection; frees r's body (or hands it/the stream over). */
static enum MHD_Result nuage__send(nuage__hreq *q, nuage__hresp *r, const char *allow) {
    struct MHD_Response *resp = NULL;
    if (r->streaming) {
        nuage__pump *pm = r->stream.self; /* the worker replaced the stream by its pump */
        resp = MHD_create_response_from_callback(MHD_SIZE_UNKNOWN, 16 * 1024, nuage__mhd_reader, pm,
                                                 nuage__mhd_free);
        if (!resp) nuage__mhd_free(pm);
        r->streaming = false;
        if (resp) {
            MHD_add_response_header(resp, MHD_HTTP_HEADER_CONTENT_TYPE, "text/event-stream");
            MHD_add_response_header(resp, MHD_HTTP_HEADER_CACHE_CONTROL, "no-cache");
            MHD_add_response_header(resp, "X-Accel-Buffering", "no");
        } else {
            nuage__resp_error(r, 500, "server_error", NULL, NULL, "out of memory");
        }
    }
    if (r->source) {
        nuage__source *src = r->source;
        r->source = NULL;
        resp = MHD_create_response_from_callback(src->size, NUAGE__SOURCE_BLOCK, nuage__source_reader, src,
                                                 nuage__source_free);
        if (resp) {
            MHD_add_response_header(resp, MHD_HTTP_HEADER_CONTENT_TYPE,
                                    r->content_type ? r->content_type : "application/octet-stream");
        } else {
            src->free(src);
            nuage__resp_error(r, 500, "server_error", NULL, NULL, "out of memory");
        }
    }
    if (!resp) {
        resp = MHD_create_response_from_buffer(r->len, r->body ? r->body : (char *)"",
                                               r->body ? MHD_RESPMEM_MUST_FREE : MHD_RESPMEM_PERSISTENT);
        if (!resp) {
            free(r->body);
            r->body = NULL;
            return MHD_NO;
        }
        r->body = NULL;
        MHD_add_response_header(resp, MHD_HTTP_HEADER_CONTENT_TYPE,
                                r->content_type ? r->content_type : "application/json");
    }
    if (r->retry_after > 0) {
        char ra[16];
        snprintf(ra, sizeof ra, "%d", r->retry_after);
        MHD_add_response_header(resp, MHD_HTTP_HEADER_RETRY_AFTER, ra);
    }
    if (r->retry_after_ms > 0) {
        char ra[24];
        snprintf(ra, sizeof ra, "%lld", (long long)r->retry_after_ms);
        MHD_add_response_header(resp, "retry-after-ms", ra);
    }
    if (allow) MHD_add_response_header(resp, MHD_HTTP_HEADER_ALLOW, allow);
    for (int i = 0; i + 1 < (int)(sizeof r->headers / sizeof *r->headers) && r->headers[i]; i += 2)
        if (r->headers[i + 1]) MHD_add_response_header(resp, r->headers[i], r->headers[i + 1]);
    if (r->status == 401) MHD_add_response_header(resp, MHD_HTTP_HEADER_WWW_AUTHENTICATE, "Bearer");
    nuage__platform_headers(q, resp);
    MHD_add_response_header(resp, "x-nuage-replica", q->srv->replica_id);
    q->status = r->status;
    nuage__metrics_request(&q->srv->metrics, r->status);
    enum MHD_Result ret = MHD_queue_response(q->conn, (unsigned)r->status, resp);
    MHD_destroy_response(resp);
    return ret;
}

/* The worker thread of one request: run the endpoint (which may block
 * until a generation ends), hand the answer to the connection and resume
 * it; for a stream, go on pumping it. q is not touched after the resume:
 * the connection may complete and free it at once. */
static void *nuage__worker(void *arg) {
    nuage__hreq *q = arg;
    nuage_server *s = q->srv;
    struct MHD_Connection *conn = q->conn;
    nuage__tl.fd = q->fd;
    nuage__tl.may_probe = !q->http10;
    nuage__tl.probed = false;
    nuage__dispatch(q, q->url, q->resp, &q->allow);
    nuage__pump *pm = NULL;
    if (q->resp->streaming) {
        pm = calloc(1, sizeof *pm);
        if (pm) {
            pthread_mutex_init(&pm->mu, NULL);
            pthread_cond_init(&pm->cv, NULL);
            pm->st = q->resp->stream;
            pm->fd = q->fd;
            pm->conn = conn;
            pm->refs = 2;
            q->fd = -1;
            q->resp->stream.self = pm;
        } else {
            q->resp->stream.close(q->resp->stream.self);
            q->resp->streaming = false;
            nuage__resp_error(q->resp, 500, "server_error", NULL, NULL, "out of memory");
        }
    }
    if (q->fd >= 0) close(q->fd);
    q->fd = -1;
    nuage__tl.fd = -1;
    q->resp_ready = true;
    MHD_resume_connection(conn);
    if (pm) nuage__pump_run(pm);
    atomic_fetch_sub(&s->workers, 1);
    return NULL;
}

static void nuage__refuse_413(nuage__hreq *q, nuage__hresp *r) {
    if (q->upload)
        nuage__resp_error(r, 413, "invalid_request_error", "file_too_large", "file",
                          "The file is larger than the limit of %u bytes.", NUAGE_FILES_MAX_BYTES);
    else
        nuage__resp_error(r, 413, "invalid_request_error", "request_too_large", NULL,
                          "The request body is larger than the limit of %zu bytes.", q->srv->p.max_body);
}

#define NUAGE__LINGER_BYTES (256u * 1024)
/* Largest upload body: one file at its limit plus the multipart framing. */
#define NUAGE__UPLOAD_MAX ((size_t)NUAGE_FILES_MAX_BYTES + (1u << 20))

/* Answer 413 on q's socket now, mid-body, and close the sending side. */
static void nuage__raw_413(nuage__hreq *q) {
    nuage__hresp r = {0};
    nuage__refuse_413(q, &r);
    const union MHD_ConnectionInfo *ci = MHD_get_connection_info(q->conn, MHD_CONNECTION_INFO_CONNECTION_FD);
    char head[256];
    int hl = snprintf(head, sizeof head,
                      "HTTP/1.1 413 Payload Too Large\r\nContent-Type: application/json\r\n"
                      "Content-Length: %zu\r\nConnection: close\r\n\r\n", r.len);
    if (ci && hl > 0 && (size_t)hl < sizeof head) {
        struct iovec iov[2] = {{head, (size_t)hl}, {r.body, r.len}};
        struct msghdr mh = {.msg_iov = iov, .msg_iovlen = r.body ? 2 : 1};
        (void)sendmsg(ci->connect_fd, &mh, MSG_NOSIGNAL | MSG_DONTWAIT);
        shutdown(ci->connect_fd, SHUT_WR);
    }
    free(r.body);
    q->status = 413;
    q->raw_answered = true;
    nuage__metrics_request(&q->srv->metrics, 413);
}

/* q's request is complete: suspend the connection and answer it on a
 * worker thread (a 503 when none can be started). */
static enum MHD_Result nuage__start_worker(nuage__hreq *q) {
    nuage_server *s = q->srv;
    q->resp = calloc(1, sizeof *q->resp);
    if (!q->resp) return MHD_NO;
    const union MHD_ConnectionInfo *ci = MHD_get_connection_info(q->conn, MHD_CONNECTION_INFO_CONNECTION_FD);
    q->fd = ci ? fcntl(ci->connect_fd, F_DUPFD_CLOEXEC, 0) : -1;
    atomic_fetch_add(&s->workers, 1);
    MHD_suspend_connection(q->conn);
    pthread_attr_t at;
    pthread_attr_init(&at);
    pthread_attr_setdetachstate(&at, PTHREAD_CREATE_DETACHED);
    pthread_attr_setstacksize(&at, 2u << 20);
    pthread_t th;
    int rc = pthread_create(&th, &at, nuage__worker, q);
    pthread_attr_destroy(&at);
    if (rc) {
        atomic_fetch_sub(&s->workers, 1);
        if (q->fd >= 0) close(q->fd);
        q->fd = -1;
        q->resp->retry_after = 1;
        nuage__resp_error(q->resp, 503, "server_error", "server_busy", NULL,
                          "The server cannot take more requests right now. Retry later.");
        q->resp_ready = true;
        MHD_resume_connection(q->conn);
    }
    return MHD_YES;
}

static enum MHD_Result nuage__access(void *cls, struct MHD_Connection *conn, const char *url,
                                     const char *method, const char *version,
                                     const char *upload_data, size_t *upload_data_size,
                                     void **con_cls) {
    nuage_server *s = cls;
    nuage__hreq *q = *con_cls;
    if (!q) {
        q = calloc(1, sizeof *q);
        if (!q) return MHD_NO;
        q->srv = s;
        q->conn = conn;
        q->url = url;
        q->t0 = nuage__now();
        q->fd = -1;
        q->http10 = version && !strcmp(version, MHD_HTTP_VERSION_1_0);
        atomic_fetch_add(&s->active, 1);
        const union MHD_ConnectionInfo *ci = MHD_get_connection_info(conn, MHD_CONNECTION_INFO_SOCKET_CONTEXT);
        q->cx = ci ? ci->socket_context : NULL;
        nuage__guard_state(s->guard, q->cx, NUAGE__CONN_BODY);
        snprintf(q->method, sizeof q->method, "%s", method);
        snprintf(q->path, sizeof q->path, "%s", url);
        *con_cls = q;
        /* A file upload is streamed to the store, not buffered: its caller
         * is authenticated before any of the body is read. */
        bool upload = s->store && !strcmp(method, "POST") && !strcmp(url, "/v1/files") &&
                      atomic_load(&s->state) == NUAGE__STATE_READY;
        if (upload) {
            nuage__hresp r = {0};
            if (!nuage__authenticate(q, &r)) return nuage__send(q, &r, NULL);
            if (!(q->upload = nuage__files_upload_begin(conn))) return MHD_NO;
        }
        size_t limit = upload ? NUAGE__UPLOAD_MAX : s->p.max_body;
        const char *cl = MHD_lookup_connection_value(conn, MHD_HEADER_KIND, MHD_HTTP_HEADER_CONTENT_LENGTH);
        bool refuse_now = false;
        if (cl) {
            char *end;
            errno = 0;
            unsigned long long v = strtoull(cl, &end, 10);
            if (errno || *end || v > limit) q->too_large = true;
            /* A JSON body up to 16x the limit is read and dropped, then
             * 413: most clients send the whole body before reading the
             * answer and would see a reset instead. Beyond that (or an
             * upload over its limit), refuse at once. */
            if (errno || *end || v / 16 > limit || (upload && v > limit)) refuse_now = true;
        }
        if (refuse_now) {
            /* Refuse before reading the body; libmicrohttpd closes the
             * connection afterwards since the body was not consumed. */
            nuage__hresp r = {0};
            nuage__refuse_413(q, &r);
            return nuage__send(q, &r, NULL);
        }
        return MHD_YES;
    }
    if (*upload_data_size) {
        size_t n = *upload_data_size;
        *upload_data_size = 0;
        nuage__guard_body(s->guard, q->cx, n);
        if (q->upload && !q->too_large) {
            bool ok = q->len + n <= NUAGE__UPLOAD_MAX && nuage__files_upload_feed(q->upload, upload_data, n);
            q->len += n;
            if (ok) return MHD_YES;
            /* Over the limit or malformed: the rest is dropped (bounded by
             * its Content-Length), answered from the handler at the end;
             * without a length, answered now like an oversized JSON body. */
            q->too_large = q->len > NUAGE__UPLOAD_MAX || nuage__files_upload_too_large(q->upload);
            if (!MHD_lookup_connection_value(conn, MHD_HEADER_KIND, MHD_HTTP_HEADER_CONTENT_LENGTH)) {
                if (q->too_large) nuage__raw_413(q);
                else return MHD_NO;
            }
            q->too_large = true;
            q->upload_failed = true;
            return MHD_YES;
        }
        if (q->too_large) {
            q->dropped += n;
            /* answered early: linger a little, then close */
            return q->raw_answered && q->dropped > NUAGE__LINGER_BYTES ? MHD_NO : MHD_YES;
        }
        if (q->len + n > s->p.max_body) {
            q->too_large = true;
            free(q->body);
            q->body = NULL;
            q->len = q->cap = 0;
            /* Without a length (chunked) the body may never end: answer
             * at once (libmicrohttpd cannot queue a response before the
             * body ended, so it is written here) and read no more than a
             * short lingering window, so that the answer is not lost to a
             * reset. */
            if (!MHD_lookup_connection_value(conn, MHD_HEADER_KIND, MHD_HTTP_HEADER_CONTENT_LENGTH))
                nuage__raw_413(q);
            return MHD_YES;
        }
        if (q->len + n + 1 > q->cap) {
            size_t cap = q->cap ? q->cap : 4096;
            while (cap < q->len + n + 1) cap *= 2;
            char *b = realloc(q->body, cap);
            if (!b) return MHD_NO;
            q->body = b;
            q->cap = cap;
        }
        memcpy(q->body + q->len, upload_data, n);
        q->len += n;
        q->body[q->len] = 0;
        return MHD_YES;
    }
    if (q->resp_ready) {
        nuage__hresp *r = q->resp;
        q->resp = NULL;
        q->resp_ready = false;
        enum MHD_Result ret = nuage__send(q, r, q->allow);
        free(r);
        return ret;
    }
    if (q->raw_answered) return MHD_NO;   /* answered early (413): close */
    if (q->status || q->resp) return MHD_YES; /* answered, or being answered */
    nuage__guard_state(s->guard, q->cx, NUAGE__CONN_BUSY);
    if (q->too_large && !q->upload_failed) {
        nuage__hresp r = {0};
        nuage__refuse_413(q, &r);
        return nuage__send(q, &r, NULL);
    }
    return nuage__start_worker(q);
}

/* The request and completion texts, for deployments that opted in to
 * prompt logging (log_prompts). Never written otherwise. */
static void nuage__log_texts(nuage__hreq *q) {
    nuage__sb b = {0};
    nuage__sb_puts(&b, "  request: ");
    size_t n = q->len < 8192 ? q->len : 8192;
    if (q->body) nuage__sb_json_str(&b, q->body, n);
    else nuage__sb_puts(&b, "null");
    if (q->gen) {
        nuage__gen *g = q->gen;
        pthread_mutex_lock(&g->mu);
        for (int i = 0; i < g->n_choices; i++) {
            nuage__sb_printf(&b, "\n  completion[%d]: ", i);
            nuage__sb_json_str(&b, g->ch[i].text.p ? g->ch[i].text.p : "", g->ch[i].text.n < 8192 ? g->ch[i].text.n : 8192);
        }
        pthread_mutex_unlock(&g->mu);
    }
    if (!b.oom && b.p) fprintf(stderr, "%s\n", b.p);
    nuage__sb_free(&b);
}

/* Meter, log and free a completed request (q->toe: how it ended). May
 * wait for a cancelled generation to stop: not on an event loop thread. */
static void nuage__finish_request(nuage_server *s, nuage__hreq *q) {
    enum MHD_RequestTerminationCode toe = (enum MHD_RequestTerminationCode)q->toe;
    int prompt = q->log_prompt, completion = q->log_completion;
    bool texts = s->p.log_requests && q->dep && q->dep->cfg.log_prompts;
    if (q->gen) {
        nuage__gen *g = q->gen;
        bool done, finalized;
        pthread_mutex_lock(&g->mu);
        done = g->n_complete >= g->n_jobs;
        finalized = g->finalized;
        pthread_mutex_unlock(&g->mu);
        if (!done) nuage__gen_cancel(g);
        if (!finalized) {
            /* The answer did not reach its end (client gone, stream cut):
             * meter what was computed once the cancellation took effect. */
            nuage__gen_wait_done(g, 10000);
            bool ok = toe == MHD_REQUEST_TERMINATED_COMPLETED_OK && q->status > 0 && q->status < 400;
            nuage__gen_finish(g, ok ? nuage__gen_status(g) : (q->status >= 400 ? q->status : 499));
        }
        pthread_mutex_lock(&g->mu);
        prompt = 0;
        completion = 0;
        for (int j = 0; j < g->n_jobs; j++) prompt += g->jobs[j].n_prompt;
        for (int i = 0; i < g->n_choices; i++) completion += g->ch[i].n_gen;
        pthread_mutex_unlock(&g->mu);
    }
    if (s->p.log_requests) {
        double ms = (nuage__now() - q->t0) * 1e3;
        char who[96] = "";
        if (q->auth.tenant[0]) snprintf(who, sizeof who, " tenant=%s", q->auth.tenant);
        fprintf(stderr, "%s %s %d%s%s%s prompt_tokens=%d completion_tokens=%d %.1f ms%s\n", q->method, q->path,
                q->status, q->dep ? " deployment=" : "", q->dep ? q->dep->name : "", who, prompt, completion, ms,
                toe == MHD_REQUEST_TERMINATED_COMPLETED_OK ? "" : " (connection closed early)");
        if (texts) nuage__log_texts(q);
    }
    nuage__gen_unref(q->gen);
    nuage_deployment_release(q->dep);
    if (q->resp) {
        if (q->resp->streaming) nuage__mhd_free(q->resp->stream.self);
        if (q->resp->source) q->resp->source->free(q->resp->source);
        free(q->resp->body);
        free(q->resp);
    }
    nuage__files_upload_free(q->upload);
    free(q->body);
    free(q);
    atomic_fetch_sub(&s->active, 1);
}

static void *nuage__finish_thread(void *arg) {
    nuage__hreq *q = arg;
    nuage_server *s = q->srv;
    nuage__finish_request(s, q);
    atomic_fetch_sub(&s->workers, 1);
    return NULL;
}

static void nuage__completed(void *cls, struct MHD_Connection *conn, void **con_cls,
                             enum MHD_RequestTerminationCode toe) {
    (void)conn;
    nuage_server *s = cls;
    nuage__hreq *q = *con_cls;
    if (!q) return;
    *con_cls = NULL;
    q->toe = (int)toe;
    nuage__guard_state(s->guard, q->cx, NUAGE__CONN_IDLE);
    bool slow = false;
    if (q->gen) {
        pthread_mutex_lock(&q->gen->mu);
        slow = !q->gen->finalized;
        pthread_mutex_unlock(&q->gen->mu);
    }
    if (slow) {
        /* waiting for the cancellation to take effect: off the event loop */
        pthread_attr_t at;
        pthread_attr_init(&at);
        pthread_attr_setdetachstate(&at, PTHREAD_CREATE_DETACHED);
        pthread_t th;
        atomic_fetch_add(&s->workers, 1);
        int rc = pthread_create(&th, &at, nuage__finish_thread, q);
        pthread_attr_destroy(&at);
        if (!rc) return;
        atomic_fetch_sub(&s->workers, 1);
    }
    nuage__finish_request(s, q);
}

/* libmicrohttpd's error log, rate limited: under a connection flood it
 * would write a line per dropped connection. At most 10 lines a minute,
 * then one saying how many were left out. */
static void nuage__mhd_log(void *cls, const char *fmt, va_list ap) {
    (void)cls;
    static pthread_mutex_t mu = PTHREAD_MUTEX_INITIALIZER;
    static int64_t window;
    static int n_in_window;
    static long dropped;
    int64_t minute = nuage__mono_ms() / 60000;
    pthread_mutex_lock(&mu);
    if (minute != window) {
        if (dropped) fprintf(stderr, "http: %ld more connection errors not shown\n", dropped);
        window = minute;
        n_in_window = 0;
        dropped = 0;
    }
    bool show = n_in_window++ < 10;
    if (!show) dropped++;
    pthread_mutex_unlock(&mu);
    if (!show) return;
    char line[512];
    vsnprintf(line, sizeof line, fmt, ap);
    size_t l = strlen(line);
    fprintf(stderr, "http: %s%s", line, l && line[l - 1] == '\n' ? "" : "\n");
}

/* libmicrohttpd's connection open/close notifications: the guard's
 * records (socket context). */
static void nuage__notify_conn(void *cls, struct MHD_Connection *conn, void **socket_context,
                               enum MHD_ConnectionNotificationCode toe) {
    nuage_server *s = cls;
    if (toe == MHD_CONNECTION_NOTIFY_STARTED) {
        const union MHD_ConnectionInfo *ci = MHD_get_connection_info(conn, MHD_CONNECTION_INFO_CONNECTION_FD);
        *socket_context = ci ? nuage__guard_open(s->guard, ci->connect_fd) : NULL;
    } else {
        nuage__guard_close(s->guard, *socket_context);
        *socket_context = NULL;
    }
}

/* s->replica_id: the given name, else "HOSTNAME:PORT". Written before the
 * daemon answers anything (for port 0, again once the port is known). */
static void nuage__replica_name(nuage_server *s, const nuage_server_params *p) {
    if (p->replica_id && *p->replica_id) {
        snprintf(s->replica_id, sizeof s->replica_id, "%s", p->replica_id);
        return;
    }
    char hn[64];
    if (gethostname(hn, sizeof hn - 1)) snprintf(hn, sizeof hn, "localhost");
    hn[sizeof hn - 1] = 0;
    snprintf(s->replica_id, sizeof s->replica_id, "%s:%d", hn, s->port ? s->port : p->port);
}

/* ---- public API ------------------------------------------------------------------- */

nuage_server_params nuage_server_default_params(void) {
    nuage_server_params p = {0};
    p.host = "127.0.0.1";
    p.port = 8080;
    p.max_body = 8u << 20;
    p.idle_timeout_s = 60;
    p.max_n = 8;
    p.max_tokens_default = 4096;
    p.model_id = NULL;
    p.log_requests = true;
    p.max_connections = 16384;
    p.max_per_ip = 256;
    p.head_timeout_s = 10;
    p.body_timeout_s = 30;
    p.threads = 2;
    return p;
}

int nuage_server_new(const nuage_server_params *params, nuage_server **out, char *err, size_t errlen) {
    *out = NULL;
    nuage_server_params p = params ? *params : nuage_server_default_params();
    if (!p.host || !*p.host) p.host = "127.0.0.1";
    if (p.port < 0 || p.port > 65535) {
        snprintf(err, errlen, "port %d out of range", p.port);
        return NUAGE_E_INVAL;
    }
    if (p.max_body == 0) p.max_body = 8u << 20;
    if (p.idle_timeout_s <= 0) p.idle_timeout_s = 60;
    if (p.max_n <= 0) p.max_n = 8;
    if (p.max_tokens_default <= 0) p.max_tokens_default = 4096;
    nuage_server_params dp = nuage_server_default_params();
    if (p.max_connections <= 0) p.max_connections = dp.max_connections;
    if (p.max_per_ip <= 0) p.max_per_ip = dp.max_per_ip;
    if (p.head_timeout_s <= 0) p.head_timeout_s = dp.head_timeout_s;
    if (p.body_timeout_s <= 0) p.body_timeout_s = dp.body_timeout_s;
    if (p.threads <= 0) p.threads = dp.threads;
    /* Every connection is a descriptor: raise the soft limit to the hard
     * one and keep the cap (plus room for models, the store, workers)
     * under it, so that accept() never fails with EMFILE. */
    struct rlimit rl;
    if (!getrlimit(RLIMIT_NOFILE, &rl)) {
        if (rl.rlim_cur < rl.rlim_max) {
            rl.rlim_cur = rl.rlim_max;
            setrlimit(RLIMIT_NOFILE, &rl);
            getrlimit(RLIMIT_NOFILE, &rl);
        }
        if (rl.rlim_cur != RLIM_INFINITY && (rlim_t)p.max_connections + 512 > rl.rlim_cur)
            p.max_connections = rl.rlim_cur > 768 ? (int)(rl.rlim_cur - 512) : 256;
    }
    nuage_server *s = calloc(1, sizeof *s);
    if (!s) return NUAGE_E_NOMEM;
    s->p = p;
    s->model_id = strdup(p.model_id ? p.model_id : "model");
    s->model_path = p.model_path ? strdup(p.model_path) : NULL;
    if (!s->model_id || (p.model_path && !s->model_path)) goto fail_oom;
    s->p.model_id = s->model_id;
    s->p.model_path = s->model_path;
    s->loopback = nuage_auth_is_loopback(p.host);
    nuage__metrics_init(&s->metrics);
    atomic_init(&s->state, NUAGE__STATE_LOADING);
    atomic_init(&s->id_counter, 0);
    atomic_init(&s->active, 0);
    atomic_init(&s->workers, 0);
    nuage__guard_params gp = {.max_conns = p.max_connections, .head_s = p.head_timeout_s,
                              .body_s = p.body_timeout_s, .idle_s = p.idle_timeout_s};
    if (nuage__guard_new(&gp, &s->guard)) goto fail_oom;
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    s->id_salt = ((uint64_t)ts.tv_sec * 1000000007ULL) ^ (uint64_t)ts.tv_nsec ^ ((uint64_t)getpid() << 40);

    struct addrinfo hints = {0}, *ai = NULL;
    hints.ai_family = AF_UNSPEC;
    hints.ai_socktype = SOCK_STREAM;
    hints.ai_flags = AI_PASSIVE | AI_NUMERICSERV;
    char port[16];
    snprintf(port, sizeof port, "%d", p.port);
    int gai = getaddrinfo(p.host, port, &hints, &ai);
    if (gai || !ai) {
        snprintf(err, errlen, "cannot resolve host '%s': %s", p.host, gai_strerror(gai));
        goto fail;
    }
    /* Event-driven: a few epoll threads serve every connection; the
     * work of a request runs on a worker thread meanwhile (suspended
     * connection). libmicrohttpd's own timeout is the backstop for
     * stalled writes; http_guard.c enforces the request deadlines and
     * the connection cap (libmicrohttpd's is set above it). */
    unsigned flags = MHD_USE_INTERNAL_POLLING_THREAD | MHD_USE_EPOLL | MHD_ALLOW_SUSPEND_RESUME |
                     MHD_USE_ERROR_LOG;
    if (ai->ai_family == AF_INET6) flags |= MHD_USE_IPv6;
    nuage__replica_name(s, &p);
    s->daemon = MHD_start_daemon(flags, (uint16_t)p.port, NULL, NULL, nuage__access, s,
                                 MHD_OPTION_EXTERNAL_LOGGER, nuage__mhd_log, s, /* first: see its notes */
                                 MHD_OPTION_SOCK_ADDR, ai->ai_addr,
                                 MHD_OPTION_THREAD_POOL_SIZE, (unsigned int)p.threads,
                                 MHD_OPTION_CONNECTION_TIMEOUT, (unsigned int)p.idle_timeout_s,
                                 MHD_OPTION_NOTIFY_COMPLETED, nuage__completed, s,
                                 MHD_OPTION_NOTIFY_CONNECTION, nuage__notify_conn, s,
                                 MHD_OPTION_CONNECTION_MEMORY_LIMIT, (size_t)(64 * 1024),
                                 MHD_OPTION_CONNECTION_LIMIT, (unsigned int)(p.max_connections + 256),
                                 MHD_OPTION_PER_IP_CONNECTION_LIMIT, (unsigned int)p.max_per_ip,
                                 MHD_OPTION_LISTEN_BACKLOG_SIZE, (unsigned int)4096,
                                 MHD_OPTION_END);
    freeaddrinfo(ai);
    if (!s->daemon) {
        snprintf(err, errlen, "cannot listen on %s:%d (address in use or not available)", p.host, p.port);
        goto fail;
    }
    const union MHD_DaemonInfo *di = MHD_get_daemon_info(s->daemon, MHD_DAEMON_INFO_BIND_PORT);
    s->port = di && di->port ? di->port : p.port;
    if (!p.port) nuage__replica_name(s, &p); /* now that the free port is known (nobody knew it before) */
    *out = s;
    return 0;
fail_oom:
    snprintf(err, errlen, "out of memory");
    nuage__guard_free(s->guard);
    free(s->model_id);
    free(s->model_path);
    free(s);
    return NUAGE_E_NOMEM;
fail:
    nuage__guard_free(s->guard);
    free(s->model_id);
    free(s->model_path);
    free(s);
    return NUAGE_E_IO;
}

int nuage_server_port(const nuage_server *s) { return s ? s->port : 0; }

int nuage_server_attach(nuage_server *s, const nuage_server_platform *pf, char *err, size_t errlen) {
    if (!pf || !pf->registry) {
        snprintf(err, errlen, "no deployment registry");
        return NUAGE_E_INVAL;
    }
    if (!s->loopback && (pf->no_auth || (!pf->store && !pf->insecure))) {
        snprintf(err, errlen,
                 pf->no_auth ? "refusing to serve on %s with --no-auth: it is accepted on a loopback address only"
                             : "refusing to serve on %s without a store of API keys: give --db, "
                               "or pass --insecure to serve without authentication", s->p.host);
        return NUAGE_E_STATE;
    }
    nuage_auth_params ap = {.store = pf->store, .loopback = s->loopback, .insecure = pf->insecure,
                            .no_auth = pf->no_auth};
    int rc = nuage_auth_new(&ap, &s->auth);
    if (rc) {
        snprintf(err, errlen, "out of memory");
        return rc;
    }
    s->pf = *pf;
    s->reg = pf->registry;
    s->store = pf->store;
    s->quota = pf->quota;
    atomic_store(&s->state, NUAGE__STATE_READY);
    return 0;
}

int nuage_server_set_ready(nuage_server *s, const nuage_model *m, nuage_sched *sched, char *err,
                           size_t errlen) {
    nuage_registry_params rp = nuage_registry_default_params();
    nuage_registry *reg = NULL;
    int rc = nuage_registry_new(&rp, &reg);
    if (rc) {
        snprintf(err, errlen, "out of memory");
        return rc;
    }
    nuage_deploy_config c;
    memset(&c, 0, sizeof c);
    snprintf(c.name, sizeof c.name, "%s", s->model_id);
    if (s->model_path && strcmp(s->model_path, s->model_id) && strlen(s->model_path) < sizeof c.aliases[0]) {
        snprintf(c.aliases[0], sizeof c.aliases[0], "%s", s->model_path);
        c.n_aliases = 1;
    }
    c.parallel = s->p.max_n;
    c.max_n = s->p.max_n;
    c.max_tokens_default = s->p.max_tokens_default;
    c.prefix_cache = true;
    rc = nuage_registry_adopt(reg, &c, m, sched, err, errlen);
    if (rc) {
        nuage_registry_free(reg);
        return rc;
    }
    nuage_server_platform pf;
    memset(&pf, 0, sizeof pf);
    pf.registry = reg;
    pf.insecure = true; /* no store: the caller decided where it listens */
    rc = nuage_server_attach(s, &pf, err, errlen);
    if (rc) {
        nuage_registry_free(reg);
        return rc;
    }
    s->own_reg = true;
    return 0;
}

void nuage_server_set_stopping(nuage_server *s) {
    if (s) atomic_store(&s->state, NUAGE__STATE_STOPPING);
}

int nuage_server_wait_idle(nuage_server *s, int timeout_ms) {
    double end = nuage__now() + timeout_ms / 1e3;
    int n;
    while ((n = atomic_load(&s->active)) > 0 && nuage__now() < end) {
        struct timespec ts = {0, 10 * 1000000L};
        nanosleep(&ts, NULL);
    }
    return n;
}

void nuage_server_free(nuage_server *s) {
    if (!s) return;
    /* Workers resume their suspended connections before they end; stopping
     * the daemon with one still suspended would leak it. */
    for (int i = 0; i < 3000 && atomic_load(&s->workers) > 0; i++) {
        struct timespec ts = {0, 10 * 1000000L};
        nanosleep(&ts, NULL);
    }
    if (s->daemon) MHD_stop_daemon(s->daemon);
    nuage__responses_close(s);
    nuage__guard_free(s->guard);
    if (s->own_reg) nuage_registry_free(s->reg);
    nuage_auth_free(s->auth);
    free(s->model_id);
    free(s->model_path);
    free(s);
}
