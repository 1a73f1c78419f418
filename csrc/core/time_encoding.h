// Harmonic time encoding cos(w * dt + b) on the CPU. Torch-free.
//
// The argument is formed in float32 (as torch's addcmul forms it) and its cosine is taken with an
// explicit range reduction in double precision and a polynomial, vectorised: torch's vectorised cosine
// (Sleef) takes a slow path per lane for arguments beyond about 1e5, which time differences in
// seconds times the fastest frequencies (w near 1) reach in every batch.
#pragma once

#include <cstdint>

namespace tgnn {

// Rows [begin, end) of out [n, dim]: out[i * dim + j] = cos(a) with a = dt[i] * w[j] + b[j] formed in
// float32 (one rounding where the CPU fuses the multiply-add, else two), within 1e-7 of the exact
// cosine of a. Rows whose argument could reach 2e8 in magnitude, or is not finite, take std::cos.
void harmonic_encoding(const float* dt, const float* w, const float* b, int64_t dim, float* out, int64_t begin,
                       int64_t end);

}  // namespace tgnn
