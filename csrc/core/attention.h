// Masked attention of each root over its k sampled slots: the dense engine's inner loop on CPU
// (dgl_tgnn/nn/attention.py, MaskedAttention), fused per root so that a root's slots are read once
// per pass instead of once per small matrix product. Torch-free; float32, row-major.
#pragma once

#include <cstdint>
#include <vector>

namespace tgnn {

// Shapes: R roots, H heads, k slots; the slot inputs come as column blocks ("parts") of widths
// I_p, I = sum I_p. qk [R, H, I]; part p [R, k, I_p]; mask [R, k]; alpha [R, H, k]; agg [R, H, I].
struct AttentionShape {
  int64_t roots, heads, slots;
  std::vector<int64_t> widths;
  int64_t width() const;  // I
};

// Rows [begin, end) of
//   alpha[r, h, j] = softmax over the valid j of qk[r, h] . x[r, j]   (0 where mask is false; all
//                    0 for a root without valid slots)
//   agg[r, h]      = sum_j alpha[r, h, j] x[r, j]
void attention_forward(const AttentionShape& s, const float* qk, const std::vector<const float*>& parts,
                       const bool* mask, float* alpha, float* agg, int64_t begin, int64_t end);

// Rows [begin, end) of the gradients given grad_agg [R, H, I]: grad_qk [R, H, I] (skipped when
// null) and grad_parts[p] [R, k, I_p] (each skipped when null). Every output row is overwritten.
void attention_backward(const AttentionShape& s, const float* qk, const std::vector<const float*>& parts,
                        const float* alpha, const float* grad_agg, float* grad_qk,
                        const std::vector<float*>& grad_parts, int64_t begin, int64_t end);

}  // namespace tgnn
