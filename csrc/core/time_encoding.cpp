#include "core/time_encoding.h"

#include <algorithm>
#include <cmath>

#include "core/reduced_cos.h"
#include "core/vector_clones.h"

namespace tgnn {

namespace {

TGNN_VECTOR_CLONES void encode_row(float dt, const float* w, const float* b, int64_t dim, float* out) {
  for (int64_t j = 0; j < dim; ++j) out[j] = reduced_cos(dt * w[j] + b[j]);
}

}  // namespace

void harmonic_encoding(const float* dt, const float* w, const float* b, int64_t dim, float* out, int64_t begin,
                       int64_t end) {
  float w_max = 0.0f, b_max = 0.0f;
  bool finite = true;
  for (int64_t j = 0; j < dim; ++j) {
    finite = finite && std::isfinite(w[j]) && std::isfinite(b[j]);
    w_max = std::max(w_max, std::abs(w[j]));
    b_max = std::max(b_max, std::abs(b[j]));
  }
  for (int64_t i = begin; i < end; ++i) {
    float* row = out + i * dim;
    const double bound = std::abs(static_cast<double>(dt[i])) * w_max + b_max;
    if (finite && bound < kReducedCosLimit) {  // false for a NaN or infinite dt
      encode_row(dt[i], w, b, dim, row);
    } else {
      for (int64_t j = 0; j < dim; ++j) row[j] = std::cos(dt[i] * w[j] + b[j]);
    }
  }
}

}  // namespace tgnn
