// T-CSR: rows sorted by (time, eid), undirected/directed/self-loops, append == rebuild, validation,
// from_packed (the inverse of pack) and validate_packed.
#include <algorithm>
#include <cmath>
#include <random>
#include <string>
#include <tuple>
#include <vector>

#include "core/tcsr.h"
#include "harness.h"

using tgnn::TCSR;

namespace {

struct Packed {
  std::vector<int64_t> indptr, nbr, eid;
  std::vector<double> ts;
};

Packed packed(const TCSR& g) {
  Packed p;
  p.indptr.resize(g.num_nodes() + 1);
  p.nbr.resize(g.num_entries());
  p.eid.resize(g.num_entries());
  p.ts.resize(g.num_entries());
  g.pack(p.indptr.data(), p.nbr.data(), p.eid.data(), p.ts.data(), 2);
  return p;
}

bool same(const Packed& a, const Packed& b) {
  return a.indptr == b.indptr && a.nbr == b.nbr && a.eid == b.eid && a.ts == b.ts;
}

// Brute force: for each node, (time, eid, nbr) of its incident events, sorted.
std::vector<std::vector<std::tuple<double, int64_t, int64_t>>> reference(const std::vector<int64_t>& src,
                                                                        const std::vector<int64_t>& dst,
                                                                        const std::vector<double>& t,
                                                                        int64_t num_nodes, bool undirected) {
  std::vector<std::vector<std::tuple<double, int64_t, int64_t>>> rows(num_nodes);
  for (size_t e = 0; e < src.size(); ++e) {
    rows[src[e]].emplace_back(t[e], e, dst[e]);
    if (undirected && src[e] != dst[e]) rows[dst[e]].emplace_back(t[e], e, src[e]);
  }
  for (auto& r : rows) std::sort(r.begin(), r.end());
  return rows;
}

bool matches(const TCSR& g, const std::vector<int64_t>& src, const std::vector<int64_t>& dst,
             const std::vector<double>& t) {
  auto rows = reference(src, dst, t, g.num_nodes(), g.undirected());
  for (int64_t v = 0; v < g.num_nodes(); ++v) {
    if (g.end(v) - g.begin(v) != static_cast<int64_t>(rows[v].size())) return false;
    for (int64_t p = g.begin(v); p < g.end(v); ++p) {
      auto [time, e, u] = rows[v][p - g.begin(v)];
      if (g.ts()[p] != time || g.eid()[p] != e || g.nbr()[p] != u) return false;
    }
  }
  return true;
}

void random_events(std::mt19937_64& gen, int64_t n, int64_t num_nodes, int64_t num_times,
                   std::vector<int64_t>& src, std::vector<int64_t>& dst, std::vector<double>& t) {
  std::uniform_int_distribution<int64_t> node(0, num_nodes - 1), time(0, num_times - 1);
  for (int64_t i = 0; i < n; ++i) {
    src.push_back(node(gen));
    dst.push_back(node(gen));
    t.push_back(static_cast<double>(time(gen)));
  }
}

}  // namespace

TEST_CASE(hand_example_undirected) {
  // eid:            0  1  2  3  4
  std::vector<int64_t> src = {0, 1, 2, 0, 1};
  std::vector<int64_t> dst = {1, 2, 0, 2, 1};
  std::vector<double> t = {5, 3, 3, 1, 3};
  TCSR g = TCSR::build(src.data(), dst.data(), t.data(), 5, 4, true, 2);
  CHECK(g.num_nodes() == 4);
  CHECK(g.num_events() == 5);
  CHECK(g.num_entries() == 9);  // 4 events twice + the self-loop 1-1 once
  CHECK(g.max_time() == 5);
  Packed p = packed(g);
  CHECK((p.indptr == std::vector<int64_t>{0, 3, 6, 9, 9}));
  // node 0: (1, e3, 2) (3, e2, 2) (5, e0, 1); node 1: (3,e1,2) (3,e4,1) (5,e0,0); node 2: (1,e3,0) (3,e1,1) (3,e2,0)
  CHECK((p.eid == std::vector<int64_t>{3, 2, 0, 1, 4, 0, 3, 1, 2}));
  CHECK((p.nbr == std::vector<int64_t>{2, 2, 1, 2, 1, 0, 0, 1, 0}));
  CHECK((p.ts == std::vector<double>{1, 3, 5, 3, 3, 5, 1, 3, 3}));
}

TEST_CASE(directed_lists_source_only) {
  std::vector<int64_t> src = {0, 1, 0};
  std::vector<int64_t> dst = {1, 0, 2};
  std::vector<double> t = {2, 1, 0};
  TCSR g = TCSR::build(src.data(), dst.data(), t.data(), 3, 3, false, 1);
  Packed p = packed(g);
  CHECK((p.indptr == std::vector<int64_t>{0, 2, 3, 3}));
  CHECK((p.eid == std::vector<int64_t>{2, 0, 1}));
  CHECK((p.nbr == std::vector<int64_t>{2, 1, 0}));
}

TEST_CASE(empty_graph) {
  TCSR g = TCSR::build(nullptr, nullptr, nullptr, 0, 3, true, 1);
  CHECK(g.num_entries() == 0);
  CHECK(std::isinf(g.max_time()) && g.max_time() < 0);
  Packed p = packed(g);
  CHECK((p.indptr == std::vector<int64_t>{0, 0, 0, 0}));
}

TEST_CASE(random_build_matches_brute_force) {
  std::mt19937_64 gen(7);
  for (int trial = 0; trial < 20; ++trial) {
    std::vector<int64_t> src, dst;
    std::vector<double> t;
    random_events(gen, 200 + trial * 30, 1 + trial * 3, 1 + trial, src, dst, t);
    for (bool undirected : {true, false}) {
      TCSR g = TCSR::build(src.data(), dst.data(), t.data(), src.size(), 1 + trial * 3, undirected, 1 + trial % 3);
      CHECK(matches(g, src, dst, t));
    }
  }
}

TEST_CASE(append_equals_rebuild) {
  std::mt19937_64 gen(11);
  for (bool undirected : {true, false}) {
    std::vector<int64_t> src, dst;
    std::vector<double> t;
    random_events(gen, 50, 12, 10, src, dst, t);
    TCSR g = TCSR::build(src.data(), dst.data(), t.data(), src.size(), 12, undirected, 2);
    double now = 10;
    for (int batch = 0; batch < 200; ++batch) {  // many small batches: rows move, storage repacks
      std::vector<int64_t> s, d;
      std::vector<double> bt;
      random_events(gen, 1 + batch % 7, 12, 3, s, d, bt);
      for (double& x : bt) x += now;  // times in [now, now + 2], unsorted within the batch
      now += 2;
      CHECK(tgnn::validate_events(s.data(), d.data(), bt.data(), s.size(), 12, g.max_time()).empty());
      g.append(s.data(), d.data(), bt.data(), s.size());
      src.insert(src.end(), s.begin(), s.end());
      dst.insert(dst.end(), d.begin(), d.end());
      t.insert(t.end(), bt.begin(), bt.end());
    }
    CHECK(g.num_events() == static_cast<int64_t>(src.size()));
    CHECK(matches(g, src, dst, t));
    TCSR rebuilt = TCSR::build(src.data(), dst.data(), t.data(), src.size(), 12, undirected, 1);
    CHECK(same(packed(g), packed(rebuilt)));
    CHECK(g.max_time() == rebuilt.max_time());
    // Dead space is repacked once it exceeds the live entries; slack is at most 1.5x + 4 a row.
    CHECK(g.storage_size() <= 2 * g.num_entries() + 3 * (g.num_entries() + 12 * 4));
  }
}

TEST_CASE(append_with_ties_at_max_time_keeps_eid_order) {
  std::vector<int64_t> src = {0}, dst = {1};
  std::vector<double> t = {4};
  TCSR g = TCSR::build(src.data(), dst.data(), t.data(), 1, 2, true, 1);
  std::vector<int64_t> s = {1, 0}, d = {0, 1};
  std::vector<double> bt = {4, 4};
  g.append(s.data(), d.data(), bt.data(), 2);
  Packed p = packed(g);
  CHECK((p.eid == std::vector<int64_t>{0, 1, 2, 0, 1, 2}));
}

TEST_CASE(validate_events_names_argument_and_value) {
  std::vector<int64_t> src = {0, 3}, dst = {1, 1};
  std::vector<double> t = {1, 2};
  CHECK(tgnn::validate_events(src.data(), dst.data(), t.data(), 2, 3, -INFINITY) ==
        "src: id 3 at position 1 is out of range [0, 3)");
  src[1] = 0;
  dst[0] = -2;
  CHECK(tgnn::validate_events(src.data(), dst.data(), t.data(), 2, 3, -INFINITY) ==
        "dst: id -2 at position 0 is out of range [0, 3)");
  dst[0] = 1;
  t[1] = NAN;
  CHECK(tgnn::validate_events(src.data(), dst.data(), t.data(), 2, 3, -INFINITY).rfind("t: time nan at position 1", 0) == 0);
  t[1] = 2;
  CHECK(tgnn::validate_events(src.data(), dst.data(), t.data(), 2, 3, -INFINITY).empty());
  CHECK(tgnn::validate_events(src.data(), dst.data(), t.data(), 2, 3, 1.5).rfind("t: time 1 at position 0 is older", 0) == 0);
}

namespace {

TCSR from(const Packed& p, const TCSR& like) {
  return TCSR::from_packed(p.indptr.data(), p.nbr.data(), p.eid.data(), p.ts.data(), like.num_nodes(),
                           like.num_events(), like.undirected(), like.max_time());
}

std::string check(const Packed& p, int64_t num_events, bool undirected, double max_time) {
  return tgnn::validate_packed(p.indptr.data(), p.nbr.data(), p.eid.data(), p.ts.data(),
                               static_cast<int64_t>(p.indptr.size()) - 1, static_cast<int64_t>(p.nbr.size()),
                               num_events, undirected, max_time);
}

// Appends the same random batches to a and b (and to the event lists), checking they stay equal.
void append_alike(std::mt19937_64& gen, TCSR& a, TCSR& b, int batches, std::vector<int64_t>& src,
                  std::vector<int64_t>& dst, std::vector<double>& t) {
  for (int batch = 0; batch < batches; ++batch) {
    std::vector<int64_t> s, d;
    std::vector<double> bt;
    random_events(gen, 1 + batch % 5, a.num_nodes(), 3, s, d, bt);
    for (double& x : bt) x += a.max_time();
    a.append(s.data(), d.data(), bt.data(), s.size());
    b.append(s.data(), d.data(), bt.data(), s.size());
    src.insert(src.end(), s.begin(), s.end());
    dst.insert(dst.end(), d.begin(), d.end());
    t.insert(t.end(), bt.begin(), bt.end());
  }
}

}  // namespace

TEST_CASE(from_packed_inverts_pack_after_build_and_appends) {
  std::mt19937_64 gen(5);
  for (bool undirected : {true, false}) {
    std::vector<int64_t> src, dst;
    std::vector<double> t;
    random_events(gen, 80, 10, 8, src, dst, t);
    TCSR g = TCSR::build(src.data(), dst.data(), t.data(), src.size(), 10, undirected, 2);
    for (int round = 0; round < 3; ++round) {  // built; then with slack and moved rows; then repacked
      const Packed p = packed(g);
      CHECK(check(p, g.num_events(), undirected, g.max_time()).empty());
      TCSR copy = from(p, g);
      CHECK(same(packed(copy), p));
      CHECK(copy.num_nodes() == g.num_nodes() && copy.num_events() == g.num_events());
      CHECK(copy.num_entries() == g.num_entries() && copy.storage_size() == g.num_entries());  // no slack
      CHECK(copy.undirected() == undirected && copy.max_time() == g.max_time());
      // Appending to the copy equals appending to the original, and both equal a rebuild.
      append_alike(gen, g, copy, 40 * (round + 1), src, dst, t);
      CHECK(same(packed(copy), packed(g)));
      CHECK(copy.max_time() == g.max_time() && copy.num_events() == g.num_events());
      CHECK(matches(copy, src, dst, t));
    }
  }
}

TEST_CASE(from_packed_of_empty_graphs) {
  for (int64_t nodes : {0, 3}) {
    TCSR g = TCSR::build(nullptr, nullptr, nullptr, 0, nodes, true, 1);
    const Packed p = packed(g);
    CHECK(check(p, 0, true, g.max_time()).empty());
    TCSR copy = from(p, g);
    CHECK(copy.num_nodes() == nodes && copy.num_entries() == 0 && std::isinf(copy.max_time()));
  }
  CHECK(check(Packed{{0}, {}, {}, {}}, 0, false, 0.0) ==
        "max_time: expected -inf (the latest time listed), got 0");
}

TEST_CASE(validate_packed_names_the_inconsistency) {
  // Undirected: eid 0 = 0-1 at t 1, eid 1 = 1-1 at t 2 (a self-loop, listed once), eid 2 = 2-0 at t 2.
  const Packed good{{0, 2, 4, 5}, {1, 2, 0, 1, 0}, {0, 2, 0, 1, 2}, {1, 2, 1, 2, 2}};
  CHECK(check(good, 3, true, 2).empty());
  Packed p = good;
  p.indptr = {1, 2, 4, 5};
  CHECK(check(p, 3, true, 2) == "indptr: expected 0 at position 0, got 1");
  p.indptr = {0, 3, 2, 5};
  CHECK(check(p, 3, true, 2) == "indptr: 2 at position 2 is smaller than the 3 before it");
  p.indptr = {0, 2, 4, 4};
  CHECK(check(p, 3, true, 2) == "indptr: expected 5 (the number of entries) at position 3, got 4");
  CHECK(check(good, 1, true, 2).rfind("num_events: 1 events cannot make 5 entries of an undirected graph", 0) == 0);
  CHECK(check(good, 3, false, 2).rfind("num_events: 3 events cannot make 5 entries of a directed graph", 0) == 0);
  p = good;
  p.nbr[1] = 3;
  CHECK(check(p, 3, true, 2) == "nbr: id 3 at position 1 (row 0) is out of range [0, 3)");
  p = good;
  p.eid[4] = -1;
  CHECK(check(p, 3, true, 2) == "eid: id -1 at position 4 (row 2) is out of range [0, 3)");
  p = good;
  p.ts[0] = NAN;
  CHECK(check(p, 3, true, 2) == "ts: time nan at position 0 (row 0) is not finite");
  p = good;
  p.ts[0] = 3;
  CHECK(check(p, 3, true, 2).rfind("ts, eid: (2, 2) at position 1 (row 0) does not come after (3, 0)", 0) == 0);
  p = good;
  p.ts[4] = 1.5;  // event 2's two entries disagree on its time
  CHECK(check(p, 3, true, 2).rfind("eid: event 2 at position 4 (row 2) is listed again, but not as", 0) == 0);
  p = good;
  p.nbr[2] = 2;  // event 0 in row 1 names neighbour 2, not 0
  CHECK(check(p, 3, true, 2).rfind("eid: event 0 at position 2 (row 1) is listed again", 0) == 0);
  CHECK(check(good, 4, true, 2) == "eid: event 3 is in no row");
  // Directed: every event in the row of its source, exactly once.
  const Packed directed{{0, 2, 2}, {1, 0}, {0, 1}, {1, 2}};
  CHECK(check(directed, 2, false, 2).empty());
  p = directed;
  p.eid = {0, 0};
  CHECK(check(p, 2, false, 2) ==
        "eid: event 0 at position 1 (row 0) is listed again; a directed graph lists an event once");
  p.ts = {1, 1};
  p.eid = {0, 0};
  CHECK(check(p, 2, false, 1).rfind("ts, eid: (1, 0) at position 1", 0) == 0);
  p = directed;
  p.indptr = {0, 1, 2};
  p.eid = {0, 0};
  CHECK(check(p, 2, false, 2) ==
        "eid: event 0 at position 1 (row 1) is listed again; a directed graph lists an event once");
  // Undirected, one endpoint missing: event 0 = 0-1 in row 0 only.
  const Packed half{{0, 1, 1}, {1}, {0}, {1}};
  CHECK(check(half, 1, true, 1) ==
        "eid: event 0 of the undirected graph is in row 0 only, not in the row of its other endpoint 1");
  CHECK(check(good, 3, true, 1) == "max_time: expected 2 (the latest time listed), got 1");
}

TEST_MAIN()
