// CUDA kernel of the harmonic time encoding (csrc/cuda/time_encoding.h): one fused kernel. Inputs
// are checked as on the CPU (csrc/time_encoding_ops.cpp).
#include <c10/cuda/CUDAGuard.h>
#include <c10/cuda/CUDAStream.h>
#include <torch/library.h>

#include "cuda/time_encoding.h"
#include "ops.h"

namespace {

at::Tensor harmonic_encoding(const at::Tensor& dt, const at::Tensor& weight, const at::Tensor& bias) {
  tgnn::ops::check_harmonic(dt, weight, bias);
  const c10::cuda::CUDAGuard guard(dt.device());
  const at::Tensor d = dt.contiguous(), w = weight.contiguous(), b = bias.contiguous();
  const int64_t rows = d.size(0), dim = w.size(0);
  at::Tensor out = at::empty({rows, dim}, d.options());
  const cudaError_t status = tgnn::cuda::launch_harmonic_encoding(
      d.data_ptr<float>(), w.data_ptr<float>(), b.data_ptr<float>(), rows, dim, out.data_ptr<float>(),
      c10::cuda::getCurrentCUDAStream());
  TORCH_CHECK(status == cudaSuccess, "harmonic_encoding: kernel launch failed: ", cudaGetErrorString(status));
  return out;
}

}  // namespace

TORCH_LIBRARY_IMPL(dgl_tgnn, CUDA, m) { m.impl("harmonic_encoding", &harmonic_encoding); }
