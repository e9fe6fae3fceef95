/*
 * synth_tools.h - synthetic tool-use conversations for nuage's own
 * models, and the reference tools that answer their calls.
 *
 * A tool item is one whole conversation: a `tools` list (OpenAI shape,
 * {"type": "function", "function": {name, description, parameters}}),
 * the user's question, then assistant turns that either answer directly
 * or call a tool (tool_calls with the arguments as a JSON object), each
 * call followed by a `tool` message holding the reference tool's result,
 * and a last assistant turn with the final answer (one word, like the
 * other synthetic tasks). The chat template renders the calls as
 * <tool_call>{"name": ..., "arguments": ...}</tool_call> (Hermes/Qwen
 * style, which the server's tool-call parser reads).
 *
 * The trainer learns only a chat's last message, so an item is written
 * as one JSONL line per assistant turn (the conversation up to and
 * including that turn). The tools offered vary: each tool has a few
 * names and descriptions, the list is shuffled and padded with
 * irrelevant tools, and sometimes the tool a question needs is missing
 * (then the model answers directly). Which questions call a tool:
 * multiplication, 5+ digit addition/subtraction, division and mixed
 * expressions (calculator); unit conversions (convert_units); date
 * arithmetic (date_add, date_diff); currency/language of the `facts`
 * countries (lookup, a small knowledge base that is not in the model).
 * Additions and subtractions of up to 3 digits, lists, letter counts,
 * capitals and weekdays are answered directly even with tools offered.
 *
 * The split is the one of synth.h: a hash of the canonical key puts a
 * question in the held-out split or the train split.
 */
#ifndef NUAGE_TRAIN_SYNTH_TOOLS_H
#define NUAGE_TRAIN_SYNTH_TOOLS_H

#include <jansson.h>
#include <stdbool.h>

#include "train/synth.h"

/* The reference tools (canonical kinds; the names offered vary). */
typedef enum {
    NUAGE_TOOL_CALC = 0, /* {"expression": "48213 * 9377 / 1000"} */
    NUAGE_TOOL_CONVERT,  /* {"value": 12, "from": "kilometers", "to": "meters"} */
    NUAGE_TOOL_DATE_ADD, /* {"date": "2024-01-31", "days": 40} */
    NUAGE_TOOL_DATE_DIFF,/* {"start": "2024-01-31", "end": "2024-03-01"} */
    NUAGE_TOOL_LOOKUP,   /* {"entity": "Japan", "field": "currency"} */
    NUAGE_TOOL_N
} nuage_tool_kind;

/* Scenario kinds: the eval reports each one (names "tool_mul", ...). */
typedef enum {
    NUAGE_TT_MUL = 0,  /* a * b (and "in thousands": a * b / 1000) */
    NUAGE_TT_ARITH,    /* big add/sub, division, mixed expressions */
    NUAGE_TT_CONVERT,  /* unit conversion */
    NUAGE_TT_DATE,     /* date_add / date_diff */
    NUAGE_TT_LOOKUP,   /* knowledge-base lookup */
    NUAGE_TT_DIRECT,   /* a question to answer without a tool */
    NUAGE_TT_TWOSTEP,  /* convert, then a calculation with the result */
    NUAGE_TT_ERROR,    /* the tool answers an error; the model reports it */
    NUAGE_TT_ABSENT,   /* the needed tool is not offered: answer directly */
    NUAGE_TT_N
} nuage_tool_task;

const char *nuage_tool_task_name(nuage_tool_task t); /* "tool_mul", ... */
int nuage_tool_task_from_name(const char *name);     /* -1 when unknown */

typedef struct {
    nuage_tool_task task;
    char key[128];      /* canonical question (the split) */
    char answer[96];    /* expected final answer (one word) */
    json_t *tools;      /* owned: the tools array offered */
    json_t *messages;   /* owned: the whole conversation */
    int first_tool;     /* kind of the first expected call, -1: answer directly */
    json_t *first_args; /* owned (or NULL): its expected arguments */
} nuage_tool_item;

/*
 * Generate one item of scenario t (t < 0: the training mixture) from the
 * requested split. digits > 0 sets the operand size of tool_mul (both
 * operands; 1..9), 0 draws 2..6. Returns 0, NUAGE_E_INVAL, NUAGE_E_NOMEM
 * or NUAGE_E_RANGE (see nuage_synth_gen). On success the caller owns the
 * item (nuage_tool_item_free); on failure it holds nothing.
 */
int nuage_tool_gen(int t, int digits, bool heldout, nuage_rng *r, nuage_tool_item *it);
void nuage_tool_item_free(nuage_tool_item *it);

/*
 * The JSONL lines of an item, one per assistant turn, each ending in
 * '\n': {"messages": [...up to that turn], "tools": [...], "task": ...,
 * "answer": ...}. malloc'd; NULL on out-of-memory.
 */
char *nuage_tool_item_jsonl(const nuage_tool_item *it);

/*
 * The kind of the tool called `name` in the offered list (matched by
 * name, the kind recorded in the tool's "x-nuage-kind"-free definition
 * being recognised from its parameters), or -1 when it is not offered.
 */
int nuage_tool_kind_of(const json_t *tools, const char *name);

/*
 * Run reference tool `kind` on args (a JSON object). Returns the result
 * text (malloc'd): a number, a date, a word, or "error: ..." for bad
 * arguments (unknown unit, division by zero, ...). NULL only on
 * out-of-memory.
 */
char *nuage_tool_exec(nuage_tool_kind kind, const json_t *args);

/* Evaluate an arithmetic expression (+ - * / parentheses, decimals, "×"
 * and "x" as *). Returns 0 with *out, or NUAGE_E_INVAL (syntax) or
 * NUAGE_E_RANGE (division by zero). */
int nuage_tool_calc(const char *expr, double *out);

/* A calculator result as text: an integer when whole, otherwise up to 6
 * decimals without trailing zeros. */
void nuage_tool_fmt_num(double v, char *out, size_t cap);

#endif
