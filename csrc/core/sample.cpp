#include "core/sample.h"

#include <algorithm>
#include <climits>
#include <cmath>
#include <functional>
#include <vector>

#include "core/format.h"
#include "core/parallel.h"
#include "core/rng.h"

namespace tgnn {

namespace {

// Sorts k offsets in [0, n) in decreasing order. Up to 16 offsets below 2^31 (the usual case) are
// placed by their rank, counted without branches in 32-bit lanes (the compiler vectorises it): twice
// as fast as insertion sort, whose compares mispredict on random data. Ties (draws with
// replacement) rank by position, which distinct values need not.
template <bool kDistinct>
void sort_decreasing(int64_t* v, int64_t k, int64_t n) {
  constexpr int kSmall = 16;
  if (k <= kSmall && n <= INT32_MAX) {
    int32_t x[kSmall];
    for (int i = 0; i < kSmall; ++i) x[i] = i < k ? static_cast<int32_t>(v[i]) : -1;  // -1 ranks last
    int32_t rank[kSmall];
    for (int j = 0; j < kSmall; ++j) {
      int32_t r = 0;
      for (int p = 0; p < kSmall; ++p) {
        r += kDistinct ? x[p] > x[j] : (x[p] > x[j]) | ((x[p] == x[j]) & (p < j));
      }
      rank[j] = r;
    }
    for (int j = 0; j < k; ++j) v[rank[j]] = x[j];
    return;
  }
  std::sort(v, v + k, std::greater<int64_t>());
}

}  // namespace

std::string validate_roots(const int64_t* nodes, const double* times, int64_t num_roots, int64_t num_nodes,
                           bool allow_padding) {
  const int64_t lowest = allow_padding ? -1 : 0;
  for (int64_t i = 0; i < num_roots; ++i) {
    if (nodes[i] < lowest || nodes[i] >= num_nodes) {
      return "nodes: id " + format_int(nodes[i]) + " at position " + format_int(i) + " is out of range [" +
             format_int(lowest) + ", " + format_int(num_nodes) + ")";
    }
    if (std::isnan(times[i])) return "times: NaN at position " + format_int(i);
  }
  return "";
}

int64_t choose(int64_t n, int64_t k, Strategy strategy, bool replace, uint64_t root_key, int64_t* out) {
  if (strategy == Strategy::kUniform && replace) {
    if (n == 0) return 0;
    for (int64_t j = 0; j < k; ++j) out[j] = static_cast<int64_t>(rng::below(rng::word(root_key, j), n));
    sort_decreasing<false>(out, k, n);
    return k;
  }
  if (strategy == Strategy::kRecent || n <= k) {
    const int64_t count = std::min(n, k);
    for (int64_t s = 0; s < count; ++s) out[s] = n - 1 - s;
    return count;
  }
  // Floyd: step j draws r in [0, n - k + j]; if r was already taken, takes n - k + j (never taken yet).
  for (int64_t j = 0; j < k; ++j) {
    const int64_t top = n - k + j;
    const int64_t r = static_cast<int64_t>(rng::below(rng::word(root_key, j), top + 1));
    out[j] = std::find(out, out + j, r) == out + j ? r : top;
  }
  sort_decreasing<true>(out, k, n);
  return k;
}

namespace {

// The k offsets in [0, n) (n > k) with the smallest (number(o), o), into out (unordered).
template <typename Number>
void bottom_k(int64_t n, int64_t k, Number number, int64_t* out) {
  // A max-heap of the k smallest (number, offset) so far, the largest on top. Offsets come in
  // increasing order, so a later event with an equal number ranks after: strict < suffices.
  if (k <= 0) return;
  constexpr int64_t kStack = 64;
  uint64_t stack_words[kStack];
  std::vector<uint64_t> heap_words;
  uint64_t* words = stack_words;
  if (k > kStack) {
    heap_words.resize(k);
    words = heap_words.data();
  }
  const auto above = [&](int64_t a, int64_t b) {  // slot a ranks after slot b
    return words[a] > words[b] || (words[a] == words[b] && out[a] > out[b]);
  };
  const auto sift_down = [&](int64_t slot) {
    for (int64_t child = 2 * slot + 1; child < k; child = 2 * slot + 1) {
      if (child + 1 < k && above(child + 1, child)) ++child;
      if (!above(child, slot)) break;
      std::swap(words[slot], words[child]);
      std::swap(out[slot], out[child]);
      slot = child;
    }
  };
  for (int64_t o = 0; o < k; ++o) {
    words[o] = number(o);
    out[o] = o;
  }
  for (int64_t slot = k / 2 - 1; slot >= 0; --slot) sift_down(slot);
  for (int64_t o = k; o < n; ++o) {
    const uint64_t w = number(o);
    if (w >= words[0]) continue;
    words[0] = w;
    out[0] = o;
    sift_down(0);
  }
}

}  // namespace

int64_t choose_labor(int64_t n, int64_t d, int64_t k, const int64_t* eids, uint64_t key, int64_t node,
                     int64_t* out) {
  if (n <= k) {
    for (int64_t s = 0; s < n; ++s) out[s] = n - 1 - s;
    return n;
  }
  if (d <= rng::kLaborShortRow) {
    bottom_k(n, k, [&](int64_t o) { return rng::word(key, static_cast<uint64_t>(eids[o])); }, out);
  } else {
    const rng::Feistel perm(key, static_cast<uint64_t>(node), rng::feistel_bits(d));
    const double domain = std::ldexp(1.0, perm.bits);
    if (static_cast<double>(n) * static_cast<double>(n) > static_cast<double>(k) * domain) {
      // Walk: offsets by increasing rank; those below n are taken. The ranks go in blocks whose
      // inversions are independent, so the CPU overlaps their multiply chains, and the taking is
      // branch-free; ranks after the k-th taken offset (even past the domain) are inverted but never
      // taken, so the picks are those of the rank-by-rank walk.
      constexpr int kBlock = 8;
      int64_t count = 0;
      for (uint64_t base = 0; count < k; base += kBlock) {
        uint64_t offset[kBlock];
        for (int j = 0; j < kBlock; ++j) offset[j] = perm.inverse(base + static_cast<uint64_t>(j));
        for (int j = 0; j < kBlock && count < k; ++j) {
          out[count] = static_cast<int64_t>(offset[j]);
          count += offset[j] < static_cast<uint64_t>(n) ? 1 : 0;
        }
      }
    } else {
      bottom_k(n, k, [&](int64_t o) { return perm.forward(static_cast<uint64_t>(o)); }, out);
    }
  }
  sort_decreasing<true>(out, k, n);
  return k;
}

void sample_hop(const TCSR& g, const int64_t* nodes, const double* times, int64_t num_roots, int64_t fanout,
                Strategy strategy, bool replace, uint64_t hop_key, int num_threads, HopOutput out, bool keyed) {
  const int threads = num_threads > 0 ? num_threads : default_threads();
  const int64_t grain = std::clamp<int64_t>(num_roots / (8 * threads), 32, 1024);
  const uint64_t num_nodes = static_cast<uint64_t>(g.num_nodes());
  const double* ts = g.ts();
  const int64_t* nbr = g.nbr();
  const int64_t* eid = g.eid();
  parallel_for(num_roots, grain, threads, [&](int64_t begin, int64_t end) {
    for (int64_t i = begin; i < end; ++i) {
      const int64_t v = nodes[i];
      int64_t n = 0, d = 0, first = 0;  // past events: storage [first, first + n) of its d
      if (static_cast<uint64_t>(v) < num_nodes) {
        first = g.begin(v);
        d = g.end(v) - first;
        n = std::lower_bound(ts + first, ts + first + d, times[i]) - (ts + first);
      }
      const int64_t row = i * fanout;
      int64_t* offsets = out.eids + row;  // scratch: each slot's offset is read before its eid is written
      int64_t count;
      if (strategy == Strategy::kLabor) {
        count = choose_labor(n, d, fanout, eid + first, hop_key, v, offsets);
      } else {
        uint64_t key = 0;
        if (strategy == Strategy::kUniform)
          key = keyed ? rng::content_key(hop_key, v, times[i]) : rng::root_key(hop_key, static_cast<uint64_t>(i));
        count = choose(n, fanout, strategy, replace, key, offsets);
      }
      for (int64_t s = 0; s < count; ++s) {
        const int64_t p = first + offsets[s];
        out.nodes[row + s] = nbr[p];
        out.eids[row + s] = eid[p];
        out.times[row + s] = ts[p];
        out.mask[row + s] = true;
      }
      for (int64_t s = count; s < fanout; ++s) {
        out.nodes[row + s] = -1;
        out.eids[row + s] = -1;
        out.times[row + s] = 0.0;
        out.mask[row + s] = false;
      }
    }
  });
}

}  // namespace tgnn
