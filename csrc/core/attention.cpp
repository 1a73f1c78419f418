#include "core/attention.h"

#include <algorithm>
#include <cmath>

// Each entry point is vectorised (core/vector_clones.h): the inner loops are short vector
// reductions and updates.
#include "core/vector_clones.h"

namespace tgnn {

namespace {

float dot(const float* a, const float* b, int64_t n) {
  float sum = 0.0f;
#pragma omp simd reduction(+ : sum)
  for (int64_t i = 0; i < n; ++i) sum += a[i] * b[i];
  return sum;
}

// y += a * x
void axpy(float a, const float* x, float* y, int64_t n) {
#pragma omp simd
  for (int64_t i = 0; i < n; ++i) y[i] += a * x[i];
}

// v . x[r, j] for a vector v [I] and slot j of root r, x given as parts.
float dot_slot(const AttentionShape& s, const std::vector<const float*>& parts, const float* v, int64_t r, int64_t j) {
  float sum = 0.0f;
  int64_t off = 0;
  for (size_t p = 0; p < parts.size(); off += s.widths[p], ++p)
    sum += dot(v + off, parts[p] + (r * s.slots + j) * s.widths[p], s.widths[p]);
  return sum;
}

// out [I] = sum_j w[j] x[r, j] (slots of zero weight skipped).
void weighted_slots(const AttentionShape& s, const std::vector<const float*>& parts, const float* w, int64_t r,
                    float* out) {
  std::fill(out, out + s.width(), 0.0f);
  for (int64_t j = 0; j < s.slots; ++j) {
    if (w[j] == 0.0f) continue;
    int64_t off = 0;
    for (size_t p = 0; p < parts.size(); off += s.widths[p], ++p)
      axpy(w[j], parts[p] + (r * s.slots + j) * s.widths[p], out + off, s.widths[p]);
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
  std::vector<float> grad_score(H * k);
  for (int64_t r = begin; r < end; ++r) {
    const float* a = alpha + r * H * k;
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
        float* out = grad_parts[p] + (r * k + j) * w;
        std::fill(out, out + w, 0.0f);
        for (int64_t h = 0; h < H; ++h) {
          const float weight = a[h * k + j], gsj = grad_score[h * k + j];
          if (weight != 0.0f) axpy(weight, grad_agg + (r * H + h) * I + off, out, w);
          if (gsj != 0.0f) axpy(gsj, qk + (r * H + h) * I + off, out, w);
        }
      }
    }
  }
}

}  // namespace tgnn
