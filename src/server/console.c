/*
 * console.c - serves the web console (Playground, Usage, Operations) that
 * `nuage serve` shows at / unless --no-console.
 *
 * The console is a handful of static files (console/ in the source tree:
 * index.html, ES modules, CSS and the vendored uPlot) that the build turns
 * into byte arrays (scripts/embed_console.cmake -> console_assets.c), so
 * a single binary serves everything with no network at run time. The page
 * itself talks to the server only through the public HTTP API with the
 * key the user typed in (sent as a bearer header; no cookies, so no
 * CSRF): the files served here are public and hold no secrets, which is
 * why they are answered before authentication.
 *
 * Paths: GET / is index.html; GET /console/<file> is that file; any other
 * /console/... is 404. Other methods get 405 (Allow: GET, HEAD).
 *
 * Headers. Every answer carries a strict Content-Security-Policy
 * (default-src 'self': no inline script or style, no other origin, no
 * framing), X-Content-Type-Options: nosniff, Referrer-Policy: no-referrer.
 * File names carry no hash, so nothing is cached blindly: Cache-Control
 * is no-cache with a strong ETag (the content's SHA-256 prefix) and
 * If-None-Match answers 304, so a reload costs a round trip but no bytes,
 * and an upgraded binary is picked up at once.
 */
#include <stdlib.h>
#include <string.h>

#include <microhttpd.h>

#include "server/console.h"
#include "server/http.h"

#define NUAGE__CSP                                                                                      \
    "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; connect-src 'self'; " \
    "base-uri 'none'; form-action 'none'; frame-ancestors 'none'"

/* The security and caching headers of every console answer (static). */
static void nuage__console_headers(nuage__hresp *r, const char *etag) {
    int k = 0;
    r->headers[k++] = "Content-Security-Policy";
    r->headers[k++] = NUAGE__CSP;
    r->headers[k++] = "X-Content-Type-Options";
    r->headers[k++] = "nosniff";
    r->headers[k++] = "Referrer-Policy";
    r->headers[k++] = "no-referrer";
    r->headers[k++] = "X-Frame-Options";
    r->headers[k++] = "DENY";
    r->headers[k++] = MHD_HTTP_HEADER_CACHE_CONTROL;
    r->headers[k++] = "no-cache";
    if (etag) {
        r->headers[k++] = MHD_HTTP_HEADER_ETAG;
        r->headers[k++] = etag;
    }
    r->headers[k] = NULL;
}

/* Does the If-None-Match header list etag (or "*")? */
static bool nuage__etag_matches(const char *inm, const char *etag) {
    if (!inm) return false;
    size_t el = strlen(etag);
    for (const char *p = inm; *p;) {
        while (*p == ' ' || *p == ',') p++;
        if (!strncmp(p, "W/", 2)) p += 2;
        if (*p == '*') return true;
        if (!strncmp(p, etag, el) && (p[el] == 0 || p[el] == ',' || p[el] == ' ')) return true;
        while (*p && *p != ',') p++;
    }
    return false;
}

bool nuage__console_serve(nuage__hreq *q, nuage__hresp *r, const char *url, const char **allow) {
    bool root = !strcmp(url, "/") || !strcmp(url, "/index.html");
    if (!root && strcmp(url, "/console") && strncmp(url, "/console/", 9)) return false;
    const char *want = root || !strcmp(url, "/console") || !strcmp(url, "/console/") ? "/console/index.html" : url;
    if (strcmp(q->method, "GET") && strcmp(q->method, "HEAD")) {
        *allow = "GET, HEAD";
        nuage__resp_error(r, 405, "invalid_request_error", "method_not_allowed", NULL,
                          "Method %s is not allowed on the console's files (use GET).", q->method);
        nuage__console_headers(r, NULL);
        return true;
    }
    const nuage__console_asset *a = NULL;
    for (const nuage__console_asset *x = nuage__console_assets; x->path; x++)
        if (!strcmp(x->path, want)) {
            a = x;
            break;
        }
    if (!a) {
        nuage__resp_error(r, 404, "invalid_request_error", "not_found", NULL, "No console file %.200s.", q->path);
        nuage__console_headers(r, NULL);
        return true;
    }
    nuage__console_headers(r, a->etag);
    const char *inm = MHD_lookup_connection_value(q->conn, MHD_HEADER_KIND, MHD_HTTP_HEADER_IF_NONE_MATCH);
    if (nuage__etag_matches(inm, a->etag)) {
        r->status = 304;
        r->content_type = a->content_type;
        return true;
    }
    /* A copy: the response frees its body (the files are small). */
    r->body = malloc(a->size + 1);
    if (!r->body) {
        nuage__resp_error(r, 500, "server_error", NULL, NULL, "out of memory");
        return true;
    }
    memcpy(r->body, a->data, a->size + 1);
    r->len = a->size;
    r->status = 200;
    r->content_type = a->content_type;
    return true;
}
