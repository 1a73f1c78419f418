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

// Keyed pseudo-random permutation of [0, 2^bits), 2 <= bits <= 62: an unbalanced Feistel network
// of kFeistelRounds rounds (even) on a value split into a high part of a = ceil(bits / 2) bits and
// a low part of b = bits - a; a round maps (L, R) to (R, L ^ F(R)), so the parts swap widths each
// round, and F is a keyed multiply-shift hash of R to L's width. Strategy labor ranks the events of
// a long row by it: a per-call, per-node random order that can be walked rank by rank.
constexpr int kFeistelRounds = 6;

struct Feistel {
  uint64_t mul[kFeistelRounds];  // odd multipliers
  uint64_t add[kFeistelRounds];
  int bits;

  // The permutation of node `node` in the call whose key is call_key.
  TGNN_HD Feistel(uint64_t call_key, uint64_t node, int num_bits) : bits(num_bits) {
    const uint64_t key = mix64(mix64(call_key ^ 0xA24BAED4963EE407ull) + (node + 1) * kGamma);
    for (int r = 0; r < kFeistelRounds; ++r) {
      mul[r] = mix64(key + (2 * r + 1) * kGamma) | 1;
      add[r] = mix64(key + (2 * r + 2) * kGamma);
    }
  }
  // F of round r: `width` bits from the other part x.
  TGNN_HD uint64_t round(int r, uint64_t x, int width) const { return ((x ^ add[r]) * mul[r]) >> (64 - width); }
  TGNN_HD uint64_t forward(uint64_t x) const {
    int lw = bits - bits / 2, rw = bits / 2;  // widths of the high (left) and low (right) parts
    uint64_t left = x >> rw, right = x & ((uint64_t{1} << rw) - 1);
    for (int r = 0; r < kFeistelRounds; ++r) {
      const uint64_t next = left ^ round(r, right, lw);
      left = right;
      right = next;
      const int w = lw;
      lw = rw;
      rw = w;
    }
    return (left << rw) | right;
  }
  TGNN_HD uint64_t inverse(uint64_t y) const {
    int lw = bits - bits / 2, rw = bits / 2;  // an even number of rounds restores the widths
    uint64_t left = y >> rw, right = y & ((uint64_t{1} << rw) - 1);
    for (int r = kFeistelRounds - 1; r >= 0; --r) {
      const uint64_t prev_left = right ^ round(r, left, rw);  // its width was rw's
      right = left;
      left = prev_left;
      const int w = lw;
      lw = rw;
      rw = w;
    }
    return (left << rw) | right;
  }
};
static_assert(kFeistelRounds % 2 == 0, "Feistel: the part widths must come back after the rounds");

// Strategy labor: rows of at most this many events rank them by word(call_key, eid); longer rows by
// Feistel(call_key, node, feistel_bits(row length)).forward(offset).
constexpr int64_t kLaborShortRow = 64;

// Width of the Feistel domain that holds [0, d): the least bits >= 2 with 2^bits >= d.
TGNN_HD int feistel_bits(int64_t d) {
  int bits = 2;
  while (bits < 62 && (int64_t{1} << bits) < d) ++bits;
  return bits;
}

// Key of one root of a hop (root = its index among the hop's roots). Draw j of root i hashes
// hop_key + kGamma * (i * 2^32 + j + 1), distinct for i, j < 2^32 (kGamma is odd): one mix per draw,
// as in splitmix64's streams.
TGNN_HD uint64_t root_key(uint64_t hop_key, uint64_t root) { return hop_key + root * (kGamma << 32); }

// Key of one root of a hop by its content (node, time) instead of its position (a keyed call): every
// root of that node at that time draws alike, in whichever call, batch or process it comes. -0.0 and
// 0.0 are one time (as in dedup_roots).
TGNN_HD uint64_t content_key(uint64_t hop_key, int64_t node, double time) {
  uint64_t bits = 0;
  const double t = time == 0.0 ? 0.0 : time;
#ifdef __CUDA_ARCH__
  bits = static_cast<uint64_t>(__double_as_longlong(t));
#else
  __builtin_memcpy(&bits, &t, sizeof(bits));
#endif
  return mix64(hop_key ^ mix64(static_cast<uint64_t>(node) * kGamma + mix64(bits)));
}

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
