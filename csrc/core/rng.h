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

// The high 64 bits of the 128-bit product x * y.
TGNN_HD uint64_t mul_high(uint64_t x, uint64_t y) {
#ifdef __CUDA_ARCH__
  return __umul64hi(x, y);
#else
  return static_cast<uint64_t>((static_cast<unsigned __int128>(x) * y) >> 64);
#endif
}

// Maps a 64-bit word to [0, m) by multiply-high (Lemire); bias below m / 2^64.
TGNN_HD uint64_t below(uint64_t word, uint64_t m) { return mul_high(word, m); }

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

// neg_log's table: entry i < 64 packs c_i = 2^32 / (1 + (i + 1/2) / 64), rounded, in its low 32 bits
// and -ln(c_i / 2^32) * 2^32, rounded, in its high 32 bits (tests/cpp/test_sample.cpp recomputes
// both). Host code reads detail::kLogTable, device code the copy in constant memory (a warp that
// draws one segment reads one entry: a broadcast).
#define TGNN_LOG_TABLE_ENTRIES \
    0x01FE02A7FE03F810ull, 0x05EE46C2FA232CF2ull, 0x09CF43DDF6603D98ull, 0x0DA16EB9F2B9D648ull, \
    0x116536EEEF2EB720ull, 0x151B073FEBBDB2A6ull, 0x18C345D7E865AC7Bull, 0x1C5E548FE525982Bull, \
    0x1FEC9132E1FC780Eull, 0x236E55AADEE95C4Dull, 0x26E3F840DBEB61EFull, 0x2A4DCBC8D901B203ull, \
    0x2DAC1FCED62B80D6ull, 0x30FF40CAD3680D37ull, 0x34477840D0B69FCCull, 0x37850CE9CE168A77ull, \
    0x3AB842D7CB8727C0ull, 0x3DE15B97C907DA4Full, 0x41009652C6980C6Aull, 0x44162FE7C4372F85ull, \
    0x47226305C1E4BBD6ull, 0x4A256850BFA02FE8ull, 0x4D1F766ABD691047ull, 0x5010C21ABB3EE722ull, \
    0x52F97E56B92143FAull, 0x55D9DC5DB70FBB5Aull, 0x58B20BCAB509E68Bull, 0x5B823AA8B30F6353ull, \
    0x5E4A9580B11FD3B8ull, 0x610B4768AF3ADDC7ull, 0x63C47A1DAD602B58ull, 0x66765604AB8F69E3ull, \
    0x69210243A9C84A48ull, 0x6BC4A4C9A80A80A8ull, 0x6E61625BA655C439ull, 0x70F75E9FA4A9CF1Eull, \
    0x7386BC2EA3065E40ull, 0x760F9C96A16B312Full, 0x789220699FD809FEull, 0x7B0E67499E4CAD24ull, \
    0x7D848FE99CC8E161ull, 0x7FF4B8219B4C6F9Full, 0x825EFCED99D722DBull, 0x84C37A7A9868C80Aull, \
    0x87224C2F97012E02ull, 0x897B8CAD95A02568ull, 0x8BCF55DF94458094ull, 0x8E1DC0FC92F11384ull, \
    0x9066E68C91A2B3C5ull, 0x92AADE75905A3863ull, 0x94E9BFF68F1779DAull, 0x9723A1B88DDA5202ull, \
    0x995899C98CA29C04ull, 0x9B88BDAA8B70344Aull, 0x9DB422518A42F870ull, 0x9FDADC26891AC73Bull, \
    0xA1FCFF1887F78088ull, 0xA41A9E9086D90544ull, 0xA633CD7F85BF3761ull, 0xA8489E6084A9F9C8ull, \
    0xAA59233D83993052ull, 0xAC656DAE828CBFBFull, 0xAE6D8EE381848DA9ull, 0xB07197A180808081ull
namespace detail {
inline constexpr uint64_t kLogTable[64] = {TGNN_LOG_TABLE_ENTRIES};
#ifdef __CUDACC__
static __constant__ uint64_t kLogTableDevice[64] = {TGNN_LOG_TABLE_ENTRIES};
#endif
}  // namespace detail
#undef TGNN_LOG_TABLE_ENTRIES

// -ln(x / 2^64) for x in [1, 2^64), in fixed point with 32 fractional bits (absolute error below
// 2^-29; at most 44.4 * 2^32). Integer arithmetic only, so that host and device agree bit for bit
// (libm's log differs between them), and no division. x = 2^(63 - z) M with M in [1, 2), so
// -ln(x / 2^64) = (z + 1) ln 2 - ln M. The 6 bits of M after its leading one pick c_i ~ 1 / M from
// the table: M c_i = 1 + r with |r| < 1/128, and ln M = -ln c_i + ln(1 + r), the latter by its
// series to r^4 (the first omitted term is below 2^-37). Magnitudes in Q32 (value * 2^32), the sign
// of r apart; no product passes 2^64.
TGNN_HD uint64_t neg_log(uint64_t x) {
  constexpr uint64_t kOne = uint64_t{1} << 32;
  constexpr uint64_t kHalfQ64 = uint64_t{1} << 63;
  constexpr uint64_t kLn2Q56 = 0xB17217F7D1CF7Aull;  // ln 2 * 2^56, rounded ((z + 1) ln 2 to within 2^-50)
  const int z = clz64(x);
  const uint64_t y = x << z;  // M * 2^63
#ifdef __CUDA_ARCH__
  const uint64_t entry = detail::kLogTableDevice[(y >> 57) & 63];
#else
  const uint64_t entry = detail::kLogTable[(y >> 57) & 63];
#endif
  const uint64_t prod = (y >> 32) * (entry & 0xFFFFFFFFull);  // (1 + r) * 2^63
  const bool negative = prod < kHalfQ64;                      // r < 0
  const uint64_t t = (negative ? kHalfQ64 - prod : prod - kHalfQ64) >> 31;  // |r| * 2^32, below 2^25
  // |ln(1 + r)| = (t -+ t^2 / 2) + t^2 (t / 3 -+ t^2 / 4), "+" where r < 0 (all terms then have one
  // sign); grouped so that the products overlap (Estrin's scheme)
  const uint64_t t2 = (t * t) >> 32;
  const uint64_t third = (t * (kOne / 3)) >> 32;
  const uint64_t low = negative ? t + (t2 >> 1) : t - (t2 >> 1);
  const uint64_t high = (t2 * (negative ? third + (t2 >> 2) : third - (t2 >> 2))) >> 32;
  const uint64_t ln_1pr = low + high;
  // (z + 1) ln 2 + ln c_i: at least ln 2 - ln(2 - 1/128) > 0
  const uint64_t base = ((static_cast<uint64_t>(z + 1) * kLn2Q56 + (uint64_t{1} << 23)) >> 24) - (entry >> 32);
  if (negative) return base + ln_1pr;
  return base > ln_1pr ? base - ln_1pr : 0;  // rounding could take x near 2^64 below 0
}

// Strategy labor on a row of d > kLaborShortRow events: the numbers of its offsets are i.i.d.
// Exp(1), drawn top-down as a random Cartesian tree (a treap) so that a root can read the k smallest
// of its prefix [0, n) best first, in O(k + log d) draws (expected), without the others. Segment
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
  // position), that word is uniform on a grid of step m / 2^64. E / m is E times floor((2^64 - 1) / m)
  // over 2^64: the divide depends on m alone, so it runs beside the hash instead of after the log.
  TGNN_HD LaborDraw draw(int64_t a, int64_t b, uint64_t lower) const {
    const uint64_t m = static_cast<uint64_t>(b - a);
    const uint64_t h = mix64(key + kGamma * ((static_cast<uint64_t>(b) << 32) + static_cast<uint64_t>(a)));
    const uint64_t inverse = ~uint64_t{0} / m;
    const uint64_t e = neg_log((h * m) | 1) << (kValueFrac - 32);  // < 2^62
    const uint64_t quotient = mul_high(e, inverse);                 // e / m, less by at most 2 units
    const uint64_t step = quotient > 0 ? quotient : 1;
    const uint64_t value = lower + step;
    return {a + static_cast<int64_t>(below(h, m)), value < lower ? ~uint64_t{0} : value};
  }
};

}  // namespace tgnn::rng
