#include "core/dedup.h"

#include <cstring>
#include <vector>

#include "core/rng.h"

namespace tgnn {

namespace {

uint64_t time_bits(double t) {
  if (t == 0.0) t = 0.0;  // -0.0 and 0.0 are one time
  uint64_t bits;
  std::memcpy(&bits, &t, sizeof bits);
  return bits;
}

}  // namespace

int64_t dedup_roots(const int64_t* nodes, const double* times, int64_t n, int64_t* first, int64_t* inverse) {
  // Open addressing with linear probing at load <= 1/2; a slot holds a pair's number + 1 (0: free).
  uint64_t capacity = 16;
  while (capacity < 2 * static_cast<uint64_t>(n)) capacity *= 2;
  const uint64_t mask = capacity - 1;
  std::vector<int64_t> slots(capacity, 0);
  int64_t count = 0;
  for (int64_t i = 0; i < n; ++i) {
    if (nodes[i] < 0) {
      inverse[i] = -1;
      continue;
    }
    const uint64_t bits = time_bits(times[i]);
    uint64_t h = rng::mix64(static_cast<uint64_t>(nodes[i]) * rng::kGamma ^ bits) & mask;
    while (true) {
      const int64_t slot = slots[h];
      if (slot == 0) {
        slots[h] = count + 1;
        first[count] = i;
        inverse[i] = count++;
        break;
      }
      const int64_t j = first[slot - 1];
      if (nodes[j] == nodes[i] && time_bits(times[j]) == bits) {
        inverse[i] = slot - 1;
        break;
      }
      h = (h + 1) & mask;
    }
  }
  return count;
}

}  // namespace tgnn
