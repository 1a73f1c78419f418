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
  const tgnn::ops::PairFeatureScratch s = in.scratch();
  at::Tensor out = in.output();
  const cudaError_t status = tgnn::cuda::launch_pair_features(
      mine, theirs, rows, their_rows, width, in.src.data_ptr<int64_t>(), in.t.data_ptr<double>(),
      in.candidates.data_ptr<int64_t>(), in.inverse.data_ptr<int64_t>(), s.first, s.stats, s.their_first, s.their_stats,
      out.data_ptr<float>(), c10::cuda::getCurrentCUDAStream());
  TORCH_CHECK(status == cudaSuccess, "pair_features: kernel launch failed: ", cudaGetErrorString(status));
  return out;
}

}  // namespace

TORCH_LIBRARY_IMPL(dgl_tgnn, CUDA, m) { m.impl("pair_features", &pair_features); }
