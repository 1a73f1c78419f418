// The extension module dgl_tgnn._C: tensors in, tensors out; inputs are checked in each op file.
#include "ops.h"

PYBIND11_MODULE(TORCH_EXTENSION_NAME, m) {
  m.doc() = "dgl-tgnn native operators: temporal neighbour sampling, fused top-K dot product, fused masked attention, dropout masks, time encoding";
#ifdef WITH_CUDA
  m.attr("with_cuda") = true;
#else
  m.attr("with_cuda") = false;
#endif
  register_sampler_ops(m);
  register_topk_ops(m);
  register_attention_ops(m);
  register_dropout_ops(m);
  register_time_encoding_ops(m);
}
