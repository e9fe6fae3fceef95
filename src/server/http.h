/*
 * http.h - the OpenAI-compatible HTTP server (`nuage serve`).
 *
 * Public part (used by tools/cmd_serve.c): create a server that listens at
 * once (GET /health answers 503 "loading" while the model loads), attach
 * the model and scheduler when they are ready, stop accepting generation
 * work before draining the scheduler, free.
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

#include "nuage/nuage.h"
#include "nuage/template.h"
#include "nuage/tokenizer.h"
#include "server/metrics.h"
#include "server/sched.h"
#include "server/validate.h"

/* ======================= public: the server object ======================= */

typedef struct nuage_server nuage_server;

typedef struct {
    const char *host;        /* address to bind (default "127.0.0.1") */
    int port;                /* 0: a free port (see nuage_server_port) */
    size_t max_body;         /* request body limit in bytes (default 8 MiB); more: 413 */
    int idle_timeout_s;      /* idle keep-alive / slow client timeout (default 60) */
    int max_n;               /* largest `n` accepted (default 8; also <= --parallel) */
    int max_tokens_default;  /* cap of the default max_tokens (default 4096) */
    const char *model_id;    /* id reported by /v1/models (required before ready) */
    const char *model_path;  /* also accepted as a model name (may be NULL) */
    bool log_requests;       /* one line per request on stderr (default true) */
} nuage_server_params;

nuage_server_params nuage_server_default_params(void);

/* Bind and start serving (health: loading). 0 and *out, or a negative code
 * with a message (address in use, bad host, ...). */
int nuage_server_new(const nuage_server_params *p, nuage_server **out, char *err, size_t errlen);
/* The port actually bound. */
int nuage_server_port(const nuage_server *s);
/* The model is loaded and the scheduler runs: parse the chat template
 * (ChatML when the model has none or its own does not parse; a warning is
 * written to stderr then) and start answering. m and sched stay owned by
 * the caller and must outlive nuage_server_free. 0 or NUAGE_E_NOMEM. */
int nuage_server_set_ready(nuage_server *s, const nuage_model *m, nuage_sched *sched,
                           char *err, size_t errlen);
/* Shutting down: new generation requests get 503, streams in flight go on. */
void nuage_server_set_stopping(nuage_server *s);
/* Wait until no request is in progress (streams included) or timeout_ms
 * passed; returns the number still in progress. Call after draining the
 * scheduler so that finished streams get their last bytes out. */
int nuage_server_wait_idle(nuage_server *s, int timeout_ms);
/* Close the listening socket, wait for every connection thread, free. Call
 * after nuage_sched_drain, before freeing the scheduler. */
void nuage_server_free(nuage_server *s);

/* ======================= internal ========================================== */

enum { NUAGE__STATE_LOADING = 0, NUAGE__STATE_READY = 1, NUAGE__STATE_STOPPING = 2 };

struct nuage_server {
    nuage_server_params p;
    char *model_id, *model_path;     /* owned copies */
    struct MHD_Daemon *daemon;
    int port;
    _Atomic int state;
    const nuage_model *m;            /* set when ready */
    const nuage_vocab *voc;
    nuage_sched *sched;
    nuage_template *tmpl;
    char *bos_text, *eos_text;       /* owned; NULL when the vocab has none */
    int n_ctx, n_vocab, n_embd;
    int max_n;
    nuage__metrics metrics;
    _Atomic uint64_t id_counter;
    _Atomic int active;              /* requests between arrival and completion */
    uint64_t id_salt;
};

/* One HTTP request (MHD's per-request context). */
typedef struct nuage__gen nuage__gen;
typedef struct {
    nuage_server *srv;
    struct MHD_Connection *conn;
    int fd;                       /* the connection's socket (client-gone checks) */
    char method[8];
    char path[256];               /* URL path, truncated for logging/routing */
    char *body;                   /* NUL-terminated upload */
    size_t len, cap;
    bool too_large;
    double t0;                    /* monotonic seconds at arrival */
    int status;                   /* answered status (for the log) */
    nuage__gen *gen;              /* generation in flight (one reference), or NULL */
    int log_prompt, log_completion;
} nuage__hreq;

/* A streamed body: read blocks until it has bytes, then returns how many
 * it wrote (> 0), or -1 at the end, or -2 to abort the connection. close
 * is called exactly once when the response is done with (sent or not). */
typedef struct {
    ssize_t (*read)(void *self, char *buf, size_t max);
    void (*close)(void *self);
    void *self;
} nuage__stream;

/* What an endpoint answers. */
typedef struct {
    int status;
    char *body;                   /* malloc'd, owned by the response */
    size_t len;
    const char *content_type;     /* static; default application/json */
    int retry_after;              /* > 0: Retry-After header (seconds) */
    bool streaming;               /* body is `stream` (text/event-stream) */
    nuage__stream stream;
} nuage__hresp;

/* Fill r with j serialised compactly (steals j; 500 if it cannot). */
void nuage__resp_json(nuage__hresp *r, int status, json_t *j);
/* Fill r with the error e. */
void nuage__resp_apierr(nuage__hresp *r, const nuage__apierr *e);
/* Fill r with an error built in place. */
void nuage__resp_error(nuage__hresp *r, int status, const char *type, const char *code,
                       const char *param, const char *fmt, ...) __attribute__((format(printf, 6, 7)));
/* Parse the body as a JSON object; NULL with r filled with a 400 otherwise. */
json_t *nuage__hreq_json(nuage__hreq *q, nuage__hresp *r);
/* Whether the client has closed its side of the connection fd (peer EOF or
 * error); only meaningful while the request's thread is blocked on it. */
bool nuage__client_gone(int fd);
/* Answer 503 (loading / shutting down) unless the server is ready. */
bool nuage__require_ready(nuage_server *s, nuage__hresp *r);
/* A fresh id "<prefix>-<24 hex>" in buf. */
void nuage__new_id(nuage_server *s, const char *prefix, char *buf, size_t cap);
/* Monotonic seconds. */
double nuage__now(void);
/* Model names accepted in a request's "model" field (count in *n). */
const char *const *nuage__model_names(nuage_server *s, int *n);

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
};

/*
 * Create a job for n_jobs prompts (tokens copied) with the given
 * parameters (gp is moved into the job: the caller must not free it).
 * One reference for the caller. NULL on OOM.
 */
nuage__gen *nuage__gen_new(nuage_server *s, int n_jobs, int32_t *const *prompts,
                           const int *n_prompt, nuage__gen_params *gp, bool reasoning,
                           bool think_open, bool embedding);
/*
 * Submit every prompt. 0, or the scheduler's error code of the first
 * failure (the ones already submitted are cancelled; their callbacks still
 * release their references).
 */
int nuage__gen_submit(nuage__gen *g);
/* Cancel every submitted, unfinished prompt (do not hold g->mu). */
void nuage__gen_cancel(nuage__gen *g);
/* Block until every job completed. If the client goes away meanwhile the
 * jobs are cancelled and false is returned (after they completed). */
bool nuage__gen_wait(nuage__gen *g, int fd);
void nuage__gen_ref(nuage__gen *g);
void nuage__gen_unref(nuage__gen *g);
/* Fill e from a nuage_sched_submit error code. */
void nuage__sched_error(nuage_server *s, int rc, int n_prompt, int64_t max_tokens,
                        nuage__apierr *e, int *retry_after);
/* Tokenize text[0..n) into a malloc'd array, its length in *out_n; NULL
 * on OOM or tokenizer error (api_chat.c). */
int32_t *nuage__tokenize_alloc(nuage_server *s, const char *text, size_t n, bool add_special,
                               bool parse_special, int *out_n);
/* Text of a token for logprobs (special tokens rendered). */
size_t nuage__token_piece(nuage_server *s, int32_t tok, char *buf, size_t cap);

/* Streaming response over a job (api_gen.c): chat = chat.completion.chunk
 * events, else text_completion. Takes one reference on g. */
typedef struct nuage__sse nuage__sse;
nuage__stream nuage__sse_new(nuage__gen *g, int fd, bool chat, const char *id, int64_t created,
                             bool *ok);
/* Usage object of a finished job (chat adds completion_tokens_details). */
json_t *nuage__gen_usage(nuage__gen *g, bool chat);
/* finish_reason text: "stop" / "length" (NULL for cancelled / error). */
const char *nuage__finish_text(int finish);
/* Chat logprobs object {"content": [...]} for tokens t[0..n). */
json_t *nuage__chat_logprobs(nuage__gen *g, const nuage_sched_token *t, int n);
/* Legacy completions logprobs for tokens t[0..n) (ptoks: NULL entries
 * allowed for the first prompt token), text offsets from *offset on. */
json_t *nuage__legacy_logprobs(nuage__gen *g, const int32_t *ids, const nuage_sched_token *t,
                               int n, bool first_null, size_t *offset, json_t *into);

#endif
