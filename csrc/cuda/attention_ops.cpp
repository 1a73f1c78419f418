// CUDA kernels of the fused masked attention (csrc/cuda/attention.h): one block per root. Inputs
// are checked as on the CPU (csrc/attention_ops.cpp), plus the kernels' limits.
#include <c10/cuda/CUDAGuard.h>
#include <c10/cuda/CUDAStream.h>
#include <torch/library.h>

#include <tuple>
#include <vector>

#include "cuda/attention.h"
#include "ops.h"

namespace {

using tgnn::ops::num;

// The kernels' arguments: at most kMaxAttentionParts parts and kMaxAttentionWeights (head, slot)
// weights per root (dgl_tgnn.nn.attention sends larger inputs to its batched products instead).
tgnn::cuda::AttentionArgs cuda_args(const tgnn::AttentionShape& s, at::TensorList parts) {
  using tgnn::cuda::kMaxAttentionParts, tgnn::cuda::kMaxAttentionWeights;
  TORCH_CHECK_VALUE(static_cast<int64_t>(parts.size()) <= kMaxAttentionParts, "parts: at most ",
                    num(kMaxAttentionParts), " on a GPU, got ", num(static_cast<int64_t>(parts.size())));
  TORCH_CHECK_VALUE(s.heads * s.slots <= kMaxAttentionWeights,
                    "masked attention on a GPU: heads x slots must be at most ", num(kMaxAttentionWeights), ", got ",
                    num(s.heads * s.slots));
  tgnn::cuda::AttentionArgs a{s.roots, s.heads, s.slots, s.width(), static_cast<int>(parts.size()), {}, {}};
  for (size_t p = 0; p < parts.size(); ++p) {
    a.widths[p] = s.widths[p];
    a.parts[p] = parts[p].data_ptr<float>();
  }
  return a;
}

void check_launch(cudaError_t status) {
  TORCH_CHECK(status == cudaSuccess, "masked attention: kernel launch failed: ", cudaGetErrorString(status));
}

std::tuple<at::Tensor, at::Tensor> masked_attention(const at::Tensor& qk, const at::Tensor& mask,
                                                    at::TensorList parts) {
  const tgnn::AttentionShape s = tgnn::ops::check_attention(qk, mask, parts);
  const tgnn::cuda::AttentionArgs args = cuda_args(s, parts);
  const c10::cuda::CUDAGuard guard(qk.device());
  auto agg = at::empty({s.roots, s.heads, s.width()}, qk.options());
  auto alpha = at::empty({s.roots, s.heads, s.slots}, qk.options());
  check_launch(tgnn::cuda::launch_attention_forward(args, qk.data_ptr<float>(), mask.data_ptr<bool>(),
                                                    alpha.data_ptr<float>(), agg.data_ptr<float>(),
                                                    c10::cuda::getCurrentCUDAStream()));
  return {agg, alpha};
}

std::vector<at::Tensor> masked_attention_backward(const at::Tensor& qk, const at::Tensor& mask, at::TensorList parts,
                                                  const at::Tensor& alpha, const at::Tensor& grad_agg, bool need_qk,
                                                  const c10::List<bool>& need_parts) {
  const tgnn::AttentionShape s = tgnn::ops::check_attention(qk, mask, parts);
  tgnn::ops::check_attention_backward(s, qk, parts, alpha, grad_agg, need_parts.size());
  const tgnn::cuda::AttentionArgs args = cuda_args(s, parts);
  const c10::cuda::CUDAGuard guard(qk.device());
  std::vector<at::Tensor> grads;
  if (need_qk) grads.push_back(at::empty_like(qk));
  float* grad_qk = need_qk ? grads.front().data_ptr<float>() : nullptr;
  std::vector<float*> grad_parts;
  for (size_t p = 0; p < parts.size(); ++p) {
    if (need_parts.get(p)) grads.push_back(at::empty_like(parts[p]));
    grad_parts.push_back(need_parts.get(p) ? grads.back().data_ptr<float>() : nullptr);
  }
  check_launch(tgnn::cuda::launch_attention_backward(args, qk.data_ptr<float>(), alpha.data_ptr<float>(),
                                                     grad_agg.data_ptr<float>(), grad_qk, grad_parts.data(),
                                                     c10::cuda::getCurrentCUDAStream()));
  return grads;
}

}  // namespace

TORCH_LIBRARY_IMPL(dgl_tgnn, CUDA, m) {
  m.impl("masked_attention", &masked_attention);
  m.impl("masked_attention_backward", &masked_attention_backward);
}
