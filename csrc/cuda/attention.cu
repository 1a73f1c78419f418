// Fused masked attention on the GPU: one block of kThreads threads per root. Scores and softmax
// weights of the root's H x k (head, slot) pairs live in shared memory; a warp computes each
// score's dot product over I with its lanes along I, and element-wise outputs are spread over
// the block's threads along I (coalesced reads of the slot rows).
#include <cuda_runtime.h>

#include <cmath>

#include "cuda/attention.h"

namespace tgnn::cuda {

namespace {

constexpr int kThreads = 128;
constexpr int kWarps = kThreads / 32;
constexpr unsigned kAllLanes = 0xffffffffu;

__device__ __forceinline__ float warp_sum(float x) {
  for (int o = 16; o > 0; o /= 2) x += __shfl_xor_sync(kAllLanes, x, o);
  return x;
}

__device__ __forceinline__ float warp_max(float x) {
  for (int o = 16; o > 0; o /= 2) x = fmaxf(x, __shfl_xor_sync(kAllLanes, x, o));
  return x;
}

// Row j of root r in part p.
__device__ __forceinline__ const float* slot_row(const AttentionArgs& a, int p, int64_t r, int64_t j) {
  return a.parts[p] + (r * a.slots + j) * a.widths[p];
}

// v . x[r, j] over all parts, by one warp (every lane returns the sum).
__device__ float warp_dot_slot(const AttentionArgs& a, const float* v, int64_t r, int64_t j, int lane) {
  float sum = 0.0f;
  int64_t off = 0;
  for (int p = 0; p < a.num_parts; off += a.widths[p], ++p) {
    const float* x = slot_row(a, p, r, j);
    for (int64_t i = lane; i < a.widths[p]; i += 32) sum += v[off + i] * x[i];
  }
  return warp_sum(sum);
}

// out[h * I + i] = sum_j w[h * k + j] x[r, j, i] for every (h, i), by the whole block.
__device__ void weighted_slots(const AttentionArgs& a, const float* w, int64_t r, float* out) {
  const int64_t I = a.width, k = a.slots;
  for (int64_t idx = threadIdx.x; idx < a.heads * I; idx += kThreads) {
    const int64_t h = idx / I;
    int64_t i = idx - h * I;
    int p = 0;
    while (i >= a.widths[p]) i -= a.widths[p++];
    float sum = 0.0f;
    for (int64_t j = 0; j < k; ++j) {
      const float weight = w[h * k + j];
      if (weight != 0.0f) sum += weight * slot_row(a, p, r, j)[i];
    }
    out[idx] = sum;
  }
}

__global__ void attention_forward_kernel(AttentionArgs a, const float* qk, const bool* mask, float* alpha,
                                         float* agg) {
  extern __shared__ float weights[];  // [H * k]: scores, then softmax weights
  const int64_t r = blockIdx.x, H = a.heads, k = a.slots, I = a.width;
  const int warp = threadIdx.x / 32, lane = threadIdx.x % 32;
  const bool* valid = mask + r * k;
  for (int64_t pair = warp; pair < H * k; pair += kWarps) {  // the same pair for all lanes of a warp
    const int64_t h = pair / k, j = pair - h * k;
    const float score = valid[j] ? warp_dot_slot(a, qk + (r * H + h) * I, r, j, lane) : 0.0f;
    if (lane == 0) weights[pair] = score;
  }
  __syncthreads();
  for (int64_t h = warp; h < H; h += kWarps) {
    float* w = weights + h * k;
    float top = -INFINITY;
    for (int64_t j = lane; j < k; j += 32)
      if (valid[j]) top = fmaxf(top, w[j]);
    top = warp_max(top);
    float total = 0.0f;
    for (int64_t j = lane; j < k; j += 32) {
      w[j] = valid[j] ? expf(w[j] - top) : 0.0f;
      total += w[j];
    }
    total = warp_sum(total);
    for (int64_t j = lane; j < k; j += 32) {
      if (total > 0.0f) w[j] /= total;
      alpha[(r * H + h) * k + j] = w[j];
    }
  }
  __syncthreads();
  weighted_slots(a, weights, r, agg + r * H * I);
}

// Output pointers of the parts' gradients, passed by value (null: not wanted).
struct GradParts {
  float* part[kMaxAttentionParts];
};

__global__ void attention_backward_kernel(AttentionArgs a, const float* qk, const float* alpha,
                                          const float* grad_agg, float* grad_qk, GradParts grad_parts) {
  extern __shared__ float shared[];  // alpha [H * k], then grad_score [H * k]
  const int64_t r = blockIdx.x, H = a.heads, k = a.slots, I = a.width;
  const int warp = threadIdx.x / 32, lane = threadIdx.x % 32;
  float* w = shared;
  float* gs = shared + H * k;
  for (int64_t pair = threadIdx.x; pair < H * k; pair += kThreads) w[pair] = alpha[r * H * k + pair];
  __syncthreads();
  for (int64_t pair = warp; pair < H * k; pair += kWarps) {  // d alpha: grad_agg[r, h] . x[r, j]
    const int64_t h = pair / k, j = pair - h * k;
    const float d = w[pair] == 0.0f ? 0.0f : warp_dot_slot(a, grad_agg + (r * H + h) * I, r, j, lane);
    if (lane == 0) gs[pair] = d;
  }
  __syncthreads();
  for (int64_t h = warp; h < H; h += kWarps) {  // softmax backward: alpha_j (d_j - sum alpha d)
    float weighted = 0.0f;
    for (int64_t j = lane; j < k; j += 32) weighted += w[h * k + j] * gs[h * k + j];
    weighted = warp_sum(weighted);
    for (int64_t j = lane; j < k; j += 32) gs[h * k + j] = w[h * k + j] * (gs[h * k + j] - weighted);
  }
  __syncthreads();
  if (grad_qk != nullptr) weighted_slots(a, gs, r, grad_qk + r * H * I);
  int64_t off = 0;
  for (int p = 0; p < a.num_parts; off += a.widths[p], ++p) {
    if (grad_parts.part[p] == nullptr) continue;
    const int64_t width = a.widths[p];
    for (int64_t idx = threadIdx.x; idx < k * width; idx += kThreads) {
      const int64_t j = idx / width, i = idx - j * width;
      float sum = 0.0f;
      for (int64_t h = 0; h < H; ++h) {
        sum += w[h * k + j] * grad_agg[(r * H + h) * I + off + i] + gs[h * k + j] * qk[(r * H + h) * I + off + i];
      }
      grad_parts.part[p][(r * k + j) * width + i] = sum;
    }
  }
}

}  // namespace

cudaError_t launch_attention_forward(const AttentionArgs& a, const float* qk, const bool* mask, float* alpha,
                                     float* agg, cudaStream_t stream) {
  if (a.roots == 0) return cudaSuccess;
  const size_t shared = static_cast<size_t>(a.heads * a.slots) * sizeof(float);
  attention_forward_kernel<<<static_cast<unsigned>(a.roots), kThreads, shared, stream>>>(a, qk, mask, alpha, agg);
  return cudaGetLastError();
}

cudaError_t launch_attention_backward(const AttentionArgs& a, const float* qk, const float* alpha,
                                      const float* grad_agg, float* grad_qk, float* const* grad_parts,
                                      cudaStream_t stream) {
  if (a.roots == 0) return cudaSuccess;
  GradParts grads{};
  for (int p = 0; p < a.num_parts; ++p) grads.part[p] = grad_parts[p];
  const size_t shared = 2 * static_cast<size_t>(a.heads * a.slots) * sizeof(float);
  attention_backward_kernel<<<static_cast<unsigned>(a.roots), kThreads, shared, stream>>>(a, qk, alpha, grad_agg,
                                                                                          grad_qk, grads);
  return cudaGetLastError();
}

}  // namespace tgnn::cuda
