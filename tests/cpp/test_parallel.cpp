// parallel_for: every index exactly once, for any thread count, from concurrent callers too.
#include <atomic>
#include <thread>
#include <vector>

#include "core/parallel.h"
#include "harness.h"

namespace {

bool covers_once(int64_t n, int64_t grain, int threads) {
  std::vector<std::atomic<int>> hits(n);
  tgnn::parallel_for(n, grain, threads, [&](int64_t begin, int64_t end) {
    for (int64_t i = begin; i < end; ++i) hits[i].fetch_add(1);
  });
  for (auto& h : hits)
    if (h.load() != 1) return false;
  return true;
}

}  // namespace

TEST_CASE(every_index_once) {
  for (int threads : {0, 1, 2, 3, 8})
    for (int64_t n : {0, 1, 5, 64, 1000, 4097})
      for (int64_t grain : {1, 7, 64, 5000}) CHECK(covers_once(n, grain, threads));
}

TEST_CASE(chunks_respect_grain) {
  std::atomic<int64_t> largest{0};
  tgnn::parallel_for(1000, 30, 4, [&](int64_t begin, int64_t end) {
    int64_t size = end - begin;
    int64_t seen = largest.load();
    while (size > seen && !largest.compare_exchange_weak(seen, size)) {
    }
  });
  CHECK(largest.load() == 30);
}

TEST_CASE(concurrent_callers) {
  std::atomic<int> ok{0};
  std::vector<std::thread> callers;
  for (int c = 0; c < 4; ++c) {
    callers.emplace_back([&] {
      bool all = true;
      for (int r = 0; r < 50; ++r) all &= covers_once(2000, 16, 3);
      ok += all;
    });
  }
  for (auto& t : callers) t.join();
  CHECK(ok.load() == 4);
}

TEST_MAIN()
