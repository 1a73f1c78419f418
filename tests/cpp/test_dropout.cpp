// Dropout masks: values, rate, and independence of how the range is split.
#include <cmath>
#include <vector>

#include "core/dropout.h"
#include "harness.h"

TEST_CASE(values_and_rate) {
  const int64_t n = 100000;
  std::vector<float> mask(n);
  tgnn::dropout_mask(42, 0.25, mask.data(), 0, n);
  int64_t dropped = 0;
  bool values_ok = true;
  for (float m : mask) {
    dropped += m == 0.0f;
    values_ok = values_ok && (m == 0.0f || m == static_cast<float>(1.0 / 0.75));
  }
  CHECK(values_ok);
  // binomial(n, 0.25): standard deviation 137
  CHECK(std::abs(static_cast<double>(dropped) - 0.25 * n) < 6 * std::sqrt(n * 0.25 * 0.75));
}

TEST_CASE(split_ranges_give_the_same_mask) {
  std::vector<float> whole(1000), parts(1000);
  tgnn::dropout_mask(7, 0.5, whole.data(), 0, 1000);
  tgnn::dropout_mask(7, 0.5, parts.data(), 0, 333);
  tgnn::dropout_mask(7, 0.5, parts.data(), 333, 1000);
  CHECK(whole == parts);
}

TEST_CASE(zero_probability_keeps_everything) {
  std::vector<float> mask(100);
  tgnn::dropout_mask(1, 0.0, mask.data(), 0, 100);
  bool all_one = true;
  for (float m : mask) all_one = all_one && m == 1.0f;
  CHECK(all_one);
}

TEST_MAIN()
