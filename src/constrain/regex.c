/*
 * regex.c - ECMAScript regular expressions and JSON Schema string formats
 * as grammar expressions. (Placeholder: refuses everything until written.)
 */
#include "constrain/grammar.h"
#include "nuage/nuage.h"
#include <stdio.h>

int ncg_regex(ncg_builder *b, const char *re, size_t len, bool anchored, bool json_string,
              ncg_expr *out, nuage_cg_error *err) {
    (void)b; (void)re; (void)len; (void)anchored; (void)json_string; (void)out;
    if (err) { snprintf(err->msg, sizeof err->msg, "regular expressions are not supported yet"); err->pointer[0] = 0; }
    return NUAGE_E_UNSUPPORTED;
}

int ncg_json_format(ncg_builder *b, const char *fmt, ncg_expr *out, nuage_cg_error *err) {
    (void)b; (void)out;
    if (err) { snprintf(err->msg, sizeof err->msg, "format '%s' is not supported", fmt); err->pointer[0] = 0; }
    return NUAGE_E_UNSUPPORTED;
}
