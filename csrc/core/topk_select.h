// Partial selection of the k best (value, index) pairs, torch-free.
//
// Order: larger value first; equal values rank the smaller index first. NaN and -inf values are
// never selected, so a selection that saw fewer than k usable pairs is padded with (-inf, -1).
#pragma once

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <limits>
#include <vector>

#include "core/host_device.h"

namespace tgnn {

// True when (value_a, index_a) ranks before (value_b, index_b). Never true for a NaN value_a.
template <typename Index>
TGNN_HOST_DEVICE inline bool ranks_before(float value_a, Index index_a, float value_b, Index index_b) {
  return value_a > value_b || (value_a == value_b && index_a < index_b);
}

struct Scored {
  float value;
  int64_t index;
};

// Running top-k of a stream of (value, index) pairs offered in any order.
//
// Offers land in a buffer that is merged into the sorted list of the k best only when it is full or
// a result is asked for (amortised O(log capacity + k / capacity) per offer). threshold() is the
// k-th best value of the last merge: a pair whose value is below it can never be selected.
class TopKSelector {
 public:
  TopKSelector(int64_t k, int64_t buffer_capacity) : k_(k), capacity_(std::max<int64_t>(buffer_capacity, 1)) {
    best_.reserve(static_cast<size_t>(k_ + capacity_));
    buffer_.reserve(static_cast<size_t>(capacity_));
  }

  int64_t k() const { return k_; }

  // Whether k pairs were kept at the last merge.
  bool full() const { return static_cast<int64_t>(best_.size()) == k_; }

  // Value of the k-th best pair at the last merge; -inf while fewer than k pairs were kept.
  float threshold() const {
    return full() ? best_.back().value : -std::numeric_limits<float>::infinity();
  }

  // Offers one pair; NaN and -inf values are ignored.
  void offer(float value, int64_t index) {
    if (!(value > -std::numeric_limits<float>::infinity())) return;
    if (full() && !ranks_before(value, index, best_.back().value, best_.back().index)) return;
    buffer_.push_back({value, index});
    if (static_cast<int64_t>(buffer_.size()) == capacity_) merge();
  }

  // Writes the k best pairs, best first, into values[0..k) and indices[0..k); unused slots get
  // (-inf, -1). The selection stays usable.
  void finish(float* values, int64_t* indices) {
    merge();
    for (int64_t i = 0; i < k_; ++i) {
      const bool used = i < static_cast<int64_t>(best_.size());
      values[i] = used ? best_[i].value : -std::numeric_limits<float>::infinity();
      indices[i] = used ? best_[i].index : -1;
    }
  }

 private:
  void merge() {
    if (buffer_.empty()) return;
    const auto before = [](const Scored& a, const Scored& b) {
      return ranks_before(a.value, a.index, b.value, b.index);
    };
    std::sort(buffer_.begin(), buffer_.end(), before);
    const size_t old_size = best_.size();
    best_.insert(best_.end(), buffer_.begin(), buffer_.end());
    std::inplace_merge(best_.begin(), best_.begin() + static_cast<std::ptrdiff_t>(old_size), best_.end(), before);
    if (static_cast<int64_t>(best_.size()) > k_) best_.resize(static_cast<size_t>(k_));
    buffer_.clear();
  }

  int64_t k_;
  int64_t capacity_;
  std::vector<Scored> best_;    // sorted best first, at most k
  std::vector<Scored> buffer_;  // offers not merged yet
};

}  // namespace tgnn
