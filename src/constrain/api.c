/*
 * api.c - the public grammar constructors (include/nuage/constrain.h):
 * each one writes a builder through a front end (regex.c, json_schema.c,
 * gbnf.c, or here for choice lists) and compiles it (compile.c); plus the
 * grammar's atomic reference count.
 */
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>

#include "constrain/cg_internal.h"
#include "nuage/nuage.h"

void ncg_grammar_destroy(nuage_grammar *g);

nuage_grammar *nuage_grammar_retain(nuage_grammar *g) {
    if (g) atomic_fetch_add_explicit(&g->refs, 1, memory_order_relaxed);
    return g;
}

void nuage_grammar_free(nuage_grammar *g) {
    if (g && atomic_fetch_sub_explicit(&g->refs, 1, memory_order_acq_rel) == 1) ncg_grammar_destroy(g);
}

static void set_err(nuage_cg_error *err, const char *msg) {
    if (err) {
        snprintf(err->msg, sizeof err->msg, "%s", msg);
        err->pointer[0] = 0;
    }
}

/* Compile root as the body of a fresh start rule; frees b. */
static int finish(ncg_builder *b, ncg_expr root, const nuage_cg_tokens *t, nuage_grammar **out,
                  nuage_cg_error *err) {
    ncg_rule r = ncg_rule_new(b, "root");
    int rc = r < 0 ? r : ncg_rule_set(b, r, root);
    if (rc == 0) rc = ncg_builder_finish(b, r, t, out, err);
    else if (err && !err->msg[0]) set_err(err, "out of memory");
    ncg_builder_free(b);
    return rc;
}

static ncg_builder *start(const nuage_cg_tokens *t, nuage_grammar **out, nuage_cg_error *err) {
    if (err) err->msg[0] = err->pointer[0] = 0;
    if (out) *out = NULL;
    if (!t || !out) return NULL;
    ncg_builder *b = ncg_builder_new();
    if (!b) set_err(err, "out of memory");
    return b;
}

int nuage_grammar_from_regex(const nuage_cg_tokens *t, const char *re, size_t len, nuage_grammar **out,
                             nuage_cg_error *err) {
    if (!re && len) return NUAGE_E_INVAL;
    ncg_builder *b = start(t, out, err);
    if (!b) return t && out ? NUAGE_E_NOMEM : NUAGE_E_INVAL;
    ncg_expr e = -1;
    int rc = ncg_regex(b, re ? re : "", len, true, false, &e, err);
    if (rc) { ncg_builder_free(b); return rc; }
    return finish(b, e, t, out, err);
}

int nuage_grammar_from_choices(const nuage_cg_tokens *t, const char *const *choices, const size_t *lens,
                               size_t n, nuage_grammar **out, nuage_cg_error *err) {
    if (n && (!choices || !lens)) return NUAGE_E_INVAL;
    ncg_builder *b = start(t, out, err);
    if (!b) return t && out ? NUAGE_E_NOMEM : NUAGE_E_INVAL;
    ncg_expr *alts = malloc((n ? n : 1) * sizeof *alts);
    if (!alts) { ncg_builder_free(b); set_err(err, "out of memory"); return NUAGE_E_NOMEM; }
    for (size_t i = 0; i < n; i++) alts[i] = ncg_bytes(b, choices[i], lens[i]);
    ncg_expr e = ncg_alt(b, alts, n);
    free(alts);
    return finish(b, e, t, out, err);
}

static int from_json(const nuage_cg_tokens *t, json_t *schema, const nuage_cg_json_opts *opts,
                     nuage_grammar **out, nuage_cg_error *err) {
    ncg_builder *b = start(t, out, err);
    if (!b) return t && out ? NUAGE_E_NOMEM : NUAGE_E_INVAL;
    ncg_expr e = -1;
    int rc = ncg_json_schema(b, schema, opts, &e, err);
    if (rc) { ncg_builder_free(b); return rc; }
    return finish(b, e, t, out, err);
}

int nuage_grammar_from_json_schema(const nuage_cg_tokens *t, const char *schema, size_t len,
                                   const nuage_cg_json_opts *opts, nuage_grammar **out, nuage_cg_error *err) {
    if (err) err->msg[0] = err->pointer[0] = 0;
    if (!t || !out || (!schema && len)) return NUAGE_E_INVAL;
    *out = NULL;
    json_error_t je;
    json_t *j = json_loadb(schema ? schema : "", len, JSON_DECODE_ANY, &je);
    if (!j) {
        if (err) snprintf(err->msg, sizeof err->msg, "malformed JSON schema: %s (line %d, column %d)", je.text, je.line, je.column);
        return NUAGE_E_INVAL;
    }
    int rc = from_json(t, j, opts, out, err);
    json_decref(j);
    return rc;
}

int nuage_grammar_json_object(const nuage_cg_tokens *t, const nuage_cg_json_opts *opts, nuage_grammar **out,
                              nuage_cg_error *err) {
    static const char obj[] = "{\"type\":\"object\"}";
    return nuage_grammar_from_json_schema(t, obj, sizeof obj - 1, opts, out, err);
}

int nuage_grammar_from_gbnf(const nuage_cg_tokens *t, const char *gbnf, size_t len, nuage_grammar **out,
                            nuage_cg_error *err) {
    if (!gbnf && len) return NUAGE_E_INVAL;
    ncg_builder *b = start(t, out, err);
    if (!b) return t && out ? NUAGE_E_NOMEM : NUAGE_E_INVAL;
    ncg_rule root = -1;
    int rc = ncg_gbnf_for(b, gbnf ? gbnf : "", len, t, &root, err);
    if (rc == 0) rc = ncg_builder_finish(b, root, t, out, err);
    ncg_builder_free(b);
    return rc;
}
