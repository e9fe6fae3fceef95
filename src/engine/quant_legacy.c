/* Placeholder: legacy quant kernels are registered here. */
#include "engine/quant.h"
void nuage__quant_register_legacy(nuage_type_traits *table, int level) { (void)table; (void)level; }
