/*
 * validate.h - checking OpenAI request bodies, and the small text helpers
 * the HTTP layer builds its answers with.
 *
 * Every endpoint receives a JSON object written by someone else. The
 * functions here read one field each, check its JSON type and its range as
 * the OpenAI API documents them, and on a violation fill a nuage__apierr:
 * the HTTP status and the `{"error": {"message", "type", "param", "code"}}`
 * object the client gets back, with `param` naming the offending field
 * ("temperature", "messages[1].role", "logit_bias.99999"). Fields that are
 * absent or JSON null count as "not given"; unknown fields are ignored.
 *
 * The string builder (nuage__sb) is the one growable buffer used for
 * response bodies and SSE events; it records an allocation failure instead
 * of returning one at every call, and the caller checks `oom` once.
 *
 * Nothing here touches the scheduler or the network, so all of it is
 * unit-tested on its own (tests/unit/test_server_validate.c).
 */
#ifndef NUAGE_SERVER_VALIDATE_H
#define NUAGE_SERVER_VALIDATE_H

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "nuage/sampler.h"

/* ---- string builder ------------------------------------------------------ */
typedef struct {
    char *p;       /* NUL-terminated when non-NULL */
    size_t n, cap;
    bool oom;      /* an append failed; p keeps what fitted before */
} nuage__sb;

/* Append n bytes / a C string / printf output. On allocation failure the
 * builder sets oom and drops the text. */
void nuage__sb_put(nuage__sb *b, const char *s, size_t n);
void nuage__sb_puts(nuage__sb *b, const char *s);
void nuage__sb_printf(nuage__sb *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* Append s as a JSON string literal (with the quotes). Bytes that are not
 * valid UTF-8 are written as the text "\xNN" (OpenAI's convention for
 * partial-character tokens), so the output is always valid JSON. */
void nuage__sb_json_str(nuage__sb *b, const char *s, size_t n);
/* Drop the first k bytes (k <= n). */
void nuage__sb_consume(nuage__sb *b, size_t k);
void nuage__sb_free(nuage__sb *b);

/* Whether s[0..n) is well-formed UTF-8 (no overlongs, surrogates, > U+10FFFF). */
bool nuage__utf8_ok(const char *s, size_t n);
/* A jansson string holding s[0..n), with invalid UTF-8 rendered as for
 * nuage__sb_json_str. New reference; NULL on OOM. */
json_t *nuage__json_text(const char *s, size_t n);

/* ---- errors -------------------------------------------------------------- */
typedef struct {
    int status;            /* HTTP status (400, 404, ...) */
    const char *type;      /* static: "invalid_request_error", ... */
    const char *code;      /* static or NULL (JSON null) */
    char param[128];       /* "" -> JSON null */
    char message[400];
} nuage__apierr;

/* Fill e; returns false so that validators can `return nuage__err(...)`. */
bool nuage__err(nuage__apierr *e, int status, const char *type, const char *code,
                const char *param, const char *fmt, ...) __attribute__((format(printf, 6, 7)));
/* Shorthand for a 400 invalid_request_error on param. */
bool nuage__err400(nuage__apierr *e, const char *param, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
/* {"error": {...}} for e. New reference; NULL on OOM. */
json_t *nuage__err_json(const nuage__apierr *e);

/* ---- typed fields -------------------------------------------------------- */
/*
 * Each reads obj[key]. Absent or null: returns true with *present = false
 * (present may be NULL) and leaves *out alone. Wrong type or out of range:
 * returns false with e filled (param = key). Numbers accept JSON integers
 * and reals; integer fields accept reals only when integral.
 */
bool nuage__get_number(json_t *obj, const char *key, double lo, double hi, double *out,
                       bool *present, nuage__apierr *e);
bool nuage__get_int(json_t *obj, const char *key, int64_t lo, int64_t hi, int64_t *out,
                    bool *present, nuage__apierr *e);
bool nuage__get_bool(json_t *obj, const char *key, bool *out, bool *present, nuage__apierr *e);
/* *out points into obj (valid while obj lives). */
bool nuage__get_string(json_t *obj, const char *key, const char **out, bool *present,
                       nuage__apierr *e);

/* ---- generation parameters (chat and completions) ----------------------- */
#define NUAGE_MAX_STOP 4
#define NUAGE_MAX_TOP_LOGPROBS 20

typedef struct {
    int n;                        /* choices per prompt (default 1) */
    int64_t max_tokens;           /* -1: not given */
    nuage_sampler_params sp;      /* bias arrays point into bias_tok/bias_val */
    bool seed_given;
    int32_t *bias_tok;            /* owned */
    float *bias_val;              /* owned */
    char *stops[NUAGE_MAX_STOP];  /* owned, non-empty */
    int n_stops;
    bool stream, include_usage;
    int top_logprobs;             /* -1: no logprobs; 0..20 */
    bool echo;                    /* completions only */
    bool ignore_eos;              /* extension */
} nuage__gen_params;

/*
 * Read the sampling / output fields shared by /v1/chat/completions (chat =
 * true: logprobs is a boolean plus top_logprobs) and /v1/completions (chat
 * = false: logprobs is an integer 0..20, echo allowed). n_vocab bounds
 * logit_bias keys; max_n bounds n. Returns true and fills g (free with
 * nuage__gen_params_free, also after a failure), or false with e filled.
 */
bool nuage__parse_gen_params(json_t *body, bool chat, int n_vocab, int max_n,
                             nuage__gen_params *g, nuage__apierr *e);
void nuage__gen_params_free(nuage__gen_params *g);

/*
 * Check body.messages and return a normalised copy (new reference) for the
 * chat template: each message keeps its fields, `content` becomes a string
 * (an array of text parts is joined with "\n"; null stays null, allowed for
 * assistant messages only). Roles: system, developer, user, assistant, tool.
 * NULL with e filled on a violation (param e.g. "messages[1].role").
 */
json_t *nuage__parse_messages(json_t *body, nuage__apierr *e);

/* Parse a model name field: true when absent or when it names the served
 * model (id, or any of the accepted names); otherwise 404 model_not_found. */
bool nuage__check_model(json_t *body, const char *const *names, int n_names, nuage__apierr *e);

#endif
