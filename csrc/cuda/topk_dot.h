// CUDA launcher of the fused top-K dot product. Torch-free: pointers in, pointers out, on the
// given stream. Same order as tgnn::TopKSelector: larger score first, smaller index on ties; NaN
// and -inf scores are never selected; (-inf, -1) pads rows with fewer than k candidates left.
//
// Scores: bfloat16 inputs, from tensor cores (exact products, float32 sums). Float32 inputs: exact,
// the same as the CPU kernel's (products and sums in float64 in its order, rounded once to float32;
// cosine: divided by the float64 norms first), found by a filter pass with a proven error bound and
// the exact rescoring of its survivors (csrc/cuda/topk_dot.cu, "Float32").
#pragma once

#include <cuda_runtime.h>

#include <cstdint>

namespace tgnn::cuda {

// Largest k of the fused kernel.
constexpr int64_t kTopkMaxK = 256;

// Cosine similarity divides by max(|x|, kTopkNormEps) (the value of tgnn::ops::kNormEps).
constexpr double kTopkNormEps = 1e-12;

struct TopkDotArgs {
  const void* queries;      // [B, d] float32 or bfloat16, rows contiguous (row stride d)
  const void* candidates;   // [N, d] same dtype, element stride 1, row stride candidate_stride
  int64_t candidate_stride; // elements between candidate rows
  bool bfloat16;            // dtype of both (else float32)
  int64_t num_queries;      // B >= 1
  int64_t num_candidates;   // N, 1 <= N < 2^31
  int64_t dim;              // d >= 1; d * element size must be a multiple of 4 bytes
  int64_t k;                // 1 <= k <= min(N, kTopkMaxK)
  const int64_t* exclude;   // [B, m] candidate ids, each row sorted ascending (-1 padding first)
  int64_t num_exclude;      // m >= 0
  bool normalize;                // cosine similarity
  const float* query_scale;      // bfloat16: [B] factor of each query's scores (cosine: 1/|q|), else null
  const float* candidate_scale;  // bfloat16: [N] factor of each candidate's scores (1/|e|), else null
  float* values;            // [B, k] out
  int64_t* indices;         // [B, k] out
};

// Whether the fused kernel covers k and d for this dtype on the current device (shared memory).
bool topk_dot_supported(int64_t k, int64_t dim, bool bfloat16);

// Bytes of device workspace launch_topk_dot needs for these arguments on the current device.
int64_t topk_dot_workspace_bytes(const TopkDotArgs& args);

// Runs the seed pass (where planned), the kernel and the final merge (float32: the bounds before,
// the rescoring and the fallback after); workspace holds topk_dot_workspace_bytes(args) bytes.
// Returns the launch status (asynchronous: nothing waits for the kernels).
cudaError_t launch_topk_dot(const TopkDotArgs& args, void* workspace, cudaStream_t stream);

}  // namespace tgnn::cuda
