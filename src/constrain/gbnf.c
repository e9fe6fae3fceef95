/* gbnf.c - placeholder, written in milestone 3 */
#include <stdio.h>
#include "constrain/grammar.h"
#include "nuage/nuage.h"
int ncg_gbnf(ncg_builder *b, const char *src, size_t len, ncg_rule *root, nuage_cg_error *err) {
    (void)b; (void)src; (void)len; (void)root;
    if (err) { snprintf(err->msg, sizeof err->msg, "GBNF is not supported yet"); err->pointer[0] = 0; }
    return NUAGE_E_UNSUPPORTED;
}
