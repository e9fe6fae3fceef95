/*
 * fuzz_http.c - libFuzzer harness for the HTTP request path, end to end.
 *
 * Once per process: a server on a loopback port with a store (in a fresh
 * folder under /dev/shm or /tmp), a tenant key and an admin key, the Files
 * and Batch APIs, and one deployment ("fast": the bundled
 * models/nuage-fast.gguf with a 256-token context, so that any generation
 * is short). Each input is one request sent to it over a socket -- so the
 * bytes go through libmicrohttpd's parser, the connection glue, the
 * authentication, the router and the real handlers:
 *
 *   input[0]   which request (see `routes`): chat, completions,
 *              embeddings, a multipart upload to /v1/files, batches,
 *              admin tenants/keys/usage, tokenize/detokenize, a method and
 *              path taken from the input, or the input sent raw;
 *   input[1]   flags: admin key / no key / chunked body;
 *   input[2..] the body (or the raw request).
 *
 * The client half-closes after sending (as HTTP/1.0 clients do) and reads
 * the answer to its end; a server that does not answer or close within
 * 10 s is a hang and aborts (a head that never completes is closed by the
 * 2 s head deadline). Not exercised: POST /admin/deployments (it loads
 * model files from paths: the admin's power, not a parser).
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/time.h>
#include <unistd.h>

#include "server/api_batch.h"
#include "server/http.h"

static int g_port;
static char g_key[128], g_admin[128];

static void die(const char *what, const char *err) {
    fprintf(stderr, "fuzz_http setup: %s: %s\n", what, err);
    abort();
}

static void setup(void) {
    char dir[256], path[512], err[512];
    snprintf(dir, sizeof dir, "%s/nuage-fuzz-http-XXXXXX", access("/dev/shm", W_OK) ? "/tmp" : "/dev/shm");
    if (!mkdtemp(dir)) die("mkdtemp", dir);
    snprintf(path, sizeof path, "%s/nuage.db", dir);
    nuage_store *store = NULL;
    if (nuage_store_open(path, &store, err, sizeof err)) die("store", err);
    if (nuage_store_tenant_create(store, "t1", 0, 0, 1.0, NULL)) die("tenant", nuage_store_errmsg(store));
    if (nuage_store_key_create(store, "t1", "", 0, false, g_key, sizeof g_key, NULL)) die("key", "");
    if (nuage_store_key_create(store, NULL, "", 0, true, g_admin, sizeof g_admin, NULL)) die("admin key", "");
    nuage_registry_params rp = nuage_registry_default_params();
    rp.default_threads = 1;
    nuage_registry *reg = NULL;
    if (nuage_registry_new(&rp, &reg)) die("registry", "");
    json_t *o = json_pack("{s:s, s:s, s:i, s:i, s:i, s:i}", "name", "fast", "model",
                          NUAGE_SOURCE_DIR "/models/nuage-fast.gguf", "context", 256, "parallel", 2,
                          "max_tokens_default", 16, "threads", 1);
    nuage_deploy_config c;
    if (nuage_deploy_config_parse(o, NULL, &c, err, sizeof err)) die("deployment", err);
    json_decref(o);
    bool replaced;
    if (nuage_registry_load(reg, &c, NUAGE_DEPLOY_ORIGIN_CONFIG, &replaced, err, sizeof err)) die("load", err);
    nuage_deploy_config_free(&c);
    nuage_server_params p = nuage_server_default_params();
    p.port = 0;
    p.log_requests = false;
    p.max_body = 256 * 1024;
    /* A head or body that never ends, then a half-close (libmicrohttpd
     * misses an end of file that comes with the last bytes): the
     * connection guard closes it, or answers 400 incomplete_body, about
     * 400 ms later (http_guard.c). The deadlines stay short here as a
     * backstop, well under the 10 s this harness waits for an answer. */
    p.head_timeout_s = 2;
    p.body_timeout_s = 2;
    nuage_server *s = NULL;
    if (nuage_server_new(&p, &s, err, sizeof err)) die("server", err);
    if (nuage_batch_api_register(s, NULL)) die("routes", "");
    nuage_server_platform pf;
    memset(&pf, 0, sizeof pf);
    pf.registry = reg;
    pf.store = store;
    if (nuage_server_attach(s, &pf, err, sizeof err)) die("attach", err);
    g_port = nuage_server_port(s);
    /* the server lives as long as the process */
}

typedef struct {
    const char *method, *path, *content_type;
} route;

static const route routes[] = {
    {"POST", "/v1/chat/completions", "application/json"},
    {"POST", "/v1/completions", "application/json"},
    {"POST", "/v1/embeddings", "application/json"},
    {"POST", "/v1/files", "multipart/form-data; boundary=XyZ"},
    {"POST", "/v1/batches", "application/json"},
    {"POST", "/admin/tenants", "application/json"},
    {"POST", "/admin/keys", "application/json"},
    {"POST", "/tokenize", "application/json"},
    {"POST", "/detokenize", "application/json"},
    {NULL, NULL, NULL}, /* method and path from the input's first line */
    {NULL, NULL, NULL}, /* raw */
    {"POST", "/v1/chat/completions", "application/json"},
};
#define N_ROUTES (sizeof routes / sizeof *routes)

static int connect_server(void) {
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0) abort();
    struct sockaddr_in a = {0};
    a.sin_family = AF_INET;
    a.sin_port = htons((uint16_t)g_port);
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (connect(fd, (struct sockaddr *)&a, sizeof a)) abort();
    struct timeval tv = {10, 0};
    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
    return fd;
}

static void send_all(int fd, const void *p, size_t n) {
    const char *s = p;
    while (n) {
        ssize_t k = send(fd, s, n, MSG_NOSIGNAL);
        if (k <= 0) return; /* the server may answer early and close */
        s += k;
        n -= (size_t)k;
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    static int ready;
    if (!ready) {
        setup();
        ready = 1;
    }
    if (size < 2) return 0;
    const route *rt = &routes[data[0] % N_ROUTES];
    unsigned flags = data[1];
    const char *body = (const char *)data + 2;
    size_t n = size - 2;
    int fd = connect_server();
    char head[2048];
    int hl = 0;
    bool raw = data[0] % N_ROUTES == N_ROUTES - 2;
    if (raw) {
        send_all(fd, body, n);
    } else {
        char method[16] = "GET", path[1024] = "/";
        if (rt->method) {
            snprintf(method, sizeof method, "%s", rt->method);
            snprintf(path, sizeof path, "%s", rt->path);
        } else {
            /* "METHOD /path\n" then the body; unusable bytes become '_' */
            const char *nl = memchr(body, '\n', n);
            size_t ll = nl ? (size_t)(nl - body) : n;
            const char *sp = memchr(body, ' ', ll);
            static const char *const methods[] = {"GET", "POST", "DELETE", "HEAD", "PUT"};
            snprintf(method, sizeof method, "%s", methods[(flags >> 4) % 5]);
            size_t pl = 0;
            const char *ps = sp ? sp + 1 : body;
            size_t plen = sp ? ll - (size_t)(sp + 1 - body) : ll;
            path[pl++] = '/';
            for (size_t i = 0; i < plen && pl < sizeof path - 1; i++) {
                unsigned char ch = (unsigned char)ps[i];
                if (i == 0 && ch == '/') continue;
                path[pl++] = ch > 32 && ch < 127 ? (char)ch : '_';
            }
            path[pl] = 0;
            body = nl ? nl + 1 : body + n;
            n = nl ? n - ll - 1 : 0;
        }
        const char *key = flags & 1 ? g_admin : g_key;
        bool chunked = flags & 4;
        hl = snprintf(head, sizeof head, "%s %s HTTP/1.1\r\nHost: x\r\nConnection: close\r\n", method, path);
        if (!(flags & 2)) hl += snprintf(head + hl, sizeof head - (size_t)hl, "Authorization: Bearer %s\r\n", key);
        if (rt->content_type)
            hl += snprintf(head + hl, sizeof head - (size_t)hl, "Content-Type: %s\r\n", rt->content_type);
        if (chunked) hl += snprintf(head + hl, sizeof head - (size_t)hl, "Transfer-Encoding: chunked\r\n\r\n");
        else hl += snprintf(head + hl, sizeof head - (size_t)hl, "Content-Length: %zu\r\n\r\n", n);
        send_all(fd, head, (size_t)hl);
        if (chunked) {
            /* chunks of 1..64 bytes, sizes from the body's own bytes */
            size_t off = 0;
            while (off < n) {
                size_t k = 1 + (unsigned char)body[off] % 64;
                if (k > n - off) k = n - off;
                char c[16];
                int cl = snprintf(c, sizeof c, "%zx\r\n", k);
                send_all(fd, c, (size_t)cl);
                send_all(fd, body + off, k);
                send_all(fd, "\r\n", 2);
                off += k;
            }
            send_all(fd, "0\r\n\r\n", 5);
        } else {
            send_all(fd, body, n);
        }
    }
    shutdown(fd, SHUT_WR);
    char buf[65536];
    for (;;) {
        ssize_t k = recv(fd, buf, sizeof buf, 0);
        if (k == 0) break;
        if (k < 0) {
            if (errno == EAGAIN || errno == EWOULDBLOCK) {
                fprintf(stderr, "fuzz_http: no answer within 10 s\n");
                abort();
            }
            break; /* reset: fine (e.g. an oversized head) */
        }
    }
    close(fd);
    return 0;
}
