/*
 * thinking.c - reasoning_effort levels and their thinking budgets
 * (thinking.h).
 *
 * The levels are OpenAI's ("minimal", "low", "medium", "high") plus
 * "none"; the default budgets (64 / 256 / 1024 tokens) follow the rough
 * factor-of-four steps between levels that hosted reasoning models show,
 * scaled down to what a small self-hosted model can use with a 4K
 * context. Everything is configurable per deployment.
 */
#include "platform/thinking.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>

#include "nuage/nuage.h"

static const char *const nuage__think_levels[NUAGE_THINKING_LEVELS] = {"none", "minimal", "low", "medium",
                                                                       "high"};

static int nuage__think_level(const char *s) {
    for (int i = 0; s && i < NUAGE_THINKING_LEVELS; i++)
        if (!strcasecmp(s, nuage__think_levels[i])) return i;
    return -1;
}

nuage_thinking_config nuage_thinking_default(void) {
    nuage_thinking_config c = {{0, 0, 64, 256, 1024}, -1};
    return c;
}

int nuage_thinking_config_parse(const json_t *j, nuage_thinking_config *out, char *err, size_t errlen) {
    nuage_thinking_config c = nuage_thinking_default();
    if (j && !json_is_null(j)) {
        if (!json_is_object(j)) {
            if (err) snprintf(err, errlen, "thinking must be an object of level budgets");
            return NUAGE_E_INVAL;
        }
        const char *key;
        json_t *v;
        json_object_foreach((json_t *)j, key, v) {
            if (!strcmp(key, "default")) {
                int lv = json_is_null(v) ? -1 : nuage__think_level(json_string_value(v));
                if (!json_is_null(v) && lv < 0) {
                    if (err) snprintf(err, errlen, "thinking.default must be a level name or null");
                    return NUAGE_E_INVAL;
                }
                c.default_level = lv;
                continue;
            }
            int lv = nuage__think_level(key);
            if (lv < 0) {
                if (err) snprintf(err, errlen, "thinking: unknown level '%s' (none, minimal, low, medium, high)", key);
                return NUAGE_E_INVAL;
            }
            if (!json_is_integer(v) || json_integer_value(v) < 0 || json_integer_value(v) > 1000000) {
                if (err) snprintf(err, errlen, "thinking.%s must be an integer in 0..1000000", key);
                return NUAGE_E_INVAL;
            }
            c.budget[lv] = (int)json_integer_value(v);
        }
    }
    *out = c;
    return 0;
}

int nuage_thinking_budget(const nuage_thinking_config *c, const char *effort, int *budget) {
    *budget = -1;
    if (!effort || !*effort) {
        if (c->default_level >= 0) *budget = c->budget[c->default_level];
        return 0;
    }
    int lv = nuage__think_level(effort);
    if (lv < 0) return NUAGE_E_INVAL;
    *budget = c->budget[lv];
    return 0;
}

const char *nuage_thinking_effort_of(const json_t *body) {
    json_t *e = json_object_get(body, "reasoning_effort");
    if (!e || json_is_null(e)) {
        json_t *r = json_object_get(body, "reasoning");
        e = json_is_object(r) ? json_object_get(r, "effort") : NULL;
    }
    if (!e || json_is_null(e)) return NULL;
    return json_is_string(e) ? json_string_value(e) : "";
}
