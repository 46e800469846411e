// Every CPU op family's kernels, for the bindings compiled into fastnn._cpu (bindings/backend.h).
// The same list, with the same signatures, is cuda/kernels.h.
#pragma once

#include "cpu/activation.h"
#include "cpu/batchnorm.h"
#include "cpu/bce_logits.h"
#include "cpu/conv2d.h"
#include "cpu/dropout.h"
#include "cpu/gemm.h"
#include "cpu/linear.h"
#include "cpu/optim.h"
#include "cpu/pool2d.h"
#include "cpu/softmax_xent.h"
#include "cpu/l2_normalize.h"
#include "cpu/arcface.h"
#include "cpu/triplet.h"
#include "cpu/similarity.h"
