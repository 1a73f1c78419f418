// CPU kernel of the pair features (csrc/core/pair_features.h), rows and pairs shared among torch's
// intra-op threads; and its input checks, shared with csrc/cuda/pair_features_ops.cpp.
#include <ATen/Parallel.h>
#include <torch/library.h>

#include <algorithm>

#include "core/pair_features.h"
#include "ops.h"

namespace tgnn::ops {

namespace {

void check_tensor(const at::Tensor& x, const char* name, at::ScalarType dtype, int64_t dims, const at::Device& device) {
  TORCH_CHECK_VALUE(x.scalar_type() == dtype && x.dim() == dims && x.device() == device, "pair_features: ", name,
                    " must be a ", num(dims), "-D ", dtype_name(dtype), " tensor on ", device.str(), ", got ",
                    dtype_name(x.scalar_type()), " ", shape(x), " on ", x.device().str());
}

void check_same_shape(const at::Tensor& x, const at::Tensor& like, const char* name, const char* like_name) {
  TORCH_CHECK_VALUE(x.sizes() == like.sizes(), "pair_features: ", name, " must have the shape of ", like_name, " ",
                    shape(like), ", got ", shape(x));
}

}  // namespace

PairFeatureInputs pair_feature_inputs(const at::Tensor& src, const at::Tensor& t, const at::Tensor& candidates,
                                      const at::Tensor& inverse, const at::Tensor& nbr, const at::Tensor& times,
                                      const at::Tensor& mask, const at::Tensor& their_nbr,
                                      const at::Tensor& their_times, const at::Tensor& their_mask, bool check) {
  const at::Device device = src.device();
  TORCH_CHECK_VALUE(src.is_cpu() || (kWithCuda && src.is_cuda()), "pair_features: tensors must be on ",
                    kWithCuda ? "the CPU or a GPU" : "the CPU", ", got ", device.str());
  check_tensor(src, "src", at::kLong, 1, device);
  check_tensor(t, "t", at::kDouble, 1, device);
  check_tensor(candidates, "candidates", at::kLong, 2, device);
  check_tensor(inverse, "inverse", at::kLong, 2, device);
  check_tensor(nbr, "nbr", at::kLong, 2, device);
  check_tensor(times, "times", at::kDouble, 2, device);
  check_tensor(mask, "mask", at::kBool, 2, device);
  check_tensor(their_nbr, "their_nbr", at::kLong, 2, device);
  check_tensor(their_times, "their_times", at::kDouble, 2, device);
  check_tensor(their_mask, "their_mask", at::kBool, 2, device);
  check_same_shape(t, src, "t", "src");
  check_same_shape(inverse, candidates, "inverse", "candidates");
  check_same_shape(times, nbr, "times", "nbr");
  check_same_shape(mask, nbr, "mask", "nbr");
  check_same_shape(their_times, their_nbr, "their_times", "their_nbr");
  check_same_shape(their_mask, their_nbr, "their_mask", "their_nbr");
  TORCH_CHECK_VALUE(candidates.size(0) == src.size(0) && nbr.size(0) == src.size(0),
                    "pair_features: candidates and nbr must have a row per source (", num(src.size(0)), "), got ",
                    shape(candidates), " and ", shape(nbr));
  TORCH_CHECK_VALUE(nbr.size(1) >= 1 && their_nbr.size(1) >= 1,
                    "pair_features: the blocks of recent events need at least one slot a row, got ", shape(nbr),
                    " and ", shape(their_nbr));
  if (check && inverse.numel() > 0) {
    const int64_t lo = inverse.min().item<int64_t>(), hi = inverse.max().item<int64_t>();
    TORCH_CHECK_VALUE(lo >= 0 && hi < their_nbr.size(0), "pair_features: inverse must index the ",
                      num(their_nbr.size(0)), " rows of their_nbr, got values from ", num(lo), " to ", num(hi));
  }
  return {src.contiguous(),       t.contiguous(),         candidates.contiguous(), inverse.contiguous(),
          nbr.contiguous(),       times.contiguous(),     mask.contiguous(),       their_nbr.contiguous(),
          their_times.contiguous(), their_mask.contiguous()};
}

PairFeatureScratch PairFeatureInputs::scratch() const {
  const int64_t sizes[4] = {nbr.numel(), nbr.size(0) * kRowStats, their_nbr.numel(), their_nbr.size(0) * kRowStats};
  at::Tensor storage = at::empty({sizes[0] + sizes[1] + sizes[2] + sizes[3]}, times.options());
  double* first = storage.data_ptr<double>();
  return {storage, first, first + sizes[0], first + sizes[0] + sizes[1], first + sizes[0] + sizes[1] + sizes[2]};
}

at::Tensor PairFeatureInputs::output() const {
  return at::empty({candidates.size(0), candidates.size(1), kNumPairFeatures}, times.options().dtype(at::kFloat));
}

}  // namespace tgnn::ops

namespace {

// [B, C, 18] float32 features of sources src [B] at t [B] with candidates [B, C] (rows inverse [B, C]
// of the candidates' block): see csrc/core/pair_features.h.
at::Tensor pair_features(const at::Tensor& src, const at::Tensor& t, const at::Tensor& candidates,
                         const at::Tensor& inverse, const at::Tensor& nbr, const at::Tensor& times,
                         const at::Tensor& mask, const at::Tensor& their_nbr, const at::Tensor& their_times,
                         const at::Tensor& their_mask, bool check) {
  const tgnn::ops::PairFeatureInputs in = tgnn::ops::pair_feature_inputs(
      src, t, candidates, inverse, nbr, times, mask, their_nbr, their_times, their_mask, check);
  const int64_t rows = in.src.size(0), width = in.candidates.size(1), their_rows = in.their_nbr.size(0);
  const tgnn::RecentBlock mine = in.mine(), theirs = in.theirs();
  const tgnn::ops::PairFeatureScratch s = in.scratch();
  double *fp = s.first, *sp = s.stats, *tfp = s.their_first, *tsp = s.their_stats;
  at::parallel_for(0, rows, 256, [&](int64_t begin, int64_t end) {
    for (int64_t r = begin; r < end; ++r)
      tgnn::summarise_row(mine, r, fp + r * mine.width, sp + r * tgnn::kRowStats);
  });
  at::parallel_for(0, their_rows, 256, [&](int64_t begin, int64_t end) {
    for (int64_t r = begin; r < end; ++r)
      tgnn::summarise_row(theirs, r, tfp + r * theirs.width, tsp + r * tgnn::kRowStats);
  });
  at::Tensor out = in.output();
  const int64_t *sv = in.src.data_ptr<int64_t>(), *cv = in.candidates.data_ptr<int64_t>();
  const int64_t* iv = in.inverse.data_ptr<int64_t>();
  const double* tv = in.t.data_ptr<double>();
  float* op = out.data_ptr<float>();
  at::parallel_for(0, rows * width, 2048, [&](int64_t begin, int64_t end) {
    for (int64_t p = begin; p < end; ++p) {
      const int64_t b = p / width;
      tgnn::pair_features(mine, fp, sp, theirs, tfp, tsp, b, iv[p], sv[b], cv[p], tv[b],
                          op + p * tgnn::kNumPairFeatures);
    }
  });
  return out;
}

}  // namespace

TORCH_LIBRARY_IMPL(dgl_tgnn, CPU, m) { m.impl("pair_features", &pair_features); }
