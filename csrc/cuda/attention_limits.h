// Limits of the fused CUDA attention kernels, in a header free of CUDA so that the CPU build can
// publish them (dgl_tgnn.ops reads them to choose between the kernels and the batched products).
#pragma once

#include <cstdint>

namespace tgnn::cuda {

constexpr int kMaxAttentionParts = 4;
constexpr int64_t kMaxAttentionWeights = 6144;  // heads x slots: two float tables in 48 KiB of shared memory

}  // namespace tgnn::cuda
