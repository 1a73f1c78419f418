// Torch glue of the harmonic time encoding: on the CPU csrc/core/time_encoding.h, with rows shared
// among torch's intra-op threads; on a GPU csrc/cuda/time_encoding.h.
#include <ATen/Parallel.h>

#include "core/format.h"
#include "core/time_encoding.h"
#include "ops.h"
#ifdef WITH_CUDA
#include <c10/cuda/CUDAGuard.h>
#include <c10/cuda/CUDAStream.h>

#include "cuda/time_encoding.h"
#endif

namespace py = pybind11;

namespace {

// cos(dt[:, None] * weight + bias): dt [n], weight and bias [D], float32 on the CPU or one GPU -> [n, D].
at::Tensor harmonic_encoding(const at::Tensor& dt, const at::Tensor& weight, const at::Tensor& bias) {
#ifdef WITH_CUDA
  const bool device_ok = dt.is_cpu() || dt.is_cuda();
  const char* devices = "the CPU or a GPU";
#else
  const bool device_ok = dt.is_cpu();
  const char* devices = "the CPU";
#endif
  for (const auto& [name, t] : {std::pair{"dt", &dt}, {"weight", &weight}, {"bias", &bias}}) {
    TORCH_CHECK_VALUE(device_ok && t->device() == dt.device() && t->scalar_type() == at::kFloat && t->dim() == 1,
                      "harmonic_encoding: ", name, " must be a 1-D float32 tensor on ", devices,
                      " (all three on one device), got ", c10::toString(t->scalar_type()), " on ", t->device().str(),
                      " with ", tgnn::format_int(t->dim()), " dims");
  }
  TORCH_CHECK_VALUE(weight.size(0) == bias.size(0), "harmonic_encoding: weight and bias must have the same size, got ",
                    tgnn::format_int(weight.size(0)), " and ", tgnn::format_int(bias.size(0)));
  const at::Tensor d = dt.contiguous(), w = weight.contiguous(), b = bias.contiguous();
  const int64_t rows = d.size(0), dim = w.size(0);
  at::Tensor out = at::empty({rows, dim}, d.options());
  const float *dp = d.data_ptr<float>(), *wp = w.data_ptr<float>(), *bp = b.data_ptr<float>();
  float* op = out.data_ptr<float>();
#ifdef WITH_CUDA
  if (d.is_cuda()) {
    const c10::cuda::CUDAGuard guard(d.device());
    const cudaError_t status =
        tgnn::cuda::launch_harmonic_encoding(dp, wp, bp, rows, dim, op, c10::cuda::getCurrentCUDAStream());
    TORCH_CHECK(status == cudaSuccess, "harmonic_encoding: kernel launch failed: ", cudaGetErrorString(status));
    return out;
  }
#endif
  py::gil_scoped_release no_gil;
  const int64_t grain = std::max<int64_t>(1, 32768 / std::max<int64_t>(dim, 1));
  at::parallel_for(0, rows, grain,
                   [&](int64_t begin, int64_t end) { tgnn::harmonic_encoding(dp, wp, bp, dim, op, begin, end); });
  return out;
}

}  // namespace

void register_time_encoding_ops(pybind11::module_& m) {
  m.def("harmonic_encoding", &harmonic_encoding, py::arg("dt"), py::arg("weight"), py::arg("bias"),
        "cos(dt[:, None] * weight + bias): dt [n], weight and bias [D], float32 on the CPU or a GPU -> [n, D].");
}
