// Torch glue of the temporal sampler: the T-CSR as a Python object, and multi-hop sampling on
// CPU (csrc/core) and CUDA (csrc/cuda). Every input is checked here; value errors raise ValueError.
#include <cmath>
#include <limits>
#include <memory>
#include <optional>
#include <string>
#include <tuple>
#include <vector>

#include "core/dedup.h"
#include "core/format.h"
#include "core/rng.h"
#include "core/sample.h"
#include "core/tcsr.h"
#include "ops.h"

#ifdef WITH_CUDA
#include <c10/cuda/CUDAStream.h>
#include <c10/cuda/CUDAGuard.h>

#include "cuda/sample.h"
#endif

namespace py = pybind11;

namespace {

using tgnn::TCSR;
// Numbers in messages go through tgnn::format_int, never `ostream << number` (see core/format.h).
std::string num(int64_t x) { return tgnn::format_int(x); }
// One hop: nbr_nodes [R, k] int64, nbr_eids [R, k] int64, nbr_times [R, k] float64, mask [R, k] bool.
using Hop = std::tuple<at::Tensor, at::Tensor, at::Tensor, at::Tensor>;

void check_vector(const at::Tensor& x, const char* name, at::ScalarType dtype) {
  TORCH_CHECK_VALUE(x.dim() == 1, name, ": expected a 1-D tensor, got ", num(x.dim()), " dimensions");
  TORCH_CHECK_VALUE(x.scalar_type() == dtype, name, ": expected dtype ", dtype, ", got ", x.scalar_type());
  TORCH_CHECK_VALUE(x.is_contiguous(), name, ": expected a contiguous tensor");
}

void check_cpu_events(const at::Tensor& src, const at::Tensor& dst, const at::Tensor& t) {
  check_vector(src, "src", at::kLong);
  check_vector(dst, "dst", at::kLong);
  check_vector(t, "t", at::kDouble);
  for (const at::Tensor* x : {&src, &dst, &t}) TORCH_CHECK_VALUE(x->is_cpu(), "events must be CPU tensors");
  TORCH_CHECK_VALUE(src.numel() == dst.numel() && src.numel() == t.numel(),
                    "src, dst, t: length mismatch ", num(src.numel()), ", ", num(dst.numel()), ", ",
                    num(t.numel()));
}

// Roots: nodes int64 [R] and times float64 [R], contiguous, on one device.
void check_roots(const at::Tensor& nodes, const at::Tensor& times) {
  check_vector(nodes, "nodes", at::kLong);
  check_vector(times, "times", at::kDouble);
  TORCH_CHECK_VALUE(nodes.device() == times.device(), "nodes and times: on different devices ",
                    nodes.device().str(), " and ", times.device().str());
  TORCH_CHECK_VALUE(nodes.numel() == times.numel(), "nodes and times: length mismatch ", num(nodes.numel()), " vs ",
                    num(times.numel()));
}

void check_sampling_args(const at::Tensor& nodes, const at::Tensor& times, const std::vector<int64_t>& fanouts,
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

std::shared_ptr<TCSR> build(const at::Tensor& src, const at::Tensor& dst, const at::Tensor& t, int64_t num_nodes,
                            bool undirected, int64_t num_threads) {
  check_cpu_events(src, dst, t);
  TORCH_CHECK_VALUE(num_nodes >= 0, "num_nodes: expected >= 0, got ", num(num_nodes));
  TORCH_CHECK_VALUE(num_threads >= 0, "num_threads: expected >= 0 (0: default), got ", num(num_threads));
  const int64_t n = src.numel();
  const std::string error = tgnn::validate_events(src.data_ptr<int64_t>(), dst.data_ptr<int64_t>(),
                                                  t.data_ptr<double>(), n, num_nodes,
                                                  -std::numeric_limits<double>::infinity());
  TORCH_CHECK_VALUE(error.empty(), error);
  py::gil_scoped_release no_gil;
  return std::make_shared<TCSR>(TCSR::build(src.data_ptr<int64_t>(), dst.data_ptr<int64_t>(), t.data_ptr<double>(),
                                            n, num_nodes, undirected, static_cast<int>(num_threads)));
}

void append(TCSR& g, const at::Tensor& src, const at::Tensor& dst, const at::Tensor& t) {
  check_cpu_events(src, dst, t);
  const std::string error = tgnn::validate_events(src.data_ptr<int64_t>(), dst.data_ptr<int64_t>(),
                                                  t.data_ptr<double>(), src.numel(), g.num_nodes(), g.max_time());
  TORCH_CHECK_VALUE(error.empty(), error);
  py::gil_scoped_release no_gil;
  g.append(src.data_ptr<int64_t>(), dst.data_ptr<int64_t>(), t.data_ptr<double>(), src.numel());
}

// Packed copy (indptr [N + 1], nbr [M], eid [M], ts [M]), e.g. to move to a GPU.
std::tuple<at::Tensor, at::Tensor, at::Tensor, at::Tensor> pack(const TCSR& g, int64_t num_threads) {
  TORCH_CHECK_VALUE(num_threads >= 0, "num_threads: expected >= 0 (0: default), got ", num(num_threads));
  auto indptr = at::empty({g.num_nodes() + 1}, at::kLong);
  auto nbr = at::empty({g.num_entries()}, at::kLong);
  auto eid = at::empty({g.num_entries()}, at::kLong);
  auto ts = at::empty({g.num_entries()}, at::kDouble);
  py::gil_scoped_release no_gil;
  g.pack(indptr.data_ptr<int64_t>(), nbr.data_ptr<int64_t>(), eid.data_ptr<int64_t>(), ts.data_ptr<double>(),
         static_cast<int>(num_threads));
  return {indptr, nbr, eid, ts};
}

Hop empty_hop(int64_t num_roots, int64_t fanout, const at::TensorOptions& on) {
  return {at::empty({num_roots, fanout}, on.dtype(at::kLong)), at::empty({num_roots, fanout}, on.dtype(at::kLong)),
          at::empty({num_roots, fanout}, on.dtype(at::kDouble)), at::empty({num_roots, fanout}, on.dtype(at::kBool))};
}

// Hop i samples fanouts[i] neighbours of hop i's roots; hop i + 1's roots are hop i's neighbours
// (flattened, -1 padding included). Hop i of call c draws from rng::hop_key(seed, c, first_hop + i)
// (first_hop > 0 continues a chain hop by hop, e.g. after deduplicating the roots).
std::vector<Hop> sample_cpu(const TCSR& g, const at::Tensor& nodes, const at::Tensor& times,
                            const std::vector<int64_t>& fanouts, int64_t strategy, bool replace, uint64_t seed,
                            uint64_t call, int64_t num_threads, uint64_t first_hop) {
  check_sampling_args(nodes, times, fanouts, strategy, num_threads);
  TORCH_CHECK_VALUE(nodes.is_cpu(), "nodes: expected a CPU tensor for the CPU sampler, got ",
                    nodes.device().str());
  const std::string error = tgnn::validate_roots(nodes.data_ptr<int64_t>(), times.data_ptr<double>(),
                                                 nodes.numel(), g.num_nodes(), false);
  TORCH_CHECK_VALUE(error.empty(), error);
  py::gil_scoped_release no_gil;
  std::vector<Hop> hops;
  at::Tensor roots = nodes, root_times = times;
  for (size_t h = 0; h < fanouts.size(); ++h) {
    Hop hop = empty_hop(roots.numel(), fanouts[h], at::TensorOptions());
    auto& [nbr_nodes, nbr_eids, nbr_times, mask] = hop;
    tgnn::sample_hop(g, roots.data_ptr<int64_t>(), root_times.data_ptr<double>(), roots.numel(), fanouts[h],
                     static_cast<tgnn::Strategy>(strategy), replace,
                     strategy == 2 ? tgnn::rng::call_key(seed, call) : tgnn::rng::hop_key(seed, call, first_hop + h),
                     static_cast<int>(num_threads),
                     {nbr_nodes.data_ptr<int64_t>(), nbr_eids.data_ptr<int64_t>(), nbr_times.data_ptr<double>(),
                      mask.data_ptr<bool>()});
    roots = nbr_nodes.view({-1});
    root_times = nbr_times.view({-1});
    hops.push_back(std::move(hop));
  }
  return hops;
}

#ifdef WITH_CUDA
// As sample_cpu, on the device of nodes, with a packed T-CSR on that device. The call number is
// read by the kernels from call (int64 [1] on that device), so that a CUDA graph holding this
// call draws anew once the caller has advanced it. No host synchronisation: invalid roots (ids
// out of range, NaN times) get empty rows and, when error (int32 [1], zeroed) is given, OR 1 / 2
// into it for the caller to read.
std::vector<Hop> sample_cuda(const at::Tensor& indptr, const at::Tensor& nbr, const at::Tensor& eid,
                             const at::Tensor& ts, const at::Tensor& nodes, const at::Tensor& times,
                             const std::vector<int64_t>& fanouts, int64_t strategy, bool replace, uint64_t seed,
                             const at::Tensor& call, uint64_t first_hop, const std::optional<at::Tensor>& error) {
  check_sampling_args(nodes, times, fanouts, strategy, 0);
  TORCH_CHECK_VALUE(nodes.is_cuda(), "nodes: expected a CUDA tensor for the CUDA sampler, got ",
                    nodes.device().str());
  TORCH_CHECK_VALUE(call.scalar_type() == at::kLong && call.numel() == 1 && call.device() == nodes.device(),
                    "call: expected an int64 tensor of one element on ", nodes.device().str());
  check_vector(indptr, "indptr", at::kLong);
  check_vector(nbr, "nbr", at::kLong);
  check_vector(eid, "eid", at::kLong);
  check_vector(ts, "ts", at::kDouble);
  for (const at::Tensor* x : {&indptr, &nbr, &eid, &ts})
    TORCH_CHECK_VALUE(x->device() == nodes.device(), "T-CSR arrays must be on ", nodes.device().str(),
                      ", got ", x->device().str());
  TORCH_CHECK_VALUE(indptr.numel() >= 1 && nbr.numel() == eid.numel() && nbr.numel() == ts.numel(),
                    "T-CSR arrays: inconsistent sizes");
  for (size_t i = 0; i < fanouts.size(); ++i)
    TORCH_CHECK_VALUE(fanouts[i] <= tgnn::cuda::kMaxFanout, "fanouts: fanout ", num(fanouts[i]), " at position ", num(i),
                      " exceeds ", num(tgnn::cuda::kMaxFanout), ", the largest the CUDA sampler supports");
  int* error_ptr = nullptr;
  if (error.has_value()) {
    TORCH_CHECK_VALUE(error->scalar_type() == at::kInt && error->numel() == 1 && error->device() == nodes.device(),
                      "error: expected an int32 tensor of one element on ", nodes.device().str());
    error_ptr = error->data_ptr<int>();
  }
  const c10::cuda::CUDAGuard guard(nodes.device());
  const cudaStream_t stream = c10::cuda::getCurrentCUDAStream();
  std::vector<Hop> hops;
  at::Tensor roots = nodes, root_times = times;
  for (size_t h = 0; h < fanouts.size(); ++h) {
    Hop hop = empty_hop(roots.numel(), fanouts[h], nodes.options());
    auto& [nbr_nodes, nbr_eids, nbr_times, mask] = hop;
    const cudaError_t status = tgnn::cuda::launch_sample_hop(indptr.data_ptr<int64_t>(), nbr.data_ptr<int64_t>(), eid.data_ptr<int64_t>(),
                                  ts.data_ptr<double>(), indptr.numel() - 1, roots.data_ptr<int64_t>(),
                                  root_times.data_ptr<double>(), roots.numel(), fanouts[h],
                                  static_cast<int>(strategy), replace, seed, call.data_ptr<int64_t>(), first_hop + h,
                                  h == 0 ? error_ptr : nullptr, nbr_nodes.data_ptr<int64_t>(),
                                  nbr_eids.data_ptr<int64_t>(), nbr_times.data_ptr<double>(),
                                  mask.data_ptr<bool>(), stream);
    TORCH_CHECK(status == cudaSuccess, "CUDA sampler: kernel launch failed: ", cudaGetErrorString(status));
    roots = nbr_nodes.view({-1});
    root_times = nbr_times.view({-1});
    hops.push_back(std::move(hop));
  }
  return hops;
}
#endif

// Distinct valid (node, time) roots in order of first occurrence (CPU): (nodes [U] int64,
// times [U] float64, inverse [R] int64: each root's row among them, -1 for padding roots < 0).
std::tuple<at::Tensor, at::Tensor, at::Tensor> dedup_roots(const at::Tensor& nodes, const at::Tensor& times) {
  check_roots(nodes, times);
  TORCH_CHECK_VALUE(nodes.is_cpu(), "nodes, times: expected CPU tensors");
  const int64_t n = nodes.numel();
  auto first = at::empty({n}, at::kLong);
  auto inverse = at::empty({n}, at::kLong);
  int64_t count;
  {
    py::gil_scoped_release no_gil;
    count = tgnn::dedup_roots(nodes.data_ptr<int64_t>(), times.data_ptr<double>(), n, first.data_ptr<int64_t>(),
                              inverse.data_ptr<int64_t>());
  }
  first = first.narrow(0, 0, count);
  return {nodes.index_select(0, first), times.index_select(0, first), inverse};
}

}  // namespace

void register_sampler_ops(pybind11::module_& m) {
  py::class_<TCSR, std::shared_ptr<TCSR>>(
      m, "TCSR", "Time-sorted CSR: per node, its incident events sorted by (time, eid). See csrc/core/tcsr.h.")
      .def_static("build", &build, py::arg("src"), py::arg("dst"), py::arg("t"), py::arg("num_nodes"),
                  py::arg("undirected"), py::arg("num_threads") = 0,
                  "Builds from int64 src/dst and float64 t (CPU, 1-D); event id = position.")
      .def("append", &append, py::arg("src"), py::arg("dst"), py::arg("t"),
           "Adds events no older than max_time; their ids continue after num_events.")
      .def("pack", &pack, py::arg("num_threads") = 0, "Packed copy: (indptr, nbr, eid, ts) CPU tensors.")
      .def_property_readonly("num_nodes", &TCSR::num_nodes)
      .def_property_readonly("num_events", &TCSR::num_events)
      .def_property_readonly("num_entries", &TCSR::num_entries)
      .def_property_readonly("storage_size", &TCSR::storage_size)
      .def_property_readonly("undirected", &TCSR::undirected)
      .def_property_readonly("max_time", &TCSR::max_time);
  m.def("sample_cpu", &sample_cpu, py::arg("tcsr"), py::arg("nodes"), py::arg("times"), py::arg("fanouts"),
        py::arg("strategy"), py::arg("replace"), py::arg("seed"), py::arg("call"), py::arg("num_threads"),
        py::arg("first_hop") = 0,
        "Multi-hop temporal sampling on CPU: a list of (nbr_nodes, nbr_eids, nbr_times, mask) per hop.");
  m.def("dedup_roots", &dedup_roots, py::arg("nodes"), py::arg("times"),
        "Distinct valid (node, time) roots in order of first occurrence: (nodes, times, inverse).");
#ifdef WITH_CUDA
  m.def("sample_cuda", &sample_cuda, py::arg("indptr"), py::arg("nbr"), py::arg("eid"), py::arg("ts"),
        py::arg("nodes"), py::arg("times"), py::arg("fanouts"), py::arg("strategy"), py::arg("replace"),
        py::arg("seed"), py::arg("call"), py::arg("first_hop"), py::arg("error"),
        "Multi-hop temporal sampling on CUDA (same draws as sample_cpu); no host synchronisation.");
#endif
}
