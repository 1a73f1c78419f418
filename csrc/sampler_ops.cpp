#include "ops.h"

void register_sampler_ops(pybind11::module_& m) {}
