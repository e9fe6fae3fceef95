/*
 * cmd_template.c - `nuage template`: render a chat template from the
 * command line, to check prompts against Hugging Face's apply_chat_template.
 *
 *   nuage template (-m MODEL | --template FILE) --messages FILE.json
 *                  [--tools FILE.json] [--vars FILE.json]
 *                  [--no-generation-prompt] [--bos S] [--eos S]
 *
 * With -m the template is the GGUF's tokenizer.chat_template (ChatML when
 * the model has none) and bos_token / eos_token are the texts of
 * tokenizer.ggml.bos_token_id / eos_token_id; --bos / --eos override them.
 * With --template they are undefined unless given. A FILE of "-" is stdin.
 * The rendering goes to stdout exactly (no newline added). strftime_now
 * uses $SOURCE_DATE_EPOCH (UTC) when set, else the local time.
 * Exit codes: 0 ok, 1 error (including the template's raise_exception,
 * whose message goes to stderr), 2 usage.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"
#include "cli_util.h"
#include "engine/gguf.h"
#include "nuage/nuage.h"
#include "nuage/template.h"

static const char *CMD = "template";

static int usage(void) {
    fprintf(stderr,
            "usage: nuage template (-m MODEL | --template FILE) --messages FILE.json\n"
            "                      [--tools FILE.json] [--vars FILE.json]\n"
            "                      [--no-generation-prompt] [--bos S] [--eos S]\n");
    return 2;
}

/* Whole file (or stdin for "-") as a malloc'd NUL-terminated buffer. */
static char *slurp(const char *path, size_t *len) {
    FILE *f = strcmp(path, "-") ? fopen(path, "rb") : stdin;
    if (!f) return NULL;
    size_t cap = 1 << 16, n = 0;
    char *buf = malloc(cap);
    while (buf) {
        if (cap - n < 4096) {
            char *nb = realloc(buf, cap *= 2);
            if (!nb) { free(buf); buf = NULL; break; }
            buf = nb;
        }
        size_t k = fread(buf + n, 1, cap - n - 1, f);
        n += k;
        if (k == 0) {
            if (ferror(f)) { free(buf); buf = NULL; }
            break;
        }
    }
    if (f != stdin) fclose(f);
    if (buf) { buf[n] = 0; if (len) *len = n; }
    return buf;
}

/* Text of the token whose id is stored under key, or NULL. */
static char *token_text(const nuage_gguf *g, const char *key) {
    uint32_t id;
    if (!nuage_gguf_get_u32(g, key, &id)) return NULL;
    const nuage_gguf_value *toks = nuage_gguf_get_arr(g, "tokenizer.ggml.tokens", NUAGE_GGUF_STRING);
    if (!toks || id >= toks->v.arr.n) return NULL;
    const nuage_gguf_str *s = &((const nuage_gguf_str *)toks->v.arr.data)[id];
    return strndup(s->ptr, (size_t)s->len);
}

int nuage_cmd_template(int argc, char **argv) {
    const char *model = NULL, *tfile = NULL, *mfile = NULL, *toolsfile = NULL, *varsfile = NULL;
    const char *bos_arg = NULL, *eos_arg = NULL;
    bool gen = true;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        bool has_next = i + 1 < argc;
        if ((!strcmp(a, "-m") || !strcmp(a, "--model")) && has_next) model = argv[++i];
        else if (!strcmp(a, "--template") && has_next) tfile = argv[++i];
        else if (!strcmp(a, "--messages") && has_next) mfile = argv[++i];
        else if (!strcmp(a, "--tools") && has_next) toolsfile = argv[++i];
        else if (!strcmp(a, "--vars") && has_next) varsfile = argv[++i];
        else if (!strcmp(a, "--bos") && has_next) bos_arg = argv[++i];
        else if (!strcmp(a, "--eos") && has_next) eos_arg = argv[++i];
        else if (!strcmp(a, "--no-generation-prompt")) gen = false;
        else if (!strcmp(a, "-h") || !strcmp(a, "--help")) { usage(); return 0; }
        else return nuage_cli_fail(CMD, 2, "unknown or incomplete option '%s'", a);
    }
    if ((!model) == (!tfile) || !mfile) return usage();

    int ret = 1;
    char err[1024] = {0};
    char *src = NULL, *bos = NULL, *eos = NULL, *msgs = NULL, *tools = NULL, *vars = NULL, *out = NULL;
    size_t srclen = 0, outlen = 0;
    nuage_template *t = NULL;
    if (model) {
        nuage_gguf *g = NULL;
        int rc = nuage_gguf_open(model, &g, err, sizeof err);
        if (rc) { nuage_cli_fail(CMD, 1, "%s: %s", model, err[0] ? err : nuage_strerror(rc)); goto done; }
        uint64_t n = 0;
        const char *tmpl = nuage_gguf_get_str(g, "tokenizer.chat_template", &n);
        if (!tmpl) { tmpl = nuage_template_chatml(); n = strlen(tmpl); }
        src = malloc((size_t)n + 1);
        if (src) { memcpy(src, tmpl, (size_t)n); src[n] = 0; srclen = (size_t)n; }
        bos = token_text(g, "tokenizer.ggml.bos_token_id");
        eos = token_text(g, "tokenizer.ggml.eos_token_id");
        nuage_gguf_close(g);
        if (!src) { nuage_cli_fail(CMD, 1, "out of memory"); goto done; }
    } else if (!(src = slurp(tfile, &srclen))) {
        nuage_cli_fail(CMD, 1, "cannot read %s", tfile);
        goto done;
    }
    if (!(msgs = slurp(mfile, NULL))) { nuage_cli_fail(CMD, 1, "cannot read %s", mfile); goto done; }
    if (toolsfile && !(tools = slurp(toolsfile, NULL))) { nuage_cli_fail(CMD, 1, "cannot read %s", toolsfile); goto done; }
    if (varsfile && !(vars = slurp(varsfile, NULL))) { nuage_cli_fail(CMD, 1, "cannot read %s", varsfile); goto done; }

    int rc = nuage_template_parse(src, srclen, &t, err, sizeof err);
    if (rc) { nuage_cli_fail(CMD, 1, "template: %s", err); goto done; }
    nuage_template_input in = {
        .messages_json = msgs,
        .tools_json = tools,
        .vars_json = vars,
        .add_generation_prompt = gen,
        .bos_token = bos_arg ? bos_arg : bos,
        .eos_token = eos_arg ? eos_arg : eos,
        .now = -1,
    };
    rc = nuage_template_render(t, &in, &out, &outlen, err, sizeof err);
    if (rc) { nuage_cli_fail(CMD, 1, "%s", err[0] ? err : nuage_strerror(rc)); goto done; }
    if (fwrite(out, 1, outlen, stdout) != outlen || fflush(stdout) != 0) {
        nuage_cli_fail(CMD, 1, "write error");
        goto done;
    }
    ret = 0;
done:
    nuage_template_free(t);
    free(out);
    free(src);
    free(bos);
    free(eos);
    free(msgs);
    free(tools);
    free(vars);
    return ret;
}
