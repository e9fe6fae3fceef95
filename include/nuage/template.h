/*
 * template.h - chat templates: a sandboxed Jinja2 interpreter.
 *
 * Models ship their prompt format as a Jinja2 template
 * (`tokenizer.chat_template` in GGUF). This API parses such a template once
 * and renders conversations with it, byte-for-byte as Hugging Face
 * transformers' `apply_chat_template` does (Jinja2 3.1, sandboxed and
 * immutable, trim_blocks + lstrip_blocks, loopcontrols, `{% generation %}`).
 *
 * Templates are user input: parsing and rendering never crash or hang on
 * hostile text. Loop iterations, recursion depth, output size and total
 * work are bounded, and exceeding a bound is an ordinary NUAGE_E_TEMPLATE
 * error. A parsed template is immutable, so one nuage_template may be
 * rendered from several threads at once.
 */
#ifndef NUAGE_TEMPLATE_H
#define NUAGE_TEMPLATE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "nuage/nuage.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct nuage_template nuage_template;

/*
 * Parse a template (UTF-8, any line endings). Returns 0 and sets *out
 * (caller owns; nuage_template_free), or NUAGE_E_TEMPLATE with a message
 * "line N: ..." in err (syntax error, invalid UTF-8), or NUAGE_E_NOMEM.
 */
int nuage_template_parse(const char *src, size_t len, nuage_template **out,
                         char *err, size_t errlen);
void nuage_template_free(nuage_template *t);

typedef struct {
    const char *messages_json;   /* JSON array of messages (required) */
    const char *tools_json;      /* JSON array or NULL -> tools = none */
    const char *vars_json;       /* JSON object of extra variables or NULL */
    bool add_generation_prompt;
    const char *bos_token;       /* NULL -> undefined */
    const char *eos_token;       /* NULL -> undefined */
    int64_t now;                 /* time for strftime_now, seconds since the
                                    epoch (formatted as UTC); < 0 ->
                                    $SOURCE_DATE_EPOCH if set (UTC), else the
                                    current local time */
} nuage_template_input;

/*
 * Render into a malloc'd NUL-terminated string (*out, *out_len; caller
 * frees). Returns 0, or NUAGE_E_TEMPLATE with the message in err (for
 * raise_exception exactly the template's message, otherwise "line N: ..."),
 * NUAGE_E_INVAL (malformed JSON input) or NUAGE_E_NOMEM.
 */
int nuage_template_render(const nuage_template *t, const nuage_template_input *in,
                          char **out, size_t *out_len, char *err, size_t errlen);

/*
 * Same over already-parsed JSON (jansson json_t *, passed as void * so that
 * this header does not need jansson.h): messages must be an array; tools
 * NULL or JSON null -> none; vars NULL or an object whose members become
 * variables. The json values are only read. Other fields of `in` as above
 * (its *_json members are ignored).
 */
int nuage_template_render_json(const nuage_template *t, const void *messages,
                               const void *tools, const void *vars,
                               const nuage_template_input *in, char **out,
                               size_t *out_len, char *err, size_t errlen);

/*
 * What a template expects of OpenAI-style messages, read from its source
 * (chat templates differ, and transformers passes messages through as
 * given, so a server has to hand each template the shape it was written
 * for):
 *   developer_role  the template names a "developer" role itself; without
 *                   it, developer messages are rendered as system ones.
 *   content_none    the template tests a message's content against none
 *                   (DeepSeek: an assistant turn with content none is a
 *                   tool-call turn), so null content must stay null;
 *                   other templates get "" instead (string operations on
 *                   none fail in Jinja: "'NoneType' is not iterable").
 *   args_string     the template concatenates tool-call arguments as a
 *                   string (DeepSeek: `... + tool['function']['arguments']`);
 *                   other templates get them as an object (they `tojson`
 *                   or iterate them), as vLLM and llama.cpp do.
 *   thinking_field  the template reads an assistant turn's reasoning from
 *                   a `thinking` field (gpt-oss); OpenAI-style clients send
 *                   it as `reasoning_content`, which is copied there.
 *   effort_var      the template reads a `reasoning_effort` variable
 *                   (gpt-oss: "Reasoning: high" in its system message); the
 *                   request's reasoning_effort is bound to it.
 */
typedef struct {
    bool developer_role;
    bool content_none;
    bool args_string;
    bool thinking_field;
    bool effort_var;
} nuage_template_traits;

/* The traits of template source src[0..len). */
nuage_template_traits nuage_template_traits_scan(const char *src, size_t len);
/* The traits of a parsed template (read at parse time). */
const nuage_template_traits *nuage_template_traits_of(const nuage_template *t);

/* The ChatML template used when a model has none (static string). */
const char *nuage_template_chatml(void);

#ifdef __cplusplus
}
#endif
#endif
