// Sampling core: recent exact, uniform distinct and uniform, no future events, determinism.
#include <algorithm>
#include <cmath>
#include <functional>
#include <random>
#include <set>
#include <vector>

#include "core/rng.h"
#include "core/sample.h"
#include "harness.h"

using tgnn::Strategy;
using tgnn::TCSR;

namespace {

struct Hop {
  std::vector<int64_t> nodes, eids;
  std::vector<double> times;
  std::vector<char> mask;  // std::vector<bool> has no data()
};

Hop run(const TCSR& g, const std::vector<int64_t>& roots, const std::vector<double>& times, int64_t k,
        Strategy s, bool replace, uint64_t key, int threads) {
  Hop h;
  const size_t n = roots.size() * k;
  h.nodes.assign(n, 7);
  h.eids.assign(n, 7);
  h.times.assign(n, 7);
  h.mask.assign(n, 7);
  tgnn::sample_hop(g, roots.data(), times.data(), roots.size(), k, s, replace, key, threads,
                   {h.nodes.data(), h.eids.data(), h.times.data(), reinterpret_cast<bool*>(h.mask.data())});
  return h;
}

}  // namespace

TEST_CASE(recent_hand_example) {
  // node 0's events (time, eid): (1, e0) (2, e1) (2, e2) (3, e3); a query at time 2.5 sees e0..e2.
  std::vector<int64_t> src = {0, 0, 1, 0}, dst = {1, 2, 0, 2};
  std::vector<double> t = {1, 2, 2, 3};
  TCSR g = TCSR::build(src.data(), dst.data(), t.data(), 4, 3, true, 1);
  Hop h = run(g, {0, 0, -1, 2}, {2.5, 1.0, 9.0, 3.0}, 2, Strategy::kRecent, false, 0, 1);
  // root 0 at 2.5: ties at time 2 -> larger eid first: e2 (nbr 1), e1 (nbr 2)
  CHECK(h.eids[0] == 2 && h.eids[1] == 1);
  CHECK(h.nodes[0] == 1 && h.nodes[1] == 2);
  CHECK(h.times[0] == 2 && h.times[1] == 2);
  CHECK(h.mask[0] && h.mask[1]);
  // root 0 at 1.0: strictly before 1 -> nothing
  CHECK(!h.mask[2] && !h.mask[3] && h.nodes[2] == -1 && h.eids[3] == -1 && h.times[2] == 0);
  // padding root -1 -> empty
  CHECK(!h.mask[4] && !h.mask[5] && h.nodes[4] == -1);
  // node 2 at 3.0: e1 (t=2, nbr 0) only (e3 at t=3 is not strictly before)
  CHECK(h.eids[6] == 1 && h.nodes[6] == 0 && h.mask[6] && !h.mask[7] && h.eids[7] == -1);
}

TEST_CASE(choose_uniform_distinct_sorted_and_sized) {
  std::vector<int64_t> out(64);
  for (int64_t n = 0; n < 40; ++n) {
    for (int64_t k : {1, 3, 10, 33, 64}) {
      for (uint64_t key = 0; key < 20; ++key) {
        int64_t c = tgnn::choose(n, k, Strategy::kUniform, false, key, out.data());
        CHECK(c == std::min(n, k));
        for (int64_t s = 0; s < c; ++s) CHECK(out[s] >= 0 && out[s] < n);
        for (int64_t s = 1; s < c; ++s) CHECK(out[s - 1] > out[s]);  // distinct, decreasing
        c = tgnn::choose(n, k, Strategy::kUniform, true, key, out.data());
        CHECK(c == (n > 0 ? k : 0));
        for (int64_t s = 0; s < c; ++s) CHECK(out[s] >= 0 && out[s] < n);
        for (int64_t s = 1; s < c; ++s) CHECK(out[s - 1] >= out[s]);
      }
    }
  }
}

TEST_CASE(choose_uniform_is_uniform) {
  // n = 7, k = 3 without replacement: each offset appears with probability 3/7 and each of the
  // C(7,3) = 35 subsets with probability 1/35. 70000 deterministic keys; bounds are > 5 sigma.
  const int trials = 70000;
  std::vector<int> offset_count(7, 0);
  std::vector<int> subset_count(128, 0);
  int64_t out[3];
  for (int i = 0; i < trials; ++i) {
    tgnn::choose(7, 3, Strategy::kUniform, false, tgnn::rng::root_key(99, i), out);
    int mask = 0;
    for (int64_t o : out) {
      ++offset_count[o];
      mask |= 1 << o;
    }
    ++subset_count[mask];
  }
  for (int c : offset_count) CHECK(std::abs(c - 30000) < 5 * 131);  // sd = sqrt(70000 * 3/7 * 4/7)
  int subsets = 0;
  for (int c : subset_count) {
    if (c == 0) continue;
    ++subsets;
    CHECK(std::abs(c - 2000) < 5 * 44);  // sd = sqrt(70000 / 35 * 34 / 35)
  }
  CHECK(subsets == 35);
}

TEST_CASE(never_a_future_event_and_deterministic_across_threads) {
  std::mt19937_64 gen(3);
  std::uniform_int_distribution<int64_t> node(0, 29), time(0, 19);
  std::vector<int64_t> src, dst;
  std::vector<double> t;
  for (int i = 0; i < 600; ++i) {
    src.push_back(node(gen));
    dst.push_back(node(gen));
    t.push_back(static_cast<double>(time(gen)));
  }
  TCSR g = TCSR::build(src.data(), dst.data(), t.data(), src.size(), 30, true, 2);
  std::vector<int64_t> roots;
  std::vector<double> rt;
  for (int i = 0; i < 3000; ++i) {
    roots.push_back(i % 11 == 0 ? -1 : node(gen));
    rt.push_back(static_cast<double>(time(gen)) + (i % 2) * 0.5);
  }
  for (Strategy s : {Strategy::kRecent, Strategy::kUniform, Strategy::kLabor}) {
    for (bool replace : {false, true}) {
      Hop one = run(g, roots, rt, 7, s, replace, 1234, 1);
      Hop two = run(g, roots, rt, 7, s, replace, 1234, 2);
      Hop four = run(g, roots, rt, 7, s, replace, 1234, 4);
      CHECK(one.eids == two.eids && one.eids == four.eids && one.nodes == two.nodes && one.mask == four.mask);
      for (size_t i = 0; i < roots.size(); ++i) {
        std::set<int64_t> seen;
        for (int s2 = 0; s2 < 7; ++s2) {
          size_t p = i * 7 + s2;
          if (!one.mask[p]) continue;
          int64_t e = one.eids[p];
          CHECK(t[e] < rt[i]);
          CHECK(one.times[p] == t[e]);
          CHECK((src[e] == roots[i] && dst[e] == one.nodes[p]) || (dst[e] == roots[i] && src[e] == one.nodes[p]));
          seen.insert(e);
        }
        if (!replace) CHECK(seen.size() == static_cast<size_t>(std::count(one.mask.begin() + i * 7, one.mask.begin() + i * 7 + 7, 1)));
      }
    }
  }
  Hop a = run(g, roots, rt, 7, Strategy::kUniform, false, 1, 2);
  Hop b = run(g, roots, rt, 7, Strategy::kUniform, false, 2, 2);
  CHECK(a.eids != b.eids);  // another key draws other samples
}

TEST_CASE(choose_labor_is_the_bottom_k_of_the_event_numbers) {
  // Against sorting all (number, offset) pairs. Short rows (d <= 64): number = word(key, eid), some
  // eids repeated so that words tie (the offset breaks it). Long rows: the Feistel rank of the
  // offset, by computing the n ranks or walking the permutation (both branches are reached).
  std::mt19937_64 gen(5);
  std::vector<int64_t> eids(5000), out(5000);
  for (int64_t d : {1, 2, 9, 40, 64, 65, 100, 300, 1000, 5000}) {
    for (int64_t n : {int64_t{0}, int64_t{1}, d / 3, d / 2, d - 1, d}) {
      for (int64_t k : {1, 3, 10, 64, 65, 120}) {
        for (uint64_t key = 0; key < 4; ++key) {
          for (int64_t o = 0; o < d; ++o) eids[o] = static_cast<int64_t>(gen() % 200);
          const int64_t node = static_cast<int64_t>(gen() % 1000);
          const int64_t c = tgnn::choose_labor(n, d, k, eids.data(), key, node, out.data());
          CHECK(c == std::min(n, k));
          const tgnn::rng::Feistel perm(key, node, tgnn::rng::feistel_bits(d));
          std::vector<std::pair<uint64_t, int64_t>> ranked;
          for (int64_t o = 0; o < n; ++o) {
            const uint64_t number = d <= tgnn::rng::kLaborShortRow ? tgnn::rng::word(key, eids[o]) : perm.forward(o);
            ranked.emplace_back(number, o);
          }
          std::sort(ranked.begin(), ranked.end());
          std::vector<int64_t> expected;
          for (int64_t s = 0; s < c; ++s) expected.push_back(n <= k ? n - 1 - s : ranked[s].second);
          std::sort(expected.begin(), expected.end(), std::greater<int64_t>());
          CHECK(std::vector<int64_t>(out.begin(), out.begin() + c) == expected);
        }
      }
    }
  }
}

TEST_CASE(feistel_is_a_permutation_and_inverse_inverts) {
  for (int64_t d : {2, 5, 16, 17, 100, 4096, 5000, 40000}) {
    const int bits = tgnn::rng::feistel_bits(d);
    CHECK((int64_t{1} << bits) >= d && (bits == 2 || (int64_t{1} << (bits - 1)) < d));
    const tgnn::rng::Feistel perm(123, static_cast<uint64_t>(d), bits);
    const uint64_t domain = uint64_t{1} << bits;
    std::vector<char> seen(domain, 0);
    for (uint64_t x = 0; x < domain; ++x) {
      const uint64_t y = perm.forward(x);
      CHECK(y < domain && !seen[y]);
      seen[y] = 1;
      CHECK(perm.inverse(y) == x);
    }
  }
}

TEST_CASE(labor_roots_of_one_node_share_their_picks) {
  // Node 0 with 200 events; roots at every time: a later root's picks older than an earlier
  // root's time are among the earlier root's picks.
  std::vector<int64_t> src(200, 0), dst;
  std::vector<double> t;
  for (int i = 0; i < 200; ++i) {
    dst.push_back(1 + i % 7);
    t.push_back(i);
  }
  TCSR g = TCSR::build(src.data(), dst.data(), t.data(), 200, 8, true, 1);
  std::vector<int64_t> roots(200, 0);
  std::vector<double> rt;
  for (int i = 0; i < 200; ++i) rt.push_back(i + 0.5);
  const int64_t k = 6;
  Hop h = run(g, roots, rt, k, Strategy::kLabor, false, tgnn::rng::call_key(1, 2), 2);
  for (int i = 0; i < 200; ++i) {
    for (int j = i + 1; j < 200; ++j) {
      std::set<int64_t> earlier(h.eids.begin() + i * k, h.eids.begin() + (i + 1) * k);
      for (int s = 0; s < k; ++s) {
        const int64_t e = h.eids[j * k + s];
        if (e >= 0 && t[e] < rt[i]) CHECK(earlier.count(e) == 1);
      }
    }
  }
}

TEST_CASE(validate_roots_messages) {
  std::vector<int64_t> nodes = {0, -1, 2};
  std::vector<double> times = {1, 2, 3};
  CHECK(tgnn::validate_roots(nodes.data(), times.data(), 3, 3, true).empty());
  CHECK(tgnn::validate_roots(nodes.data(), times.data(), 3, 3, false) ==
        "nodes: id -1 at position 1 is out of range [0, 3)");
  nodes[1] = 1;
  times[2] = NAN;
  CHECK(tgnn::validate_roots(nodes.data(), times.data(), 3, 3, false) == "times: NaN at position 2");
}

TEST_MAIN()
