/*
 * tdata.c - training data: JSONL chats -> token sequences with a loss
 * mask (see train.h).
 *
 * A chat is rendered twice with the model's chat template: without its
 * last message but with the generation prompt (what the model will be
 * given), and whole. The second must start with the first; the rest is
 * the answer the model learns to write, tokenized on its own and cut
 * right after its first end-of-generation token (<|im_end|>): generation
 * stops there, so nothing after it is worth learning. Tokenizing the two
 * parts separately is what inference does too (prompt tokens, then
 * generated tokens), so the boundary is the same. A line's "tools" array
 * (tool-use chats, synth_tools.h) is handed to the template as `tools`.
 */
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "nuage/nuage.h"
#include "nuage/template.h"
#include "nuage/tokenizer.h"
#include "train/train.h"

/* Read one line (any length) into *buf; returns its length or -1 at EOF. */
static long nuage__getline(FILE *f, char **buf, size_t *cap) {
    ssize_t n = getline(buf, cap, f);
    if (n < 0) return -1;
    while (n > 0 && ((*buf)[n - 1] == '\n' || (*buf)[n - 1] == '\r')) (*buf)[--n] = 0;
    return (long)n;
}

/* Render messages (all of them, or all but the last with the generation
 * prompt). malloc'd text in *out. */
static int nuage__render(const nuage_template *t, json_t *msgs, json_t *tools, bool prompt_only, char **out,
                         size_t *len, char *err, size_t errlen) {
    json_t *use = msgs;
    if (prompt_only) {
        use = json_array();
        if (!use) return NUAGE_E_NOMEM;
        for (size_t i = 0; i + 1 < json_array_size(msgs); i++) json_array_append(use, json_array_get(msgs, i));
    }
    nuage_template_input in = {.add_generation_prompt = prompt_only, .now = 0};
    int rc = nuage_template_render_json(t, use, tools, NULL, &in, out, len, err, errlen);
    if (prompt_only) json_decref(use);
    return rc;
}

/* Parse a line into its messages array (a new reference) or NULL; its
 * "tools" array (a new reference, or NULL when absent) into *tools. */
static json_t *nuage__messages(const char *line, long lineno, json_t **tools, char *err, size_t errlen) {
    json_error_t je;
    json_t *o = json_loads(line, 0, &je);
    json_t *msgs = o ? json_object_get(o, "messages") : NULL;
    if (!msgs || !json_is_array(msgs) || json_array_size(msgs) < 2) {
        snprintf(err, errlen, "line %ld: expected {\"messages\": [...]} with at least two messages", lineno);
        json_decref(o);
        return NULL;
    }
    json_incref(msgs);
    json_t *tl = json_object_get(o, "tools");
    *tools = json_is_array(tl) && json_array_size(tl) ? json_incref(tl) : NULL;
    json_decref(o);
    return msgs;
}

static int nuage__tokenize(const nuage_vocab *v, const char *s, size_t n, bool add_special, int32_t **buf,
                           size_t *cap) {
    for (;;) {
        int k = nuage_tokenize(v, s, n, *buf, *cap, add_special, true);
        if (k < 0) return k;
        if ((size_t)k <= *cap) return k;
        int32_t *nb = realloc(*buf, (size_t)k * 2 * sizeof **buf);
        if (!nb) return NUAGE_E_NOMEM;
        *buf = nb;
        *cap = (size_t)k * 2;
    }
}

int nuage_tdata_load(nuage_tdata *d, const char *path, const nuage_vocab *v, const char *chat_template,
                     int max_len, char *err, size_t errlen) {
    memset(d, 0, sizeof *d);
    FILE *f = fopen(path, "r");
    if (!f) {
        snprintf(err, errlen, "cannot open %s", path);
        return NUAGE_E_IO;
    }
    nuage_template *t = NULL;
    const char *src = chat_template ? chat_template : nuage_template_chatml();
    int rc = nuage_template_parse(src, strlen(src), &t, err, errlen);
    if (rc) { fclose(f); return rc; }
    char *line = NULL, *pr = NULL, *full = NULL;
    size_t line_cap = 0, tcap = 0, acap = 0;
    int32_t *tb = NULL, *ab = NULL;
    size_t cap_seq = 1024, cap_tok = 1 << 16;
    d->off = malloc((cap_seq + 1) * sizeof *d->off);
    d->n_prompt = malloc(cap_seq * sizeof *d->n_prompt);
    d->tok = malloc(cap_tok * sizeof *d->tok);
    if (!d->off || !d->n_prompt || !d->tok) { rc = NUAGE_E_NOMEM; goto done; }
    d->off[0] = 0;
    long lineno = 0;
    while (nuage__getline(f, &line, &line_cap) >= 0) {
        lineno++;
        if (!line[0]) continue;
        json_t *tools = NULL;
        json_t *msgs = nuage__messages(line, lineno, &tools, err, errlen);
        if (!msgs) { rc = NUAGE_E_FORMAT; goto done; }
        size_t plen, flen;
        char terr[256];
        rc = nuage__render(t, msgs, tools, true, &pr, &plen, terr, sizeof terr);
        if (!rc) rc = nuage__render(t, msgs, tools, false, &full, &flen, terr, sizeof terr);
        json_decref(msgs);
        json_decref(tools);
        if (rc) {
            snprintf(err, errlen, "line %ld: cannot render the chat: %s", lineno, terr);
            goto done;
        }
        if (flen < plen || memcmp(full, pr, plen)) {
            snprintf(err, errlen, "line %ld: the rendered chat does not extend its prompt", lineno);
            rc = NUAGE_E_FORMAT;
            goto done;
        }
        int np = nuage__tokenize(v, pr, plen, true, &tb, &tcap);
        int na = np < 0 ? np : nuage__tokenize(v, full + plen, flen - plen, false, &ab, &acap);
        free(pr);
        free(full);
        pr = full = NULL;
        if (np < 0 || na < 0) { rc = np < 0 ? np : na; goto done; }
        for (int i = 0; i < na; i++)
            if (nuage_vocab_is_eog(v, ab[i])) { na = i + 1; break; }
        int n = np + na;
        if (n > max_len + 1) {
            n = max_len + 1;
            d->n_truncated++;
        }
        if (np >= n || na == 0) continue; /* no answer token left to learn */
        if ((size_t)d->n == cap_seq) {
            cap_seq *= 2;
            int64_t *no = realloc(d->off, (cap_seq + 1) * sizeof *no);
            if (!no) { rc = NUAGE_E_NOMEM; goto done; }
            d->off = no;
            int32_t *npb = realloc(d->n_prompt, cap_seq * sizeof *npb);
            if (!npb) { rc = NUAGE_E_NOMEM; goto done; }
            d->n_prompt = npb;
        }
        size_t at = (size_t)d->off[d->n];
        while (at + (size_t)n > cap_tok) {
            cap_tok *= 2;
            int32_t *nt = realloc(d->tok, cap_tok * sizeof *nt);
            if (!nt) { rc = NUAGE_E_NOMEM; goto done; }
            d->tok = nt;
        }
        memcpy(d->tok + at, tb, (size_t)np * sizeof *tb);
        memcpy(d->tok + at + np, ab, (size_t)(n - np) * sizeof *ab);
        d->n_prompt[d->n] = np;
        d->n_tgt += n - np;
        d->off[++d->n] = (int64_t)(at + (size_t)n);
    }
    if (d->n == 0) {
        snprintf(err, errlen, "%s: no usable chat", path);
        rc = NUAGE_E_FORMAT;
    }
done:
    if (rc == NUAGE_E_NOMEM) snprintf(err, errlen, "out of memory reading %s", path);
    free(line);
    free(pr);
    free(full);
    free(tb);
    free(ab);
    nuage_template_free(t);
    fclose(f);
    if (rc) nuage_tdata_free(d);
    return rc;
}

void nuage_tdata_free(nuage_tdata *d) {
    free(d->off);
    free(d->tok);
    free(d->n_prompt);
    memset(d, 0, sizeof *d);
}

int nuage_tdata_render_file(const char *path, const char *chat_template, char ***texts, size_t **lens,
                            size_t *n, char *err, size_t errlen) {
    *texts = NULL;
    *lens = NULL;
    *n = 0;
    FILE *f = fopen(path, "r");
    if (!f) {
        snprintf(err, errlen, "cannot open %s", path);
        return NUAGE_E_IO;
    }
    nuage_template *t = NULL;
    const char *src = chat_template ? chat_template : nuage_template_chatml();
    int rc = nuage_template_parse(src, strlen(src), &t, err, errlen);
    if (rc) { fclose(f); return rc; }
    char *line = NULL;
    size_t line_cap = 0, cap = 0;
    long lineno = 0;
    while (nuage__getline(f, &line, &line_cap) >= 0) {
        lineno++;
        if (!line[0]) continue;
        json_t *tools = NULL;
        json_t *msgs = nuage__messages(line, lineno, &tools, err, errlen);
        if (!msgs) { rc = NUAGE_E_FORMAT; break; }
        if (*n == cap) {
            cap = cap ? cap * 2 : 1024;
            char **nt = realloc(*texts, cap * sizeof *nt);
            size_t *nl = nt ? realloc(*lens, cap * sizeof *nl) : NULL;
            if (nt) *texts = nt;
            if (!nt || !nl) { json_decref(msgs); json_decref(tools); rc = NUAGE_E_NOMEM; break; }
            *lens = nl;
        }
        char terr[256];
        rc = nuage__render(t, msgs, tools, false, &(*texts)[*n], &(*lens)[*n], terr, sizeof terr);
        json_decref(msgs);
        json_decref(tools);
        if (rc) {
            snprintf(err, errlen, "line %ld: cannot render the chat: %s", lineno, terr);
            break;
        }
        (*n)++;
    }
    free(line);
    nuage_template_free(t);
    fclose(f);
    if (rc) {
        for (size_t i = 0; i < *n; i++) free((*texts)[i]);
        free(*texts);
        free(*lens);
        *texts = NULL;
        *lens = NULL;
        *n = 0;
    }
    return rc;
}
