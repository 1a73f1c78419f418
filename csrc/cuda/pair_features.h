// CUDA launcher of the pair features (the functions of core/pair_features.h, as on the CPU): a kernel
// per block of recent events summarising its rows, then one over the pairs. Torch-free: pointers
// in, on a stream.
#pragma once

#include <cuda_runtime.h>

#include <cstdint>

#include "core/pair_features.h"

namespace tgnn::cuda {

// out [rows, width, kNumPairFeatures] (see tgnn::pair_features); `first`, `stats`, `their_first`
// and `their_stats` are scratch of [rows, mine.width], [rows, kRowStats], [their_rows,
// theirs.width] and [their_rows, kRowStats] doubles. Returns the launch status.
cudaError_t launch_pair_features(const RecentBlock& mine, const RecentBlock& theirs, int64_t rows, int64_t their_rows,
                                 int64_t width, const int64_t* src, const double* t, const int64_t* candidates,
                                 const int64_t* inverse, double* first, double* stats, double* their_first,
                                 double* their_stats, float* out, cudaStream_t stream);

}  // namespace tgnn::cuda
