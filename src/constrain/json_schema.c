/*
 * json_schema.c - JSON Schema to grammar. (Placeholder: refuses everything
 * until written.)
 */
#include "constrain/grammar.h"
#include "nuage/nuage.h"
#include <stdio.h>

int ncg_json_schema(ncg_builder *b, const void *schema, const nuage_cg_json_opts *opts,
                    ncg_expr *out, nuage_cg_error *err) {
    (void)b; (void)schema; (void)opts; (void)out;
    if (err) { snprintf(err->msg, sizeof err->msg, "JSON Schema is not supported yet"); err->pointer[0] = 0; }
    return NUAGE_E_UNSUPPORTED;
}
