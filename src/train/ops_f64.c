/*
 * ops_f64.c - the same operations in double, for the gradient checks
 * (ops_impl.h instantiated with R = double).
 */
#include <math.h>
#include <string.h>

#include "train/tops.h"

#define R double
#define OP(name) name##_f64
#define EXP exp
#define SQRT sqrt
#include "train/ops_impl.h"
