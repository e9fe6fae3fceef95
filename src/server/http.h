/*
 * http.h - the OpenAI-compatible HTTP server (`nuage serve`).
 *
 * Public part (used by tools/cmd_serve.c): create a server that listens at
 * once (GET /health answers 503 "loading" while the model loads), attach
 * the deployments when they are ready -- either one model and scheduler
 * (nuage_server_set_ready, `nuage serve -m`) or the platform: a deployment
 * registry, the store (tenants, keys, usage) and the rate limiter
 * (nuage_server_attach) --, stop accepting generation work before draining
 * the schedulers, free.
 *
 * Internal part (nuage__*): what http.c gives the endpoint files
 * api_*.c: the request and response objects, the streaming interface, the
 * generation job shared by chat and completions (api_gen.c), and the text
 * filters of reasoning.c.
 */
#ifndef NUAGE_SERVER_HTTP_H
#define NUAGE_SERVER_HTTP_H

#include <jansson.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "engine/clock.h"
#include "nuage/nuage.h"
#include "nuage/template.h"
#include "nuage/tokenizer.h"
#include "platform/auth.h"
#include "platform/deploy.h"
#include "platform/quota.h"
#include "platform/store.h"
#include "server/metrics.h"
#include "runtime/sched.h"
#include "runtime/validate.h"

/* ======================= public: the server object ======================= */

typedef struct nuage_server nuage_server;

typedef struct {
    const char *host;        /* address to bind (default "127.0.0.1") */
    int port;                /* 0: a free port (see nuage_server_port) */
    size_t max_body;         /* request body limit in bytes (default 8 MiB); more: 413 */
    int idle_timeout_s;      /* idle keep-alive / slow client timeout (default 60) */
    int max_n;               /* largest `n` accepted (default 8; also <= --parallel) */
    int max_tokens_default;  /* cap of the default max_tokens (default 4096) */
    const char *model_id;    /* deployment name for nuage_server_set_ready (default "model") */
    const char *model_path;  /* also accepted as a model name (may be NULL) */
    bool log_requests;       /* one line per request on stderr (default true) */
    /* connection limits (http_guard.c); 0: the default */
    int max_connections;     /* open connections; beyond, the oldest idle is shed (default 16384,
                                lowered to fit RLIMIT_NOFILE, which is raised to its hard limit) */
    int max_per_ip;          /* connections from one address (default 256) */
    int head_timeout_s;      /* whole request head, from connection or last answer (default 10) */
    int body_timeout_s;      /* request body: this plus 1 s per MiB received (default 30) */
    int threads;             /* event loop threads (default 2) */
    int64_t response_retention_s; /* stored Responses API responses kept this long (0: 30 days) */
    const char *replica_id;  /* x-nuage-replica on every answer (NULL/"": "HOSTNAME:PORT", real port) */
    bool no_console;         /* do not serve the web console at / (--no-console) */
} nuage_server_params;

/* What nuage_server_attach plugs in (the hosting platform). */
typedef struct {
    nuage_registry *registry;  /* deployments (required; not owned) */
    nuage_store *store;        /* tenants, keys, usage (may be NULL: no keys, no metering) */
    nuage_quota *quota;        /* rate limiter (may be NULL: no limits) */
    bool insecure;             /* no store: run open on a non-loopback address (--insecure) */
    bool no_auth;              /* --no-auth: open with a store (refused off loopback) */
    const char *models_dir;    /* canonical folder that admin-API model paths must be in
                                * (NULL: POST /admin/deployments cannot load model files) */
    const char *store_path;    /* the store's database file (never loadable as a model) */
    /* POST /admin/reload: re-read the configuration file (may be NULL: 404).
     * 0 with a summary, or a negative code with a message. */
    int (*reload)(void *ud, char *summary, size_t slen, char *err, size_t elen);
    void *reload_ud;
} nuage_server_platform;

nuage_server_params nuage_server_default_params(void);

/* Bind and start serving (health: loading). 0 and *out, or a negative code
 * with a message (address in use, bad host, ...). */
int nuage_server_new(const nuage_server_params *p, nuage_server **out, char *err, size_t errlen);
/* The port actually bound. */
int nuage_server_port(const nuage_server *s);
/* The model is loaded and the scheduler runs: serve them as the one
 * deployment p.model_id (p.model_path also accepted as its name), with
 * no store: auth off (the server must be bound to loopback), no quotas, no
 * metering. The chat template is parsed (ChatML when the model has none or
 * its own does not parse; a warning is written to stderr then). m and sched
 * stay owned by the caller and must outlive nuage_server_free. 0 or a
 * negative code. */
int nuage_server_set_ready(nuage_server *s, const nuage_model *m, nuage_sched *sched,
                           char *err, size_t errlen);
/* Serve the deployments of pf->registry with the store and quotas of pf,
 * and start answering. Everything in pf must outlive nuage_server_free.
 * 0, or NUAGE_E_STATE when the server is bound to a non-loopback address
 * with pf->no_auth, or with no store and pf->insecure false (refuse to
 * start). With a store, keys are always required unless pf->no_auth. */
int nuage_server_attach(nuage_server *s, const nuage_server_platform *pf, char *err, size_t errlen);
/* Shutting down: new generation requests get 503, streams in flight go on. */
void nuage_server_set_stopping(nuage_server *s);
/* Wait until no request is in progress (streams included) or timeout_ms
 * passed; returns the number still in progress. Call after draining the
 * scheduler so that finished streams get their last bytes out. */
int nuage_server_wait_idle(nuage_server *s, int timeout_ms);
/* Wait (up to 30 s) for the request worker threads, close the listening
 * socket and every connection, free. Call after nuage_sched_drain, before
 * freeing the scheduler. */
void nuage_server_free(nuage_server *s);

/* ======================= internal ========================================== */

enum { NUAGE__STATE_LOADING = 0, NUAGE__STATE_READY = 1, NUAGE__STATE_STOPPING = 2 };

typedef struct nuage__hreq nuage__hreq;
typedef struct nuage__hresp nuage__hresp;
typedef struct nuage__fupload nuage__fupload;

/* ---- connection guard (http_guard.c) ---- */
typedef struct nuage__guard nuage__guard;
typedef struct nuage__conn nuage__conn;
enum { NUAGE__CONN_HEAD = 0, NUAGE__CONN_BODY, NUAGE__CONN_BUSY, NUAGE__CONN_IDLE };
typedef struct {
    int max_conns, head_s, body_s, idle_s;
} nuage__guard_params;
/* Start the guard and its sweeper thread. 0 or NUAGE_E_NOMEM. */
int nuage__guard_new(const nuage__guard_params *p, nuage__guard **out);
/* Stop the sweeper, free every record. Call after the daemon stopped. */
void nuage__guard_free(nuage__guard *g);
/* A connection on fd opened (state HEAD); may shed the oldest idle one.
 * Returns its record (NULL without memory: fd is then shut down). */
nuage__conn *nuage__guard_open(nuage__guard *g, int fd);
/* c closed: forget and free it (NULL: nothing). */
void nuage__guard_close(nuage__guard *g, nuage__conn *c);
/* c enters state (restarts its deadline); NULL: nothing. */
void nuage__guard_state(nuage__guard *g, nuage__conn *c, int state);
/* n more body bytes arrived on c (extends the body deadline). */
void nuage__guard_body(nuage__guard *g, nuage__conn *c, size_t n);
/* Connections open / shed or timed out so far. */
int nuage__guard_count(nuage__guard *g);
uint64_t nuage__guard_shed_total(nuage__guard *g);
/* A handler added with nuage_server_add_route: sub is the rest of the
 * path after the prefix ("" or "/..."). */
typedef void (*nuage__route_fn)(nuage__hreq *q, nuage__hresp *r, const char *sub);

#define NUAGE__MAX_EXT_ROUTES 8

struct nuage_server {
    nuage_server_params p;
    char *model_id, *model_path;     /* owned copies */
    struct MHD_Daemon *daemon;
    int port;
    _Atomic int state;
    bool loopback;                   /* bound to a loopback address */
    /* set when ready (read-only afterwards) */
    nuage_registry *reg;             /* deployments */
    bool own_reg;                    /* created by nuage_server_set_ready */
    nuage_store *store;              /* may be NULL */
    nuage_quota *quota;              /* may be NULL */
    nuage_auth *auth;                /* owned */
    nuage_server_platform pf;
    struct {
        char prefix[64];
        nuage__route_fn fn;
    } ext[NUAGE__MAX_EXT_ROUTES];    /* files, batches (other modules) */
    int n_ext;
    nuage__metrics metrics;
    _Atomic uint64_t id_counter;
    _Atomic int active;              /* requests between arrival and completion */
    _Atomic int workers;             /* request worker threads running */
    nuage__guard *guard;             /* connection deadlines and cap (owned) */
    uint64_t id_salt;
    char replica_id[128];            /* x-nuage-replica (cluster deployments, docs/cluster.md) */
    /* api_responses.c: the private store of stored responses when the
     * server has no store (a temporary file, removed by nuage_server_free) */
    nuage_store *rsp_store;
    char rsp_dir[256];
};

/* Route requests under prefix ("/v1/files": also "/v1/files/...") to fn,
 * after authentication (q->auth holds the caller). For endpoint modules
 * outside http.c; call before the server is ready. 0 or NUAGE_E_NOMEM
 * (table full). */
int nuage_server_add_route(nuage_server *s, const char *prefix, nuage__route_fn fn);

/* One HTTP request (MHD's per-request context). */
typedef struct nuage__gen nuage__gen;
struct nuage__hreq {
    nuage_server *srv;
    struct MHD_Connection *conn;
    int fd;                       /* the connection's socket (client-gone checks) */
    char method[8];
    char path[256];               /* URL path, truncated for logging/routing */
    char *body;                   /* NUL-terminated upload */
    size_t len, cap;
    bool too_large;
    size_t dropped;               /* body bytes dropped after the limit */
    bool upload_failed;           /* the streamed upload stopped (too large / malformed) */
    bool raw_answered;            /* 413 written directly mid-body (chunked over the limit) */
    double t0;                    /* monotonic seconds at arrival */
    int status;                   /* answered status (for the log) */
    nuage__gen *gen;              /* generation in flight (one reference), or NULL */
    int log_prompt, log_completion;
    /* platform */
    nuage_auth_ctx auth;          /* the caller (anonymous tenant 0 when auth is off) */
    nuage_deployment *dep;        /* the deployment serving it (one reference), or NULL */
    nuage_quota_info rl;          /* rate-limit state for the x-ratelimit-* headers */
    bool has_rl;
    int priority;                 /* scheduler priority of its generation (1: batch) */
    char router[64];              /* router deployment that chose q->dep ("" when none) */
    /* event-driven glue (http.c) */
    const char *url;              /* full URL path (libmicrohttpd's, valid until completion) */
    nuage__conn *cx;              /* the connection's guard record */
    bool http10;                  /* HTTP/1.0 request (no interim responses) */
    bool resp_ready;              /* the worker filled resp; the connection was resumed */
    nuage__hresp *resp;           /* the worker's answer (owned until sent) */
    const char *allow;            /* its Allow header (405) */
    int toe;                      /* how the request ended (libmicrohttpd's termination code) */
    struct nuage__fupload *upload; /* streamed upload of POST /v1/files (api_files.c), or NULL */
};
#define NUAGE__HREQ_HAS_PRIORITY 1

/* A streamed body: read blocks until it has bytes, then returns how many
 * it wrote (> 0), or -1 at the end, or -2 to abort the connection. close
 * is called exactly once when the response is done with (sent or not). */
typedef struct {
    ssize_t (*read)(void *self, char *buf, size_t max);
    void (*close)(void *self);
    void *self;
} nuage__stream;

/* A body of known size read piecewise as the client takes it (file
 * downloads), on the event loop: read returns the bytes written to buf
 * (1..max) or a negative value (failed: the connection is closed, the
 * client sees a short body); free is called exactly once, sent or not.
 * Embed it as the first member of the reader's own state. */
typedef struct nuage__source nuage__source;
struct nuage__source {
    ssize_t (*read)(nuage__source *self, uint64_t pos, char *buf, size_t max);
    void (*free)(nuage__source *self);
    uint64_t size;
};

/* What an endpoint answers. */
struct nuage__hresp {
    int status;
    char *body;                   /* malloc'd, owned by the response */
    size_t len;
    const char *content_type;     /* static; default application/json */
    int retry_after;              /* > 0: Retry-After header (seconds) */
    int64_t retry_after_ms;       /* > 0: retry-after-ms header */
    bool streaming;               /* body is `stream` (text/event-stream) */
    nuage__stream stream;
    nuage__source *source;        /* non-NULL: the body (owned; content_type applies) */
    const char *headers[16];      /* extra headers: name, value, ... (static strings), NULL-ended */
};

/* Fill r with j serialised compactly (steals j; 500 if it cannot). */
void nuage__resp_json(nuage__hresp *r, int status, json_t *j);
/* Fill r with the error e. */
void nuage__resp_apierr(nuage__hresp *r, const nuage__apierr *e);
/* Fill r with an error built in place. */
void nuage__resp_error(nuage__hresp *r, int status, const char *type, const char *code,
                       const char *param, const char *fmt, ...) __attribute__((format(printf, 6, 7)));
/* Parse the body as a JSON object; NULL with r filled with a 400 otherwise. */
json_t *nuage__hreq_json(nuage__hreq *q, nuage__hresp *r);
/* Whether the client of connection fd has left: a reset, an error, or a
 * failed write -- not end of file alone (a half-close: the client still
 * reads). On a request's worker thread, at end of file, it writes one
 * interim "HTTP/1.1 102 Processing" (HTTP/1.1, nothing answered yet) so
 * that a client that closed completely shows by a reset at the next call. */
bool nuage__client_gone(int fd);
/* Answer 503 (loading / shutting down) unless the server is ready. */
bool nuage__require_ready(nuage_server *s, nuage__hresp *r);
/* A fresh id "<prefix>-<24 hex>" in buf. */
void nuage__new_id(nuage_server *s, const char *prefix, char *buf, size_t cap);
/* nuage__now / nuage__wall_ms / nuage__mono_ms: engine/clock.h (base component). */

/*
 * The deployment of a request: body["model"] (absent: the default
 * deployment) must name a deployment the caller's key may use (else 404
 * model_not_found); a router deployment is resolved to the model
 * deployment it picks; the deployment's default sampling parameters are
 * copied into body where the request gives none. Sets q->dep (a
 * reference, released when the request completes) and returns it, or
 * NULL with r filled.
 */
nuage_deployment *nuage__use_deployment(nuage__hreq *q, json_t *body, nuage__hresp *r);
/* The same for a model name given directly (NULL: default); no router
 * resolution and no defaults. */
nuage_deployment *nuage__find_deployment(nuage__hreq *q, const char *name, nuage__hresp *r);

/* The Files and Batch APIs need the store: false, with r = 501, without. */
bool nuage__require_store(nuage__hreq *q, nuage__hresp *r);
/* Split a resource sub-path "/{id}" or "/{id}/{action}" (action one of
 * the '|'-separated names in `actions`, e.g. "cancel"): id into buf (cap
 * bytes), *action "" or the action. false, with r = 404, for anything
 * else. */
bool nuage__split_id(nuage__hreq *q, nuage__hresp *r, const char *sub, const char *actions,
                     char *id, size_t cap, const char **action);

/* Endpoints (api_*.c). Each fills r; none keeps q after returning except
 * through the stream it installs. */
void nuage__api_chat(nuage__hreq *q, nuage__hresp *r);
void nuage__api_completions(nuage__hreq *q, nuage__hresp *r);
void nuage__api_models(nuage__hreq *q, nuage__hresp *r, const char *id); /* id NULL: list */
void nuage__api_embeddings(nuage__hreq *q, nuage__hresp *r);
void nuage__api_tokenize(nuage__hreq *q, nuage__hresp *r);
void nuage__api_detokenize(nuage__hreq *q, nuage__hresp *r);
void nuage__api_health(nuage__hreq *q, nuage__hresp *r);
void nuage__api_metrics(nuage__hreq *q, nuage__hresp *r);
/* console.c: the web console's files (GET / and /console/...). true when
 * url is one of its paths (r then filled: the file, 304, 404 or 405). */
bool nuage__console_serve(nuage__hreq *q, nuage__hresp *r, const char *url, const char **allow);
/* api_admin_tenants.c: /admin/tenants, /admin/keys and /admin/stats (sub:
 * path after "/admin"); false when sub is none of them. */
bool nuage__api_admin_tenants(nuage__hreq *q, nuage__hresp *r, const char *sub);
/* api_responses.c: /v1/responses (sub: path after it) and its create. */
void nuage__api_responses(nuage__hreq *q, nuage__hresp *r, const char *sub);
void nuage__api_responses_create(nuage__hreq *q, nuage__hresp *r);
/* Wait for background responses, close and remove the private store. */
void nuage__responses_close(nuage_server *s);
/* api_admin.c: /admin/... (sub: path after "/admin") and GET /v1/usage. */
void nuage__api_admin(nuage__hreq *q, nuage__hresp *r, const char *sub);
void nuage__api_usage(nuage__hreq *q, nuage__hresp *r);
/* system_fingerprint of d's answers: its version label, else "nuage". */
const char *nuage__fingerprint(const nuage_deployment *d);
/* JSON object describing deployment d (api_models.c). */
json_t *nuage__deployment_object(const nuage_deployment *d, bool details);

/* ---- chat messages for a template (chat_prep.c) ---------------------------- */
/* Rewrite validated messages (nuage__parse_messages' copy) in place into
 * the shape template traits tr want: developer -> system without a
 * developer role, null assistant content -> "" unless the template tests
 * for none, tool-call arguments as an object or a string. 0 or
 * NUAGE_E_NOMEM. */
int nuage__messages_for_template(json_t *msgs, const nuage_template_traits *tr);
/* The extra template variables of a request: kw (chat_template_kwargs, may
 * be NULL) plus reasoning_effort = effort (the request's, already
 * validated; "none" / "minimal" become "low") when the template reads
 * that variable and kw does not set it. *out: a new reference (NULL when
 * none). 0 or NUAGE_E_NOMEM. */
int nuage__template_kwargs(json_t *kw, const char *effort, const nuage_template_traits *tr, json_t **out);

/* ---- structured outputs and tools (api_structured.c) ------------------------ */
typedef struct {
    int choice;               /* nuage_toolchoice (constrain/toolcall.h) */
    char named[72];           /* NAMED: the function */
    bool parallel;            /* parallel_tool_calls (default true) */
    bool tools_on;            /* tools given and tool_choice != none: calls are parsed */
    int fmt;                  /* nuage_toolfmt of the deployment */
    bool harmony;             /* the deployment speaks harmony (gpt-oss): its output is
                               * always parsed into channels, tools or not */
    json_t *tools;            /* the request's tools (a reference) when tools_on */
    char **names;             /* (n_names) declared function names, owned */
    size_t n_names;
    nuage_grammar *grammar;   /* the output constraint, or NULL (owned reference) */
    char **triggers;          /* lazy grammar: NULL-terminated trigger strings, owned; or NULL */
} nuage__structured;

/* tools / tool_choice / parallel_tool_calls of a chat body into st (zeroed
 * first; free it also after a failure). false with e filled (400 naming
 * the field). */
bool nuage__tools_parse(const nuage_deployment *d, json_t *body, nuage__structured *st, nuage__apierr *e);
/* GENERIC family: add the tool instruction to the messages' system prompt.
 * 0 or NUAGE_E_NOMEM. */
int nuage__tools_instruct(nuage__structured *st, json_t *msgs);
/* Build st->grammar (and triggers) from response_format, structured_outputs
 * / guided_* and st's tools; think_open: the prompt opened a reasoning
 * block (the grammar engages after "</think>"). false with e filled (400
 * with the field and, for schemas, the keyword's JSON pointer). */
bool nuage__structured_build(const nuage_deployment *d, json_t *body, bool think_open, nuage__structured *st,
                             nuage__apierr *e);
void nuage__structured_free(nuage__structured *st);
/* The deployment's tool-call family (tool_format, else detected). */
int nuage__resolve_toolfmt(const nuage_deployment *d);

/* ---- text filters (reasoning.c) ------------------------------------------ */
typedef struct {
    char *const *stops;  /* not owned */
    int n;
    nuage__sb pend;      /* held-back tail that may start a stop string */
    bool matched;
} nuage__stopper;

void nuage__stopper_init(nuage__stopper *s, char *const *stops, int n_stops);
/* Feed generated text; appends what is safe to show to out. Returns true
 * once a stop string matched (the text from it on is dropped). */
bool nuage__stopper_feed(nuage__stopper *s, const char *t, size_t n, nuage__sb *out);
/* End of output without a match: release the held tail to out. */
void nuage__stopper_flush(nuage__stopper *s, nuage__sb *out);
void nuage__stopper_free(nuage__stopper *s);

typedef struct {
    int state;
    nuage__sb hold;
} nuage__think;

/* open: the prompt already opened a <think> block. */
void nuage__think_init(nuage__think *t, bool open);
/* Route text to content or reasoning (see reasoning.c). */
void nuage__think_feed(nuage__think *t, const char *s, size_t n, nuage__sb *content,
                       nuage__sb *reasoning);
void nuage__think_flush(nuage__think *t, nuage__sb *content, nuage__sb *reasoning);
/* Currently inside a <think> block. */
bool nuage__think_inside(const nuage__think *t);
void nuage__think_free(nuage__think *t);
/* The rendered prompt ends with "<think>" (trailing whitespace ignored). */
bool nuage__prompt_opens_think(const char *prompt, size_t n);

/* ---- generation jobs (api_gen.c) -------------------------------------------- */

/* One parsed tool call of a choice (api_gen.c). */
typedef struct {
    char id[40];                  /* "call_" + 24 hex */
    char *name;                   /* owned */
    nuage__sb args;               /* arguments so far (streamed fragments) */
    char *final_args;             /* the whole compact JSON once complete, owned */
    size_t args_sent;             /* consumer: bytes of args streamed */
    bool head_sent;               /* consumer: id/type/name delta sent */
} nuage__gcall;

/* One choice's output, as far as it has been produced. */
typedef struct {
    nuage__sb text;               /* content so far (valid UTF-8) */
    nuage__sb reasoning;          /* reasoning_content so far */
    nuage_sched_token *toks;      /* (n_toks) per-token logprobs, when asked */
    int n_toks, cap_toks;
    int n_gen;                    /* tokens generated */
    int n_reasoning;              /* of which inside <think> */
    int finish;                   /* -1 running, else nuage_finish */
    /* scheduler thread only */
    nuage_detok *dt;
    nuage__stopper stop;
    nuage__think think;
    nuage__sb scratch;            /* stop-filtered text on its way to think */
    nuage__sb scratch2;           /* content on its way to the tool-call parser */
    struct nuage_toolparse *tp;   /* tool-call parser (tools on), scheduler thread */
    nuage__gcall *calls;          /* (n_calls) under mu */
    int n_calls, cap_calls;
    double t_last;                /* time of the previous token (ITL) */
    /* consumer side (HTTP thread only) */
    size_t text_sent, reasoning_sent;
    int toks_sent;
    size_t lp_offset;             /* legacy text_offset of the next token */
    bool role_sent, echo_sent, finish_sent;
} nuage__gchoice;

typedef struct {
    nuage__gen *gen;
    int index;                    /* prompt index */
    uint64_t id;                  /* scheduler id */
    bool submitted, complete;
    nuage_sched_usage usage;
    nuage_sched_token *ptoks;     /* prompt logprobs (echo), index 1..n_prompt-1 */
    int32_t *prompt;              /* owned copy of the prompt tokens */
    int n_prompt;
    int64_t max_tokens;           /* per choice, resolved at submit */
    char *echo_text;              /* completions echo: the prompt's text (owned) */
    size_t echo_len;
} nuage__gjob;

struct nuage__gen {
    nuage_server *srv;
    nuage_deployment *dep;        /* one reference, for the job's whole life */
    nuage_auth_ctx auth;          /* the caller (copy) */
    pthread_mutex_t mu;           /* leaf lock: never call the scheduler holding it */
    pthread_cond_t cv;
    int refs;
    int n_jobs, n_per;            /* prompts, choices per prompt */
    nuage__gjob *jobs;
    int n_choices;                /* n_jobs * n_per */
    nuage__gchoice *ch;
    int n_complete;               /* jobs complete */
    bool failed;                  /* an engine error ended a choice */
    char error[160];
    nuage__gen_params gp;         /* owned (stops) */
    bool reasoning;               /* split <think> (chat) */
    bool think_open;
    bool embedding;
    float **embd;                 /* (n_jobs) pooled embeddings, owned */
    int n_embd;
    double t_start;
    double t_arrival;             /* the HTTP request's arrival (latency) */
    char req_id[64];              /* response id, for the usage record */
    /* quota and metering */
    uint64_t ticket;              /* rate-limiter reservation (0: none) */
    nuage_quota_info rl;
    bool has_rl;
    int quota_rc;                 /* NUAGE_E_BUSY / NUAGE_E_RANGE when refused */
    bool admitted;                /* passed admission (a usage record is due) */
    int priority;                 /* scheduler priority (copied from the request) */
    int think_budget;             /* reasoning tokens allowed per choice; -1: no budget */
    bool finalized;               /* usage recorded, quota settled */
    nuage__structured st;         /* constraint and tools (owned) */
};

/*
 * Create a job for request q (its deployment q->dep, which must be set,
 * and caller q->auth) for n_jobs prompts (tokens copied) with the given
 * parameters (gp is moved into the job: the caller must not free it).
 * One reference for the caller. NULL on OOM.
 */
nuage__gen *nuage__gen_new(nuage__hreq *q, int n_jobs, int32_t *const *prompts,
                           const int *n_prompt, nuage__gen_params *gp, bool reasoning,
                           bool think_open, bool embedding);
/* Move st into g (st is zeroed): its grammar goes to the scheduler with
 * every prompt, and with tools on every choice gets a tool-call parser.
 * false on OOM (st then still moved: the job frees it). */
bool nuage__gen_set_structured(nuage__gen *g, nuage__structured *st);
/* nuage__gen_submit's code for "refused by the rate limiter" (429). */
#define NUAGE__E_QUOTA (-1000)

/*
 * Resolve max_tokens, pass the rate limiter (prompt + max_tokens
 * reserved) and submit every prompt with the caller's tenant, weight and
 * prefix-cache scope. 0, or NUAGE__E_QUOTA (not admitted; g->rl says why),
 * or the scheduler's error code of the first failure (the ones already
 * submitted are cancelled; their callbacks still release their
 * references; a failure after admission is recorded as usage with its
 * status). Copies the rate-limit state into q for the response headers.
 */
int nuage__gen_submit(nuage__gen *g, nuage__hreq *q);
/*
 * The job is over for the client (status: 200, 499 client gone, 500
 * engine error, 503 cancelled by shutdown): settle the rate-limiter
 * reservation with the tokens actually used and write the usage record
 * (durable when this returns). Once per job; no-op when not admitted.
 * Call with g->mu NOT held (it takes the store's lock).
 */
void nuage__gen_finish(nuage__gen *g, int status);
/* Wait up to timeout_ms for every job to complete; true when they did. */
bool nuage__gen_wait_done(nuage__gen *g, int timeout_ms);
/* Status for nuage__gen_finish of a job whose jobs all completed. */
int nuage__gen_status(nuage__gen *g);
/* Cancel every submitted, unfinished prompt (do not hold g->mu). */
void nuage__gen_cancel(nuage__gen *g);
/* Block until every job completed. If the client goes away meanwhile the
 * jobs are cancelled and false is returned (after they completed). */
bool nuage__gen_wait(nuage__gen *g, int fd);
void nuage__gen_ref(nuage__gen *g);
void nuage__gen_unref(nuage__gen *g);
/* Wait on g->cv (g->mu held) at most ms milliseconds. */
void nuage__gen_timedwait(nuage__gen *g, int ms);
/* Streamed bodies, between two waits (g->mu held): if the client on fd
 * has gone, cancel the generation, set *cancelled and return true with
 * g->mu released; else false with g->mu held again. */
bool nuage__gen_stream_gone(nuage__gen *g, int fd, bool *cancelled);
/* Copy up to max bytes of out from *off into buf and advance *off: the
 * byte count, -1 when nothing is left (end of stream), -2 when out ran
 * out of memory (abort the body). */
ssize_t nuage__gen_stream_take(nuage__sb *out, size_t *off, char *buf, size_t max);
/* A streamed body is closed: cancel the generation if it did not reach
 * its end (counted once: not again when cancelled already), then drop
 * the stream's reference to g. */
void nuage__gen_stream_close(nuage__gen *g, bool cancelled);
/* Fill e (and r's Retry-After) from a nuage__gen_submit error code. */
void nuage__sched_error(nuage__gen *g, int rc, int n_prompt, int64_t max_tokens,
                        nuage__apierr *e, nuage__hresp *r);
/* Tokenize text[0..n) into a malloc'd array, its length in *out_n; NULL
 * on OOM or tokenizer error (api_chat.c). */
int32_t *nuage__tokenize_alloc(const nuage_deployment *d, const char *text, size_t n,
                               bool add_special, bool parse_special, int *out_n);
/* A request's "prompt" / "input" (prompts.c): one token sequence per item. */
typedef struct {
    int n;
    int32_t **toks;       /* (n) token ids, owned */
    int *len;             /* (n) */
    const char **text;    /* (n) string items: their text in the body, else NULL */
    size_t *text_len;     /* (n) */
    bool empty_text_ok;   /* "" allowed (it tokenizes to BOS alone) */
} nuage__prompts;
/* Parse body[param] ("prompt" / "input": a string, strings, token ids or
 * token-id arrays) into p: at most max items, each within the context and
 * with at least one token (an empty string only when empty_text_ok).
 * false with e filled; p is then still to be freed. */
bool nuage__prompts_parse(const nuage_deployment *d, json_t *body, const char *param, int max,
                          bool empty_text_ok, nuage__prompts *p, nuage__apierr *e);
void nuage__prompts_free(nuage__prompts *p);
/* Text of a token for logprobs (special tokens rendered). */
size_t nuage__token_piece(const nuage_deployment *d, int32_t tok, char *buf, size_t cap);

/* Streaming response over a job (api_gen.c): chat = chat.completion.chunk
 * events, else text_completion. Takes one reference on g. */
typedef struct nuage__sse nuage__sse;
nuage__stream nuage__sse_new(nuage__gen *g, int fd, bool chat, const char *id, int64_t created,
                             bool *ok);
/* Answer a submitted generation: an SSE stream, or wait and send the
 * JSON body built by `build` (499 if the client left, 500 on an engine
 * error). Shared by chat and completions (api_gen.c). */
void nuage__gen_respond(nuage__gen *g, nuage__hreq *q, nuage__hresp *r, bool chat, const char *id,
                        json_t *(*build)(nuage__gen *g, const char *id, int64_t created));
/* Usage object of a finished job (chat adds completion_tokens_details). */
json_t *nuage__gen_usage(nuage__gen *g, bool chat);
/* finish_reason text: "stop" / "length" (NULL for cancelled / error). */
const char *nuage__finish_text(int finish);
/* finish_reason of a choice: "tool_calls" when it stopped after calls. */
const char *nuage__choice_finish_text(const nuage__gchoice *c);
/* message.tool_calls of a choice (complete calls). New reference. */
json_t *nuage__tool_calls_json(const nuage__gchoice *c);
/* Chat logprobs object {"content": [...]} for tokens t[0..n). */
json_t *nuage__chat_logprobs(nuage__gen *g, const nuage_sched_token *t, int n);
/* Legacy completions logprobs for tokens t[0..n) (ptoks: NULL entries
 * allowed for the first prompt token), text offsets from *offset on. */
json_t *nuage__legacy_logprobs(nuage__gen *g, const int32_t *ids, const nuage_sched_token *t,
                               int n, bool first_null, size_t *offset, json_t *into);

#endif
