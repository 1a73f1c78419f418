#include "core/dropout.h"

#include <cmath>

#include "core/rng.h"

namespace tgnn {

void dropout_mask(uint64_t seed, double p, float* out, int64_t begin, int64_t end) {
  // Element i is dropped when its 64-bit word falls below p 2^64 (probability p, up to 2^-64).
  const uint64_t cut = p <= 0.0 ? 0 : static_cast<uint64_t>(std::ldexp(p, 64));
  const float keep = static_cast<float>(1.0 / (1.0 - p));
  const uint64_t key = rng::mix64(seed);
  for (int64_t i = begin; i < end; ++i) {
    out[i] = rng::word(key, static_cast<uint64_t>(i)) < cut ? 0.0f : keep;
  }
}

}  // namespace tgnn
