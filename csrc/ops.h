// Registration hooks of the torch-facing operators; each lives in its own translation unit.
#pragma once

#include <torch/extension.h>

void register_sampler_ops(pybind11::module_& m);  // sampler_ops.cpp
void register_topk_ops(pybind11::module_& m);     // topk_ops.cpp
void register_attention_ops(pybind11::module_& m);  // attention_ops.cpp
void register_dropout_ops(pybind11::module_& m);    // dropout_ops.cpp
void register_time_encoding_ops(pybind11::module_& m);  // time_encoding_ops.cpp
