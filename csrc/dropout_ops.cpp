// CPU kernel of the dropout masks (csrc/core/dropout.h); elements are shared among torch's
// intra-op threads.
#include <ATen/Parallel.h>
#include <torch/library.h>

#include "core/dropout.h"
#include "ops.h"

namespace {

// A float32 CPU tensor shaped like x (whose values are not read), each element 0 with probability
// p, else 1 / (1 - p): a function of (seed, element index) only.
at::Tensor dropout_mask(const at::Tensor& x, double p, int64_t seed) {
  TORCH_CHECK_VALUE(p >= 0.0 && p < 1.0, "dropout_mask: p must be in [0, 1)");
  at::Tensor out = at::empty(x.sizes(), at::kFloat);
  float* data = out.data_ptr<float>();
  const auto key = static_cast<uint64_t>(seed);
  at::parallel_for(0, out.numel(), 32768,
                   [&](int64_t begin, int64_t end) { tgnn::dropout_mask(key, p, data, begin, end); });
  return out;
}

}  // namespace

TORCH_LIBRARY_IMPL(dgl_tgnn, CPU, m) { m.impl("dropout_mask", &dropout_mask); }
