// CPU kernels of the sampler ops: the T-CSR (build, append, pack, and its pickled state), multi-hop
// sampling and root deduplication, on csrc/core; and the sampler's input checks, shared with
// csrc/cuda/sampler_ops.cpp.
// Value errors raise ValueError naming the argument and the offending value.
#include <torch/library.h>

#include <limits>
#include <string>
#include <tuple>
#include <vector>

#include "core/dedup.h"
#include "core/rng.h"
#include "core/sample.h"
#include "core/tcsr.h"
#include "ops.h"

namespace tgnn::ops {

void check_vector(const at::Tensor& x, const char* name, at::ScalarType dtype) {
  TORCH_CHECK_VALUE(x.dim() == 1, name, ": expected a 1-D tensor, got ", num(x.dim()), " dimensions");
  TORCH_CHECK_VALUE(x.scalar_type() == dtype, name, ": expected dtype ", dtype, ", got ", x.scalar_type());
  TORCH_CHECK_VALUE(x.is_contiguous(), name, ": expected a contiguous tensor");
}

namespace {

// Roots: nodes int64 [R] and times float64 [R], contiguous, on one device.
void check_roots(const at::Tensor& nodes, const at::Tensor& times) {
  check_vector(nodes, "nodes", at::kLong);
  check_vector(times, "times", at::kDouble);
  TORCH_CHECK_VALUE(nodes.device() == times.device(), "nodes and times: on different devices ",
                    nodes.device().str(), " and ", times.device().str());
  TORCH_CHECK_VALUE(nodes.numel() == times.numel(), "nodes and times: length mismatch ", num(nodes.numel()), " vs ",
                    num(times.numel()));
}

}  // namespace

void check_sampling_args(const at::Tensor& nodes, const at::Tensor& times, at::IntArrayRef fanouts,
                         int64_t strategy, int64_t num_threads) {
  check_roots(nodes, times);
  TORCH_CHECK_VALUE(!fanouts.empty(), "fanouts: expected at least one hop");
  for (size_t i = 0; i < fanouts.size(); ++i)
    TORCH_CHECK_VALUE(fanouts[i] > 0, "fanouts: fanout ", num(fanouts[i]), " at position ", num(i),
                      " must be > 0");
  TORCH_CHECK_VALUE(strategy >= 0 && strategy <= 2, "strategy: expected 0 (recent), 1 (uniform) or 2 (labor), got ",
                    num(strategy));
  TORCH_CHECK_VALUE(num_threads >= 0, "num_threads: expected >= 0 (0: default), got ", num(num_threads));
}

void check_dedup_args(const at::Tensor& nodes, const at::Tensor& times) {
  TORCH_CHECK_VALUE(nodes.scalar_type() == at::kLong && times.scalar_type() == at::kDouble && nodes.dim() == 1 &&
                        times.dim() == 1,
                    "nodes, times: expected 1-D int64 and float64 tensors, got ", dtype_name(nodes.scalar_type()),
                    " ", shape(nodes), " and ", dtype_name(times.scalar_type()), " ", shape(times));
  TORCH_CHECK_VALUE(nodes.numel() == times.numel() && nodes.device() == times.device(),
                    "nodes, times: expected the same length and device, got ", num(nodes.numel()), " on ",
                    nodes.device().str(), " and ", num(times.numel()), " on ", times.device().str());
}

}  // namespace tgnn::ops

namespace {

using tgnn::TCSR;
using tgnn::ops::check_sampling_args;
using tgnn::ops::check_vector;
using tgnn::ops::num;
using tgnn::ops::TCSRHolder;

void check_cpu_events(const at::Tensor& src, const at::Tensor& dst, const at::Tensor& t) {
  check_vector(src, "src", at::kLong);
  check_vector(dst, "dst", at::kLong);
  check_vector(t, "t", at::kDouble);
  for (const at::Tensor* x : {&src, &dst, &t}) TORCH_CHECK_VALUE(x->is_cpu(), "events must be CPU tensors");
  TORCH_CHECK_VALUE(src.numel() == dst.numel() && src.numel() == t.numel(),
                    "src, dst, t: length mismatch ", num(src.numel()), ", ", num(dst.numel()), ", ",
                    num(t.numel()));
}

c10::intrusive_ptr<TCSRHolder> tcsr_build(const at::Tensor& src, const at::Tensor& dst, const at::Tensor& t,
                                          int64_t num_nodes, bool undirected, int64_t num_threads) {
  check_cpu_events(src, dst, t);
  TORCH_CHECK_VALUE(num_nodes >= 0, "num_nodes: expected >= 0, got ", num(num_nodes));
  TORCH_CHECK_VALUE(num_threads >= 0, "num_threads: expected >= 0 (0: default), got ", num(num_threads));
  const int64_t n = src.numel();
  const std::string error = tgnn::validate_events(src.data_ptr<int64_t>(), dst.data_ptr<int64_t>(),
                                                  t.data_ptr<double>(), n, num_nodes,
                                                  -std::numeric_limits<double>::infinity());
  TORCH_CHECK_VALUE(error.empty(), error);
  return c10::make_intrusive<TCSRHolder>(TCSR::build(src.data_ptr<int64_t>(), dst.data_ptr<int64_t>(),
                                                     t.data_ptr<double>(), n, num_nodes, undirected,
                                                     static_cast<int>(num_threads)));
}

void tcsr_append(const c10::intrusive_ptr<TCSRHolder>& tcsr, const at::Tensor& src, const at::Tensor& dst,
                 const at::Tensor& t) {
  check_cpu_events(src, dst, t);
  TCSR& g = tcsr->graph;
  const std::string error = tgnn::validate_events(src.data_ptr<int64_t>(), dst.data_ptr<int64_t>(),
                                                  t.data_ptr<double>(), src.numel(), g.num_nodes(), g.max_time());
  TORCH_CHECK_VALUE(error.empty(), error);
  g.append(src.data_ptr<int64_t>(), dst.data_ptr<int64_t>(), t.data_ptr<double>(), src.numel());
}

std::tuple<at::Tensor, at::Tensor, at::Tensor, at::Tensor> pack(const TCSR& g, int64_t num_threads) {
  auto indptr = at::empty({g.num_nodes() + 1}, at::kLong);
  auto nbr = at::empty({g.num_entries()}, at::kLong);
  auto eid = at::empty({g.num_entries()}, at::kLong);
  auto ts = at::empty({g.num_entries()}, at::kDouble);
  g.pack(indptr.data_ptr<int64_t>(), nbr.data_ptr<int64_t>(), eid.data_ptr<int64_t>(), ts.data_ptr<double>(),
         static_cast<int>(num_threads));
  return {indptr, nbr, eid, ts};
}

std::tuple<at::Tensor, at::Tensor, at::Tensor, at::Tensor> tcsr_pack(const c10::intrusive_ptr<TCSRHolder>& tcsr,
                                                                     int64_t num_threads) {
  TORCH_CHECK_VALUE(num_threads >= 0, "num_threads: expected >= 0 (0: default), got ", num(num_threads));
  return pack(tcsr->graph, num_threads);
}

// Hop i samples fanouts[i] neighbours of hop i's roots; hop i + 1's roots are hop i's neighbours
// (flattened, -1 padding included). Hop i of call c draws from rng::hop_key(seed, c, first_hop + i)
// (first_hop > 0 continues a chain hop by hop, e.g. after deduplicating the roots); labor draws from
// rng::call_key(seed, c) in every hop. The seed is the uint64 seed's two's complement (the schema's
// int is int64). keyed: uniform draws keyed by each root's (node, time), not its position
// (rng::content_key), in every hop.
std::vector<at::Tensor> sample_cpu(const c10::intrusive_ptr<TCSRHolder>& tcsr, const at::Tensor& nodes,
                                   const at::Tensor& times, at::IntArrayRef fanouts, int64_t strategy, bool replace,
                                   int64_t seed, int64_t call, int64_t num_threads, int64_t first_hop,
                                   bool keyed) {
  const TCSR& g = tcsr->graph;
  check_sampling_args(nodes, times, fanouts, strategy, num_threads);
  TORCH_CHECK_VALUE(nodes.is_cpu(), "nodes: expected a CPU tensor for the CPU sampler, got ",
                    nodes.device().str());
  TORCH_CHECK_VALUE(call >= 0 && first_hop >= 0, "call, first_hop: expected >= 0");
  const std::string error = tgnn::validate_roots(nodes.data_ptr<int64_t>(), times.data_ptr<double>(),
                                                 nodes.numel(), g.num_nodes(), false);
  TORCH_CHECK_VALUE(error.empty(), error);
  std::vector<at::Tensor> out;
  at::Tensor roots = nodes, root_times = times;
  for (size_t h = 0; h < fanouts.size(); ++h) {
    const int64_t r = roots.numel(), k = fanouts[h];
    at::Tensor nbr_nodes = at::empty({r, k}, at::kLong), nbr_eids = at::empty({r, k}, at::kLong);
    at::Tensor nbr_times = at::empty({r, k}, at::kDouble), mask = at::empty({r, k}, at::kBool);
    const auto strat = static_cast<tgnn::Strategy>(strategy);
    const uint64_t key = strat == tgnn::Strategy::kLabor
                             ? tgnn::rng::call_key(static_cast<uint64_t>(seed), static_cast<uint64_t>(call))
                             : tgnn::rng::hop_key(static_cast<uint64_t>(seed), static_cast<uint64_t>(call),
                                                  static_cast<uint64_t>(first_hop) + h);
    tgnn::sample_hop(g, roots.data_ptr<int64_t>(), root_times.data_ptr<double>(), r, k, strat, replace, key,
                     static_cast<int>(num_threads),
                     {nbr_nodes.data_ptr<int64_t>(), nbr_eids.data_ptr<int64_t>(), nbr_times.data_ptr<double>(),
                      mask.data_ptr<bool>()},
                     keyed);
    roots = nbr_nodes.view({-1});
    root_times = nbr_times.view({-1});
    out.insert(out.end(), {nbr_nodes, nbr_eids, nbr_times, mask});
  }
  return out;
}

// Distinct valid (node, time) roots in order of first occurrence (CPU): (nodes [U] int64,
// times [U] float64, inverse [R] int64: each root's row among them, -1 for padding roots < 0).
std::tuple<at::Tensor, at::Tensor, at::Tensor> dedup_roots(const at::Tensor& nodes_in, const at::Tensor& times_in) {
  tgnn::ops::check_dedup_args(nodes_in, times_in);
  const at::Tensor nodes = nodes_in.contiguous(), times = times_in.contiguous();
  const int64_t n = nodes.numel();
  auto first = at::empty({n}, at::kLong);
  auto inverse = at::empty({n}, at::kLong);
  const int64_t count = tgnn::dedup_roots(nodes.data_ptr<int64_t>(), times.data_ptr<double>(), n,
                                          first.data_ptr<int64_t>(), inverse.data_ptr<int64_t>());
  first = first.narrow(0, 0, count);
  return {nodes.index_select(0, first), times.index_select(0, first), inverse};
}

}  // namespace

namespace tgnn::ops {

TCSRState tcsr_state(const TCSRHolder& tcsr) {
  const TCSR& g = tcsr.graph;
  auto [indptr, nbr, eid, ts] = pack(g, 0);
  return {indptr, nbr, eid, ts, g.num_events(), g.undirected(), g.max_time()};
}

c10::intrusive_ptr<TCSRHolder> tcsr_from_state(const TCSRState& state) {
  const auto& [indptr_in, nbr_in, eid_in, ts_in, num_events, undirected, max_time] = state;
  const at::Tensor* arrays[4] = {&indptr_in, &nbr_in, &eid_in, &ts_in};
  const char* names[4] = {"indptr", "nbr", "eid", "ts"};
  for (int i = 0; i < 4; ++i) {
    const at::Tensor& x = *arrays[i];
    TORCH_CHECK_VALUE(x.dim() == 1 && x.scalar_type() == (i < 3 ? at::kLong : at::kDouble),
                      "TCSR state: ", names[i], ": expected a 1-D ", i < 3 ? "torch.int64" : "torch.float64",
                      " tensor, got ", dtype_name(x.scalar_type()), " ", shape(x));
  }
  const at::Tensor indptr = indptr_in.cpu().contiguous(), nbr = nbr_in.cpu().contiguous();
  const at::Tensor eid = eid_in.cpu().contiguous(), ts = ts_in.cpu().contiguous();
  const int64_t num_entries = nbr.numel();
  TORCH_CHECK_VALUE(indptr.numel() >= 1, "TCSR state: indptr: expected num_nodes + 1 >= 1 entries, got 0");
  TORCH_CHECK_VALUE(eid.numel() == num_entries && ts.numel() == num_entries,
                    "TCSR state: nbr, eid, ts: length mismatch ", num(num_entries), ", ", num(eid.numel()), ", ",
                    num(ts.numel()));
  TORCH_CHECK_VALUE(num_events >= 0, "TCSR state: num_events: expected >= 0, got ", num(num_events));
  const int64_t num_nodes = indptr.numel() - 1;
  const std::string error =
      validate_packed(indptr.data_ptr<int64_t>(), nbr.data_ptr<int64_t>(), eid.data_ptr<int64_t>(),
                      ts.data_ptr<double>(), num_nodes, num_entries, num_events, undirected, max_time);
  TORCH_CHECK_VALUE(error.empty(), "TCSR state: ", error);
  return c10::make_intrusive<TCSRHolder>(TCSR::from_packed(indptr.data_ptr<int64_t>(), nbr.data_ptr<int64_t>(),
                                                           eid.data_ptr<int64_t>(), ts.data_ptr<double>(),
                                                           num_nodes, num_events, undirected, max_time));
}

}  // namespace tgnn::ops

TORCH_LIBRARY_IMPL(dgl_tgnn, CPU, m) {
  m.impl("tcsr_build", &tcsr_build);
  m.impl("tcsr_append", &tcsr_append);
  m.impl("sample_cpu", &sample_cpu);
  m.impl("dedup_roots", &dedup_roots);
}

// tcsr_pack takes no tensor that could choose a device: one kernel for every dispatch key.
TORCH_LIBRARY_IMPL(dgl_tgnn, CompositeExplicitAutograd, m) { m.impl("tcsr_pack", &tcsr_pack); }
