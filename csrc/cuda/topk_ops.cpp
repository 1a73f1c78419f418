// CUDA kernel of the topk_dot op: the fused kernel of csrc/cuda/topk_dot.h where it covers k and d
// (float32: exact, equal to the CPU kernel's result), else the chunked exact scores of
// tgnn::ops::topk_dot_chunked. Inputs are checked as on the CPU.
#include <c10/cuda/CUDAGuard.h>
#include <c10/cuda/CUDAStream.h>
#include <torch/library.h>

#include <optional>
#include <tuple>

#include "cuda/topk_dot.h"
#include "ops.h"

namespace {

using tgnn::ops::kNormEps;
static_assert(kNormEps == tgnn::cuda::kTopkNormEps, "the kernels' cosine must clamp the norms as the CPU's");

// Candidates with element stride 1 and rows aligned to 4 bytes (what cp.async needs); bfloat16 rows
// of odd d get one zero column, which changes no dot product.
at::Tensor kernel_layout(at::Tensor x, bool pad_column) {
  if (pad_column) return at::constant_pad_nd(x, {0, 1}, 0);
  if (x.stride(1) != 1) x = x.contiguous();
  const int64_t stride_bytes = x.stride(0) * static_cast<int64_t>(x.element_size());
  if (reinterpret_cast<uintptr_t>(x.data_ptr()) % 4 != 0 || stride_bytes % 4 != 0) {
    x = x.clone(at::MemoryFormat::Contiguous);
  }
  return x;
}

at::Tensor inverse_norms(const at::Tensor& x) {
  return at::linalg_vector_norm(x, 2, {1}, false, at::kFloat).clamp_min(kNormEps).reciprocal();
}

std::tuple<at::Tensor, at::Tensor> topk_dot_cuda(const at::Tensor& queries_in, const at::Tensor& candidates_in,
                                                 int64_t k, const at::Tensor& exclude, bool normalize) {
  const c10::cuda::CUDAGuard guard(queries_in.device());
  const bool bf16 = queries_in.scalar_type() == at::kBFloat16;
  const bool pad_column = bf16 && queries_in.size(1) % 2 == 1;
  const at::Tensor queries = kernel_layout(queries_in.contiguous(), pad_column).contiguous();
  const at::Tensor candidates = kernel_layout(candidates_in, pad_column);
  const int64_t num_queries = queries.size(0);
  at::Tensor values = at::empty({num_queries, k}, queries.options().dtype(at::kFloat));
  at::Tensor indices = at::empty({num_queries, k}, queries.options().dtype(at::kLong));
  if (num_queries == 0) return {values, indices};
  at::Tensor query_scale, candidate_scale;  // bfloat16 cosine (float32: the kernels compute their own)
  if (normalize && bf16) {
    query_scale = inverse_norms(queries_in);
    candidate_scale = inverse_norms(candidates_in);
  }
  tgnn::cuda::TopkDotArgs args{};
  args.queries = queries.data_ptr();
  args.candidates = candidates.data_ptr();
  args.candidate_stride = candidates.stride(0);
  args.bfloat16 = bf16;
  args.num_queries = num_queries;
  args.num_candidates = candidates.size(0);
  args.dim = queries.size(1);
  args.k = k;
  args.exclude = exclude.data_ptr<int64_t>();
  args.num_exclude = exclude.size(1);
  args.normalize = normalize;
  args.query_scale = normalize && bf16 ? query_scale.data_ptr<float>() : nullptr;
  args.candidate_scale = normalize && bf16 ? candidate_scale.data_ptr<float>() : nullptr;
  args.values = values.data_ptr<float>();
  args.indices = indices.data_ptr<int64_t>();
  const at::Tensor workspace =
      at::empty({tgnn::cuda::topk_dot_workspace_bytes(args)}, queries.options().dtype(at::kByte));
  const cudaError_t err =
      tgnn::cuda::launch_topk_dot(args, workspace.data_ptr(), c10::cuda::getCurrentCUDAStream());
  TORCH_CHECK(err == cudaSuccess, "topk_dot: CUDA kernel launch failed: ", cudaGetErrorString(err));
  return {values, indices};
}
std::tuple<at::Tensor, at::Tensor> topk_dot(const at::Tensor& queries, const at::Tensor& candidates, int64_t k,
                                            const std::optional<at::Tensor>& exclude, bool normalize,
                                            bool check_exclude) {
  tgnn::ops::check_topk_inputs(queries, candidates, k, exclude, check_exclude);
  const c10::cuda::CUDAGuard guard(queries.device());
  if (!tgnn::cuda::topk_dot_supported(k, queries.size(1), queries.scalar_type() == at::kBFloat16)) {
    return tgnn::ops::topk_dot_chunked(queries, candidates, k, exclude, normalize);
  }
  return topk_dot_cuda(queries, candidates, k, tgnn::ops::sorted_exclusions(queries, exclude), normalize);
}

}  // namespace

TORCH_LIBRARY_IMPL(dgl_tgnn, CUDA, m) { m.impl("topk_dot", &topk_dot); }
