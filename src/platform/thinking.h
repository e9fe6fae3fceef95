/*
 * thinking.h - reasoning_effort -> thinking budget for reasoning
 * deployments.
 *
 * A reasoning model writes its chain of thought between <think> and
 * </think> before answering. `reasoning_effort` bounds how long that may
 * go on: each level maps to a maximum number of reasoning tokens, and the
 * scheduler (sched.h: think_budget, think_start, think_end) forces
 * "</think>\n" once a choice has spent it, so the model answers with what
 * it has thought so far. "none" / "minimal" map to 0 (close at once).
 *
 * Configuration (a deployment's "thinking" object, every field optional):
 *   {"none": 0, "minimal": 0, "low": 64, "medium": 256, "high": 1024,
 *    "default": "medium" | null}
 * "default" is the level applied when a request names none (null or
 * absent: no budget at all, the model thinks as long as max_tokens lets
 * it).
 *
 * Pure functions over plain data; no locks, no allocation.
 */
#ifndef NUAGE_PLATFORM_THINKING_H
#define NUAGE_PLATFORM_THINKING_H

#include <jansson.h>
#include <stddef.h>

#define NUAGE_THINKING_LEVELS 5 /* none, minimal, low, medium, high */

typedef struct {
    int budget[NUAGE_THINKING_LEVELS];
    int default_level;          /* index into budget, -1: no default */
} nuage_thinking_config;

/* Defaults: none 0, minimal 0, low 64, medium 256, high 1024; no default. */
nuage_thinking_config nuage_thinking_default(void);

/* Parse a "thinking" object (NULL: the defaults) into *out. 0, or
 * NUAGE_E_INVAL with a message naming the field (unknown level, budget
 * not an integer in 0..1000000). */
int nuage_thinking_config_parse(const json_t *j, nuage_thinking_config *out, char *err, size_t errlen);

/*
 * The budget for a request's effort (NULL or "": the configured default)
 * into *budget: >= 0 tokens, or -1 when no budget applies. Returns 0, or
 * NUAGE_E_INVAL for an unknown level (answer 400, param
 * "reasoning_effort").
 */
int nuage_thinking_budget(const nuage_thinking_config *c, const char *effort, int *budget);

/* The effort of a request body: "reasoning_effort" or "reasoning.effort";
 * NULL when absent or null, "" when not a string. */
const char *nuage_thinking_effort_of(const json_t *body);

#endif
