// Every CUDA op family's kernels, for the bindings compiled into fastnn._cuda (bindings/backend.h).
// The same list, with the same signatures, is cpu/kernels.h.
#pragma once

#include "cuda/activation.h"
#include "cuda/batchnorm.h"
#include "cuda/bce_logits.h"
#include "cuda/conv2d.h"
#include "cuda/dropout.h"
#include "cuda/gemm.h"
#include "cuda/linear.h"
#include "cuda/optim.h"
#include "cuda/pool2d.h"
#include "cuda/softmax_xent.h"
#include "cuda/l2_normalize.h"
#include "cuda/arcface.h"
#include "cuda/triplet.h"
#include "cuda/similarity.h"
