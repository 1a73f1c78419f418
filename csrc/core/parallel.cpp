#include "core/parallel.h"

#include <omp.h>
#include <pthread.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <condition_variable>
#include <memory>
#include <mutex>
#include <thread>

namespace tgnn {

namespace {

struct Job {
  const std::function<void(int64_t, int64_t)>* body = nullptr;
  int64_t n = 0, grain = 1, chunks = 0;
  int max_helpers = 0;
  std::atomic<int64_t> next{0};    // next unclaimed chunk
  std::atomic<int64_t> done{0};    // chunks finished
  std::atomic<int> joined{0};      // helpers that came for this job

  // Claims and runs chunks until none is left. A late caller claims nothing and never calls body.
  void work() {
    for (int64_t c = next.fetch_add(1, std::memory_order_relaxed); c < chunks;
         c = next.fetch_add(1, std::memory_order_relaxed)) {
      const int64_t begin = c * grain;
      (*body)(begin, std::min(n, begin + grain));
      done.fetch_add(1, std::memory_order_release);
    }
  }
};

// Helper threads sleeping between jobs. Never destroyed: its threads are detached and end with
// the process. A forked child gets a fresh pool (the parent's helpers do not exist there).
class Pool {
 public:
  static Pool& get() { return *instance(); }

  // Publishes job to up to `helpers` helpers, starting threads as needed; does not wait.
  void publish(const std::shared_ptr<Job>& job, int helpers) {
    {
      std::lock_guard<std::mutex> lock(mutex_);
      for (; size_ < helpers; ++size_) std::thread([this] { loop(); }).detach();
      job_ = job;
      generation_.fetch_add(1, std::memory_order_release);
    }
    wake_.notify_all();
  }

 private:
  static Pool*& instance() {
    static Pool* pool = [] {
      pthread_atfork(nullptr, nullptr, [] { instance() = new Pool(); });
      return new Pool();
    }();
    return pool;
  }

  // Between jobs a helper first polls for a while (yielding its core to anyone who wants it), so
  // that back-to-back calls find it awake, then sleeps.
  void loop() {
    uint64_t seen = 0;
    for (;;) {
      const auto idle_since = std::chrono::steady_clock::now();
      while (generation_.load(std::memory_order_acquire) == seen &&
             std::chrono::steady_clock::now() - idle_since < kPoll) {
        std::this_thread::yield();
      }
      std::shared_ptr<Job> job;
      {
        std::unique_lock<std::mutex> lock(mutex_);
        wake_.wait(lock, [&] { return generation_.load(std::memory_order_relaxed) != seen; });
        seen = generation_.load(std::memory_order_relaxed);
        job = job_;
      }
      if (job->joined.fetch_add(1, std::memory_order_relaxed) < job->max_helpers) job->work();
    }
  }

  static constexpr std::chrono::microseconds kPoll{50};
  std::mutex mutex_;
  std::condition_variable wake_;
  std::atomic<uint64_t> generation_{0};  // written under mutex_, polled without it
  std::shared_ptr<Job> job_;
  int size_ = 0;
};

}  // namespace

int default_threads() { return omp_get_max_threads(); }

void parallel_for(int64_t n, int64_t grain, int num_threads, const std::function<void(int64_t, int64_t)>& body) {
  if (n <= 0) return;
  grain = std::max<int64_t>(grain, 1);
  const int threads = num_threads > 0 ? num_threads : default_threads();
  const int64_t chunks = (n + grain - 1) / grain;
  if (threads <= 1 || chunks <= 1) {
    body(0, n);
    return;
  }
  auto job = std::make_shared<Job>();
  job->body = &body;
  job->n = n;
  job->grain = grain;
  job->chunks = chunks;
  job->max_helpers = static_cast<int>(std::min<int64_t>(threads - 1, chunks - 1));
  Pool::get().publish(job, job->max_helpers);
  job->work();
  // Only chunks already claimed by running helpers can be outstanding.
  while (job->done.load(std::memory_order_acquire) < chunks) std::this_thread::yield();
}

}  // namespace tgnn
