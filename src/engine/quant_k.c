/* Placeholder: K-quant kernels are registered here. */
#include "engine/quant.h"
void nuage__quant_register_k(nuage_type_traits *table, int level) { (void)table; (void)level; }
