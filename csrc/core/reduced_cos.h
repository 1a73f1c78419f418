// The cosine of the harmonic time encoding, shared by the CPU (core/time_encoding.cpp) and the GPU
// (cuda/time_encoding.cu): an explicit range reduction in double precision and float polynomials.
// The float32 cosines of torch (Sleef on the CPU, CUDA's cosf) take a slow path for arguments beyond
// about 1e5, which time differences in seconds times the fastest frequencies reach in every batch.
#pragma once

#include <math.h>

#include "core/host_device.h"

#if defined(__CUDACC__)
#define TGNN_COS_INLINE __host__ __device__ __forceinline__
#else
// Always inlined: a helper of a function with vector clones is compiled again in each clone only then.
#define TGNN_COS_INLINE __attribute__((always_inline)) inline
#endif

namespace tgnn {

// |x| below this keeps the quadrant k under 2^27 (with margin): reduced_cos's domain.
constexpr double kReducedCosLimit = 2.0e8;

// cos(x) for |x| < kReducedCosLimit, within 1e-7 of the exact cosine of x: x = k pi / 2 + r with
// |r| <= pi / 4 (in double), then cos(x) = cos(r), -sin(r), -cos(r), sin(r) by k mod 4, from float
// Taylor polynomials of degree 8 (cos) and 9 (sin), whose truncation stays below 3e-8 on
// |r| <= pi / 4. The polynomials are written with fused multiply-adds (fmaf), so every build rounds
// alike and stays within the bound (with separate multiplies and adds they reach 1.05e-7): one
// instruction in the AVX2 clones and on GPUs, a slower library call on CPUs without FMA.
TGNN_COS_INLINE float reduced_cos(float xf) {
  // pi / 2 = A + B + C: A and B have at most 25 significant bits, so k * A and k * B are exact for
  // |k| < 2^28 and x - k * (A + B + C) loses nothing to cancellation (Cody and Waite).
  constexpr double kTwoOverPi = 0.63661977236758134308;
  constexpr double kPio2A = 0x1.921fb5p+0;
  constexpr double kPio2B = 0x1.110b46p-26;
  constexpr double kPio2C = 0x1.1a62633145c07p-54;
  constexpr double kRound = 0x1.8p52;  // adding and subtracting it rounds |v| < 2^51 to an integer
  const double x = xf;
  const double k = (x * kTwoOverPi + kRound) - kRound;  // nearest integer (vectorises; std::nearbyint does not)
  const float r = static_cast<float>(((x - k * kPio2A) - k * kPio2B) - k * kPio2C);
  const float r2 = r * r;
  const float c = fmaf(r2, fmaf(r2, fmaf(r2, fmaf(r2, 1.0f / 40320, -1.0f / 720), 1.0f / 24), -1.0f / 2), 1.0f);
  const float s = r * fmaf(r2, fmaf(r2, fmaf(r2, fmaf(r2, 1.0f / 362880, -1.0f / 5040), 1.0f / 120), -1.0f / 6), 1.0f);
  // Selection by exact arithmetic (x 0, x 1, x -1): conditional moves would need -fno-trapping-math
  // for the CPU loop to vectorise.
  const int q = static_cast<int>(k);
  const float odd = static_cast<float>(q & 1);
  const float sign = static_cast<float>(1 - ((q + 1) & 2));
  return (c * (1 - odd) + s * odd) * sign;
}

}  // namespace tgnn
