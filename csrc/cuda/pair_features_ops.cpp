// CUDA kernel of the pair features (csrc/cuda/pair_features.h). Inputs are checked as on the CPU
// (csrc/pair_features_ops.cpp).
#include <c10/cuda/CUDAGuard.h>
#include <c10/cuda/CUDAStream.h>
#include <torch/library.h>

#include "cuda/pair_features.h"
#include "ops.h"

namespace {

at::Tensor pair_features(const at::Tensor& src, const at::Tensor& t, const at::Tensor& candidates,
                         const at::Tensor& inverse, const at::Tensor& nbr, const at::Tensor& times,
                         const at::Tensor& mask, const at::Tensor& their_nbr, const at::Tensor& their_times,
                         const at::Tensor& their_mask, bool check) {
  const tgnn::ops::PairFeatureInputs in = tgnn::ops::pair_feature_inputs(
      src, t, candidates, inverse, nbr, times, mask, their_nbr, their_times, their_mask, check);
  const c10::cuda::CUDAGuard guard(src.device());
  const int64_t rows = in.src.size(0), width = in.candidates.size(1), their_rows = in.their_nbr.size(0);
  const tgnn::RecentBlock mine = in.mine(), theirs = in.theirs();
  // one scratch allocation for both blocks' summaries
  const int64_t sizes[4] = {rows * mine.width, rows * tgnn::kRowStats, their_rows * theirs.width,
                            their_rows * tgnn::kRowStats};
  at::Tensor scratch = at::empty({sizes[0] + sizes[1] + sizes[2] + sizes[3]}, in.times.options());
  double* first = scratch.data_ptr<double>();
  double* stats = first + sizes[0];
  double* their_first = stats + sizes[1];
  double* their_stats = their_first + sizes[2];
  at::Tensor out = at::empty({rows, width, tgnn::kNumPairFeatures}, in.times.options().dtype(at::kFloat));
  const cudaError_t status = tgnn::cuda::launch_pair_features(
      mine, theirs, rows, their_rows, width, in.src.data_ptr<int64_t>(), in.t.data_ptr<double>(),
      in.candidates.data_ptr<int64_t>(), in.inverse.data_ptr<int64_t>(), first, stats, their_first, their_stats,
      out.data_ptr<float>(), c10::cuda::getCurrentCUDAStream());
  TORCH_CHECK(status == cudaSuccess, "pair_features: kernel launch failed: ", cudaGetErrorString(status));
  return out;
}

}  // namespace

TORCH_LIBRARY_IMPL(dgl_tgnn, CUDA, m) { m.impl("pair_features", &pair_features); }
