// One sampling hop on the GPU: a warp per root. The warp binary-searches the root's row
// cooperatively (32 pivots per step), then picks the same offsets as tgnn::choose (csrc/core):
// recent = the latest min(n, k); uniform = Floyd's algorithm with the same counter-based draws,
// its sequential "already taken?" test done as one warp ballot per draw; labor = the bottom k of the
// events' shared numbers (tgnn::choose_labor), a unique set whatever order the warp scans or walks in. Outputs are therefore
// identical to the CPU sampler's, bit for bit.
#include <cstdint>

#include "core/rng.h"
#include "cuda/sample.h"

namespace tgnn::cuda {

namespace {

constexpr int kWarp = 32;
constexpr int kWarpsPerBlock = 8;
constexpr unsigned kAllLanes = 0xffffffffu;

// First index in [lo, hi) whose time is >= t (hi if none); the whole warp calls it. Invariant:
// the answer lies in [lo, hi]. Each step probes pivots lo + (l + 1) * step - 1 (lane l, those < hi);
// the row being sorted, the c pivots with time < t are the first c, so the answer lies in
// [lo + c * step, min(pivot c, hi)]: the range shrinks 33-fold a step.
__device__ int64_t warp_lower_bound(const double* ts, int64_t lo, int64_t hi, double t, int lane) {
  while (hi - lo > kWarp) {
    const int64_t step = (hi - lo + kWarp) / (kWarp + 1);
    const int64_t pivot = lo + (lane + 1) * step - 1;
    const int c = __popc(__ballot_sync(kAllLanes, pivot < hi && ts[pivot] < t));
    if (c < kWarp) hi = min(lo + (c + 1) * step - 1, hi);
    lo += c * step;
  }
  const int64_t p = lo + lane;
  return lo + __popc(__ballot_sync(kAllLanes, p < hi && ts[p] < t));
}

// Output slot of each of the warp's k offsets (slot j = c * 32 + lane in register c): the number
// of larger offsets, plus equal ones of smaller j (repeats, with replacement). T: int when the row
// is shorter than 2^31, halving the shuffles and compares.
template <typename T, int C>
__device__ void rank_decreasing(const int64_t (&offset)[C], int k, int lane, int (&slot)[C]) {
  T mine[C];
#pragma unroll
  for (int c = 0; c < C; ++c) {
    mine[c] = static_cast<T>(offset[c]);
    slot[c] = 0;
  }
#pragma unroll
  for (int cj = 0; cj < C; ++cj) {
    for (int lj = 0; lj < kWarp && cj * kWarp + lj < k; ++lj) {
      const int j = cj * kWarp + lj;
      const T r = __shfl_sync(kAllLanes, mine[cj], lj);
#pragma unroll
      for (int c = 0; c < C; ++c) slot[c] += r > mine[c] || (r == mine[c] && j < c * kWarp + lane);
    }
  }
}

// Floyd's algorithm on draws already made (offset[c] = r_j, drawn in [0, n - k + j]): draw j keeps
// r_j unless an earlier draw took it, then takes n - k + j. When the raw draws are pairwise distinct
// (the usual case, n >> k) that changes nothing, which one match-any vote detects for k <= 32.
template <int C>
__device__ void floyd(int64_t (&offset)[C], int64_t n, int k, int lane) {
  if (C == 1) {
    const unsigned drawn = k == kWarp ? kAllLanes : (1u << k) - 1;
    const unsigned same = __match_any_sync(kAllLanes, static_cast<unsigned long long>(offset[0])) & drawn;
    if (!__any_sync(kAllLanes, lane < k && same != (1u << lane))) return;
  }
#pragma unroll
  for (int cj = 0; cj < C; ++cj) {
    for (int lj = 0; lj < kWarp && cj * kWarp + lj < k; ++lj) {
      const int j = cj * kWarp + lj;
      const int64_t r = __shfl_sync(kAllLanes, offset[cj], lj);
      bool taken = false;
#pragma unroll
      for (int c = 0; c < C; ++c) taken |= c * kWarp + lane < j && offset[c] == r;
      taken = __any_sync(kAllLanes, taken);
      if (lane == lj && taken) offset[cj] = n - k + j;
    }
  }
}

// The (word, offset) largest among the warp's k kept events (all lanes get it); empty registers
// hold (0, -1), below every real pair.
template <int C>
__device__ void warp_worst(const uint64_t (&word)[C], const int64_t (&offset)[C], uint64_t& worst_word,
                           int64_t& worst_offset) {
  worst_word = 0;
  worst_offset = -1;
#pragma unroll
  for (int c = 0; c < C; ++c) {
    if (word[c] > worst_word || (word[c] == worst_word && offset[c] > worst_offset)) {
      worst_word = word[c];
      worst_offset = offset[c];
    }
  }
#pragma unroll
  for (int d = kWarp / 2; d > 0; d /= 2) {
    const uint64_t w = __shfl_xor_sync(kAllLanes, worst_word, d);
    const int64_t o = __shfl_xor_sync(kAllLanes, worst_offset, d);
    if (w > worst_word || (w == worst_word && o > worst_offset)) {
      worst_word = w;
      worst_offset = o;
    }
  }
}

// labor (tgnn::choose_labor): the k offsets in [0, n) (n > k) with the smallest (number(o), o).
// The warp keeps the k best so far (slot j = c * 32 + lane) and reads the row 32 offsets at a time;
// an event below the current worst replaces it (one ballot per chunk, then a warp arg-max per
// replacement: about k ln(n / k) of them in all).
template <int C, typename Number>
__device__ void labor_select(int64_t n, int k, Number number, int lane, int64_t (&offset)[C]) {
  uint64_t word[C];
#pragma unroll
  for (int c = 0; c < C; ++c) {
    const int j = c * kWarp + lane;
    offset[c] = j < k ? j : -1;
    word[c] = j < k ? number(j) : 0;
  }
  uint64_t bound;
  int64_t bound_offset;
  warp_worst<C>(word, offset, bound, bound_offset);
  for (int64_t base = k; base < n; base += kWarp) {
    const int64_t o = base + lane;
    const uint64_t w = o < n ? number(o) : 0;
    unsigned candidates = __ballot_sync(kAllLanes, o < n && w < bound);
    while (candidates != 0) {
      const int l = __ffs(candidates) - 1;
      candidates &= candidates - 1;
      const uint64_t wl = __shfl_sync(kAllLanes, w, l);
      if (wl >= bound) continue;  // an equal word at a later offset ranks after the worst
#pragma unroll
      for (int c = 0; c < C; ++c) {
        if (offset[c] == bound_offset) {  // offsets are distinct: one register of one lane
          word[c] = wl;
          offset[c] = base + l;
        }
      }
      warp_worst<C>(word, offset, bound, bound_offset);
    }
  }
}

// labor on a long row, by walking its permutation: ranks 0, 1, ... 32 at a time (lane l inverts
// rank base + l); the first k offsets below n, in rank order, fill slots 0 .. k - 1.
template <int C>
__device__ void labor_walk(const rng::Feistel& perm, int64_t n, int k, int lane, int64_t (&offset)[C]) {
#pragma unroll
  for (int c = 0; c < C; ++c) offset[c] = -1;
  const uint64_t domain = uint64_t{1} << (perm.bits);
  int count = 0;
  for (uint64_t base = 0; count < k && base < domain; base += kWarp) {
    const uint64_t rank = base + lane;
    const uint64_t o = rank < domain ? perm.inverse(rank) : domain;
    unsigned taken = __ballot_sync(kAllLanes, o < static_cast<uint64_t>(n));
    while (taken != 0 && count < k) {
      const int l = __ffs(taken) - 1;
      taken &= taken - 1;
      const int64_t p = static_cast<int64_t>(__shfl_sync(kAllLanes, o, l));
#pragma unroll
      for (int c = 0; c < C; ++c) {
        if (c * kWarp + lane == count) offset[c] = p;
      }
      ++count;
    }
  }
}

// Slot j = c * 32 + lane of a row lives in lane `lane`, register c. C = ceil(fanout / 32).
// kLabor: strategy 2 (its own instantiation, so that the others keep their few registers).
template <int C, bool kLabor>
__global__ void __launch_bounds__(kWarp* kWarpsPerBlock)
    sample_hop_kernel(const int64_t* __restrict__ indptr, const int64_t* __restrict__ nbr,
                      const int64_t* __restrict__ eid, const double* __restrict__ ts, int64_t num_nodes,
                      const int64_t* __restrict__ roots, const double* __restrict__ times, int64_t num_roots,
                      int k, int strategy, bool replace, uint64_t seed, const int64_t* __restrict__ call,
                      uint64_t hop, int* error, bool keyed,
                      int64_t* __restrict__ out_nodes, int64_t* __restrict__ out_eids,
                      double* __restrict__ out_times, bool* __restrict__ out_mask) {
  const int lane = threadIdx.x % kWarp;
  const uint64_t hop_key = rng::hop_key(seed, static_cast<uint64_t>(*call), hop);
  const uint64_t call_key = kLabor ? rng::call_key(seed, static_cast<uint64_t>(*call)) : 0;
  const bool with_replacement = replace && strategy == 1;
  const int64_t num_warps = static_cast<int64_t>(gridDim.x) * kWarpsPerBlock;
  for (int64_t i = static_cast<int64_t>(blockIdx.x) * kWarpsPerBlock + threadIdx.x / kWarp; i < num_roots;
       i += num_warps) {
    const int64_t v = roots[i];
    const double t = times[i];
    const bool valid = v >= 0 && v < num_nodes;
    if (error != nullptr && lane == 0 && (!valid || isnan(t))) atomicOr(error, (valid ? 0 : 1) | (isnan(t) ? 2 : 0));
    int64_t first = 0, n = 0;  // the root's past events are [first, first + n)
    if (valid) {
      first = indptr[v];
      n = warp_lower_bound(ts, first, indptr[v + 1], t, lane) - first;
    }

    int64_t offset[C];  // offset into the root's past events, -1 for an empty slot
    int slot[C];        // where it goes in the output row
    if (strategy == 0 || (!with_replacement && n <= k) || n == 0) {  // the latest min(n, k), most recent first
#pragma unroll
      for (int c = 0; c < C; ++c) {
        slot[c] = c * kWarp + lane;
        offset[c] = slot[c] < n ? n - 1 - slot[c] : -1;
      }
    } else if constexpr (kLabor) {
      const int64_t d = indptr[v + 1] - first;  // n > k >= 1: v is valid
      if (d <= rng::kLaborShortRow) {
        const int64_t* row_eids = eid + first;
        labor_select<C>(n, k, [&](int64_t o) { return rng::word(call_key, static_cast<uint64_t>(row_eids[o])); },
                        lane, offset);
      } else {
        const rng::Feistel perm(call_key, static_cast<uint64_t>(v), rng::feistel_bits(d));
        const double domain = ldexp(1.0, perm.bits);
        if (static_cast<double>(n) * static_cast<double>(n) > static_cast<double>(k) * domain) {
          labor_walk<C>(perm, n, k, lane, offset);
        } else {
          labor_select<C>(n, k, [&](int64_t o) { return perm.forward(static_cast<uint64_t>(o)); }, lane, offset);
        }
      }
      if (n <= INT32_MAX) {
        rank_decreasing<int, C>(offset, k, lane, slot);
      } else {
        rank_decreasing<int64_t, C>(offset, k, lane, slot);
      }
    } else {
      const uint64_t key = keyed ? rng::content_key(hop_key, v, t) : rng::root_key(hop_key, i);
#pragma unroll
      for (int c = 0; c < C; ++c) {
        const int64_t j = c * kWarp + lane;
        const uint64_t range = with_replacement ? n : n - k + j + 1;
        offset[c] = j < k ? static_cast<int64_t>(rng::below(rng::word(key, j), range)) : -1;
      }
      if (!with_replacement) floyd<C>(offset, n, k, lane);
      if (n <= INT32_MAX) {
        rank_decreasing<int, C>(offset, k, lane, slot);
      } else {
        rank_decreasing<int64_t, C>(offset, k, lane, slot);
      }
    }

    const int64_t row = i * k;
#pragma unroll
    for (int c = 0; c < C; ++c) {
      if (c * kWarp + lane >= k) continue;
      const int64_t out = row + slot[c];
      if (offset[c] >= 0) {
        const int64_t p = first + offset[c];
        out_nodes[out] = nbr[p];
        out_eids[out] = eid[p];
        out_times[out] = ts[p];
        out_mask[out] = true;
      } else {
        out_nodes[out] = -1;
        out_eids[out] = -1;
        out_times[out] = 0.0;
        out_mask[out] = false;
      }
    }
  }
}

}  // namespace

cudaError_t launch_sample_hop(const int64_t* indptr, const int64_t* nbr, const int64_t* eid, const double* ts,
                              int64_t num_nodes, const int64_t* roots, const double* times, int64_t num_roots,
                              int64_t fanout, int strategy, bool replace, uint64_t seed, const int64_t* call,
                              uint64_t hop, int* error, int64_t* out_nodes, int64_t* out_eids, double* out_times,
                              bool* out_mask, cudaStream_t stream, bool keyed) {
  if (num_roots == 0) return cudaSuccess;
  const int64_t blocks64 = (num_roots + kWarpsPerBlock - 1) / kWarpsPerBlock;
  const unsigned blocks = static_cast<unsigned>(blocks64 < (1 << 30) ? blocks64 : (1 << 30));
  const int k = static_cast<int>(fanout);
#define TGNN_LAUNCH_LABOR(C, LABOR)                                                                           \
  sample_hop_kernel<C, LABOR><<<blocks, kWarp * kWarpsPerBlock, 0, stream>>>(                                 \
      indptr, nbr, eid, ts, num_nodes, roots, times, num_roots, k, strategy, replace, seed, call, hop, error, keyed, \
      out_nodes, out_eids, out_times, out_mask)
#define TGNN_LAUNCH(C)             \
  if (strategy == 2) {             \
    TGNN_LAUNCH_LABOR(C, true);    \
  } else {                         \
    TGNN_LAUNCH_LABOR(C, false);   \
  }
  if (k <= 32) {
    TGNN_LAUNCH(1);
  } else if (k <= 64) {
    TGNN_LAUNCH(2);
  } else if (k <= 128) {
    TGNN_LAUNCH(4);
  } else {
    TGNN_LAUNCH(8);
  }
#undef TGNN_LAUNCH
#undef TGNN_LAUNCH_LABOR
  return cudaGetLastError();
}

}  // namespace tgnn::cuda
