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

// Key of one sample() call as a whole, independent of the hop (strategy labor): the number of event e
// of a short row in that call is word(call_key, e), a long row's numbers are LaborTree(call_key, node)'s,
// the same for every root of every hop of the call. Differs from every hop_key (a different last
// constant).
TGNN_HD uint64_t call_key(uint64_t seed, uint64_t call) {
  return mix64(mix64(mix64(seed) ^ (call * kGamma + 1)) ^ 0x8CB92BA72F3D8DD7ull);
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

// Strategy labor: rows of at most this many events rank them by word(call_key, eid); longer rows by
// the numbers of a LaborTree.
constexpr int64_t kLaborShortRow = 64;

// Number of leading zero bits of x != 0.
TGNN_HD int clz64(uint64_t x) {
#ifdef __CUDA_ARCH__
  return __clzll(static_cast<long long>(x));
#else
  return __builtin_clzll(x);
#endif
}

// -ln(x / 2^64) for x in [1, 2^64), in fixed point with 32 fractional bits (absolute error below
// 2^-29; at most 44.4 * 2^32). Integer arithmetic only, so that host and device agree bit for bit
// (libm's log differs between them). x = 2^(63 - z) M with M in [1, 2); halving M when M >= sqrt(2)
// leaves M' in [sqrt(1/2), sqrt(2)) and -ln(x / 2^64) = e ln 2 - ln M' (e = z + 1, or z after the
// halving). ln M' = 2 atanh(s) = 2 (s + s^3 / 3 + ... + s^11 / 11) with s = (M' - 1) / (M' + 1),
// |s| < 0.1716, so the first omitted term is below 2^-36. All quantities are magnitudes in Q32
// (value * 2^32), none of whose products passes 2^64.
TGNN_HD uint64_t neg_log(uint64_t x) {
  constexpr uint64_t kOne = uint64_t{1} << 32;
  constexpr uint64_t kLn2Q56 = 0xB17217F7D1CF7Aull;  // ln 2 * 2^56, rounded (e ln 2 to within 2^-50)
  constexpr uint64_t kSqrt2Q31 = 3037000500ull;      // sqrt(2) * 2^31, rounded up
  const int z = clz64(x);
  const uint64_t m = (x << z) >> 32;  // M * 2^31, in [2^31, 2^32)
  const bool halve = m >= kSqrt2Q31;
  const uint64_t q = halve ? m : m << 1;  // M' * 2^32
  const uint64_t e = static_cast<uint64_t>(z) + (halve ? 0 : 1);
  const bool below_one = q < kOne;  // then ln M' < 0
  const uint64_t s = ((below_one ? kOne - q : q - kOne) << 32) / (q + kOne);  // |s| * 2^32
  const uint64_t w = (s * s) >> 32;                                             // s^2 * 2^32
  uint64_t p = kOne / 11;
  p = kOne / 9 + ((p * w) >> 32);
  p = kOne / 7 + ((p * w) >> 32);
  p = kOne / 5 + ((p * w) >> 32);
  p = kOne / 3 + ((p * w) >> 32);
  p = kOne + ((p * w) >> 32);
  const uint64_t ln_m = (s * p) >> 31;  // |ln M'| * 2^32
  const uint64_t e_ln2 = (e * kLn2Q56 + (uint64_t{1} << 23)) >> 24;  // e ln 2 * 2^32, rounded
  return below_one ? e_ln2 + ln_m : e_ln2 - ln_m;
}

// Strategy labor on a row of d > kLaborShortRow events: the numbers of its offsets are i.i.d.
// Exp(1), drawn top-down as a random Cartesian tree (a treap) so that a root can read the k smallest
// of its prefix [0, n) best first, in O(k log d) draws, without the other d - k numbers. Segment
// [a, b) of the row (m = b - a >= 1) holds its minimum at offset a + below(h, m), uniform, and that
// minimum is its parent's plus E / m, E ~ Exp(1) (the least of m Exp(1) numbers above a bound exceeds
// it by Exp(m), and by memorylessness the other m - 1 are again i.i.d. Exp(1) above it); the
// segments left and right of the minimum are the children. h = mix64 of (the node's key, a, b):
// every root of the node in the call meets the same tree. Numbers are fixed point with kValueFrac
// fractional bits; a child is at least one unit above its parent, so that (number, offset) ranks a
// segment's minimum before everything under it.
constexpr int kValueFrac = 56;  // numbers in [0, 256), saturating (P(Exp(1) > 256) = e^-256)

struct LaborDraw {
  int64_t offset;  // the segment's minimum: where
  uint64_t value;  // and its number
};

struct LaborTree {
  uint64_t key;

  // The tree of node `node` in the call whose key is call_key.
  TGNN_HD LaborTree(uint64_t call_key, uint64_t node)
      : key(mix64(mix64(call_key ^ 0xA24BAED4963EE407ull) + (node + 1) * kGamma)) {}

  // The minimum of segment [a, b) (0 <= a < b) whose parent's minimum is `lower` (0 for the whole
  // row). (a, b) enters the hash as b * 2^32 + a: distinct segments of rows below 2^32 events hash
  // distinct keys. E = -ln U, with U taken from the low word of h * m: given the high word (the
  // position), that word is uniform on a grid of step m / 2^64.
  TGNN_HD LaborDraw draw(int64_t a, int64_t b, uint64_t lower) const {
    const uint64_t m = static_cast<uint64_t>(b - a);
    const uint64_t h = mix64(key + kGamma * ((static_cast<uint64_t>(b) << 32) + static_cast<uint64_t>(a)));
    const uint64_t e = neg_log((h * m) | 1) << (kValueFrac - 32);  // < 2^62
    const uint64_t step = e / m > 0 ? e / m : 1;
    const uint64_t value = lower + step;
    return {a + static_cast<int64_t>(below(h, m)), value < lower ? ~uint64_t{0} : value};
  }
};

}  // namespace tgnn::rng
