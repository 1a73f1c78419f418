// Distinct (node, time) roots of a hop, so that each is sampled and embedded once (TGLite's dedup).
// Torch-free.
#pragma once

#include <cstdint>

namespace tgnn {

// Scans roots (nodes[i], times[i]), i < n, and numbers the distinct pairs in order of first
// occurrence. Roots with nodes[i] < 0 (padding) are skipped. Times compare by value (0.0 == -0.0);
// they must not be NaN.
//   first[u]   = the index i of distinct pair u's first occurrence, for u < returned count;
//   inverse[i] = the number u of root i's pair, or -1 for a padding root.
// first and inverse must each hold n values. Returns the number of distinct pairs.
int64_t dedup_roots(const int64_t* nodes, const double* times, int64_t n, int64_t* first, int64_t* inverse);

}  // namespace tgnn
