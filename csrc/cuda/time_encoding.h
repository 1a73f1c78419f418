// CUDA launcher of the harmonic time encoding (the function of core/time_encoding.h on the CPU):
// one fused kernel instead of torch's multiply-add and cosine. Torch-free: pointers in, on a stream.
#pragma once

#include <cuda_runtime.h>

#include <cstdint>

namespace tgnn::cuda {

// out [n, dim] = cos(dt[i] * w[j] + b[j]), the argument formed in float32 with one rounding (a fused
// multiply-add) and its cosine within 1e-7 of the exact one; float32, row-major. Returns the
// launch status.
cudaError_t launch_harmonic_encoding(const float* dt, const float* w, const float* b, int64_t n, int64_t dim,
                                     float* out, cudaStream_t stream);

}  // namespace tgnn::cuda
