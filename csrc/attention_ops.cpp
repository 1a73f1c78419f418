// CPU kernels of the fused masked attention on float32 tensors (csrc/core/attention.h), roots
// shared among torch's intra-op threads; and the input checks, shared with csrc/cuda/attention_ops.cpp.
#include <ATen/Parallel.h>
#include <torch/library.h>

#include <string>
#include <tuple>
#include <vector>

#include "core/attention.h"
#include "ops.h"

namespace tgnn::ops {

AttentionShape check_attention(const at::Tensor& qk, const at::Tensor& mask, at::TensorList parts) {
  const bool device_ok = qk.is_cpu() || (kWithCuda && qk.is_cuda());
  TORCH_CHECK_VALUE(qk.dim() == 3 && qk.scalar_type() == at::kFloat && device_ok && qk.is_contiguous(),
                    "qk: expected a contiguous float32 tensor [R, H, I] on the CPU", kWithCuda ? " or a GPU" : "");
  const std::string where = qk.device().str();
  TORCH_CHECK_VALUE(mask.dim() == 2 && mask.scalar_type() == at::kBool && mask.device() == qk.device() &&
                        mask.is_contiguous(),
                    "mask: expected a contiguous bool tensor [R, k] on ", where);
  TORCH_CHECK_VALUE(mask.size(0) == qk.size(0), "mask: ", num(mask.size(0)), " rows, qk has ", num(qk.size(0)));
  TORCH_CHECK_VALUE(!parts.empty(), "parts: expected at least one");
  AttentionShape s{qk.size(0), qk.size(1), mask.size(1), {}};
  for (size_t p = 0; p < parts.size(); ++p) {
    const at::Tensor& x = parts[p];
    TORCH_CHECK_VALUE(x.dim() == 3 && x.scalar_type() == at::kFloat && x.device() == qk.device() &&
                          x.is_contiguous() && x.size(0) == s.roots && x.size(1) == s.slots && x.size(2) >= 1,
                      "parts[", num(p), "]: expected a contiguous float32 tensor [", num(s.roots), ", ",
                      num(s.slots), ", width >= 1] on ", where);
    s.widths.push_back(x.size(2));
  }
  TORCH_CHECK_VALUE(s.width() == qk.size(2), "qk: width ", num(qk.size(2)), ", the parts' widths sum to ",
                    num(s.width()));
  return s;
}

void check_attention_backward(const AttentionShape& s, const at::Tensor& qk, at::TensorList parts,
                              const at::Tensor& alpha, const at::Tensor& grad_agg, size_t num_need_parts) {
  TORCH_CHECK_VALUE(alpha.is_contiguous() && alpha.scalar_type() == at::kFloat && alpha.device() == qk.device() &&
                        alpha.sizes() == at::IntArrayRef({s.roots, s.heads, s.slots}),
                    "alpha: expected the forward's [R, H, k] float32 weights");
  TORCH_CHECK_VALUE(grad_agg.is_contiguous() && grad_agg.scalar_type() == at::kFloat &&
                        grad_agg.device() == qk.device() && grad_agg.sizes() == qk.sizes(),
                    "grad_agg: expected a contiguous float32 tensor shaped like qk, on its device");
  TORCH_CHECK_VALUE(num_need_parts == parts.size(), "need_parts: one flag per part");
}

}  // namespace tgnn::ops

namespace {

std::vector<const float*> pointers(at::TensorList parts) {
  std::vector<const float*> out;
  for (const at::Tensor& x : parts) out.push_back(x.data_ptr<float>());
  return out;
}

int64_t grain(const tgnn::AttentionShape& s) {
  return std::max<int64_t>(1, 32768 / std::max<int64_t>(1, s.slots * s.width()));
}

// (agg [R, H, I], alpha [R, H, k])
std::tuple<at::Tensor, at::Tensor> masked_attention(const at::Tensor& qk, const at::Tensor& mask,
                                                    at::TensorList parts) {
  const tgnn::AttentionShape s = tgnn::ops::check_attention(qk, mask, parts);
  auto agg = at::empty({s.roots, s.heads, s.width()}, qk.options());
  auto alpha = at::empty({s.roots, s.heads, s.slots}, qk.options());
  const auto x = pointers(parts);
  at::parallel_for(0, s.roots, grain(s), [&](int64_t begin, int64_t end) {
    tgnn::attention_forward(s, qk.data_ptr<float>(), x, mask.data_ptr<bool>(), alpha.data_ptr<float>(),
                            agg.data_ptr<float>(), begin, end);
  });
  return {agg, alpha};
}

// [grad_qk if need_qk] + [grad_parts[p] for each p with need_parts[p]]
std::vector<at::Tensor> masked_attention_backward(const at::Tensor& qk, const at::Tensor& mask, at::TensorList parts,
                                                  const at::Tensor& alpha, const at::Tensor& grad_agg, bool need_qk,
                                                  const c10::List<bool>& need_parts) {
  const tgnn::AttentionShape s = tgnn::ops::check_attention(qk, mask, parts);
  tgnn::ops::check_attention_backward(s, qk, parts, alpha, grad_agg, need_parts.size());
  std::vector<at::Tensor> grads;
  if (need_qk) grads.push_back(at::empty_like(qk));
  float* grad_qk = need_qk ? grads.front().data_ptr<float>() : nullptr;
  std::vector<float*> grad_parts;
  for (size_t p = 0; p < parts.size(); ++p) {
    if (need_parts.get(p)) grads.push_back(at::empty_like(parts[p]));
    grad_parts.push_back(need_parts.get(p) ? grads.back().data_ptr<float>() : nullptr);
  }
  const auto x = pointers(parts);
  at::parallel_for(0, s.roots, grain(s), [&](int64_t begin, int64_t end) {
    tgnn::attention_backward(s, qk.data_ptr<float>(), x, alpha.data_ptr<float>(), grad_agg.data_ptr<float>(),
                             grad_qk, grad_parts, begin, end);
  });
  return grads;
}

}  // namespace

TORCH_LIBRARY_IMPL(dgl_tgnn, CPU, m) {
  m.impl("masked_attention", &masked_attention);
  m.impl("masked_attention_backward", &masked_attention_backward);
}
