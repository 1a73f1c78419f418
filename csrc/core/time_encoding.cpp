#include "core/time_encoding.h"

#include <algorithm>
#include <cmath>

#include "core/vector_clones.h"

namespace tgnn {

namespace {

// pi / 2 = kPio2A + kPio2B + kPio2C: A and B have at most 25 significant bits, so k * A and k * B are
// exact for |k| < 2^28 and x - k * (A + B + C) loses nothing to cancellation (Cody and Waite).
constexpr double kTwoOverPi = 0.63661977236758134308;
constexpr double kPio2A = 0x1.921fb5p+0;
constexpr double kPio2B = 0x1.110b46p-26;
constexpr double kPio2C = 0x1.1a62633145c07p-54;
constexpr double kRound = 0x1.8p52;  // adding and subtracting it rounds |v| < 2^51 to an integer
// |w * dt + b| below this keeps |k| < 2^27 (with margin).
constexpr double kFastLimit = 2.0e8;

// cos(x) for |x| < kFastLimit: x = k pi / 2 + r with |r| <= pi / 4 (in double), then cos(x) =
// cos(r), -sin(r), -cos(r), sin(r) by k mod 4, from float Taylor polynomials of degree 8 (cos) and 9
// (sin), whose truncation stays below 3e-8 on |r| <= pi / 4.
TGNN_INLINE float fast_cos(float xf) {
  const double x = xf;
  const double k = (x * kTwoOverPi + kRound) - kRound;  // nearest integer (vectorises; std::nearbyint does not)
  const float r = static_cast<float>(((x - k * kPio2A) - k * kPio2B) - k * kPio2C);
  const float r2 = r * r;
  const float c = 1.0f + r2 * (-1.0f / 2 + r2 * (1.0f / 24 + r2 * (-1.0f / 720 + r2 * (1.0f / 40320))));
  const float s = r * (1.0f + r2 * (-1.0f / 6 + r2 * (1.0f / 120 + r2 * (-1.0f / 5040 + r2 * (1.0f / 362880)))));
  // Selection by exact arithmetic (x 0, x 1, x -1): conditional moves would need -fno-trapping-math
  // for the loop to vectorise.
  const int q = static_cast<int>(k);
  const float odd = static_cast<float>(q & 1);
  const float sign = static_cast<float>(1 - ((q + 1) & 2));
  return (c * (1 - odd) + s * odd) * sign;
}

TGNN_VECTOR_CLONES void encode_row(float dt, const float* w, const float* b, int64_t dim, float* out) {
  for (int64_t j = 0; j < dim; ++j) out[j] = fast_cos(dt * w[j] + b[j]);
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
    if (finite && bound < kFastLimit) {  // false for a NaN or infinite dt
      encode_row(dt[i], w, b, dim, row);
    } else {
      for (int64_t j = 0; j < dim; ++j) row[j] = std::cos(dt[i] * w[j] + b[j]);
    }
  }
}

}  // namespace tgnn
