// CUDA kernels of the sampler ops: multi-hop sampling on a packed T-CSR (csrc/cuda/sample.h) and
// root deduplication by sorting. Inputs are checked as on the CPU (csrc/sampler_ops.cpp).
#include <c10/cuda/CUDAGuard.h>
#include <c10/cuda/CUDAStream.h>
#include <torch/library.h>

#include <tuple>
#include <vector>

#include "cuda/sample.h"
#include "ops.h"

namespace {

using tgnn::ops::check_vector;
using tgnn::ops::num;

// As sample_cpu, on the device of nodes, with a packed T-CSR on that device. The call number is
// read by the kernels from call (int64 [1] on that device), so that a CUDA graph holding this
// call draws anew once the caller has advanced it. No host synchronisation: invalid roots (ids
// out of range, NaN times) get empty rows. The last output is the error flag, a new tensor (no
// argument is written, as torch.compile requires): with check, int32 [1] holding 1 | 2 ORed for
// a bad root id | NaN time (0 when all roots are valid), for the caller to read; else int32 [0].
std::vector<at::Tensor> sample_cuda(const at::Tensor& indptr, const at::Tensor& nbr, const at::Tensor& eid,
                                    const at::Tensor& ts, const at::Tensor& nodes, const at::Tensor& times,
                                    at::IntArrayRef fanouts, int64_t strategy, bool replace, int64_t seed,
                                    const at::Tensor& call, int64_t first_hop, bool check, bool keyed) {
  tgnn::ops::check_sampling_args(nodes, times, fanouts, strategy, 0);
  TORCH_CHECK_VALUE(nodes.is_cuda(), "nodes: expected a CUDA tensor for the CUDA sampler, got ",
                    nodes.device().str());
  TORCH_CHECK_VALUE(call.scalar_type() == at::kLong && call.numel() == 1 && call.device() == nodes.device(),
                    "call: expected an int64 tensor of one element on ", nodes.device().str());
  TORCH_CHECK_VALUE(first_hop >= 0, "first_hop: expected >= 0, got ", num(first_hop));
  check_vector(indptr, "indptr", at::kLong);
  check_vector(nbr, "nbr", at::kLong);
  check_vector(eid, "eid", at::kLong);
  check_vector(ts, "ts", at::kDouble);
  for (const at::Tensor* x : {&indptr, &nbr, &eid, &ts})
    TORCH_CHECK_VALUE(x->device() == nodes.device(), "T-CSR arrays must be on ", nodes.device().str(), ", got ",
                      x->device().str());
  TORCH_CHECK_VALUE(indptr.numel() >= 1 && nbr.numel() == eid.numel() && nbr.numel() == ts.numel(),
                    "T-CSR arrays: inconsistent sizes");
  for (size_t i = 0; i < fanouts.size(); ++i)
    TORCH_CHECK_VALUE(fanouts[i] <= tgnn::cuda::kMaxFanout, "fanouts: fanout ", num(fanouts[i]), " at position ",
                      num(first_hop + static_cast<int64_t>(i)), " exceeds ", num(tgnn::cuda::kMaxFanout),
                      ", the CUDA sampler's limit");
  const c10::cuda::CUDAGuard guard(nodes.device());
  const cudaStream_t stream = c10::cuda::getCurrentCUDAStream();
  const at::Tensor error = check ? at::zeros({1}, nodes.options().dtype(at::kInt))
                                 : at::empty({0}, nodes.options().dtype(at::kInt));
  int* const error_ptr = check ? error.data_ptr<int>() : nullptr;
  std::vector<at::Tensor> out;
  out.reserve(4 * fanouts.size() + 1);
  at::Tensor roots = nodes, root_times = times;
  for (size_t h = 0; h < fanouts.size(); ++h) {
    const int64_t r = roots.numel(), k = fanouts[h];
    at::Tensor nbr_nodes = at::empty({r, k}, nodes.options()), nbr_eids = at::empty({r, k}, nodes.options());
    at::Tensor nbr_times = at::empty({r, k}, times.options()), mask = at::empty({r, k}, nodes.options().dtype(at::kBool));
    const cudaError_t status = tgnn::cuda::launch_sample_hop(
        indptr.data_ptr<int64_t>(), nbr.data_ptr<int64_t>(), eid.data_ptr<int64_t>(), ts.data_ptr<double>(),
        indptr.numel() - 1, roots.data_ptr<int64_t>(), root_times.data_ptr<double>(), r, k, static_cast<int>(strategy),
        replace, static_cast<uint64_t>(seed), call.data_ptr<int64_t>(), static_cast<uint64_t>(first_hop) + h,
        h == 0 ? error_ptr : nullptr, nbr_nodes.data_ptr<int64_t>(), nbr_eids.data_ptr<int64_t>(),
        nbr_times.data_ptr<double>(), mask.data_ptr<bool>(), stream, keyed);
    TORCH_CHECK(status == cudaSuccess, "CUDA sampler: kernel launch failed: ", cudaGetErrorString(status));
    roots = nbr_nodes.view({-1});
    root_times = nbr_times.view({-1});
    out.insert(out.end(), {nbr_nodes, nbr_eids, nbr_times, mask});
  }
  out.push_back(error);
  return out;
}

// dedup_roots by sorting: lexicographic sort by (node, time), groups of equal pairs, then the groups
// renumbered in order of their first occurrence. One host synchronisation (the number of groups).
std::tuple<at::Tensor, at::Tensor, at::Tensor> dedup_roots_sorted(const at::Tensor& nodes, const at::Tensor& times) {
  tgnn::ops::check_dedup_args(nodes, times);
  const c10::cuda::CUDAGuard guard(nodes.device());
  const at::Tensor positions = (nodes >= 0).nonzero().squeeze(1);
  const at::Tensor valid_nodes = nodes.index_select(0, positions);
  const at::Tensor valid_times = times.index_select(0, positions) + 0.0;  // + 0.0: -0.0 becomes 0.0
  at::Tensor order = at::argsort(valid_times, /*stable=*/true, 0, false);
  order = order.index_select(0, at::argsort(valid_nodes.index_select(0, order), /*stable=*/true, 0, false));
  const at::Tensor sorted_nodes = valid_nodes.index_select(0, order);
  const at::Tensor sorted_times = valid_times.index_select(0, order);
  const int64_t m = sorted_nodes.numel();
  at::Tensor starts = at::ones_like(sorted_nodes, at::kBool);
  if (m > 1) {
    starts.narrow(0, 1, m - 1)
        .copy_(sorted_nodes.narrow(0, 1, m - 1).ne(sorted_nodes.narrow(0, 0, m - 1))
                   .logical_or_(sorted_times.narrow(0, 1, m - 1).ne(sorted_times.narrow(0, 0, m - 1))));
  }
  const at::Tensor group = starts.cumsum(0) - 1;  // group of each sorted pair
  const int64_t num_groups = starts.sum().item<int64_t>();
  const at::Tensor sorted_positions = positions.index_select(0, order);
  at::Tensor first = at::full({num_groups}, nodes.numel(), nodes.options());
  first.scatter_reduce_(0, group, sorted_positions, "amin");
  const at::Tensor by_first = at::argsort(first);
  at::Tensor renumber = at::empty_like(by_first);
  renumber.index_copy_(0, by_first, at::arange(num_groups, nodes.options()));
  at::Tensor inverse = at::full_like(nodes, -1);
  inverse.index_copy_(0, sorted_positions, renumber.index_select(0, group));
  first = first.index_select(0, by_first);
  return {nodes.index_select(0, first), times.index_select(0, first), inverse};
}

}  // namespace

TORCH_LIBRARY_IMPL(dgl_tgnn, CUDA, m) {
  m.impl("sample_cuda", &sample_cuda);
  m.impl("dedup_roots", &dedup_roots_sorted);
}
