// Torch glue of the CPU dropout masks (csrc/core/dropout.h); elements are shared among torch's
// intra-op threads.
#include <ATen/Parallel.h>

#include "core/dropout.h"
#include "core/format.h"
#include "ops.h"

namespace py = pybind11;

namespace {

// A float32 CPU tensor of numel elements, each 0 with probability p, else 1 / (1 - p).
at::Tensor dropout_mask(int64_t numel, double p, uint64_t seed) {
  TORCH_CHECK_VALUE(numel >= 0, "dropout_mask: numel must be >= 0, got ", tgnn::format_int(numel));
  TORCH_CHECK_VALUE(p >= 0.0 && p < 1.0, "dropout_mask: p must be in [0, 1)");
  at::Tensor out = at::empty({numel}, at::kFloat);
  float* data = out.data_ptr<float>();
  py::gil_scoped_release no_gil;
  at::parallel_for(0, numel, 32768, [&](int64_t begin, int64_t end) { tgnn::dropout_mask(seed, p, data, begin, end); });
  return out;
}

}  // namespace

void register_dropout_ops(pybind11::module_& m) {
  m.def("dropout_mask", &dropout_mask, py::arg("numel"), py::arg("p"), py::arg("seed"),
        "[numel] float32 CPU dropout mask: 0 with probability p, else 1 / (1 - p); a function of seed.");
}
