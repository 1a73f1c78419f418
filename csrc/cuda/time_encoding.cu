// Harmonic time encoding on the GPU: one thread per output element, reads coalesced along dim.
#include <cuda_runtime.h>

#include <algorithm>
#include <cmath>

#include "core/reduced_cos.h"
#include "cuda/time_encoding.h"

namespace tgnn::cuda {

namespace {

constexpr int kThreads = 256;

__global__ void harmonic_encoding_kernel(const float* __restrict__ dt, const float* __restrict__ w,
                                         const float* __restrict__ b, int64_t n, int64_t dim,
                                         float* __restrict__ out) {
  const int64_t total = n * dim;
  for (int64_t e = blockIdx.x * static_cast<int64_t>(blockDim.x) + threadIdx.x; e < total;
       e += static_cast<int64_t>(gridDim.x) * blockDim.x) {
    const int64_t j = e % dim;
    const float x = __fmaf_rn(dt[e / dim], w[j], b[j]);
    // Beyond reduced_cos's domain, and for NaN or infinite arguments, CUDA's accurate cosf.
    out[e] = fabsf(x) < static_cast<float>(kReducedCosLimit) ? reduced_cos(x) : cosf(x);
  }
}

}  // namespace

cudaError_t launch_harmonic_encoding(const float* dt, const float* w, const float* b, int64_t n, int64_t dim,
                                     float* out, cudaStream_t stream) {
  const int64_t total = n * dim;
  if (total == 0) return cudaSuccess;
  const int64_t blocks = std::min<int64_t>((total + kThreads - 1) / kThreads, 65535);
  harmonic_encoding_kernel<<<static_cast<unsigned>(blocks), kThreads, 0, stream>>>(dt, w, b, n, dim, out);
  return cudaGetLastError();
}

}  // namespace tgnn::cuda
