/*
 * toolcall.h - tool-call output formats of model families: detecting the
 * family from a chat template, parsing model output into OpenAI tool calls
 * (whole or streamed), and building the grammar that forces a valid call.
 *
 * Families (the markup the model writes when it calls a tool):
 *   HERMES    Hermes / Qwen 2.5 / Qwen 3: <tool_call>\n{"name": ..., "arguments": {...}}\n</tool_call>
 *   LLAMA3    Llama 3.x: a bare JSON object {"name": ..., "parameters": {...}}
 *             (also "arguments"), or <|python_tag|> followed by one
 *   MISTRAL   [TOOL_CALLS][{"name": ..., "arguments": {...}}, ...]
 *             (newer templates: [TOOL_CALLS]name[ARGS]{...})
 *   DEEPSEEK  DeepSeek R1 / V3: <｜tool▁calls▁begin｜><｜tool▁call▁begin｜>function<｜tool▁sep｜>NAME\n```json\n{...}\n```<｜tool▁call▁end｜><｜tool▁calls▁end｜>
 *             (V3.1: <｜tool▁call▁begin｜>NAME<｜tool▁sep｜>{...}<｜tool▁call▁end｜>)
 *   HARMONY   gpt-oss: <|start|>assistant to=functions.NAME<|channel|>commentary json<|message|>{...}<|call|>
 *             (the output may begin at "to=" or "<|channel|>" since the
 *             prompt ends with <|start|>assistant). The output is a stream
 *             of messages: analysis -> REASONING, final and recipient-less
 *             commentary -> CONTENT, to=functions.NAME -> a call.
 *   GENERIC   templates with no tool syntax: the server adds an instruction
 *             to the system prompt and the model answers with
 *             {"tool_calls": [{"name": ..., "arguments": {...}}]} or
 *             {"content": "..."}.
 *
 * Parsing never loses text: output that is not a well-formed call stays
 * content. Streaming parsing holds back only the bytes that may still turn
 * out to be markup (a prefix of a trigger), so no partial markup ever
 * reaches content.
 */
#ifndef NUAGE_CONSTRAIN_TOOLCALL_H
#define NUAGE_CONSTRAIN_TOOLCALL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "constrain/grammar.h"
#include "nuage/tokenizer.h"

typedef enum {
    NUAGE_TOOLFMT_NONE = 0,
    NUAGE_TOOLFMT_HERMES,
    NUAGE_TOOLFMT_LLAMA3,
    NUAGE_TOOLFMT_MISTRAL,
    NUAGE_TOOLFMT_DEEPSEEK,
    NUAGE_TOOLFMT_HARMONY,
    NUAGE_TOOLFMT_GENERIC,
    /* Kimi K2: <|tool_calls_section_begin|><|tool_call_begin|>functions.NAME:IDX
     * <|tool_call_argument_begin|>{...}<|tool_call_end|>...<|tool_calls_section_end|> */
    NUAGE_TOOLFMT_KIMI,
    /* Gemma 4: <|tool_call>call:NAME{key:<|"|>text<|"|>,n:1}<tool_call|> (not JSON:
     * bare keys, <|"|>-quoted strings; the parser converts to JSON) */
    NUAGE_TOOLFMT_GEMMA4,
} nuage_toolfmt;

/* Family from a chat template's source text (GENERIC when it renders no
 * tool syntax; never NONE). */
nuage_toolfmt nuage_toolfmt_detect(const char *chat_template);
/* "hermes", "llama3", "mistral", "deepseek", "harmony", "generic", "kimi", "gemma4";
 * NONE for an unknown name. */
nuage_toolfmt nuage_toolfmt_from_name(const char *name);
const char *nuage_toolfmt_name(nuage_toolfmt f);

/* One parsed call. name and arguments (a compact JSON text) are owned by
 * the result that holds them. */
typedef struct nuage_tool_call {
    char *name;
    char *arguments;
} nuage_tool_call;

/* ---- streaming parser ---- */
typedef struct nuage_toolparse nuage_toolparse;

typedef enum {
    NUAGE_TP_CONTENT = 1,    /* text: plain content (len bytes at text) */
    NUAGE_TP_CALL_START,     /* call `index` begins: name known */
    NUAGE_TP_CALL_ARGS,      /* fragment of call `index`'s arguments JSON */
    NUAGE_TP_CALL_END,       /* call `index` complete: arguments is the whole JSON */
    NUAGE_TP_REASONING,      /* text: reasoning (harmony "analysis" channel), for
                              * reasoning_content; other families never emit it */
} nuage_tp_kind;

typedef struct nuage_tp_event {
    nuage_tp_kind kind;
    int index;               /* call index (0, 1, ...) */
    const char *text;        /* CONTENT / CALL_ARGS bytes, CALL_END whole arguments */
    size_t len;
    const char *name;        /* CALL_START, CALL_END: the function name */
} nuage_tp_event;

/* Called for each event; return nonzero to stop (propagated by _feed; the
 * rest of that feed's events are not delivered, the parser stays usable).
 * A call's events come together once its markup is complete: CALL_START,
 * one CALL_ARGS holding the whole arguments, CALL_END (in eager mode,
 * see nuage_toolparse_set_eager, CALL_START and CALL_ARGS fragments
 * come earlier). */
typedef int (*nuage_tp_cb)(const nuage_tp_event *ev, void *ud);

/* A parser for fmt. tool_names (n of them, may be 0) are the functions the
 * request declared: a call to another name is left as content (n = 0:
 * every call is). An unknown fmt reads as GENERIC. NULL when out of
 * memory. */
nuage_toolparse *nuage_toolparse_new(nuage_toolfmt fmt, const char *const *tool_names, size_t n);
void nuage_toolparse_free(nuage_toolparse *p);
/* Feed the next piece of model output (special tokens rendered as text).
 * final: no more output follows (flushes held-back text: an unfinished
 * call becomes content). 0, a callback's nonzero value, or NUAGE_E_NOMEM. */
int nuage_toolparse_feed(nuage_toolparse *p, const char *text, size_t len, bool final,
                         nuage_tp_cb cb, void *ud);
/* Number of complete calls seen so far. */
int nuage_toolparse_n_calls(const nuage_toolparse *p);
/* Eager mode (off by default), for output that a grammar forces to be
 * well-formed calls: a call's CALL_START comes as soon as its name and
 * the start of its arguments are seen, then CALL_ARGS fragments as the
 * arguments arrive (each ends on a UTF-8 character boundary), and
 * CALL_END (whole arguments, of which the fragments are a prefix) when
 * its markup is complete. An announced call whose markup turns out cut
 * or malformed gets no CALL_END, and the rest of that output is dropped
 * instead of becoming content. Hermes, Llama 3, Mistral, DeepSeek, Kimi
 * and the generic envelope stream this way; harmony and Gemma emit each
 * call whole. from_start: the grammar
 * forces calls from the first token (tool_choice required / named: a
 * block cut short before its head is dropped too, not content); else
 * it engages lazily at the family's trigger (nuage_toolfmt_grammar), and a
 * call is announced only where that trigger is (Llama 3: {"name" with no
 * blank between). */
void nuage_toolparse_set_eager(nuage_toolparse *p, bool on, bool from_start);
/* Harmony: whether the text fed so far ends inside an analysis
 * (reasoning) message body; false for other families. */
bool nuage_toolparse_in_reasoning(const nuage_toolparse *p);

/* ---- grammar ---- */
typedef enum {
    NUAGE_TOOLCHOICE_AUTO = 0,
    NUAGE_TOOLCHOICE_NONE,
    NUAGE_TOOLCHOICE_REQUIRED,
    NUAGE_TOOLCHOICE_NAMED,
} nuage_toolchoice;

/* Build, in b, the rule for the tool-call part of an output in family fmt:
 * one call (or, parallel, one or more) to one of the functions in tools (a
 * jansson array of OpenAI tool objects, passed as void *), each call's
 * arguments constrained by the function's "parameters" schema. A
 * function with "strict": true (every function when opts->strict) is
 * enforced exactly: a schema the engine refuses makes this fail with err
 * naming the tool. Other functions are best effort, as OpenAI's
 * non-strict functions: a schema with a keyword the engine does not
 * support gives any JSON object instead, and on success err->msg (empty
 * otherwise) names such a function. With
 * choice NAMED only function `name` may be called.
 *   *root:    the whole output (REQUIRED / NAMED: calls from the first
 *             token, nothing else; what may follow the calls, e.g. an
 *             end-of-turn token, is allowed).
 *   *after:   (may be NULL) for AUTO with lazy engagement: the rest of the
 *             output after the model has written one of the triggers;
 *   triggers: (may be NULL) set to the trigger strings of fmt (static
 *             storage, NULL-terminated): the texts that start a call.
 * vocab is used to find the family's special tokens (ncg_token).
 * 0, or NUAGE_E_UNSUPPORTED / NUAGE_E_INVAL with err filled. */
int nuage_toolfmt_grammar(ncg_builder *b, nuage_toolfmt fmt, const nuage_vocab *vocab,
                          const void *tools, nuage_toolchoice choice, const char *name,
                          bool parallel, const nuage_cg_json_opts *opts, ncg_rule *root,
                          ncg_rule *after, const char *const **triggers, nuage_cg_error *err);

/* Harmony (gpt-oss) output whose answer is constrained (response_format):
 * any number of analysis messages, then the final-channel message
 * "<|channel|>final[ [<|constrain|>]json]<|message|>" with `answer` as its
 * body, then <|return|> (left to EOS when it is an end-of-generation
 * token). *out set; 0, or a negative error code. */
int nuage_toolfmt_harmony_final(ncg_builder *b, const nuage_vocab *vocab, ncg_expr answer, ncg_expr *out);

/* Whether fmt's triggers count only at the start of the output (after
 * white space) or right after a call: true for LLAMA3 and GENERIC, whose
 * calls are bare JSON objects (the parser reads a {"name" ... later in
 * the text as content, so lazy engagement must not fire there either). */
bool nuage_toolfmt_trigger_at_start(nuage_toolfmt fmt);

/* GENERIC family: the instruction added to the system prompt listing the
 * tools and the JSON envelope (malloc'd; caller frees), or NULL. */
char *nuage_toolfmt_generic_instruction(const void *tools);

#endif
