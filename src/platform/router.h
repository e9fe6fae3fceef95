/*
 * router.h - router deployments: one name in front of a fast model and a
 * reasoning model, choosing per request which one answers (a "system of
 * models", as GPT-5 is described).
 *
 * The policy is a pure function of the request body and the router's
 * configuration, decided in this order:
 *   1. an explicit reasoning effort (`reasoning_effort`, or
 *      `reasoning.effort` as in the Responses API): "minimal" / "none" ->
 *      the fast target, "low" / "medium" / "high" -> the reasoning target
 *      (the map is configurable);
 *   2. a model hint: the request's `model` is "<router>:<hint>" (e.g.
 *      "auto:thinking", "auto:fast") with the hint looked up in a
 *      configurable table, or names one of the targets directly;
 *   3. otherwise a score over the conversation -- prompt length, code in
 *      the last user message, mathematics in it, conversation depth (user
 *      turns) and configurable keywords with weights -- compared with a
 *      threshold: score >= threshold -> reasoning.
 * The decision carries its reasons (human-readable, for logs and the
 * x-nuage-route header) and the effort the reasoning target should use
 * (the explicit one, or the configured `score_effort` when the score
 * chose it), which the reasoning deployment turns into a thinking budget
 * (thinking.h).
 *
 * Configuration (a deployment's "router" object; docs/router-and-batch.md):
 *   {"targets": {"fast": "small-model", "reasoning": "think-model"},
 *    "effort": {"minimal": "fast", "low": "reasoning", ...},
 *    "hints": {"fast": "fast", "thinking": "reasoning", ...},
 *    "threshold": 1.0, "score_effort": "medium",
 *    "weights": {"length": 0.5, "length_unit": 2000, "length_cap": 2,
 *                "code": 1.0, "math": 1.0, "depth": 0.25},
 *    "keywords": {"prove": 1.0, "step by step": 1.0}}
 * Only "targets" is required; everything else has the defaults listed in
 * router.c. Unknown fields are errors.
 *
 * Metrics: nuage_router_record() counts decisions per (router, target,
 * rule) in a process-wide table; nuage_router_metrics_text() prints it in
 * the Prometheus text format for /metrics.
 *
 * Thread safety: a parsed configuration is immutable (share it freely);
 * decide() is pure; the metrics table has its own leaf mutex.
 */
#ifndef NUAGE_PLATFORM_ROUTER_H
#define NUAGE_PLATFORM_ROUTER_H

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "platform/deploy.h"

typedef enum { NUAGE_ROUTE_FAST = 0, NUAGE_ROUTE_REASONING = 1 } nuage_route_target;
typedef enum { NUAGE_ROUTE_BY_EFFORT = 0, NUAGE_ROUTE_BY_HINT = 1, NUAGE_ROUTE_BY_SCORE = 2 } nuage_route_rule;

#define NUAGE_ROUTER_MAX_KEYWORDS 64
#define NUAGE_ROUTER_MAX_HINTS 32

typedef struct nuage_router_config nuage_router_config;

typedef struct {
    nuage_route_target target;
    const char *deployment;   /* the chosen target's name (points into the config) */
    nuage_route_rule rule;
    char effort[16];          /* effort for the target ("" = none): explicit, or
                                 score_effort when the score chose reasoning */
    /* the features, always computed */
    double score;
    size_t prompt_chars;      /* characters (bytes) of every message's text */
    int depth;                /* user turns */
    bool has_code, has_math;
    double keyword_score;
    char reasons[320];        /* e.g. "score 1.75 >= 1.00: code +1.00, keywords +0.75 (prove)" */
} nuage_router_decision;

/*
 * Parse a router configuration object. 0 and *out (free with
 * nuage_router_config_free), or NUAGE_E_INVAL with a message naming the
 * field in err.
 */
int nuage_router_config_parse(const json_t *j, nuage_router_config **out, char *err, size_t errlen);
void nuage_router_config_free(nuage_router_config *c);
/* Target deployment name of a role (never NULL for a parsed config). */
const char *nuage_router_target_name(const nuage_router_config *c, nuage_route_target t);

/*
 * Decide which target serves `request` (a chat or completions body; may be
 * NULL or lack messages). router_name (may be NULL) is the name the client
 * used, to recognise "<router_name>:<hint>". Returns 0 and fills *out, or
 * NUAGE_E_INVAL when the request's reasoning effort is not a known level
 * (out->reasons says which; answer 400, param "reasoning_effort"). Pure:
 * same inputs, same decision.
 */
int nuage_router_decide(const nuage_router_config *c, const json_t *request, const char *router_name,
                        nuage_router_decision *out);

/* ---- metrics ---------------------------------------------------------------------- */

/* Count one decision of router `router` (process-wide). */
void nuage_router_record(const char *router, const nuage_router_decision *d);
/*
 * Append the counters as Prometheus text (HELP/TYPE lines and one
 * nuage_router_decisions_total{router,target,deployment,rule} sample per
 * pair seen) to buf; returns the length the full text needs (like
 * snprintf: the output is complete when that is < cap).
 */
size_t nuage_router_metrics_text(char *buf, size_t cap);
/* Value of one counter (tests); rule < 0: summed over rules. */
uint64_t nuage_router_count(const char *router, const char *deployment, int rule);
/* Forget every counter (tests). */
void nuage_router_metrics_reset(void);

/* ---- the registry hook (deploy.h) ---------------------------------------------------- */

/*
 * nuage_router_hook.route: parse router->cfg.router, decide for body,
 * record the decision, write the chosen deployment to out. When the
 * decision carries an effort and the body has none, sets
 * body.reasoning_effort to it (so the reasoning deployment applies its
 * thinking budget). The decision's reasons are not returned here; use
 * nuage_router_route_ex for them. 0, or NUAGE_E_INVAL with a message for a
 * 400 (bad configuration or bad reasoning_effort).
 */
int nuage_router_route(void *ud, const nuage_deployment *router, json_t *body, int64_t tenant_id,
                       char *out, size_t cap, char *err, size_t errlen);
/* The same, also returning the decision (d may be NULL). */
int nuage_router_route_ex(const nuage_deployment *router, json_t *body, nuage_router_decision *d,
                          char *out, size_t cap, char *err, size_t errlen);
/* A hook filled with nuage_router_route (ud NULL). */
nuage_router_hook nuage_router_default_hook(void);

#endif
