// Torch glue of the fused masked attention (csrc/core/attention.h) on CPU float32 tensors; roots
// are shared among torch's intra-op threads.
#include <ATen/Parallel.h>

#include <string>
#include <tuple>
#include <vector>

#include "core/attention.h"
#include "core/format.h"
#include "ops.h"

namespace py = pybind11;

namespace {

std::string num(int64_t x) { return tgnn::format_int(x); }

// Checks qk [R, H, I], mask [R, k] and parts [R, k, I_p] (sum I_p = I); returns the shape.
tgnn::AttentionShape check(const at::Tensor& qk, const at::Tensor& mask, const std::vector<at::Tensor>& parts) {
  TORCH_CHECK_VALUE(qk.dim() == 3 && qk.scalar_type() == at::kFloat && qk.is_cpu() && qk.is_contiguous(),
                    "qk: expected a contiguous CPU float32 tensor [R, H, I]");
  TORCH_CHECK_VALUE(mask.dim() == 2 && mask.scalar_type() == at::kBool && mask.is_cpu() && mask.is_contiguous(),
                    "mask: expected a contiguous CPU bool tensor [R, k]");
  TORCH_CHECK_VALUE(mask.size(0) == qk.size(0), "mask: ", num(mask.size(0)), " rows, qk has ", num(qk.size(0)));
  TORCH_CHECK_VALUE(!parts.empty(), "parts: expected at least one");
  tgnn::AttentionShape s{qk.size(0), qk.size(1), mask.size(1), {}};
  for (size_t p = 0; p < parts.size(); ++p) {
    const at::Tensor& x = parts[p];
    TORCH_CHECK_VALUE(x.dim() == 3 && x.scalar_type() == at::kFloat && x.is_cpu() && x.is_contiguous() &&
                          x.size(0) == s.roots && x.size(1) == s.slots && x.size(2) >= 1,
                      "parts[", num(p), "]: expected a contiguous CPU float32 tensor [", num(s.roots), ", ",
                      num(s.slots), ", width >= 1]");
    s.widths.push_back(x.size(2));
  }
  TORCH_CHECK_VALUE(s.width() == qk.size(2), "qk: width ", num(qk.size(2)), ", the parts' widths sum to ",
                    num(s.width()));
  return s;
}

std::vector<const float*> pointers(const std::vector<at::Tensor>& parts) {
  std::vector<const float*> out;
  for (const at::Tensor& x : parts) out.push_back(x.data_ptr<float>());
  return out;
}

int64_t grain(const tgnn::AttentionShape& s) {
  return std::max<int64_t>(1, 32768 / std::max<int64_t>(1, s.slots * s.width()));
}

// (agg [R, H, I], alpha [R, H, k])
std::tuple<at::Tensor, at::Tensor> masked_attention_forward(const at::Tensor& qk, const at::Tensor& mask,
                                                            const std::vector<at::Tensor>& parts) {
  const tgnn::AttentionShape s = check(qk, mask, parts);
  auto agg = at::empty({s.roots, s.heads, s.width()}, qk.options());
  auto alpha = at::empty({s.roots, s.heads, s.slots}, qk.options());
  const auto x = pointers(parts);
  py::gil_scoped_release no_gil;
  at::parallel_for(0, s.roots, grain(s), [&](int64_t begin, int64_t end) {
    tgnn::attention_forward(s, qk.data_ptr<float>(), x, mask.data_ptr<bool>(), alpha.data_ptr<float>(),
                            agg.data_ptr<float>(), begin, end);
  });
  return {agg, alpha};
}

// (grad_qk or None, [grad_part or None]) for the flags need_qk, need_parts.
std::tuple<std::optional<at::Tensor>, std::vector<std::optional<at::Tensor>>> masked_attention_backward(
    const at::Tensor& qk, const at::Tensor& mask, const std::vector<at::Tensor>& parts, const at::Tensor& alpha,
    const at::Tensor& grad_agg, bool need_qk, const std::vector<bool>& need_parts) {
  const tgnn::AttentionShape s = check(qk, mask, parts);
  TORCH_CHECK_VALUE(alpha.is_contiguous() && alpha.scalar_type() == at::kFloat &&
                        alpha.sizes() == at::IntArrayRef({s.roots, s.heads, s.slots}),
                    "alpha: expected the forward's [R, H, k] float32 weights");
  TORCH_CHECK_VALUE(grad_agg.is_contiguous() && grad_agg.scalar_type() == at::kFloat && grad_agg.sizes() == qk.sizes(),
                    "grad_agg: expected a contiguous float32 tensor shaped like qk");
  TORCH_CHECK_VALUE(need_parts.size() == parts.size(), "need_parts: one flag per part");
  std::optional<at::Tensor> grad_qk;
  if (need_qk) grad_qk = at::empty_like(qk);
  std::vector<std::optional<at::Tensor>> grad_parts;
  std::vector<float*> out;
  for (size_t p = 0; p < parts.size(); ++p) {
    if (need_parts[p]) {
      grad_parts.emplace_back(at::empty_like(parts[p]));
      out.push_back(grad_parts.back()->data_ptr<float>());
    } else {
      grad_parts.emplace_back(std::nullopt);
      out.push_back(nullptr);
    }
  }
  const auto x = pointers(parts);
  float* grad_qk_ptr = need_qk ? grad_qk->data_ptr<float>() : nullptr;
  py::gil_scoped_release no_gil;
  at::parallel_for(0, s.roots, grain(s), [&](int64_t begin, int64_t end) {
    tgnn::attention_backward(s, qk.data_ptr<float>(), x, alpha.data_ptr<float>(), grad_agg.data_ptr<float>(),
                             grad_qk_ptr, out, begin, end);
  });
  return {grad_qk, grad_parts};
}

}  // namespace

void register_attention_ops(pybind11::module_& m) {
  m.def("masked_attention_forward", &masked_attention_forward, py::arg("qk"), py::arg("mask"), py::arg("parts"),
        "Fused masked attention over the slots (CPU float32): (agg [R, H, I], alpha [R, H, k]).");
  m.def("masked_attention_backward", &masked_attention_backward, py::arg("qk"), py::arg("mask"), py::arg("parts"),
        py::arg("alpha"), py::arg("grad_agg"), py::arg("need_qk"), py::arg("need_parts"),
        "Gradients of masked_attention_forward: (grad_qk or None, [grad_part or None]).");
}
