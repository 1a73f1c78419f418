// Unit tests of tgnn::TopKSelector against a brute-force sort with the same order.
#include <algorithm>
#include <cmath>
#include <cstdint>
#include <limits>
#include <random>
#include <vector>

#include "core/topk_select.h"
#include "harness.h"

namespace {

const float kInf = std::numeric_limits<float>::infinity();

struct Pair {
  float value;
  int64_t index;
};

// Brute force: drop NaN and -inf, sort by (value desc, index asc), pad with (-inf, -1).
void brute_force(std::vector<Pair> pairs, int64_t k, std::vector<float>& values, std::vector<int64_t>& indices) {
  pairs.erase(std::remove_if(pairs.begin(), pairs.end(), [](const Pair& p) { return !(p.value > -kInf); }),
              pairs.end());
  std::sort(pairs.begin(), pairs.end(), [](const Pair& a, const Pair& b) {
    if (a.value != b.value) return a.value > b.value;
    return a.index < b.index;
  });
  values.assign(static_cast<size_t>(k), -kInf);
  indices.assign(static_cast<size_t>(k), -1);
  for (size_t i = 0; i < pairs.size() && i < static_cast<size_t>(k); ++i) {
    values[i] = pairs[i].value;
    indices[i] = pairs[i].index;
  }
}

bool selects_like_brute_force(const std::vector<Pair>& pairs, int64_t k, int64_t capacity) {
  tgnn::TopKSelector selector(k, capacity);
  for (const Pair& p : pairs) selector.offer(p.value, p.index);
  std::vector<float> values(static_cast<size_t>(k)), expected_values;
  std::vector<int64_t> indices(static_cast<size_t>(k)), expected_indices;
  selector.finish(values.data(), indices.data());
  brute_force(pairs, k, expected_values, expected_indices);
  return values == expected_values && indices == expected_indices;
}

}  // namespace

TEST_CASE(random_values_in_index_order) {
  std::mt19937_64 rng(11);
  std::normal_distribution<float> normal;
  for (int64_t k : {1, 3, 50, 257}) {
    for (int64_t capacity : {1, 7, 64}) {
      std::vector<Pair> pairs;
      for (int64_t i = 0; i < 2000; ++i) pairs.push_back({normal(rng), i});
      CHECK(selects_like_brute_force(pairs, k, capacity));
    }
  }
}

TEST_CASE(random_values_in_shuffled_order) {
  std::mt19937_64 rng(12);
  std::normal_distribution<float> normal;
  std::vector<Pair> pairs;
  for (int64_t i = 0; i < 3000; ++i) pairs.push_back({normal(rng), i});
  std::shuffle(pairs.begin(), pairs.end(), rng);
  CHECK(selects_like_brute_force(pairs, 40, 16));
}

TEST_CASE(ties_rank_the_smaller_index_first) {
  std::mt19937_64 rng(13);
  std::uniform_int_distribution<int> small(-3, 3);
  std::vector<Pair> pairs;
  for (int64_t i = 0; i < 500; ++i) pairs.push_back({static_cast<float>(small(rng)), i});
  std::shuffle(pairs.begin(), pairs.end(), rng);
  CHECK(selects_like_brute_force(pairs, 100, 9));

  // All equal: the k smallest indices, whatever the offer order.
  tgnn::TopKSelector selector(3, 2);
  for (int64_t i : {9, 4, 7, 1, 8, 2}) selector.offer(1.5f, i);
  float values[3];
  int64_t indices[3];
  selector.finish(values, indices);
  CHECK(indices[0] == 1 && indices[1] == 2 && indices[2] == 4);
  CHECK(values[0] == 1.5f && values[2] == 1.5f);
}

TEST_CASE(nan_and_minus_infinity_are_never_selected) {
  const float nan = std::numeric_limits<float>::quiet_NaN();
  tgnn::TopKSelector selector(4, 3);
  selector.offer(nan, 0);
  selector.offer(-kInf, 1);
  selector.offer(2.0f, 2);
  selector.offer(kInf, 3);
  selector.offer(nan, 4);
  float values[4];
  int64_t indices[4];
  selector.finish(values, indices);
  CHECK(indices[0] == 3 && values[0] == kInf);
  CHECK(indices[1] == 2 && values[1] == 2.0f);
  CHECK(indices[2] == -1 && values[2] == -kInf);
  CHECK(indices[3] == -1 && values[3] == -kInf);
}

TEST_CASE(threshold_is_the_kth_best_after_a_merge) {
  tgnn::TopKSelector selector(2, 2);
  CHECK(!selector.full());
  CHECK(selector.threshold() == -kInf);
  selector.offer(1.0f, 0);
  selector.offer(3.0f, 1);  // buffer full: merged
  CHECK(selector.full());
  CHECK(selector.threshold() == 1.0f);
  selector.offer(0.5f, 2);  // cannot enter
  selector.offer(2.0f, 3);
  selector.offer(5.0f, 4);  // merged: best are 5, 3
  CHECK(selector.threshold() == 3.0f);
  float values[2];
  int64_t indices[2];
  selector.finish(values, indices);
  CHECK(indices[0] == 4 && indices[1] == 1);
  // finish() leaves the selection usable.
  selector.offer(4.0f, 5);
  selector.finish(values, indices);
  CHECK(indices[0] == 4 && indices[1] == 5);
}

TEST_CASE(fewer_pairs_than_k) {
  std::vector<Pair> pairs = {{0.25f, 5}, {-1.0f, 2}};
  CHECK(selects_like_brute_force(pairs, 6, 4));
  CHECK(selects_like_brute_force({}, 3, 4));
}

TEST_MAIN()
