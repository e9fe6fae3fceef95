/*
 * ops_f32.c - the llama block's forward/backward operations in float
 * (ops_impl.h instantiated for the trainer).
 */
#include <math.h>
#include <string.h>

#include "train/tops.h"

#define R float
#define OP(name) name##_f32
#define EXP expf
#define SQRT sqrt
#include "train/ops_impl.h"
