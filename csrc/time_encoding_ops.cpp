// CPU kernel of the harmonic time encoding (csrc/core/time_encoding.h), rows shared among torch's
// intra-op threads; and its input checks, shared with csrc/cuda/time_encoding_ops.cpp.
#include <ATen/Parallel.h>
#include <torch/library.h>

#include <utility>

#include "core/time_encoding.h"
#include "ops.h"

namespace tgnn::ops {

void check_harmonic(const at::Tensor& dt, const at::Tensor& weight, const at::Tensor& bias) {
  const bool device_ok = dt.is_cpu() || (kWithCuda && dt.is_cuda());
  const char* devices = kWithCuda ? "the CPU or a GPU" : "the CPU";
  for (const auto& [name, t] : {std::pair{"dt", &dt}, {"weight", &weight}, {"bias", &bias}}) {
    TORCH_CHECK_VALUE(device_ok && t->device() == dt.device() && t->scalar_type() == at::kFloat && t->dim() == 1,
                      "harmonic_encoding: ", name, " must be a 1-D float32 tensor on ", devices,
                      " (all three on one device), got ", c10::toString(t->scalar_type()), " on ", t->device().str(),
                      " with ", num(t->dim()), " dims");
  }
  TORCH_CHECK_VALUE(weight.size(0) == bias.size(0), "harmonic_encoding: weight and bias must have the same size, got ",
                    num(weight.size(0)), " and ", num(bias.size(0)));
}

}  // namespace tgnn::ops

namespace {

// cos(dt[:, None] * weight + bias): dt [n], weight and bias [D] -> [n, D].
at::Tensor harmonic_encoding(const at::Tensor& dt, const at::Tensor& weight, const at::Tensor& bias) {
  tgnn::ops::check_harmonic(dt, weight, bias);
  const at::Tensor d = dt.contiguous(), w = weight.contiguous(), b = bias.contiguous();
  const int64_t rows = d.size(0), dim = w.size(0);
  at::Tensor out = at::empty({rows, dim}, d.options());
  const float *dp = d.data_ptr<float>(), *wp = w.data_ptr<float>(), *bp = b.data_ptr<float>();
  float* op = out.data_ptr<float>();
  const int64_t grain = std::max<int64_t>(1, 32768 / std::max<int64_t>(dim, 1));
  at::parallel_for(0, rows, grain,
                   [&](int64_t begin, int64_t end) { tgnn::harmonic_encoding(dp, wp, bp, dim, op, begin, end); });
  return out;
}

}  // namespace

TORCH_LIBRARY_IMPL(dgl_tgnn, CPU, m) { m.impl("harmonic_encoding", &harmonic_encoding); }
