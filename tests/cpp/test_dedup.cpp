// dedup_roots: first-occurrence numbering against a brute-force scan, padding, signed zero.
#include <random>
#include <vector>

#include "core/dedup.h"
#include "harness.h"

TEST_CASE(hand_example) {
  // pairs: (3,1) (5,1) (3,1) (-1,0) (3,2) (5,1) (-1,7) (3,-0.0) (3,0.0)
  std::vector<int64_t> nodes = {3, 5, 3, -1, 3, 5, -1, 3, 3};
  std::vector<double> times = {1, 1, 1, 0, 2, 1, 7, -0.0, 0.0};
  std::vector<int64_t> first(nodes.size(), 99), inverse(nodes.size(), 99);
  const int64_t count = tgnn::dedup_roots(nodes.data(), times.data(), nodes.size(), first.data(), inverse.data());
  CHECK(count == 4);
  CHECK((std::vector<int64_t>(first.begin(), first.begin() + count) == std::vector<int64_t>{0, 1, 4, 7}));
  CHECK((inverse == std::vector<int64_t>{0, 1, 0, -1, 2, 1, -1, 3, 3}));
}

TEST_CASE(empty_and_all_padding) {
  std::vector<int64_t> nodes = {-1, -1}, first(2, 99), inverse(2, 99);
  std::vector<double> times = {1, 2};
  CHECK(tgnn::dedup_roots(nodes.data(), times.data(), 0, first.data(), inverse.data()) == 0);
  CHECK(tgnn::dedup_roots(nodes.data(), times.data(), 2, first.data(), inverse.data()) == 0);
  CHECK((inverse == std::vector<int64_t>{-1, -1}));
}

TEST_CASE(random_against_brute_force) {
  std::mt19937_64 gen(7);
  for (int trial = 0; trial < 50; ++trial) {
    const int64_t n = static_cast<int64_t>(gen() % 3000);
    const uint64_t span = 1 + gen() % 40;  // few distinct values: many repeats
    std::vector<int64_t> nodes(n);
    std::vector<double> times(n);
    for (int64_t i = 0; i < n; ++i) {
      nodes[i] = static_cast<int64_t>(gen() % span) - 1;
      times[i] = static_cast<double>(gen() % span) * 0.5;
    }
    std::vector<int64_t> first(n), inverse(n);
    const int64_t count = tgnn::dedup_roots(nodes.data(), times.data(), n, first.data(), inverse.data());
    // Brute force: a pair's number is the count of distinct valid pairs that first occur before it.
    std::vector<int64_t> want_first, want_inverse(n, -1);
    for (int64_t i = 0; i < n; ++i) {
      if (nodes[i] < 0) continue;
      int64_t u = 0;
      while (u < static_cast<int64_t>(want_first.size()) &&
             !(nodes[want_first[u]] == nodes[i] && times[want_first[u]] == times[i]))
        ++u;
      if (u == static_cast<int64_t>(want_first.size())) want_first.push_back(i);
      want_inverse[i] = u;
    }
    CHECK(count == static_cast<int64_t>(want_first.size()));
    CHECK(std::vector<int64_t>(first.begin(), first.begin() + count) == want_first);
    CHECK(inverse == want_inverse);
  }
}

TEST_MAIN()
