/* placeholder, replaced below */
#include "engine/quant_mxfp4.h"
void nuage__mxfp4_register_avx512(nuage_type_traits *t) { (void)t; }
