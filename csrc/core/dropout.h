// Dropout masks from the counter-based generator of core/rng.h: element i of a mask is a pure
// function of (seed, i), so masks do not depend on the thread count. Torch-free.
#pragma once

#include <cstdint>

namespace tgnn {

// Elements [begin, end) of a dropout mask: 0 with probability p (in [0, 1)), else 1 / (1 - p).
void dropout_mask(uint64_t seed, double p, float* out, int64_t begin, int64_t end);

}  // namespace tgnn
