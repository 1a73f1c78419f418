// Work sharing for the per-call sampling loops, robust to busy machines.
//
// An OpenMP parallel region ends in a barrier that waits for every thread of the team, so when
// another process holds the other cores, each call waits until a descheduled worker gets a core
// again (milliseconds: measured far slower than one thread on a shared 2-core machine). Here the
// calling thread works through the chunks itself while pooled helpers join if and when they are
// scheduled; it waits only for chunks a helper has already claimed, never for a helper that has
// not started. Which thread runs a chunk never changes the result. It is also fork-safe, unlike
// libgomp, whose parallel regions hang in a child forked after the parent ran one (DataLoader
// workers): a forked child starts a fresh pool.
#pragma once

#include <cstdint>
#include <functional>

namespace tgnn {

// Threads used when num_threads <= 0: omp_get_max_threads() (honours OMP_NUM_THREADS).
int default_threads();

// Calls body(begin, end) for consecutive chunks [begin, end) of [0, n) of at most `grain` items,
// on the calling thread and up to num_threads - 1 helpers (num_threads <= 0: default_threads()).
// Returns once every chunk is done. body must not throw.
void parallel_for(int64_t n, int64_t grain, int num_threads, const std::function<void(int64_t, int64_t)>& body);

}  // namespace tgnn
