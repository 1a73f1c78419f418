// Torch glue of the fused masked attention on float32 tensors: on the CPU csrc/core/attention.h,
// with roots shared among torch's intra-op threads; on a GPU csrc/cuda/attention.h.
#include <ATen/Parallel.h>

#include <string>
#include <tuple>
#include <vector>

#include "core/attention.h"
#include "core/format.h"
#include "ops.h"
#ifdef WITH_CUDA
#include <c10/cuda/CUDAGuard.h>
#include <c10/cuda/CUDAStream.h>

#include "cuda/attention.h"
#endif

namespace py = pybind11;

namespace {

std::string num(int64_t x) { return tgnn::format_int(x); }

// Checks qk [R, H, I], mask [R, k] and parts [R, k, I_p] (sum I_p = I), all on qk's device (the
// CPU, or a GPU in a CUDA build); returns the shape.
tgnn::AttentionShape check(const at::Tensor& qk, const at::Tensor& mask, const std::vector<at::Tensor>& parts) {
#ifdef WITH_CUDA
  const bool device_ok = qk.is_cpu() || qk.is_cuda();
#else
  const bool device_ok = qk.is_cpu();
#endif
  TORCH_CHECK_VALUE(qk.dim() == 3 && qk.scalar_type() == at::kFloat && device_ok && qk.is_contiguous(),
                    "qk: expected a contiguous float32 tensor [R, H, I] on the CPU",
#ifdef WITH_CUDA
                    " or a GPU",
#endif
                    "");
  const std::string where = qk.device().str();
  TORCH_CHECK_VALUE(mask.dim() == 2 && mask.scalar_type() == at::kBool && mask.device() == qk.device() &&
                        mask.is_contiguous(),
                    "mask: expected a contiguous bool tensor [R, k] on ", where);
  TORCH_CHECK_VALUE(mask.size(0) == qk.size(0), "mask: ", num(mask.size(0)), " rows, qk has ", num(qk.size(0)));
  TORCH_CHECK_VALUE(!parts.empty(), "parts: expected at least one");
  tgnn::AttentionShape s{qk.size(0), qk.size(1), mask.size(1), {}};
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

#ifdef WITH_CUDA
// The kernels' arguments: at most kMaxAttentionParts parts and kMaxAttentionWeights (head, slot)
// weights per root (dgl_tgnn.nn.attention sends larger inputs to its batched products instead).
tgnn::cuda::AttentionArgs cuda_args(const tgnn::AttentionShape& s, const std::vector<at::Tensor>& parts) {
  using tgnn::cuda::kMaxAttentionParts, tgnn::cuda::kMaxAttentionWeights;
  TORCH_CHECK_VALUE(static_cast<int64_t>(parts.size()) <= kMaxAttentionParts, "parts: at most ",
                    num(kMaxAttentionParts), " on a GPU, got ", num(static_cast<int64_t>(parts.size())));
  TORCH_CHECK_VALUE(s.heads * s.slots <= kMaxAttentionWeights,
                    "masked attention on a GPU: heads x slots must be at most ", num(kMaxAttentionWeights),
                    ", got ", num(s.heads * s.slots));
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
#endif

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
#ifdef WITH_CUDA
  if (qk.is_cuda()) {
    const c10::cuda::CUDAGuard guard(qk.device());
    check_launch(tgnn::cuda::launch_attention_forward(cuda_args(s, parts), qk.data_ptr<float>(), mask.data_ptr<bool>(),
                                                      alpha.data_ptr<float>(), agg.data_ptr<float>(),
                                                      c10::cuda::getCurrentCUDAStream()));
    return {agg, alpha};
  }
#endif
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
  TORCH_CHECK_VALUE(alpha.is_contiguous() && alpha.scalar_type() == at::kFloat && alpha.device() == qk.device() &&
                        alpha.sizes() == at::IntArrayRef({s.roots, s.heads, s.slots}),
                    "alpha: expected the forward's [R, H, k] float32 weights");
  TORCH_CHECK_VALUE(grad_agg.is_contiguous() && grad_agg.scalar_type() == at::kFloat &&
                        grad_agg.device() == qk.device() && grad_agg.sizes() == qk.sizes(),
                    "grad_agg: expected a contiguous float32 tensor shaped like qk, on its device");
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
  float* grad_qk_ptr = need_qk ? grad_qk->data_ptr<float>() : nullptr;
#ifdef WITH_CUDA
  if (qk.is_cuda()) {
    const c10::cuda::CUDAGuard guard(qk.device());
    check_launch(tgnn::cuda::launch_attention_backward(cuda_args(s, parts), qk.data_ptr<float>(),
                                                       alpha.data_ptr<float>(), grad_agg.data_ptr<float>(),
                                                       grad_qk_ptr, out.data(), c10::cuda::getCurrentCUDAStream()));
    return {grad_qk, grad_parts};
  }
#endif
  const auto x = pointers(parts);
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
        "Fused masked attention over the slots (float32, CPU or GPU): (agg [R, H, I], alpha [R, H, k]).");
  m.def("masked_attention_backward", &masked_attention_backward, py::arg("qk"), py::arg("mask"), py::arg("parts"),
        py::arg("alpha"), py::arg("grad_agg"), py::arg("need_qk"), py::arg("need_parts"),
        "Gradients of masked_attention_forward: (grad_qk or None, [grad_part or None]).");
}
