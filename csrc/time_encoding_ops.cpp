// Torch glue of the CPU harmonic time encoding (csrc/core/time_encoding.h); rows are shared among
// torch's intra-op threads.
#include <ATen/Parallel.h>

#include "core/format.h"
#include "core/time_encoding.h"
#include "ops.h"

namespace py = pybind11;

namespace {

// cos(dt[:, None] * weight + bias): dt [n], weight and bias [D], float32 CPU -> [n, D].
at::Tensor harmonic_encoding(const at::Tensor& dt, const at::Tensor& weight, const at::Tensor& bias) {
  for (const auto& [name, t] : {std::pair{"dt", &dt}, {"weight", &weight}, {"bias", &bias}}) {
    TORCH_CHECK_VALUE(t->device().is_cpu() && t->scalar_type() == at::kFloat && t->dim() == 1,
                      "harmonic_encoding: ", name, " must be a 1-D float32 CPU tensor, got ",
                      c10::toString(t->scalar_type()), " on ", t->device().str(), " with ", tgnn::format_int(t->dim()),
                      " dims");
  }
  TORCH_CHECK_VALUE(weight.size(0) == bias.size(0), "harmonic_encoding: weight and bias must have the same size, got ",
                    tgnn::format_int(weight.size(0)), " and ", tgnn::format_int(bias.size(0)));
  const at::Tensor d = dt.contiguous(), w = weight.contiguous(), b = bias.contiguous();
  const int64_t rows = d.size(0), dim = w.size(0);
  at::Tensor out = at::empty({rows, dim}, at::kFloat);
  const float *dp = d.data_ptr<float>(), *wp = w.data_ptr<float>(), *bp = b.data_ptr<float>();
  float* op = out.data_ptr<float>();
  py::gil_scoped_release no_gil;
  const int64_t grain = std::max<int64_t>(1, 32768 / std::max<int64_t>(dim, 1));
  at::parallel_for(0, rows, grain,
                   [&](int64_t begin, int64_t end) { tgnn::harmonic_encoding(dp, wp, bp, dim, op, begin, end); });
  return out;
}

}  // namespace

void register_time_encoding_ops(pybind11::module_& m) {
  m.def("harmonic_encoding", &harmonic_encoding, py::arg("dt"), py::arg("weight"), py::arg("bias"),
        "cos(dt[:, None] * weight + bias): dt [n], weight and bias [D], float32 CPU -> [n, D] float32.");
}
