// The 18 features of (source, candidate) pairs from their blocks of recent events (the columns are
// documented in dgl_tgnn/pair_features.py). Torch-free: the CPU kernel (csrc/pair_features_ops.cpp)
// and the CUDA one (csrc/cuda/pair_features.cu) share these functions, so both compute the same
// doubles, rounded once to float32.
//
// Two passes. Per row of a block (a source's or a distinct candidate's H most recent events, most
// recent first): which slots hold their partner's latest event, and the row's statistics. Per pair:
// an O(H) scan of the source's row and of the candidate's.
#pragma once

#include <math.h>

#include <cstdint>

#include "core/host_device.h"

namespace tgnn {

inline constexpr int kNumPairFeatures = 18;
inline constexpr int kRowStats = 6;  // per row: activity, explore, latest, oldest, active, n

// A block of recent events: rows of `width` slots, most recent first.
struct RecentBlock {
  const int64_t* nbr;   // [R, width] partner ids
  const double* times;  // [R, width] event times
  const bool* mask;     // [R, width] which slots hold an event
  int64_t width;
};

// Row r of `block`: first[j] = the slot's time if it holds its partner's latest event in the row,
// else -inf; stats = ln(n), distinct / n (0 when n = 0), the slot 0 time, the oldest time (+inf
// when n = 0), 1.0 if slot 0 holds an event, and n. `first` [width], `stats` [kRowStats].
TGNN_HOST_DEVICE inline void summarise_row(const RecentBlock& block, int64_t r, double* first, double* stats) {
  const int64_t w = block.width;
  const int64_t* nbr = block.nbr + r * w;
  const double* times = block.times + r * w;
  const bool* mask = block.mask + r * w;
  int64_t n = 0, distinct = 0;
  double oldest = INFINITY;
  for (int64_t j = 0; j < w; ++j) {
    bool latest = mask[j];
    for (int64_t k = 0; latest && k < j; ++k) latest = !(mask[k] && nbr[k] == nbr[j]);
    first[j] = latest ? times[j] : -INFINITY;
    if (mask[j]) {
      ++n;
      oldest = fmin(oldest, times[j]);
    }
    distinct += latest;
  }
  stats[0] = log1p(static_cast<double>(n)) / log1p(static_cast<double>(w));
  stats[1] = static_cast<double>(distinct) / static_cast<double>(n > 0 ? n : 1);
  stats[2] = times[0];
  stats[3] = oldest;
  stats[4] = mask[0] ? 1.0 : 0.0;
  stats[5] = static_cast<double>(n);
}

// log(1 + dt) / 16 with negative dt clamped to 0.
TGNN_HOST_DEVICE inline double log_time(double dt) { return log1p(dt > 0.0 ? dt : 0.0) / 16.0; }

// The features out [kNumPairFeatures] of source `src` at time `at`, whose row is `b` of `mine`, with
// candidate `c`, whose row is `u` of `theirs`; `*_first` and `*_stats` as summarise_row wrote them
// ([R, width] and [R, kRowStats]).
TGNN_HOST_DEVICE inline void pair_features(const RecentBlock& mine, const double* mine_first, const double* mine_stats,
                                           const RecentBlock& theirs, const double* their_first,
                                           const double* their_stats, int64_t b, int64_t u, int64_t src,
                                           int64_t c, double at, float* out) {
  const int64_t w = mine.width, wc = theirs.width;
  const int64_t* nbr = mine.nbr + b * w;
  const double* times = mine.times + b * w;
  const bool* mask = mine.mask + b * w;
  int64_t count = 0, short5 = 0, short10 = 0;
  double last = -INFINITY;
  for (int64_t j = 0; j < w; ++j) {
    if (!mask[j] || nbr[j] != c) continue;
    if (count == 0) last = times[j];  // the lowest slot: the latest event with c
    ++count;
    short5 += j < 5;
    short10 += j < 10;
  }
  const bool has = count > 0;
  // the ranks: distinct partners met since the pair last met (only for pairs that met; most did not)
  int64_t rank = 0, their_rank = 0, met = 0;
  const int64_t* their_nbr = theirs.nbr + u * wc;
  const bool* their_mask = theirs.mask + u * wc;
  if (has) {
    const double* first = mine_first + b * w;
    const double* their_first_row = their_first + u * wc;
    for (int64_t j = 0; j < w; ++j) rank += first[j] > last;
    for (int64_t j = 0; j < wc; ++j) their_rank += their_first_row[j] > last;
  }
  for (int64_t j = 0; j < wc; ++j) met += their_mask[j] && their_nbr[j] == src;
  const double* s = mine_stats + b * kRowStats;
  const double* cs = their_stats + u * kRowStats;
  const bool active = s[4] > 0.0, c_active = cs[4] > 0.0;
  const double dcount = static_cast<double>(count);
  out[0] = has ? 1.0f : 0.0f;
  out[1] = static_cast<float>(log1p(dcount));
  out[2] = static_cast<float>(has ? log_time(at - last) : 0.0);
  out[3] = static_cast<float>(has ? 1.0 / (1.0 + static_cast<double>(rank)) : 0.0);
  out[4] = c_active ? 1.0f : 0.0f;
  out[5] = static_cast<float>(c_active ? log_time(at - cs[2]) : 0.0);
  out[6] = static_cast<float>(has ? 1.0 / (1.0 + static_cast<double>(their_rank)) : 0.0);
  out[7] = static_cast<float>(s[0]);
  out[8] = static_cast<float>(s[1]);
  out[9] = static_cast<float>(active ? log_time(at - s[2]) : 0.0);
  out[10] = static_cast<float>(active ? log_time(at - s[3]) : 0.0);
  out[11] = static_cast<float>(dcount / (s[5] > 0.0 ? s[5] : 1.0));
  out[12] = static_cast<float>(log1p(static_cast<double>(short5)));
  out[13] = static_cast<float>(log1p(static_cast<double>(short10)));
  out[14] = static_cast<float>(cs[0]);
  out[15] = static_cast<float>(cs[1]);
  out[16] = static_cast<float>(c_active ? log_time(at - cs[3]) : 0.0);
  out[17] = static_cast<float>(log1p(static_cast<double>(met)));
}

}  // namespace tgnn
