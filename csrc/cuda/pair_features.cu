// Pair features on the GPU: one thread per row of a block of recent events, then one per pair.
#include <cuda_runtime.h>

#include <algorithm>

#include "cuda/pair_features.h"

namespace tgnn::cuda {

namespace {

constexpr int kThreads = 256;

int64_t blocks_for(int64_t n) { return std::min<int64_t>((n + kThreads - 1) / kThreads, 65535); }

__global__ void summarise_kernel(RecentBlock block, int64_t rows, double* first, double* stats) {
  for (int64_t r = blockIdx.x * static_cast<int64_t>(blockDim.x) + threadIdx.x; r < rows;
       r += static_cast<int64_t>(gridDim.x) * blockDim.x) {
    summarise_row(block, r, first + r * block.width, stats + r * kRowStats);
  }
}

__global__ void pairs_kernel(RecentBlock mine, RecentBlock theirs, int64_t pairs, int64_t width,
                             const int64_t* __restrict__ src, const double* __restrict__ t,
                             const int64_t* __restrict__ candidates, const int64_t* __restrict__ inverse,
                             const double* first, const double* stats, const double* their_first,
                             const double* their_stats, float* __restrict__ out) {
  for (int64_t p = blockIdx.x * static_cast<int64_t>(blockDim.x) + threadIdx.x; p < pairs;
       p += static_cast<int64_t>(gridDim.x) * blockDim.x) {
    const int64_t b = p / width;
    pair_features(mine, first, stats, theirs, their_first, their_stats, b, inverse[p], src[b], candidates[p], t[b],
                  out + p * kNumPairFeatures);
  }
}

}  // namespace

cudaError_t launch_pair_features(const RecentBlock& mine, const RecentBlock& theirs, int64_t rows, int64_t their_rows,
                                 int64_t width, const int64_t* src, const double* t, const int64_t* candidates,
                                 const int64_t* inverse, double* first, double* stats, double* their_first,
                                 double* their_stats, float* out, cudaStream_t stream) {
  if (rows > 0) summarise_kernel<<<blocks_for(rows), kThreads, 0, stream>>>(mine, rows, first, stats);
  if (their_rows > 0)
    summarise_kernel<<<blocks_for(their_rows), kThreads, 0, stream>>>(theirs, their_rows, their_first, their_stats);
  const int64_t pairs = rows * width;
  if (pairs > 0)
    pairs_kernel<<<blocks_for(pairs), kThreads, 0, stream>>>(mine, theirs, pairs, width, src, t, candidates, inverse,
                                                             first, stats, their_first, their_stats, out);
  return cudaGetLastError();
}

}  // namespace tgnn::cuda
