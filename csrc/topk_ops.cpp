#include "ops.h"

void register_topk_ops(pybind11::module_& m) {}
