/*
 * toolfmt.c - which tool-call syntax a model family writes, and the
 * instruction for families that have none.
 *
 * Detection reads the chat template's source, not its output: the markup
 * a template renders for an assistant message with tool_calls is exactly
 * what the model was trained to write, and each family's markup is
 * distinctive enough to be found as a substring (checked against the real
 * templates in ../shared/templates by test_constrain_toolfmt). Order
 * matters only where one family's template could mention another's
 * marker; the most specific markers are tested first.
 *
 * GENERIC families (ChatML, Gemma 2, anything unknown) get a system-prompt
 * instruction describing the tools and a JSON envelope; the parser and
 * grammar for GENERIC read and force that envelope.
 */
#include <jansson.h>
#include <stdlib.h>
#include <string.h>

#include "constrain/toolcall.h"

static const char *const fmt_names[] = {
    [NUAGE_TOOLFMT_NONE] = "none",         [NUAGE_TOOLFMT_HERMES] = "hermes",
    [NUAGE_TOOLFMT_LLAMA3] = "llama3",     [NUAGE_TOOLFMT_MISTRAL] = "mistral",
    [NUAGE_TOOLFMT_DEEPSEEK] = "deepseek", [NUAGE_TOOLFMT_HARMONY] = "harmony",
    [NUAGE_TOOLFMT_GENERIC] = "generic",   [NUAGE_TOOLFMT_KIMI] = "kimi",
    [NUAGE_TOOLFMT_GEMMA4] = "gemma4",
};
#define N_FMT (sizeof fmt_names / sizeof fmt_names[0])

nuage_toolfmt nuage_toolfmt_detect(const char *t) {
    if (!t) return NUAGE_TOOLFMT_GENERIC;
    /* gpt-oss harmony: calls end with <|call|>, recipients are to=functions.X */
    if (strstr(t, "<|call|>") || strstr(t, "to=functions.")) return NUAGE_TOOLFMT_HARMONY;
    if (strstr(t, "<|tool_calls_section_begin|>") || strstr(t, "<|tool_call_argument_begin|>"))
        return NUAGE_TOOLFMT_KIMI;
    /* DeepSeek special tokens use U+FF5C (full-width bar) and U+2581 */
    if (strstr(t, "tool\xe2\x96\x81" "call\xe2\x96\x81" "begin")) return NUAGE_TOOLFMT_DEEPSEEK;
    if (strstr(t, "[TOOL_CALLS]")) return NUAGE_TOOLFMT_MISTRAL;
    /* Gemma 4 (before Hermes: "<|tool_call>" is not "<tool_call>", but be explicit) */
    if (strstr(t, "<|tool_call>") && strstr(t, "call:")) return NUAGE_TOOLFMT_GEMMA4;
    if (strstr(t, "<tool_call>")) return NUAGE_TOOLFMT_HERMES;
    if (strstr(t, "<|python_tag|>") || (strstr(t, "ipython") && strstr(t, "<|start_header_id|>")))
        return NUAGE_TOOLFMT_LLAMA3;
    return NUAGE_TOOLFMT_GENERIC;
}

nuage_toolfmt nuage_toolfmt_from_name(const char *name) {
    if (!name) return NUAGE_TOOLFMT_NONE;
    for (size_t i = 1; i < N_FMT; i++)
        if (fmt_names[i] && strcmp(name, fmt_names[i]) == 0) return (nuage_toolfmt)i;
    return NUAGE_TOOLFMT_NONE;
}

const char *nuage_toolfmt_name(nuage_toolfmt f) {
    if ((size_t)f >= N_FMT || !fmt_names[f]) return "none";
    return fmt_names[f];
}

/* The function object of an OpenAI tool entry ({"type": "function",
 * "function": {...}}), or the entry itself when it is already one. */
static json_t *tool_function(json_t *tool) {
    json_t *f = json_object_get(tool, "function");
    return json_is_object(f) ? f : tool;
}

/* Append s to the growing buffer; false when out of memory. */
static bool buf_add(char **buf, size_t *len, size_t *cap, const char *s) {
    size_t l = strlen(s);
    if (*len + l + 1 > *cap) {
        size_t nc = (*cap ? *cap * 2 : 1024);
        while (nc < *len + l + 1) nc *= 2;
        char *nb = realloc(*buf, nc);
        if (!nb) return false;
        *buf = nb;
        *cap = nc;
    }
    memcpy(*buf + *len, s, l + 1);
    *len += l;
    return true;
}

char *nuage_toolfmt_generic_instruction(const void *tools_) {
    json_t *tools = (json_t *)tools_;
    if (!json_is_array(tools) || json_array_size(tools) == 0) return NULL;
    char *buf = NULL;
    size_t len = 0, cap = 0;
    bool ok = buf_add(&buf, &len, &cap,
                      "# Tools\n\nYou can call the following functions. Each is given with "
                      "its name, what it does, and the JSON Schema of its arguments.\n");
    size_t i;
    json_t *tool;
    json_array_foreach(tools, i, tool) {
        json_t *f = tool_function(tool);
        const char *name = json_string_value(json_object_get(f, "name"));
        if (!name) continue;
        const char *desc = json_string_value(json_object_get(f, "description"));
        json_t *params = json_object_get(f, "parameters");
        char *pj = params ? json_dumps(params, JSON_COMPACT | JSON_ENCODE_ANY) : NULL;
        ok = ok && buf_add(&buf, &len, &cap, "\n## ") && buf_add(&buf, &len, &cap, name) &&
             buf_add(&buf, &len, &cap, "\n");
        if (desc && *desc) ok = ok && buf_add(&buf, &len, &cap, desc) && buf_add(&buf, &len, &cap, "\n");
        ok = ok && buf_add(&buf, &len, &cap, "Arguments: ") &&
             buf_add(&buf, &len, &cap, pj ? pj : "{\"type\":\"object\"}") &&
             buf_add(&buf, &len, &cap, "\n");
        free(pj);
    }
    ok = ok && buf_add(&buf, &len, &cap,
                       "\nTo call one or more of these functions, reply with only this JSON "
                       "object and nothing before or after it:\n"
                       "{\"tool_calls\": [{\"name\": \"<function name>\", \"arguments\": "
                       "{<the arguments, matching the function's schema>}}]}\n"
                       "List several calls in the array to call several functions. "
                       "To answer without calling a function, reply normally in plain text.\n");
    if (!ok) { free(buf); return NULL; }
    return buf;
}
