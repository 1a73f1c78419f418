// Shared pieces of the torch-facing operators (namespace dgl_tgnn, see library.cpp): the input
// checks that the CPU and CUDA kernels of one op share, so that each check is written once.
#pragma once

#include <ATen/ATen.h>
#include <c10/util/intrusive_ptr.h>
#include <torch/custom_class.h>

#include <cstdint>
#include <string>
#include <tuple>
#include <vector>

#include "core/attention.h"
#include "core/pair_features.h"
#include "core/tcsr.h"

namespace tgnn::ops {

#ifdef WITH_CUDA
inline constexpr bool kWithCuda = true;
#else
inline constexpr bool kWithCuda = false;
#endif

// Numbers in messages go through tgnn::format_int, never `ostream << number` (see core/format.h).
std::string num(int64_t x);
// As Python prints them: "torch.float32", "(2, 3)".
std::string dtype_name(at::ScalarType dtype);
std::string shape(const at::Tensor& x);

// The T-CSR of a TemporalGraph as a torch custom class (torch.classes.dgl_tgnn.TCSR): the graph
// object that the sampling ops read.
struct TCSRHolder : torch::CustomClassHolder {
  explicit TCSRHolder(TCSR g) : graph(std::move(g)) {}
  TCSR graph;
};

// The pickled state of a T-CSR (def_pickle in library.cpp): its packed arrays as tcsr_pack makes
// them (indptr [N + 1], nbr [M], eid [M] int64, ts [M] float64, on the CPU), num_events, undirected
// and max_time.
using TCSRState = std::tuple<at::Tensor, at::Tensor, at::Tensor, at::Tensor, int64_t, bool, double>;
// (sampler_ops.cpp) The state of a T-CSR, and the T-CSR of a state: rows packed with no slack, equal
// to the T-CSR that was pickled in everything it samples and appends. ValueError, naming the array
// and position, for a state that is not one tcsr_state could have made.
TCSRState tcsr_state(const TCSRHolder& tcsr);
c10::intrusive_ptr<TCSRHolder> tcsr_from_state(const TCSRState& state);

// Sampler (sampler_ops.cpp). A 1-D contiguous tensor of this dtype.
void check_vector(const at::Tensor& x, const char* name, at::ScalarType dtype);
// nodes int64 [R] and times float64 [R], contiguous, on one device; fanouts >= 1; strategy 0, 1 or 2.
void check_sampling_args(const at::Tensor& nodes, const at::Tensor& times, at::IntArrayRef fanouts,
                         int64_t strategy, int64_t num_threads);
// dedup_roots: 1-D int64 nodes and float64 times of one length, on one device.
void check_dedup_args(const at::Tensor& nodes, const at::Tensor& times);

// Top-K (topk_ops.cpp). Shapes, devices, dtypes and k; with check_exclude the range of exclude
// too (read back from the device).
void check_topk_inputs(const at::Tensor& queries, const at::Tensor& candidates, int64_t k,
                       const std::optional<at::Tensor>& exclude, bool check_exclude);
// Each row of exclude sorted ascending (padding -1 first), contiguous; [B, 0] when there is none.
at::Tensor sorted_exclusions(const at::Tensor& queries, const std::optional<at::Tensor>& exclude);
// dgl_tgnn.topk_dot_reference in ATen: exact scores in float64 rounded to float32, chunked.
std::tuple<at::Tensor, at::Tensor> topk_dot_chunked(const at::Tensor& queries, const at::Tensor& candidates,
                                                    int64_t k, const std::optional<at::Tensor>& exclude,
                                                    bool normalize);
constexpr double kNormEps = 1e-12;  // cosine: norms are clamped to at least this, as F.normalize

// Masked attention (attention_ops.cpp): qk [R, H, I], mask [R, k], parts [R, k, I_p] with
// sum I_p = I, all float32 / bool, contiguous, on qk's device.
AttentionShape check_attention(const at::Tensor& qk, const at::Tensor& mask, at::TensorList parts);
// ... and alpha [R, H, k], grad_agg like qk, one flag per part.
void check_attention_backward(const AttentionShape& s, const at::Tensor& qk, at::TensorList parts,
                              const at::Tensor& alpha, const at::Tensor& grad_agg, size_t num_need_parts);

// Time encoding (time_encoding_ops.cpp): dt [n], weight and bias [D], float32, on one device.
void check_harmonic(const at::Tensor& dt, const at::Tensor& weight, const at::Tensor& bias);

// Pair features (pair_features_ops.cpp): src int64 [B], t float64 [B], candidates and inverse int64
// [B, C], the sources' block nbr int64, times float64, mask bool [B, H] and the candidates' block
// [U, H'], all on one device, H and H' >= 1; with check, inverse's values in [0, U) (read back
// from the device). Returns them contiguous, with the two blocks' views and the kernels' buffers.
struct PairFeatureScratch {
  at::Tensor storage;   // one allocation on the inputs' device
  double* first;        // [B, H]: see tgnn::summarise_row
  double* stats;        // [B, kRowStats]
  double* their_first;  // [U, H']
  double* their_stats;  // [U, kRowStats]
};
struct PairFeatureInputs {
  at::Tensor src, t, candidates, inverse, nbr, times, mask, their_nbr, their_times, their_mask;
  PairFeatureScratch scratch() const;  // the rows' summaries
  at::Tensor output() const;           // [B, C, kNumPairFeatures] float32, uninitialised
  RecentBlock mine() const {
    return {nbr.data_ptr<int64_t>(), times.data_ptr<double>(), mask.data_ptr<bool>(), nbr.size(1)};
  }
  RecentBlock theirs() const {
    return {their_nbr.data_ptr<int64_t>(), their_times.data_ptr<double>(), their_mask.data_ptr<bool>(),
            their_nbr.size(1)};
  }
};
PairFeatureInputs pair_feature_inputs(const at::Tensor& src, const at::Tensor& t, const at::Tensor& candidates,
                                      const at::Tensor& inverse, const at::Tensor& nbr, const at::Tensor& times,
                                      const at::Tensor& mask, const at::Tensor& their_nbr,
                                      const at::Tensor& their_times, const at::Tensor& their_mask, bool check);

}  // namespace tgnn::ops
