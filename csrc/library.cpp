// The operator library dgl_tgnn: every schema, and the T-CSR custom class. Kernels are registered
// per device with TORCH_LIBRARY_IMPL in the *_ops.cpp files (CPU) and csrc/cuda/*_ops.cpp (CUDA);
// fake kernels and autograd formulas in dgl_tgnn/ops (Python), the only importer of this module.
#include <Python.h>
#include <torch/library.h>

#include "core/format.h"
#include "cuda/attention_limits.h"
#include "ops.h"

namespace {

using tgnn::ops::TCSRHolder;

int64_t num_nodes(const c10::intrusive_ptr<TCSRHolder>& self) { return self->graph.num_nodes(); }
int64_t num_events(const c10::intrusive_ptr<TCSRHolder>& self) { return self->graph.num_events(); }
int64_t num_entries(const c10::intrusive_ptr<TCSRHolder>& self) { return self->graph.num_entries(); }
int64_t storage_size(const c10::intrusive_ptr<TCSRHolder>& self) { return self->graph.storage_size(); }
bool undirected(const c10::intrusive_ptr<TCSRHolder>& self) { return self->graph.undirected(); }
double max_time(const c10::intrusive_ptr<TCSRHolder>& self) { return self->graph.max_time(); }

}  // namespace

TORCH_LIBRARY(dgl_tgnn, m) {
  // Time-sorted CSR: per node, its incident events sorted by (time, eid) (csrc/core/tcsr.h). Made by
  // tcsr_build, grown by tcsr_append; tracing (torch.compile) passes the real object to fake kernels.
  m.class_<TCSRHolder>("TCSR")
      .def("num_nodes", &num_nodes)
      .def("num_events", &num_events)
      .def("num_entries", &num_entries)
      .def("storage_size", &storage_size)
      .def("undirected", &undirected)
      .def("max_time", &max_time)
      // What torch.compile's fake class (dgl_tgnn.ops) is made from: the sizes, no data.
      .def("__obj_flatten__",
           [](const c10::intrusive_ptr<TCSRHolder>& self) {
             return std::make_tuple(std::make_tuple(std::string("num_nodes"), self->graph.num_nodes()),
                                    std::make_tuple(std::string("num_entries"), self->graph.num_entries()));
           })
      // Pickled as its packed arrays, num_events, undirected and max_time (tgnn::ops::TCSRState); the
      // copy is checked whole (ValueError) and samples and appends as the original. TemporalGraph
      // pickles its events instead; this is for the object alone (e.g. inductor's benchmark harness).
      .def_pickle([](const c10::intrusive_ptr<TCSRHolder>& self) { return tgnn::ops::tcsr_state(*self); },
                  [](tgnn::ops::TCSRState state) { return tgnn::ops::tcsr_from_state(state); })
      // Identity (torch.compile's graph passes compare constants).
      .def("__eq__", [](const c10::intrusive_ptr<TCSRHolder>& self, const c10::IValue& other) {
        return other.isCustomClass() &&
               other.type() == c10::getCustomClassType<c10::intrusive_ptr<TCSRHolder>>() &&
               other.toCustomClass<TCSRHolder>().get() == self.get();
      });

  // Sampler. Events: int64 src/dst and float64 t, CPU, 1-D; event id = position.
  m.def("tcsr_build(Tensor src, Tensor dst, Tensor t, int num_nodes, bool undirected, int num_threads=0) "
        "-> __torch__.torch.classes.dgl_tgnn.TCSR");
  // Adds events no older than max_time; their ids continue after num_events.
  m.def("tcsr_append(__torch__.torch.classes.dgl_tgnn.TCSR tcsr, Tensor src, Tensor dst, Tensor t) -> ()");
  // Packed copy (indptr [N + 1], nbr [M], eid [M], ts [M]) on the CPU.
  m.def("tcsr_pack(__torch__.torch.classes.dgl_tgnn.TCSR tcsr, int num_threads=0) -> (Tensor, Tensor, Tensor, Tensor)");
  // Multi-hop sampling on the CPU: per hop nbr_nodes, nbr_eids, nbr_times, mask [R_h, k_h], flattened.
  // strategy: 0 recent, 1 uniform, 2 labor.
  m.def("sample_cpu(__torch__.torch.classes.dgl_tgnn.TCSR tcsr, Tensor nodes, Tensor times, int[] fanouts, "
        "int strategy, bool replace, int seed, int call, int num_threads, int first_hop=0, bool keyed=False) -> Tensor[]");
  // The same on a GPU from a packed T-CSR there; the call number is read on the device. One more
  // output, last: the error flag, int32 [1] with check (1 / 2 ORed in for a bad root id / NaN time),
  // else int32 [0]. No argument is mutated (torch.compile and CUDA graphs take the op as it is).
  m.def("sample_cuda(Tensor indptr, Tensor nbr, Tensor eid, Tensor ts, Tensor nodes, Tensor times, int[] fanouts, "
        "int strategy, bool replace, int seed, Tensor call, int first_hop=0, bool check=False, bool keyed=False) -> Tensor[]");
  // Distinct valid (node, time) roots in order of first occurrence: (nodes [U], times [U], inverse [R]).
  m.def("dedup_roots(Tensor nodes, Tensor times) -> (Tensor, Tensor, Tensor)");

  // Top-k candidates by dot product (or cosine) per query: (values [B, k] float32, indices [B, k]
  // int64), best first, ties to the smaller index, (-inf, -1) where fewer than k remain.
  m.def("topk_dot(Tensor queries, Tensor candidates, int k, Tensor? exclude=None, bool normalize=False, "
        "bool check_exclude=True) -> (Tensor, Tensor)");

  // Fused masked attention over the slots (float32): (agg [R, H, I], alpha [R, H, k]).
  m.def("masked_attention(Tensor qk, Tensor mask, Tensor[] parts) -> (Tensor, Tensor)");
  // Its gradients, only those needed: [grad_qk if need_qk] + [grad_parts[p] where need_parts[p]].
  m.def("masked_attention_backward(Tensor qk, Tensor mask, Tensor[] parts, Tensor alpha, Tensor grad_agg, "
        "bool need_qk, bool[] need_parts) -> Tensor[]");

  // A float32 CPU dropout mask shaped like x (values unread): 0 with probability p, else 1 / (1 - p).
  m.def("dropout_mask(Tensor x, float p, int seed) -> Tensor");

  // cos(dt[:, None] * weight + bias): dt [n], weight and bias [D], float32 -> [n, D].
  m.def("harmonic_encoding(Tensor dt, Tensor weight, Tensor bias) -> Tensor");

  // The 18 features of (source, candidate) pairs from their blocks of recent events (most recent
  // first): src [B], t [B], candidates and inverse (their rows of the second block) [B, C], the
  // sources' block (nbr, times, mask) [B, H] and the candidates' [U, H'] -> [B, C, 18] float32.
  m.def("pair_features(Tensor src, Tensor t, Tensor candidates, Tensor inverse, Tensor nbr, Tensor times, "
        "Tensor mask, Tensor their_nbr, Tensor their_times, Tensor their_mask, bool check=True) -> Tensor");
}

namespace tgnn::ops {

std::string num(int64_t x) { return tgnn::format_int(x); }

std::string dtype_name(at::ScalarType dtype) {
  switch (dtype) {
    case at::kFloat: return "torch.float32";
    case at::kDouble: return "torch.float64";
    case at::kHalf: return "torch.float16";
    case at::kBFloat16: return "torch.bfloat16";
    case at::kLong: return "torch.int64";
    case at::kInt: return "torch.int32";
    case at::kShort: return "torch.int16";
    case at::kChar: return "torch.int8";
    case at::kByte: return "torch.uint8";
    case at::kBool: return "torch.bool";
    default: return std::string("torch.") + c10::toString(dtype);
  }
}

std::string shape(const at::Tensor& x) {
  std::string out = "(";
  for (int64_t i = 0; i < x.dim(); ++i) out += (i ? ", " : "") + num(x.size(i));
  return out + (x.dim() == 1 ? ",)" : ")");
}

}  // namespace tgnn::ops

// The Python module dgl_tgnn._C: importing it loads the library above. Its attributes are build
// constants: with_cuda (whether CUDA kernels were compiled) and the CUDA attention kernels' limits.
extern "C" PyObject* PyInit__C(void) {
  static struct PyModuleDef module = {PyModuleDef_HEAD_INIT, "_C", "dgl-tgnn native operators (torch.ops.dgl_tgnn)",
                                      -1, nullptr};
  PyObject* m = PyModule_Create(&module);
  if (m == nullptr) return nullptr;
  if (PyModule_AddObject(m, "with_cuda", PyBool_FromLong(tgnn::ops::kWithCuda)) < 0 ||
      PyModule_AddIntConstant(m, "cuda_attention_max_parts", tgnn::cuda::kMaxAttentionParts) < 0 ||
      PyModule_AddIntConstant(m, "cuda_attention_max_weights", tgnn::cuda::kMaxAttentionWeights) < 0) {
    Py_DECREF(m);
    return nullptr;
  }
  return m;
}
