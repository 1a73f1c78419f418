#include "core/attention.h"

#include <algorithm>
#include <cmath>

// Each entry point is vectorised (core/vector_clones.h), its helpers inlined into each clone: the
// inner loops are short vector reductions and updates.
#include "core/vector_clones.h"

namespace tgnn {

namespace {

// 8 floats (an AVX2 register in the AVX2 clones, two SSE registers otherwise), loaded and stored
// unaligned. Four of them make 4 independent accumulation chains where one chain would wait on the
// latency of each add.
typedef float Vec __attribute__((vector_size(32), aligned(4), may_alias));
// Vec never crosses a call (every helper here is inlined), so the ABI note on returning it is moot.
#pragma GCC diagnostic ignored "-Wpsabi"
constexpr int64_t kVec = 8;

TGNN_INLINE Vec load(const float* p) { return *reinterpret_cast<const Vec*>(p); }

TGNN_INLINE void store(float* p, Vec v) { *reinterpret_cast<Vec*>(p) = v; }

TGNN_INLINE float dot(const float* a, const float* b, int64_t n) {
  Vec s0 = {}, s1 = {}, s2 = {}, s3 = {};
  int64_t i = 0;
  for (; i + 4 * kVec <= n; i += 4 * kVec) {
    s0 += load(a + i) * load(b + i);
    s1 += load(a + i + kVec) * load(b + i + kVec);
    s2 += load(a + i + 2 * kVec) * load(b + i + 2 * kVec);
    s3 += load(a + i + 3 * kVec) * load(b + i + 3 * kVec);
  }
  for (; i + kVec <= n; i += kVec) s0 += load(a + i) * load(b + i);
  const Vec v = (s0 + s1) + (s2 + s3);
  float sum = ((v[0] + v[4]) + (v[1] + v[5])) + ((v[2] + v[6]) + (v[3] + v[7]));
  for (; i < n; ++i) sum += a[i] * b[i];
  return sum;
}

// out[0:n] = sum_j w[j] x[j * stride + 0:n] over j < k, rows of zero weight skipped; each block of
// columns is accumulated in registers and stored once.
TGNN_INLINE void weighted_rows(const float* w, const float* x, int64_t stride, int64_t k, int64_t n, float* out) {
  int64_t i = 0;
  for (; i + 4 * kVec <= n; i += 4 * kVec) {
    Vec a0 = {}, a1 = {}, a2 = {}, a3 = {};
    for (int64_t j = 0; j < k; ++j) {
      if (w[j] == 0.0f) continue;
      const float* row = x + j * stride + i;
      const Vec wj = Vec{} + w[j];
      a0 += wj * load(row);
      a1 += wj * load(row + kVec);
      a2 += wj * load(row + 2 * kVec);
      a3 += wj * load(row + 3 * kVec);
    }
    store(out + i, a0);
    store(out + i + kVec, a1);
    store(out + i + 2 * kVec, a2);
    store(out + i + 3 * kVec, a3);
  }
  for (; i + kVec <= n; i += kVec) {
    Vec a0 = {};
    for (int64_t j = 0; j < k; ++j)
      if (w[j] != 0.0f) a0 += (Vec{} + w[j]) * load(x + j * stride + i);
    store(out + i, a0);
  }
  for (; i < n; ++i) {
    float sum = 0.0f;
    for (int64_t j = 0; j < k; ++j)
      if (w[j] != 0.0f) sum += w[j] * x[j * stride + i];
    out[i] = sum;
  }
}

// v . x[r, j] for a vector v [I] and slot j of root r, x given as parts.
TGNN_INLINE float dot_slot(const AttentionShape& s, const std::vector<const float*>& parts, const float* v, int64_t r,
                           int64_t j) {
  float sum = 0.0f;
  int64_t off = 0;
  for (size_t p = 0; p < parts.size(); off += s.widths[p], ++p)
    sum += dot(v + off, parts[p] + (r * s.slots + j) * s.widths[p], s.widths[p]);
  return sum;
}

// out [I] = sum_j w[j] x[r, j] (slots of zero weight skipped).
TGNN_INLINE void weighted_slots(const AttentionShape& s, const std::vector<const float*>& parts, const float* w,
                                int64_t r, float* out) {
  int64_t off = 0;
  for (size_t p = 0; p < parts.size(); off += s.widths[p], ++p) {
    const int64_t width = s.widths[p];
    weighted_rows(w, parts[p] + r * s.slots * width, width, s.slots, width, out + off);
  }
}

}  // namespace

int64_t AttentionShape::width() const {
  int64_t total = 0;
  for (int64_t w : widths) total += w;
  return total;
}

TGNN_VECTOR_CLONES void attention_forward(const AttentionShape& s, const float* qk, const std::vector<const float*>& parts,
                       const bool* mask, float* alpha, float* agg, int64_t begin, int64_t end) {
  const int64_t H = s.heads, k = s.slots, I = s.width();
  for (int64_t r = begin; r < end; ++r) {
    const bool* valid = mask + r * k;
    float* a = alpha + r * H * k;
    for (int64_t h = 0; h < H; ++h) {
      const float* q = qk + (r * H + h) * I;
      float* ah = a + h * k;
      float top = -INFINITY;
      for (int64_t j = 0; j < k; ++j) {
        if (!valid[j]) continue;
        const float score = dot_slot(s, parts, q, r, j);
        ah[j] = score;
        top = std::max(top, score);
      }
      float total = 0.0f;
      for (int64_t j = 0; j < k; ++j) {
        ah[j] = valid[j] ? std::exp(ah[j] - top) : 0.0f;
        total += ah[j];
      }
      if (total > 0.0f)
        for (int64_t j = 0; j < k; ++j) ah[j] /= total;
      weighted_slots(s, parts, ah, r, agg + (r * H + h) * I);
    }
  }
}

TGNN_VECTOR_CLONES void attention_backward(const AttentionShape& s, const float* qk, const std::vector<const float*>& parts,
                        const float* alpha, const float* grad_agg, float* grad_qk,
                        const std::vector<float*>& grad_parts, int64_t begin, int64_t end) {
  const int64_t H = s.heads, k = s.slots, I = s.width(), P = static_cast<int64_t>(parts.size());
  std::vector<float> grad_score(H * k), weights(2 * H), rows(2 * H * I);
  for (int64_t r = begin; r < end; ++r) {
    const float* a = alpha + r * H * k;
    for (int64_t h = 0; h < H; ++h) {  // interleaved rows grad_agg[r, h], qk[r, h] for weighted_rows
      std::copy(grad_agg + (r * H + h) * I, grad_agg + (r * H + h + 1) * I, rows.data() + 2 * h * I);
      std::copy(qk + (r * H + h) * I, qk + (r * H + h + 1) * I, rows.data() + (2 * h + 1) * I);
    }
    for (int64_t h = 0; h < H; ++h) {
      const float* g = grad_agg + (r * H + h) * I;
      float* gs = grad_score.data() + h * k;
      float weighted = 0.0f;  // sum_j alpha_j d alpha_j
      for (int64_t j = 0; j < k; ++j) {
        gs[j] = a[h * k + j] == 0.0f ? 0.0f : dot_slot(s, parts, g, r, j);
        weighted += a[h * k + j] * gs[j];
      }
      for (int64_t j = 0; j < k; ++j) gs[j] = a[h * k + j] * (gs[j] - weighted);
      if (grad_qk != nullptr) weighted_slots(s, parts, gs, r, grad_qk + (r * H + h) * I);
    }
    for (int64_t p = 0, off = 0; p < P; off += s.widths[p], ++p) {
      if (grad_parts[p] == nullptr) continue;
      const int64_t w = s.widths[p];
      for (int64_t j = 0; j < k; ++j) {
        // grad x[r, j] = sum_h alpha[h, j] grad_agg[h] + grad_score[h, j] qk[h]: the 2H rows of
        // grad_agg and qk for this root, at their stride I, weighted.
        for (int64_t h = 0; h < H; ++h) {
          weights[2 * h] = a[h * k + j];
          weights[2 * h + 1] = grad_score[h * k + j];
        }
        weighted_rows(weights.data(), rows.data() + off, I, 2 * H, w, grad_parts[p] + (r * k + j) * w);
      }
    }
  }
}

}  // namespace tgnn
