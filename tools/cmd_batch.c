/*
 * cmd_batch.c - `nuage batch`: the Batch API from the command line, as a
 * thin client of a running server (`nuage serve`).
 *
 *   nuage batch submit FILE.jsonl [--deployment D] [--endpoint EP] [--no-wait] [--out FILE]
 *   nuage batch status ID [--wait] [--json]
 *   nuage batch download ID [--out FILE] [--errors]
 *   nuage batch cancel ID
 * Common: --url URL (default $NUAGE_URL, else http://127.0.0.1:8080),
 * --key KEY (default $NUAGE_API_KEY).
 *
 * submit uploads the file (POST /v1/files, multipart, purpose "batch"),
 * creates the batch (POST /v1/batches) and prints its id on stdout; then,
 * unless --no-wait, polls it with a progress bar on stderr until it ends,
 * and with --out downloads the output file. The exit code is 0 when the
 * batch completed (some lines may still have failed: see its error file),
 * 1 otherwise.
 *
 * The HTTP client is deliberately small: plain sockets, HTTP/1.1 with
 * "Connection: close", one request per connection, Content-Length or
 * chunked responses; no TLS (put the server behind a local proxy for
 * that). Responses are read whole into memory (batch files fit).
 */
#define _GNU_SOURCE
#include <errno.h>
#include <jansson.h>
#include <netdb.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <sys/types.h>
#include <time.h>
#include <unistd.h>

#include "cli.h"
#include "cli_util.h"

#define CMD "batch"

typedef struct {
    char host[300];
    char port[16];
    char prefix[256]; /* path prefix of the URL ("" or "/something") */
    const char *key;
} nuage__bc;

typedef struct {
    int status;
    char *body;
    size_t len;
} nuage__bresp;

static int nuage__bc_parse_url(nuage__bc *c, const char *url) {
    if (strncmp(url, "http://", 7)) return -1;
    const char *h = url + 7;
    const char *slash = strchr(h, '/');
    size_t hl = slash ? (size_t)(slash - h) : strlen(h);
    char hostport[300];
    if (hl == 0 || hl >= sizeof hostport) return -1;
    memcpy(hostport, h, hl);
    hostport[hl] = 0;
    char *colon = strrchr(hostport, ':');
    if (colon && !strchr(colon, ']')) {
        *colon = 0;
        snprintf(c->port, sizeof c->port, "%s", colon + 1);
    } else {
        snprintf(c->port, sizeof c->port, "80");
    }
    char *host = hostport;
    if (host[0] == '[') { /* [::1] */
        host++;
        char *e = strchr(host, ']');
        if (e) *e = 0;
    }
    snprintf(c->host, sizeof c->host, "%s", host);
    snprintf(c->prefix, sizeof c->prefix, "%s", slash ? slash : "");
    size_t pl = strlen(c->prefix);
    while (pl > 0 && c->prefix[pl - 1] == '/') c->prefix[--pl] = 0;
    return 0;
}

static int nuage__bc_connect(const nuage__bc *c) {
    struct addrinfo hints = {0}, *res = NULL;
    hints.ai_socktype = SOCK_STREAM;
    hints.ai_family = AF_UNSPEC;
    if (getaddrinfo(c->host, c->port, &hints, &res)) return -1;
    int fd = -1;
    for (struct addrinfo *a = res; a; a = a->ai_next) {
        fd = socket(a->ai_family, a->ai_socktype, a->ai_protocol);
        if (fd < 0) continue;
        if (connect(fd, a->ai_addr, a->ai_addrlen) == 0) break;
        close(fd);
        fd = -1;
    }
    freeaddrinfo(res);
    return fd;
}

static int nuage__bc_send_all(int fd, const char *p, size_t n) {
    while (n > 0) {
        ssize_t k = send(fd, p, n, MSG_NOSIGNAL);
        if (k < 0 && errno == EINTR) continue;
        if (k <= 0) return -1;
        p += k;
        n -= (size_t)k;
    }
    return 0;
}

/* Decode a chunked body in place; returns its length or -1. */
static long nuage__bc_dechunk(char *b, size_t n) {
    size_t in = 0, out = 0;
    for (;;) {
        char *e;
        if (in >= n) return -1;
        unsigned long sz = strtoul(b + in, &e, 16);
        char *nl = memchr(b + in, '\n', n - in);
        if (!nl || e == b + in) return -1;
        in = (size_t)(nl - b) + 1;
        if (sz == 0) return (long)out;
        if (in + sz > n) return -1;
        memmove(b + out, b + in, sz);
        out += sz;
        in += sz;
        if (in + 2 <= n && b[in] == '\r') in += 2;
        else if (in < n && b[in] == '\n') in++;
    }
}

/* One request. body may be NULL. 0 with *resp filled (caller frees
 * resp->body), or -1 with a message on stderr. */
static int nuage__bc_request(const nuage__bc *c, const char *method, const char *path, const char *ctype,
                             const char *body, size_t blen, nuage__bresp *resp) {
    memset(resp, 0, sizeof *resp);
    int fd = nuage__bc_connect(c);
    if (fd < 0) {
        fprintf(stderr, "nuage batch: cannot connect to %s:%s\n", c->host, c->port);
        return -1;
    }
    char ctl[300] = "", auth[600] = "";
    if (ctype) snprintf(ctl, sizeof ctl, "Content-Type: %s\r\n", ctype);
    if (c->key) snprintf(auth, sizeof auth, "Authorization: Bearer %s\r\n", c->key);
    char head[2048];
    int hl = snprintf(head, sizeof head,
                      "%s %s%s HTTP/1.1\r\nHost: %s:%s\r\nUser-Agent: nuage-batch\r\nAccept: */*\r\n"
                      "Connection: close\r\nContent-Length: %zu\r\n%s%s\r\n",
                      method, c->prefix, path, c->host, c->port, body ? blen : 0, ctl, auth);
    if (hl <= 0 || (size_t)hl >= sizeof head || nuage__bc_send_all(fd, head, (size_t)hl) ||
        (body && blen && nuage__bc_send_all(fd, body, blen))) {
        fprintf(stderr, "nuage batch: cannot send the request\n");
        close(fd);
        return -1;
    }
    size_t cap = 65536, n = 0;
    char *buf = malloc(cap + 1);
    for (;;) {
        if (!buf) break;
        if (n == cap) {
            char *nb = realloc(buf, cap * 2 + 1);
            if (!nb) { free(buf); buf = NULL; break; }
            buf = nb;
            cap *= 2;
        }
        ssize_t k = recv(fd, buf + n, cap - n, 0);
        if (k < 0 && errno == EINTR) continue;
        if (k <= 0) break;
        n += (size_t)k;
    }
    close(fd);
    if (!buf) return -1;
    buf[n] = 0;
    char *hend = strstr(buf, "\r\n\r\n");
    if (!hend || sscanf(buf, "HTTP/%*d.%*d %d", &resp->status) != 1) {
        fprintf(stderr, "nuage batch: malformed HTTP response\n");
        free(buf);
        return -1;
    }
    *hend = 0;
    bool chunked = false;
    for (char *h = strstr(buf, "\r\n"); h && *h; h = strstr(h + 2, "\r\n")) {
        if (!strncasecmp(h + 2, "transfer-encoding:", 18) && strcasestr(h + 2, "chunked")) chunked = true;
    }
    char *b = hend + 4;
    size_t bl = n - (size_t)(b - buf);
    if (chunked) {
        long d = nuage__bc_dechunk(b, bl);
        if (d < 0) {
            fprintf(stderr, "nuage batch: malformed chunked response\n");
            free(buf);
            return -1;
        }
        bl = (size_t)d;
    }
    resp->body = malloc(bl + 1);
    if (!resp->body) {
        free(buf);
        return -1;
    }
    memcpy(resp->body, b, bl);
    resp->body[bl] = 0;
    resp->len = bl;
    free(buf);
    return 0;
}

/* JSON request/answer; NULL (message printed) unless 2xx. */
static json_t *nuage__bc_json(const nuage__bc *c, const char *method, const char *path, json_t *body) {
    char *text = body ? json_dumps(body, JSON_COMPACT) : NULL;
    nuage__bresp r;
    int rc = nuage__bc_request(c, method, path, body ? "application/json" : NULL, text, text ? strlen(text) : 0, &r);
    free(text);
    if (rc) return NULL;
    json_t *j = json_loadb(r.body, r.len, 0, NULL);
    if (r.status < 200 || r.status >= 300) {
        const char *msg = json_string_value(json_object_get(json_object_get(j, "error"), "message"));
        fprintf(stderr, "nuage batch: %s %s: HTTP %d: %s\n", method, path, r.status, msg ? msg : r.body);
        json_decref(j);
        j = NULL;
    } else if (!j) {
        fprintf(stderr, "nuage batch: %s %s: the answer is not JSON\n", method, path);
    }
    free(r.body);
    return j;
}

/* ---- commands --------------------------------------------------------------------------------- */

static char *nuage__bc_read_file(const char *path, size_t *len) {
    FILE *f = fopen(path, "rb");
    if (!f) return NULL;
    size_t cap = 1 << 16, n = 0;
    char *b = malloc(cap);
    while (b) {
        if (n == cap) {
            char *nb = realloc(b, cap * 2);
            if (!nb) { free(b); b = NULL; break; }
            b = nb;
            cap *= 2;
        }
        size_t k = fread(b + n, 1, cap - n, f);
        n += k;
        if (k == 0) break;
    }
    fclose(f);
    *len = n;
    return b;
}

static bool nuage__bc_terminal(const char *s) {
    return !strcmp(s, "completed") || !strcmp(s, "failed") || !strcmp(s, "cancelled") || !strcmp(s, "expired");
}

/* Poll batch id until it ends, drawing progress on stderr. Returns the
 * final batch object or NULL. */
static json_t *nuage__bc_wait(const nuage__bc *c, const char *id) {
    char path[128];
    snprintf(path, sizeof path, "/v1/batches/%s", id);
    bool tty = isatty(2);
    char last[160] = "";
    for (;;) {
        json_t *b = nuage__bc_json(c, "GET", path, NULL);
        if (!b) return NULL;
        const char *st = json_string_value(json_object_get(b, "status"));
        json_t *rc = json_object_get(b, "request_counts");
        long long tot = json_integer_value(json_object_get(rc, "total"));
        long long done = json_integer_value(json_object_get(rc, "completed"));
        long long fail = json_integer_value(json_object_get(rc, "failed"));
        int width = 30, fill = tot > 0 ? (int)((done + fail) * width / tot) : 0;
        char bar[64];
        for (int i = 0; i < width; i++) bar[i] = i < fill ? '#' : '.';
        bar[width] = 0;
        char line[160];
        snprintf(line, sizeof line, "[%s] %lld/%lld lines, %lld failed  %s", bar, done + fail, tot, fail,
                 st ? st : "?");
        if (tty) fprintf(stderr, "\r%s   ", line);
        else if (strcmp(line, last)) fprintf(stderr, "%s\n", line);
        snprintf(last, sizeof last, "%s", line);
        if (st && nuage__bc_terminal(st)) {
            if (tty) fprintf(stderr, "\n");
            return b;
        }
        json_decref(b);
        struct timespec ts = {0, 300000000L};
        nanosleep(&ts, NULL);
    }
}

/* Write file id's content to out (NULL/"-": stdout). 0 or 1. */
static int nuage__bc_download_file(const nuage__bc *c, const char *file_id, const char *out) {
    char path[128];
    snprintf(path, sizeof path, "/v1/files/%s/content", file_id);
    nuage__bresp r;
    if (nuage__bc_request(c, "GET", path, NULL, NULL, 0, &r)) return 1;
    if (r.status != 200) {
        fprintf(stderr, "nuage batch: GET %s: HTTP %d: %s\n", path, r.status, r.body);
        free(r.body);
        return 1;
    }
    FILE *f = out && strcmp(out, "-") ? fopen(out, "wb") : stdout;
    if (!f) {
        free(r.body);
        return nuage_cli_fail(CMD, 1, "cannot write %s", out);
    }
    size_t w = fwrite(r.body, 1, r.len, f);
    int bad = w != r.len;
    if (f != stdout) bad |= fclose(f) != 0;
    else fflush(stdout);
    free(r.body);
    if (bad) return nuage_cli_fail(CMD, 1, "cannot write %s", out ? out : "stdout");
    return 0;
}

static void nuage__bc_usage(FILE *f) {
    fprintf(f,
            "usage: nuage batch submit FILE.jsonl [--deployment D] [--endpoint /v1/chat/completions]\n"
            "                          [--window 24h] [--no-wait] [--out FILE]\n"
            "       nuage batch status ID [--wait] [--json]\n"
            "       nuage batch download ID [--out FILE] [--errors]\n"
            "       nuage batch cancel ID\n"
            "  --url URL    server (default $NUAGE_URL, else http://127.0.0.1:8080)\n"
            "  --key KEY    API key (default $NUAGE_API_KEY)\n"
            "FILE.jsonl has one request per line: {\"custom_id\": ..., \"method\": \"POST\",\n"
            "\"url\": \"/v1/chat/completions\", \"body\": {...}} (the OpenAI Batch API format).\n");
}

int nuage_cmd_batch(int argc, char **argv) {
    if (argc < 2 || !strcmp(argv[1], "-h") || !strcmp(argv[1], "--help")) {
        nuage__bc_usage(argc < 2 ? stderr : stdout);
        return argc < 2 ? 2 : 0;
    }
    const char *sub = argv[1];
    const char *url = getenv("NUAGE_URL"), *key = getenv("NUAGE_API_KEY");
    const char *dep = NULL, *endpoint = "/v1/chat/completions", *window = "24h", *out = NULL, *arg = NULL;
    bool no_wait = false, wait = false, as_json = false, errors = false;
    for (int i = 2; i < argc; i++) {
        const char *a = argv[i];
        bool has = i + 1 < argc;
        if (!strcmp(a, "--url") && has) url = argv[++i];
        else if (!strcmp(a, "--key") && has) key = argv[++i];
        else if (!strcmp(a, "--deployment") && has) dep = argv[++i];
        else if (!strcmp(a, "--endpoint") && has) endpoint = argv[++i];
        else if (!strcmp(a, "--window") && has) window = argv[++i];
        else if (!strcmp(a, "--out") && has) out = argv[++i];
        else if (!strcmp(a, "--no-wait")) no_wait = true;
        else if (!strcmp(a, "--wait")) wait = true;
        else if (!strcmp(a, "--json")) as_json = true;
        else if (!strcmp(a, "--errors")) errors = true;
        else if (a[0] != '-' && !arg) arg = a;
        else return nuage_cli_fail(CMD, 2, "unknown or incomplete option '%s' (see nuage batch --help)", a);
    }
    if (!arg) return nuage_cli_fail(CMD, 2, "%s needs an argument (see nuage batch --help)", sub);
    nuage__bc c;
    memset(&c, 0, sizeof c);
    c.key = key && *key ? key : NULL;
    if (nuage__bc_parse_url(&c, url && *url ? url : "http://127.0.0.1:8080"))
        return nuage_cli_fail(CMD, 2, "--url must look like http://HOST:PORT");

    if (!strcmp(sub, "submit")) {
        size_t len;
        char *data = nuage__bc_read_file(arg, &len);
        if (!data) return nuage_cli_fail(CMD, 1, "cannot read %s", arg);
        /* multipart body: purpose, then the file */
        char boundary[64];
        snprintf(boundary, sizeof boundary, "nuage-batch-%lx%lx", (long)getpid(), (long)time(NULL));
        const char *base = strrchr(arg, '/') ? strrchr(arg, '/') + 1 : arg;
        char head[1024];
        int hn = snprintf(head, sizeof head,
                          "--%s\r\nContent-Disposition: form-data; name=\"purpose\"\r\n\r\nbatch\r\n"
                          "--%s\r\nContent-Disposition: form-data; name=\"file\"; filename=\"%.200s\"\r\n"
                          "Content-Type: application/jsonl\r\n\r\n",
                          boundary, boundary, base);
        char tail[96];
        int tn = snprintf(tail, sizeof tail, "\r\n--%s--\r\n", boundary);
        size_t blen = (size_t)hn + len + (size_t)tn;
        char *body = malloc(blen);
        if (!body) {
            free(data);
            return nuage_cli_fail(CMD, 1, "out of memory");
        }
        memcpy(body, head, (size_t)hn);
        memcpy(body + hn, data, len);
        memcpy(body + hn + len, tail, (size_t)tn);
        free(data);
        char ctype[128];
        snprintf(ctype, sizeof ctype, "multipart/form-data; boundary=%s", boundary);
        nuage__bresp r;
        int rc = nuage__bc_request(&c, "POST", "/v1/files", ctype, body, blen, &r);
        free(body);
        if (rc) return 1;
        json_t *f = json_loadb(r.body, r.len, 0, NULL);
        const char *fid = json_string_value(json_object_get(f, "id"));
        if (r.status != 200 || !fid) {
            fprintf(stderr, "nuage batch: upload failed: HTTP %d: %s\n", r.status, r.body);
            free(r.body);
            json_decref(f);
            return 1;
        }
        free(r.body);
        json_t *req = json_pack("{s:s, s:s, s:s}", "input_file_id", fid, "endpoint", endpoint, "completion_window",
                                window);
        if (dep) json_object_set_new(req, "deployment", json_string(dep));
        json_t *b = nuage__bc_json(&c, "POST", "/v1/batches", req);
        json_decref(req);
        json_decref(f);
        if (!b) return 1;
        const char *id = json_string_value(json_object_get(b, "id"));
        printf("%s\n", id ? id : "?");
        fflush(stdout);
        if (no_wait || !id) {
            json_decref(b);
            return id ? 0 : 1;
        }
        json_t *fin = nuage__bc_wait(&c, id);
        json_decref(b);
        if (!fin) return 1;
        const char *st = json_string_value(json_object_get(fin, "status"));
        int code = st && !strcmp(st, "completed") ? 0 : 1;
        const char *ofid = json_string_value(json_object_get(fin, "output_file_id"));
        if (out && ofid) code |= nuage__bc_download_file(&c, ofid, out);
        json_decref(fin);
        return code;
    }
    char path[160];
    snprintf(path, sizeof path, "/v1/batches/%.100s", arg);
    if (!strcmp(sub, "status")) {
        json_t *b = wait ? nuage__bc_wait(&c, arg) : nuage__bc_json(&c, "GET", path, NULL);
        if (!b) return 1;
        if (as_json) {
            char *t = json_dumps(b, JSON_INDENT(2));
            printf("%s\n", t ? t : "");
            free(t);
        } else {
            json_t *rc = json_object_get(b, "request_counts");
            const char *of = json_string_value(json_object_get(b, "output_file_id"));
            const char *ef = json_string_value(json_object_get(b, "error_file_id"));
            printf("%s %s: %lld/%lld completed, %lld failed%s%s%s%s\n", arg,
                   json_string_value(json_object_get(b, "status")),
                   (long long)json_integer_value(json_object_get(rc, "completed")),
                   (long long)json_integer_value(json_object_get(rc, "total")),
                   (long long)json_integer_value(json_object_get(rc, "failed")), of ? ", output " : "",
                   of ? of : "", ef ? ", errors " : "", ef ? ef : "");
        }
        json_decref(b);
        return 0;
    }
    if (!strcmp(sub, "download")) {
        json_t *b = nuage__bc_json(&c, "GET", path, NULL);
        if (!b) return 1;
        const char *fid = json_string_value(json_object_get(b, errors ? "error_file_id" : "output_file_id"));
        int code;
        if (!fid) code = nuage_cli_fail(CMD, 1, "batch %s has no %s file (status %s)", arg, errors ? "error" : "output",
                                        json_string_value(json_object_get(b, "status")));
        else code = nuage__bc_download_file(&c, fid, out);
        json_decref(b);
        return code;
    }
    if (!strcmp(sub, "cancel")) {
        char cp[180];
        snprintf(cp, sizeof cp, "%s/cancel", path);
        json_t *b = nuage__bc_json(&c, "POST", cp, NULL);
        if (!b) return 1;
        printf("%s %s\n", arg, json_string_value(json_object_get(b, "status")));
        json_decref(b);
        return 0;
    }
    return nuage_cli_fail(CMD, 2, "unknown subcommand '%s' (submit, status, download, cancel)", sub);
}
