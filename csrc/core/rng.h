// Counter-based random numbers for sampling: a draw is a pure function of
// (seed, call, hop, root, draw), so results never depend on thread schedule or device.
// Shared by the CPU core and the CUDA kernels (hence TGNN_HD).
#pragma once

#include <cstdint>

#ifdef __CUDACC__
#define TGNN_HD __host__ __device__ __forceinline__
#else
#define TGNN_HD inline
#endif

namespace tgnn::rng {

// Stafford's "Mix13" 64-bit finaliser (the one splitmix64 uses): a bijection with full avalanche.
TGNN_HD uint64_t mix64(uint64_t x) {
  x ^= x >> 30;
  x *= 0xBF58476D1CE4E5B9ull;
  x ^= x >> 27;
  x *= 0x94D049BB133111EBull;
  x ^= x >> 31;
  return x;
}

constexpr uint64_t kGamma = 0x9E3779B97F4A7C15ull;  // odd: 2^64 / golden ratio

// Key of one hop of one sample() call; every root and draw of that hop derives from it.
TGNN_HD uint64_t hop_key(uint64_t seed, uint64_t call, uint64_t hop) {
  return mix64(mix64(mix64(seed) ^ (call * kGamma + 1)) ^ (hop + 0xD1B54A32D192ED03ull));
}

// Key of one sample() call as a whole, independent of the hop (strategy labor): event e's number in
// that call is word(call_key, e), the same for every root of every hop of the call. Differs from
// every hop_key (a different last constant).
TGNN_HD uint64_t call_key(uint64_t seed, uint64_t call) {
  return mix64(mix64(mix64(seed) ^ (call * kGamma + 1)) ^ 0x8CB92BA72F3D8DD7ull);
}

// Key of one root of a hop (root = its index among the hop's roots). Draw j of root i hashes
// hop_key + kGamma * (i * 2^32 + j + 1), distinct for i, j < 2^32 (kGamma is odd): one mix per draw,
// as in splitmix64's streams.
TGNN_HD uint64_t root_key(uint64_t hop_key, uint64_t root) { return hop_key + root * (kGamma << 32); }

// The draw-th 64-bit random word of a root.
TGNN_HD uint64_t word(uint64_t root_key, uint64_t draw) { return mix64(root_key + (draw + 1) * kGamma); }

// Maps a 64-bit word to [0, m) by multiply-high (Lemire); bias below m / 2^64.
TGNN_HD uint64_t below(uint64_t word, uint64_t m) {
#ifdef __CUDA_ARCH__
  return __umul64hi(word, m);
#else
  return static_cast<uint64_t>((static_cast<unsigned __int128>(word) * m) >> 64);
#endif
}

}  // namespace tgnn::rng
