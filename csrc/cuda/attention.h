// CUDA launchers of the fused masked attention (the same function as csrc/core/attention.h on the
// CPU): one block per root, so a training step issues one kernel per pass instead of the dozen
// batched products, masks and softmaxes of the unfused path. Torch-free: pointers in, on a stream.
#pragma once

#include <cuda_runtime.h>

#include <cstdint>

#include "cuda/attention_limits.h"

namespace tgnn::cuda {


// R roots, H heads, k slots; the slot inputs as column blocks ("parts") part[p] [R, k, widths[p]];
// qk [R, H, I] with I = sum widths; mask [R, k]; alpha [R, H, k]; agg [R, H, I]. float32, row-major.
struct AttentionArgs {
  int64_t roots, heads, slots, width;
  int num_parts;
  int64_t widths[kMaxAttentionParts];
  const float* parts[kMaxAttentionParts];
};

// alpha and agg as attention_forward in core/attention.h. Returns the launch status.
cudaError_t launch_attention_forward(const AttentionArgs& a, const float* qk, const bool* mask, float* alpha,
                                     float* agg, cudaStream_t stream);

// grad_qk [R, H, I] (skipped when null) and grad_parts[p] [R, k, widths[p]] for p < num_parts (each
// skipped when null) from grad_agg [R, H, I], as attention_backward in core/attention.h. Returns the
// launch status.
cudaError_t launch_attention_backward(const AttentionArgs& a, const float* qk, const float* alpha,
                                      const float* grad_agg, float* grad_qk, float* const* grad_parts,
                                      cudaStream_t stream);

}  // namespace tgnn::cuda
