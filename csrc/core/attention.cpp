#include "core/attention.h"

#include <algorithm>
#include <cmath>

// Each entry point is vectorised (core/vector_clones.h), its helpers inlined into each clone: the
// inner loops are short vector reductions and updates.
#include "core/vector_clones.h"

namespace tgnn {

namespace {

// 8 floats (an AVX2 register in the AVX2 clones, two SSE registers otherwise) and 4 floats (one
// SSE register, for the columns left after the 8-float blocks), loaded and stored unaligned.
typedef float Vec __attribute__((vector_size(32), aligned(4), may_alias));
typedef float Vec4 __attribute__((vector_size(16), aligned(4), may_alias));
// Vectors never cross a call (every helper here is inlined), so the ABI note on returning them is moot.
#pragma GCC diagnostic ignored "-Wpsabi"
constexpr int64_t kVec = 8;

TGNN_INLINE Vec load(const float* p) { return *reinterpret_cast<const Vec*>(p); }
TGNN_INLINE Vec4 load4(const float* p) { return *reinterpret_cast<const Vec4*>(p); }
TGNN_INLINE void store(float* p, Vec v) { *reinterpret_cast<Vec*>(p) = v; }
TGNN_INLINE void store4(float* p, Vec4 v) { *reinterpret_cast<Vec4*>(p) = v; }

TGNN_INLINE float sum4(Vec4 v) { return (v[0] + v[2]) + (v[1] + v[3]); }
TGNN_INLINE float sum8(Vec v) { return sum4(Vec4{v[0], v[1], v[2], v[3]} + Vec4{v[4], v[5], v[6], v[7]}); }

// s0 += a0 . x and s1 += a1 . x over n floats: two dot products sharing the loads of x, in 8
// independent accumulation chains (one chain would wait on the latency of each add).
TGNN_INLINE void dot_pair(const float* a0, const float* a1, const float* x, int64_t n, float& s0, float& s1) {
  Vec p0 = {}, p1 = {}, p2 = {}, p3 = {}, q0 = {}, q1 = {}, q2 = {}, q3 = {};
  int64_t i = 0;
  for (; i + 4 * kVec <= n; i += 4 * kVec) {
    const Vec x0 = load(x + i), x1 = load(x + i + kVec), x2 = load(x + i + 2 * kVec), x3 = load(x + i + 3 * kVec);
    p0 += load(a0 + i) * x0;
    p1 += load(a0 + i + kVec) * x1;
    p2 += load(a0 + i + 2 * kVec) * x2;
    p3 += load(a0 + i + 3 * kVec) * x3;
    q0 += load(a1 + i) * x0;
    q1 += load(a1 + i + kVec) * x1;
    q2 += load(a1 + i + 2 * kVec) * x2;
    q3 += load(a1 + i + 3 * kVec) * x3;
  }
  for (; i + kVec <= n; i += kVec) {
    const Vec xi = load(x + i);
    p0 += load(a0 + i) * xi;
    q0 += load(a1 + i) * xi;
  }
  float r0 = sum8((p0 + p1) + (p2 + p3)), r1 = sum8((q0 + q1) + (q2 + q3));
  if (i + 4 <= n) {
    const Vec4 xi = load4(x + i);
    r0 += sum4(load4(a0 + i) * xi);
    r1 += sum4(load4(a1 + i) * xi);
    i += 4;
  }
  for (; i < n; ++i) {
    r0 += a0[i] * x[i];
    r1 += a1[i] * x[i];
  }
  s0 += r0;
  s1 += r1;
}

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
  float sum = sum8((s0 + s1) + (s2 + s3));
  if (i + 4 <= n) {
    sum += sum4(load4(a + i) * load4(b + i));
    i += 4;
  }
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
  if (i + 4 <= n) {
    Vec4 a0 = {};
    for (int64_t j = 0; j < k; ++j)
      if (w[j] != 0.0f) a0 += (Vec4{} + w[j]) * load4(x + j * stride + i);
    store4(out + i, a0);
    i += 4;
  }
  for (; i < n; ++i) {
    float sum = 0.0f;
    for (int64_t j = 0; j < k; ++j)
      if (w[j] != 0.0f) sum += w[j] * x[j * stride + i];
    out[i] = sum;
  }
}

// weighted_rows for two weight vectors at once (sharing the loads of x, 8 accumulation chains):
// out0 = sum_j w0[j] x[j], out1 = sum_j w1[j] x[j]; rows where both weights are zero skipped.
TGNN_INLINE void weighted_rows_pair(const float* w0, const float* w1, const float* x, int64_t stride, int64_t k,
                                    int64_t n, float* out0, float* out1) {
  int64_t i = 0;
  for (; i + 4 * kVec <= n; i += 4 * kVec) {
    Vec a0 = {}, a1 = {}, a2 = {}, a3 = {}, b0 = {}, b1 = {}, b2 = {}, b3 = {};
    for (int64_t j = 0; j < k; ++j) {
      if (w0[j] == 0.0f && w1[j] == 0.0f) continue;
      const float* row = x + j * stride + i;
      const Vec u = Vec{} + w0[j], v = Vec{} + w1[j];
      const Vec x0 = load(row), x1 = load(row + kVec), x2 = load(row + 2 * kVec), x3 = load(row + 3 * kVec);
      a0 += u * x0;
      a1 += u * x1;
      a2 += u * x2;
      a3 += u * x3;
      b0 += v * x0;
      b1 += v * x1;
      b2 += v * x2;
      b3 += v * x3;
    }
    store(out0 + i, a0);
    store(out0 + i + kVec, a1);
    store(out0 + i + 2 * kVec, a2);
    store(out0 + i + 3 * kVec, a3);
    store(out1 + i, b0);
    store(out1 + i + kVec, b1);
    store(out1 + i + 2 * kVec, b2);
    store(out1 + i + 3 * kVec, b3);
  }
  for (; i + kVec <= n; i += kVec) {
    Vec a0 = {}, b0 = {};
    for (int64_t j = 0; j < k; ++j) {
      if (w0[j] == 0.0f && w1[j] == 0.0f) continue;
      const Vec xj = load(x + j * stride + i);
      a0 += (Vec{} + w0[j]) * xj;
      b0 += (Vec{} + w1[j]) * xj;
    }
    store(out0 + i, a0);
    store(out1 + i, b0);
  }
  if (i + 4 <= n) {
    Vec4 a0 = {}, b0 = {};
    for (int64_t j = 0; j < k; ++j) {
      if (w0[j] == 0.0f && w1[j] == 0.0f) continue;
      const Vec4 xj = load4(x + j * stride + i);
      a0 += (Vec4{} + w0[j]) * xj;
      b0 += (Vec4{} + w1[j]) * xj;
    }
    store4(out0 + i, a0);
    store4(out1 + i, b0);
    i += 4;
  }
  for (; i < n; ++i) {
    float s0 = 0.0f, s1 = 0.0f;
    for (int64_t j = 0; j < k; ++j) {
      if (w0[j] == 0.0f && w1[j] == 0.0f) continue;
      s0 += w0[j] * x[j * stride + i];
      s1 += w1[j] * x[j * stride + i];
    }
    out0[i] = s0;
    out1[i] = s1;
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

// (v0 . x[r, j], v1 . x[r, j]) for two vectors [I] at once.
TGNN_INLINE void dot_slot_pair(const AttentionShape& s, const std::vector<const float*>& parts, const float* v0,
                               const float* v1, int64_t r, int64_t j, float& s0, float& s1) {
  s0 = 0.0f;
  s1 = 0.0f;
  int64_t off = 0;
  for (size_t p = 0; p < parts.size(); off += s.widths[p], ++p)
    dot_pair(v0 + off, v1 + off, parts[p] + (r * s.slots + j) * s.widths[p], s.widths[p], s0, s1);
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

// weighted_slots for two weight vectors at once.
TGNN_INLINE void weighted_slots_pair(const AttentionShape& s, const std::vector<const float*>& parts, const float* w0,
                                     const float* w1, int64_t r, float* out0, float* out1) {
  int64_t off = 0;
  for (size_t p = 0; p < parts.size(); off += s.widths[p], ++p) {
    const int64_t width = s.widths[p];
    weighted_rows_pair(w0, w1, parts[p] + r * s.slots * width, width, s.slots, width, out0 + off, out1 + off);
  }
}

typedef int32_t VecI __attribute__((vector_size(32)));

// exp(x) per lane for x <= 0 (a softmax's scores less their maximum), within 1 ulp of the exact
// value (checked on every 64th float of [-87, 0]); lanes below -87 (where exp is 1.6e-38 or less)
// give 0. exp(x) = 2^n exp(f), x = n ln 2 + f with n the
// nearest integer to x / ln 2, |f| <= ln(2) / 2, and exp(f) by Cephes' degree-7 polynomial.
TGNN_INLINE Vec exp_nonpositive(Vec x) {
  const Vec low = Vec{} - 87.0f;
  const auto underflow = x < low;
  x = underflow ? low : x;
  const Vec shifter = Vec{} + 12582912.0f;  // 1.5 * 2^23: adding it rounds to the nearest integer
  const Vec n = (x * 1.44269504088896341f + shifter) - shifter;
  const Vec f = (x - n * 0.693359375f) + n * 2.12194440e-4f;  // ln 2 in two parts, the first exact
  Vec p = Vec{} + 1.9875691500e-4f;
  p = p * f + 1.3981999507e-3f;
  p = p * f + 8.3334519073e-3f;
  p = p * f + 4.1665795894e-2f;
  p = p * f + 1.6666665459e-1f;
  p = p * f + 5.0000001201e-1f;
  p = p * (f * f) + f + 1.0f;
  const VecI bits = (__builtin_convertvector(n, VecI) + 127) << 23;  // 2^n, n >= -126
  Vec scale;
  __builtin_memcpy(&scale, &bits, sizeof(scale));
  return underflow ? Vec{} : p * scale;
}

// a[j] = softmax over the valid j of the scores a[j] (0 where not valid; all 0 when none is);
// buf: scratch of k rounded up to a multiple of 8 floats.
TGNN_INLINE void softmax_valid(const bool* valid, float* a, int64_t k, float* buf) {
  float top = -INFINITY;
  for (int64_t j = 0; j < k; ++j)
    if (valid[j]) top = std::max(top, a[j]);
  if (top == -INFINITY) {  // no valid slot
    std::fill(a, a + k, 0.0f);
    return;
  }
  const int64_t padded = (k + kVec - 1) / kVec * kVec;
  for (int64_t j = 0; j < padded; ++j) buf[j] = j < k && valid[j] ? a[j] - top : -INFINITY;
  for (int64_t j = 0; j < padded; j += kVec) store(buf + j, exp_nonpositive(load(buf + j)));
  float total = 0.0f;
  for (int64_t j = 0; j < k; ++j) total += buf[j];
  const float inverse = 1.0f / total;  // total >= 1: the top slot's weight is exp(0)
  for (int64_t j = 0; j < k; ++j) a[j] = buf[j] * inverse;
}

// grad_score[j] = a[j] (d[j] - sum_j' a[j'] d[j']), d the gradients of the weights a.
TGNN_INLINE void softmax_backward(const float* a, float* d, int64_t k) {
  float weighted = 0.0f;
  for (int64_t j = 0; j < k; ++j) weighted += a[j] * d[j];
  for (int64_t j = 0; j < k; ++j) d[j] = a[j] * (d[j] - weighted);
}

}  // namespace

int64_t AttentionShape::width() const {
  int64_t total = 0;
  for (int64_t w : widths) total += w;
  return total;
}

// Heads are taken two at a time: one pass over a root's slots serves both.
TGNN_VECTOR_CLONES void attention_forward(const AttentionShape& s, const float* qk, const std::vector<const float*>& parts,
                       const bool* mask, float* alpha, float* agg, int64_t begin, int64_t end) {
  const int64_t H = s.heads, k = s.slots, I = s.width();
  std::vector<float> buf((k + kVec - 1) / kVec * kVec);
  for (int64_t r = begin; r < end; ++r) {
    const bool* valid = mask + r * k;
    float* a = alpha + r * H * k;
    int64_t h = 0;
    for (; h + 1 < H; h += 2) {
      const float* q = qk + (r * H + h) * I;
      float* ah = a + h * k;
      for (int64_t j = 0; j < k; ++j)
        if (valid[j]) dot_slot_pair(s, parts, q, q + I, r, j, ah[j], ah[k + j]);
      softmax_valid(valid, ah, k, buf.data());
      softmax_valid(valid, ah + k, k, buf.data());
      float* out = agg + (r * H + h) * I;
      weighted_slots_pair(s, parts, ah, ah + k, r, out, out + I);
    }
    if (h < H) {
      const float* q = qk + (r * H + h) * I;
      float* ah = a + h * k;
      for (int64_t j = 0; j < k; ++j)
        if (valid[j]) ah[j] = dot_slot(s, parts, q, r, j);
      softmax_valid(valid, ah, k, buf.data());
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
    // grad_score[h, j]: d alpha[h, j] = grad_agg[h] . x[j] (0 where alpha is), through the softmax.
    int64_t h = 0;
    for (; h + 1 < H; h += 2) {
      const float* g = grad_agg + (r * H + h) * I;
      const float *a0 = a + h * k, *a1 = a0 + k;
      float *gs0 = grad_score.data() + h * k, *gs1 = gs0 + k;
      for (int64_t j = 0; j < k; ++j) {
        gs0[j] = gs1[j] = 0.0f;
        if (a0[j] != 0.0f || a1[j] != 0.0f) dot_slot_pair(s, parts, g, g + I, r, j, gs0[j], gs1[j]);
        if (a0[j] == 0.0f) gs0[j] = 0.0f;
        if (a1[j] == 0.0f) gs1[j] = 0.0f;
      }
      softmax_backward(a0, gs0, k);
      softmax_backward(a1, gs1, k);
      if (grad_qk != nullptr) {
        float* out = grad_qk + (r * H + h) * I;
        weighted_slots_pair(s, parts, gs0, gs1, r, out, out + I);
      }
    }
    if (h < H) {
      const float* g = grad_agg + (r * H + h) * I;
      const float* ah = a + h * k;
      float* gs = grad_score.data() + h * k;
      for (int64_t j = 0; j < k; ++j) gs[j] = ah[j] == 0.0f ? 0.0f : dot_slot(s, parts, g, r, j);
      softmax_backward(ah, gs, k);
      if (grad_qk != nullptr) weighted_slots(s, parts, gs, r, grad_qk + (r * H + h) * I);
    }
    for (int64_t p = 0, off = 0; p < P; off += s.widths[p], ++p) {
      if (grad_parts[p] == nullptr) continue;
      const int64_t w = s.widths[p];
      for (int64_t j = 0; j < k; ++j) {
        // grad x[r, j] = sum_h alpha[h, j] grad_agg[h] + grad_score[h, j] qk[h]: the 2H rows of
        // grad_agg and qk for this root, at their stride I, weighted.
        for (int64_t hh = 0; hh < H; ++hh) {
          weights[2 * hh] = a[hh * k + j];
          weights[2 * hh + 1] = grad_score[hh * k + j];
        }
        weighted_rows(weights.data(), rows.data() + off, I, 2 * H, w, grad_parts[p] + (r * k + j) * w);
      }
    }
  }
}

}  // namespace tgnn
