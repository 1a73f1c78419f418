// Fused top-K dot product on the GPU, without a [B, N] score matrix.
//
// Grid: blockIdx.x takes BM queries, blockIdx.y a contiguous split of the candidates. A block
// streams its candidates in tiles of 128 through shared memory, 128 bytes of each row per pipeline
// stage, and computes the BM x 128 score tile of each with tensor cores.
//
// mma.sync (the general path): 16 warps keep the BM query rows in shared memory, copy the stages
// through a 3-stage cp.async pipeline with a block barrier per stage, and tile the scores
// (WarpLayout) with mma.sync: bf16 inputs directly (m16n8k16, float32 accumulation), float32 inputs
// rounded to tf32 (m16n8k8; the filter of "Float32" below).
//
// wgmma (Hopper: H100, H200, where the sm_90a code is loaded; k <= 64, bf16 rows of up to 512
// bytes; float32 rows are rounded to bf16 by the copying warpgroup, which then stores the stages
// itself instead of cp.async): a warp-specialized block of 3 warpgroups, BM = 128. One warpgroup only copies: every
// (tile, chunk) step into the next of kWgmmaMaxStages stages once that stage is empty, signalling
// through a per-stage mbarrier (cp.async.mbarrier.arrive.noinc) when its copies have landed, so
// that no thread ever waits for its own copies. Each of the two others owns 64 query rows, held in
// registers as wgmma A fragments for the whole kernel (loaded once from global memory), and
// computes their 64 x 128 scores of each tile with wgmma.mma_async (m64n128k16), the candidates
// read by the tensor cores from the stage in the 128-byte swizzle (no padding, no ldmatrix):
// it waits for the stage's full mbarrier, fences the proxies, issues the chunk, and releases the
// previous chunk's stage once that group has completed. The two warpgroups sync only with
// themselves (named barriers), so one runs its selection while the other's wgmma run. Their
// accumulators have the layout of mma.sync's m16n8 fragments (warp tiles of 16 x 128 scores), so
// selection and seeding below are the same code. (It replaced a form whose 4 warpgroups all copied
// and computed with a block barrier per stage, so that copies and tensor work did not overlap: the
// main pass got faster at every size measured; bench/topk_speed.py, docs/benchmarks.md.)
//
// Selection, per query row, in shared memory: a sorted list of the best k so far, its k-th value
// (the threshold) and a buffer of 32 pending candidates. A score reaching the threshold, and not
// excluded, is appended to its row's buffer straight from the accumulators (a thread visits only
// its passing scores, which are rare). Buffers are merged into the lists only when one overflows
// (the threshold being stale in between only lets a few more candidates through), then the scores
// not appended yet are filtered again and appended. The team that shares the rows (the block, or a
// wgmma warpgroup) votes on that once per tile. Exclusions: each row's sorted exclusion list is
// walked along with the tiles into a 128-bit mask per row and tile, built a tile ahead. Finally
// each block writes its lists as partial results [B, splits, k] and a second kernel merges the
// splits of each query (a block per query, its warps' lists merged pairwise).
//
// Seeded threshold. When each block scans many tiles, a first pass of the same kernel (kSeed)
// scores a slice of the candidates, the first splits * seed_tiles tiles (seed_tiles per block,
// same grid), and writes, per query, the maximum of each group: the scores one thread holds for
// that query (wgmma: either half of them) over group_tiles consecutive tiles, excluded candidates left out. A small kernel takes each query's
// k-th largest group maximum: the groups are disjoint, so k distinct candidates score at least
// that much, and every one of the final top k scores at least that much too. The main pass starts
// each row's threshold there (ties pass), so from the first tile on it appends only scores that
// can still matter. Both passes run the same instructions on the same tile positions (same row
// blocks, tiles aligned to kTileN), so a candidate's score is bit-identical in both: the bound
// holds for the scores the main pass ranks. Where fewer than k groups hold a candidate the bound
// is -inf, i.e. none.
//
// Float32: exact, by a filter and a rescoring. The result is that of the CPU kernel (csrc/topk_ops.cpp)
// bit for bit: the exact top k of the scores r_j = fl32(s_j), s_j computed in float64 in exact_dot's
// order (cosine: s_j / max(|q|, eps) / max(|e_j|, eps), the norms in float64 likewise).
// - Filter. The tensor cores score the inputs rounded to bf16 (wgmma; mma.sync: tf32), v_j; then
//   |v_j - r_j| <= m_j = gamma max(|q|, a) q_scale max(|e_j|, a) e_scale (q_margin[row]
//   e_margin[j], rounded up by row_bounds_kernel; scales 1 unless cosine), gamma = 2 (2^-8 + 2^-17 +
//   (d + 16) 2^-22 + 2^-20), a = 2^-52. Why: rounding each factor to bf16 errs by at most 2^-9 of it,
//   so each product by at most (2^-8 + 2^-18) |q_i e_i| (products of bf16 or tf32 are exact in
//   float32); the tensor cores' float32 sums, whatever their order and rounding (even truncation
//   after aligning to the largest term), add at most about d 2^-23 sum_i |q_i e_i|; sum_i |q_i e_i|
//   <= |q| |e| (Cauchy-Schwarz); 2^-20 covers the scaling, the float32 arithmetic of the bounds
//   and the final rounding fl32 (2^-24 |s|); products or sums that underflow err by at most
//   (d + 16) 2^-125 in all, below gamma a^2; and the whole is doubled. A row holding a subnormal
//   element (no relative bound on its rounding) gets an infinite margin, and a v or m that is not
//   finite counts as unbounded.
// - The kernel selects, as above, the lower bounds lo_j = v_j - m_j (seed pass included), so that
//   a row's threshold is at most the k-th largest of its lower bounds, hence at most R, the k-th
//   largest r_j (k distinct candidates have r_j >= lo_j >= it). Every candidate with v_j + m_j >=
//   the threshold when its tile is scored, or unbounded, is a survivor: appended to the row's list
//   in global memory [B, surv_cap] with the upper bound lo_j + 2 m_j (+inf where unbounded). Every
//   candidate of the exact top k (r_j >= R, ties included) survives.
// - Rescoring (rescore_kernel, a warp per query): L = the k-th largest lower bound of the row over
//   all splits (merge_splits_kernel of the lists: L <= R); the survivors whose upper bound reaches L
//   (a few more than k) are scored exactly (exact_dot16: the CPU's float64 order) and selected (the
//   smaller index first among equal scores).
// - Fallback: a row with more than surv_cap survivors (many near-ties, unbounded rows) is scored
//   exactly over all candidates (fallback_kernel: splits of the candidates, a warp each, merged by
//   merge_splits_kernel). Its kernels run always and end at once where no row overflowed, so that
//   the host never waits.
#include <cuda_runtime.h>

#include <algorithm>
#include <cfloat>
#include <climits>
#include <cmath>
#include <cstdint>
#include <type_traits>

#include "core/topk_select.h"
#include "cuda/topk_dot.h"

namespace tgnn::cuda {

namespace {

constexpr int kTileN = 128;                 // candidates per tile
constexpr int kChunkBytes = 128;            // bytes of each candidate row per pipeline stage
constexpr int kStageStride = kChunkBytes + 16;  // padded shared row: conflict-free ldmatrix
constexpr int kWarps = 16;                  // per block of the fused kernel (8 measured slower)
constexpr int kThreads = kWarps * 32;
constexpr int kStages = 3;                  // mma.sync kernels (4 measured no faster: H100, bf16, d = 172)
constexpr int kWgmmaMaxStages = 4;          // wgmma kernels (H100, bf16, d = 172: 3-5 alike, 2 and 6-8 slower)
constexpr int kWgmmaMaxChunks = 4;          // wgmma kernels: rows of up to 512 bytes (query fragments in registers)
constexpr int kBufCap = 32;                 // pending candidates per query row
constexpr int kMaskWords = kTileN / 32;     // exclusion bits per row and tile
constexpr int kMergeWarps = 8;              // warps per query of the split merge, at most
constexpr int kSeedMinTiles = 32;           // seed pass only where a block scans this many tiles
constexpr int kSeedShare = 16;              // it scores at most 1/kSeedShare of each block's tiles
constexpr int kSeedMaxTiles = 64;           // and at most this many tiles per split
constexpr int kMaxGroups = 4096;            // group maxima per query (their keys in shared memory)
constexpr int64_t kGroupBytes = 1 << 24;    // group maxima of all queries, unless 4k per query is more
constexpr int kSelectThreads = 256;         // per block (query) of the k-th maximum kernel
constexpr int kFilterSeedMinTiles = 2;      // float32: seed pass where a block scans this many tiles
constexpr int64_t kSurvivorBytes = 128 << 20;  // float32: survivors of all queries (8 bytes each)
constexpr int64_t kMaxSurvivors = 1 << 16;  // float32: survivors per query, at most; also bounds a
                                            // fallback row's splits (cap / k: at 8,192, one query of
                                            // k = 100 over 1e6 keys fell back in 81, 9 ms on an H200)
constexpr int64_t kFallbackMinSplit = 2048; // float32 fallback: candidates per split, at least
constexpr int64_t kFallbackRowBlocks = 64;  // float32 fallback: blocks along the rows
constexpr int64_t kFallbackMergeBlocks = 1024;  // float32 fallback: blocks of its merge
constexpr unsigned kAllLanes = 0xffffffffu;

struct Params {
  const char* q;         // [B, row_bytes] contiguous
  const char* e;         // [N] rows of row_bytes, e_stride bytes apart
  int64_t e_stride;
  const int64_t* excl;   // [B, m] sorted rows
  int64_t m;
  const float* q_scale;  // [B] or null
  const float* e_scale;  // [N] or null
  float* part_v;         // [B, splits, k]
  int* part_i;
  const float* seed;     // [B] lower bound of each query's k-th score (main pass), or null
  float* group_max;      // [B, groups] group maxima (seed pass), else null
  int groups;            // group maxima per query: splits * groups per split * groups per tile
  int group_tiles;       // consecutive tiles of a group (seed pass)
  int num_queries, num_candidates, k;
  int row_bytes;         // d * element size (multiple of 4)
  int dpad_bytes;        // row_bytes rounded up to 32 (one k-step of the mma)
  int q_stride;          // bytes per shared query row: dpad_bytes + 16
  int copy_q, copy_e;    // bytes per cp.async for queries / candidates: 16, 8 or 4
  int tiles_per_split, splits;
  int stages;            // of the wgmma pipeline
  // float32 inputs (the filter pass): see "Float32" above.
  int dim;               // d
  const float* q_margin; // [B] gamma max(|q|, a) q_scale, rounded up
  const float* e_margin; // [N] max(|e|, a) e_scale, rounded up
  float* surv_upper;     // [B, surv_cap] upper bounds of the survivors
  int* surv_index;       // [B, surv_cap] their candidate ids
  int* surv_count;       // [B] survivors appended (may exceed surv_cap: overflow)
  int surv_cap;
};

// ---- small PTX wrappers ---------------------------------------------------------------------

__device__ __forceinline__ unsigned smem_addr(const void* p) {
  return static_cast<unsigned>(__cvta_generic_to_shared(p));
}

// Copies W bytes (16, 8 or 4) from global src to shared dst, or writes W zero bytes when !valid.
template <int W>
__device__ __forceinline__ void cp_async(unsigned dst, const void* src, bool valid) {
  const int src_bytes = valid ? W : 0;
  if constexpr (W == 16) {
    asm volatile("cp.async.cg.shared.global [%0], [%1], 16, %2;\n" ::"r"(dst), "l"(src), "r"(src_bytes));
  } else {
    asm volatile("cp.async.ca.shared.global [%0], [%1], %2, %3;\n" ::"r"(dst), "l"(src), "n"(W), "r"(src_bytes));
  }
}

// cp_async with the width chosen at run time (uniform across the grid).
__device__ __forceinline__ void cp_async_any(unsigned dst, const void* src, int width, bool valid) {
  if (width == 16) {
    cp_async<16>(dst, src, valid);
  } else if (width == 8) {
    cp_async<8>(dst, src, valid);
  } else {
    cp_async<4>(dst, src, valid);
  }
}

// Byte `byte` (< 128) of shared row `row` in the 128-byte swizzle of wgmma's matrix descriptors:
// 16-byte unit u of the row is stored at unit u ^ (row % 8). Rows are 128 bytes, 8-row atoms 1024
// bytes, 1024-byte aligned; cp.async writes and the tensor cores' reads are both conflict-free.
__device__ __forceinline__ int swizzle128(int row, int byte) { return byte ^ ((row & 7) << 4); }

// One thread's share of a pipeline stage copied by kLoaders threads: W bytes at column `col` of rows
// first, first + kRowStep, ... (of 128) from src (the first row's, rows src_step bytes apart) to
// the stage at dst (rows kDstRow bytes apart, kSwizzle: in the 128-byte swizzle of swizzle128);
// rows at or beyond first + rows_left, or all of them when !col_valid, are zero-filled.
template <int W, int kDstRow, int kLoaders, bool kSwizzle>
__device__ __forceinline__ void copy_stage(unsigned dst, int first, int col, const char* src, int64_t src_step,
                                           int rows_left, bool col_valid, const char* fallback) {
  constexpr int kRowStep = kLoaders / (kChunkBytes / W);
#pragma unroll
  for (int i = 0; i < kTileN / kRowStep; ++i) {
    const int row = first + i * kRowStep;
    const bool valid = col_valid && i * kRowStep < rows_left;
    cp_async<W>(dst + row * kDstRow + (kSwizzle ? swizzle128(row, col) : col), valid ? src + i * src_step : fallback,
                valid);
  }
}

// x[0..8) = the floats src[0..8) (element `col` of a row of `dim`), zero where the row is not valid
// or beyond dim; loaded in vectors of `width` bytes (16, 8 or 4: the row start and the row length
// are multiples of it, so that a vector lies wholly inside or wholly beyond the row), through L2 only.
__device__ __forceinline__ void load_floats8(float (&x)[8], const float* src, bool row_valid, int col, int dim,
                                             int width) {
  if (width == 16) {
#pragma unroll
    for (int v = 0; v < 2; ++v) {
      const float4 f = row_valid && col + 4 * v < dim ? __ldcg(reinterpret_cast<const float4*>(src) + v)
                                                      : make_float4(0.0f, 0.0f, 0.0f, 0.0f);
      x[4 * v] = f.x;
      x[4 * v + 1] = f.y;
      x[4 * v + 2] = f.z;
      x[4 * v + 3] = f.w;
    }
  } else if (width == 8) {
#pragma unroll
    for (int v = 0; v < 4; ++v) {
      const float2 f = row_valid && col + 2 * v < dim ? __ldcg(reinterpret_cast<const float2*>(src) + v)
                                                      : make_float2(0.0f, 0.0f);
      x[2 * v] = f.x;
      x[2 * v + 1] = f.y;
    }
  } else {
#pragma unroll
    for (int v = 0; v < 8; ++v) x[v] = row_valid && col + v < dim ? __ldcg(src + v) : 0.0f;
  }
}

__device__ __forceinline__ void cp_async_commit() { asm volatile("cp.async.commit_group;\n" ::); }

template <int N>
__device__ __forceinline__ void cp_async_wait() {
  asm volatile("cp.async.wait_group %0;\n" ::"n"(N));
}

__device__ __forceinline__ void ldmatrix_x4(uint32_t (&r)[4], unsigned addr) {
  asm volatile("ldmatrix.sync.aligned.m8n8.x4.shared.b16 {%0, %1, %2, %3}, [%4];\n"
               : "=r"(r[0]), "=r"(r[1]), "=r"(r[2]), "=r"(r[3])
               : "r"(addr));
}

__device__ __forceinline__ void mma_bf16(float (&c)[4], const uint32_t (&a)[4], const uint32_t (&b)[2]) {
  asm volatile(
      "mma.sync.aligned.m16n8k16.row.col.f32.bf16.bf16.f32 {%0, %1, %2, %3}, {%4, %5, %6, %7}, {%8, %9}, "
      "{%0, %1, %2, %3};\n"
      : "+f"(c[0]), "+f"(c[1]), "+f"(c[2]), "+f"(c[3])
      : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "r"(b[0]), "r"(b[1]));
}

__device__ __forceinline__ void mma_tf32(float (&c)[4], const uint32_t (&a)[4], const uint32_t (&b)[2]) {
  asm volatile(
      "mma.sync.aligned.m16n8k8.row.col.f32.tf32.tf32.f32 {%0, %1, %2, %3}, {%4, %5, %6, %7}, {%8, %9}, "
      "{%0, %1, %2, %3};\n"
      : "+f"(c[0]), "+f"(c[1]), "+f"(c[2]), "+f"(c[3])
      : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "r"(b[0]), "r"(b[1]));
}

#if defined(__CUDA_ARCH_FEAT_SM90_ALL)
// Descriptor of a K-major bf16 operand in shared memory, 128-byte swizzle: start address, leading
// byte offset 16 (unused by swizzled K-major layouts), stride byte offset 1024 (between 8-row
// atoms), base offset 0 (atoms 1024-byte aligned; a start inside an atom moves only along K).
__device__ __forceinline__ uint64_t wgmma_desc(unsigned addr) {
  return static_cast<uint64_t>((addr & 0x3FFFF) >> 4) | (static_cast<uint64_t>(16 >> 4) << 16) |
         (static_cast<uint64_t>(1024 >> 4) << 32) | (static_cast<uint64_t>(1) << 62);
}

// d[nt][e] (the thread's scores of the warpgroup's 64 x 128 tile, as m16n8 accumulators of its
// warp's 16 rows: row 16 (warp % 4) + lane / 4 + 8 (e / 2), column 8 nt + 2 (lane % 4) + e % 2)
// (+)= A [64 x 16] . B [128 x 16]^T: A in registers (each warp's 16 rows as the A fragment of
// mma.sync's m16n8k16), B bf16 K-major in shared memory; float32 accumulation (d is overwritten
// when scale_d is 0).
__device__ __forceinline__ void wgmma_m64n128k16(float (&d)[16][4], const uint32_t (&a)[4], uint64_t b, int scale_d) {
  asm volatile(
      "{\n.reg .pred p;\nsetp.ne.b32 p, %69, 0;\n"
      "wgmma.mma_async.sync.aligned.m64n128k16.f32.bf16.bf16 "
      "{%0, %1, %2, %3, %4, %5, %6, %7, %8, %9, %10, %11, %12, %13, %14, %15, "
      "%16, %17, %18, %19, %20, %21, %22, %23, %24, %25, %26, %27, %28, %29, %30, %31, "
      "%32, %33, %34, %35, %36, %37, %38, %39, %40, %41, %42, %43, %44, %45, %46, %47, "
      "%48, %49, %50, %51, %52, %53, %54, %55, %56, %57, %58, %59, %60, %61, %62, %63}, "
      "{%64, %65, %66, %67}, %68, p, 1, 1, 0;\n}\n"
      : "+f"(d[0][0]), "+f"(d[0][1]), "+f"(d[0][2]), "+f"(d[0][3]),
        "+f"(d[1][0]), "+f"(d[1][1]), "+f"(d[1][2]), "+f"(d[1][3]),
        "+f"(d[2][0]), "+f"(d[2][1]), "+f"(d[2][2]), "+f"(d[2][3]),
        "+f"(d[3][0]), "+f"(d[3][1]), "+f"(d[3][2]), "+f"(d[3][3]),
        "+f"(d[4][0]), "+f"(d[4][1]), "+f"(d[4][2]), "+f"(d[4][3]),
        "+f"(d[5][0]), "+f"(d[5][1]), "+f"(d[5][2]), "+f"(d[5][3]),
        "+f"(d[6][0]), "+f"(d[6][1]), "+f"(d[6][2]), "+f"(d[6][3]),
        "+f"(d[7][0]), "+f"(d[7][1]), "+f"(d[7][2]), "+f"(d[7][3]),
        "+f"(d[8][0]), "+f"(d[8][1]), "+f"(d[8][2]), "+f"(d[8][3]),
        "+f"(d[9][0]), "+f"(d[9][1]), "+f"(d[9][2]), "+f"(d[9][3]),
        "+f"(d[10][0]), "+f"(d[10][1]), "+f"(d[10][2]), "+f"(d[10][3]),
        "+f"(d[11][0]), "+f"(d[11][1]), "+f"(d[11][2]), "+f"(d[11][3]),
        "+f"(d[12][0]), "+f"(d[12][1]), "+f"(d[12][2]), "+f"(d[12][3]),
        "+f"(d[13][0]), "+f"(d[13][1]), "+f"(d[13][2]), "+f"(d[13][3]),
        "+f"(d[14][0]), "+f"(d[14][1]), "+f"(d[14][2]), "+f"(d[14][3]),
        "+f"(d[15][0]), "+f"(d[15][1]), "+f"(d[15][2]), "+f"(d[15][3])
      : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "l"(b), "r"(scale_d));
}

// Keeps the compiler from moving accesses of d across the wgmma fence and wait (CUTLASS does the same).
__device__ __forceinline__ void fence_registers(float (&d)[16][4]) {
#pragma unroll
  for (int nt = 0; nt < 16; ++nt)
#pragma unroll
    for (int e = 0; e < 4; ++e) asm volatile("" : "+f"(d[nt][e])::"memory");
}
#endif

// One chunk (128 bytes of each row, zero-padded beyond d: 4 k16-steps) of the warpgroup's 64 x 128
// scores: acc (+)= A . B^T, A the chunk's query fragments a[ks], B the swizzled candidate rows at
// b_rows, issued as one group; accumulate = false (a tile's first chunk) overwrites acc. Then waits
// until at most this group is pending: the previous chunk's reads of shared memory are done. No
// branch and no other access of acc while a group is pending, so that ptxas neither serializes the
// wgmma instructions nor waits for them early. Only sm_90a code has wgmma; the host launches the
// kernels that call these two only where that code is loaded.
__device__ __forceinline__ void wgmma_chunk(float (&acc)[16][4], const uint32_t (&a)[4][4], unsigned b_rows,
                                            bool accumulate) {
#if defined(__CUDA_ARCH_FEAT_SM90_ALL)
  fence_registers(acc);
  asm volatile("wgmma.fence.sync.aligned;\n" ::: "memory");
  wgmma_m64n128k16(acc, a[0], wgmma_desc(b_rows), accumulate);
#pragma unroll
  for (int ks = 1; ks < kChunkBytes / 32; ++ks) wgmma_m64n128k16(acc, a[ks], wgmma_desc(b_rows + ks * 32), 1);
  asm volatile("wgmma.commit_group.sync.aligned;\n" ::: "memory");
  asm volatile("wgmma.wait_group.sync.aligned 1;\n" ::: "memory");
  fence_registers(acc);
#else
  __trap();
#endif
}

// Waits for all of the warpgroup's wgmma: acc then holds the tile's scores.
__device__ __forceinline__ void wgmma_wait_all(float (&acc)[16][4]) {
#if defined(__CUDA_ARCH_FEAT_SM90_ALL)
  asm volatile("wgmma.wait_group.sync.aligned 0;\n" ::: "memory");
  fence_registers(acc);
#else
  __trap();
#endif
}

// Orders the cp.async writes that this thread has seen complete (generic proxy) before its
// tensor-core reads of them (async proxy).
__device__ __forceinline__ void fence_proxy_async() {
#if defined(__CUDA_ARCH_FEAT_SM90_ALL)
  asm volatile("fence.proxy.async.shared::cta;\n" ::: "memory");
#endif
}

// mbarriers of the wgmma pipeline (shared memory, 8 bytes each); sm_90a code only, like wgmma.
__device__ __forceinline__ void mbar_init(unsigned bar, int count) {
#if defined(__CUDA_ARCH_FEAT_SM90_ALL)
  asm volatile("mbarrier.init.shared::cta.b64 [%0], %1;\n" ::"r"(bar), "r"(count) : "memory");
#else
  __trap();
#endif
}

// Waits until the phase of the given parity has completed (a fresh barrier counts the phase
// before its first as completed, parity 1).
__device__ __forceinline__ void mbar_wait(unsigned bar, int parity) {
#if defined(__CUDA_ARCH_FEAT_SM90_ALL)
  asm volatile(
      "{\n.reg .pred done;\nWAIT:\n"
      "mbarrier.try_wait.parity.shared::cta.b64 done, [%0], %1;\n"
      "@!done bra WAIT;\n}\n" ::"r"(bar),
      "r"(parity)
      : "memory");
#else
  __trap();
#endif
}

__device__ __forceinline__ void mbar_arrive(unsigned bar) {
#if defined(__CUDA_ARCH_FEAT_SM90_ALL)
  asm volatile("mbarrier.arrive.shared::cta.b64 _, [%0];\n" ::"r"(bar) : "memory");
#else
  __trap();
#endif
}

// Arrives on bar once all of this thread's cp.async so far have completed (noinc: the arrival is
// one of the count that bar was initialized with).
__device__ __forceinline__ void cp_async_mbar_arrive(unsigned bar) {
#if defined(__CUDA_ARCH_FEAT_SM90_ALL)
  asm volatile("cp.async.mbarrier.arrive.noinc.shared::cta.b64 [%0];\n" ::"r"(bar) : "memory");
#else
  __trap();
#endif
}

// Barrier `id` (1 ..; 0 is __syncthreads') of `threads` threads, whole warps.
__device__ __forceinline__ void named_sync(int id, int threads) {
  asm volatile("bar.sync %0, %1;\n" ::"r"(id), "r"(threads) : "memory");
}

// named_sync that returns whether x is true in any of the threads.
__device__ __forceinline__ bool named_sync_or(int id, int threads, bool x) {
  int any;
  asm volatile(
      "{\n.reg .pred p, q;\nsetp.ne.b32 q, %1, 0;\n"
      "bar.red.or.pred p, %2, %3, q;\nselp.b32 %0, 1, 0, p;\n}\n"
      : "=r"(any)
      : "r"(static_cast<int>(x)), "r"(id), "r"(threads)
      : "memory");
  return any != 0;
}

// x rounded to the nearest tf32 (ties away from zero), as mma.sync's tf32 operands.
__device__ __forceinline__ uint32_t to_tf32(uint32_t x) {
  uint32_t r;
  asm("cvt.rna.tf32.f32 %0, %1;\n" : "=r"(r) : "f"(__uint_as_float(x)));
  return r;
}

// Two floats rounded to the nearest bfloat16 (ties to even), packed: lo in the low half (the
// element of the smaller column, as in bf16 memory and mma fragments).
__device__ __forceinline__ uint32_t pack_bf16x2(float lo, float hi) {
  uint32_t r;
  asm("cvt.rn.bf16x2.f32 %0, %1, %2;\n" : "=r"(r) : "f"(hi), "f"(lo));
  return r;
}

// ---- selection ------------------------------------------------------------------------------

// Merges c (<= 32) new (value, index) pairs buf_v/buf_i[0..c), all distinct from the list's, into the
// sorted list lv/li of `fill` pairs, keeping the best k; returns the new fill. The whole warp calls
// it. Ranks by counting: a new pair's rank is the number of new pairs before it (shuffles) plus the
// number of listed pairs before it (binary search); a listed pair moves down by the number of new
// pairs before it.
template <int KMAX>
__device__ int merge_into_list(float* lv, int* li, int fill, const float* buf_v, const int* buf_i, int c, int k,
                               int lane) {
  constexpr int R = KMAX / 32;
  float nv = -INFINITY;
  int ni = INT_MAX;
  if (lane < c) {
    nv = buf_v[lane];
    ni = buf_i[lane];
  }
  float ov[R];
  int oi[R], orank[R];
#pragma unroll
  for (int t = 0; t < R; ++t) {
    const int pos = lane + 32 * t;
    ov[t] = pos < fill ? lv[pos] : -INFINITY;
    oi[t] = pos < fill ? li[pos] : INT_MAX;
    orank[t] = pos;
  }
  int nrank = 0;
#pragma unroll
  for (int j = 0; j < 32; ++j) {  // lanes >= c hold (-inf, INT_MAX), which ranks before nothing
    const float xv = __shfl_sync(kAllLanes, nv, j);
    const int xi = __shfl_sync(kAllLanes, ni, j);
    nrank += ranks_before(xv, xi, nv, ni);
#pragma unroll
    for (int t = 0; t < R; ++t) orank[t] += ranks_before(xv, xi, ov[t], oi[t]);
  }
  int lo = 0, hi = fill;
  while (lo < hi) {
    const int mid = (lo + hi) >> 1;
    if (ranks_before(lv[mid], li[mid], nv, ni)) {
      lo = mid + 1;
    } else {
      hi = mid;
    }
  }
  nrank += lo;
  __syncwarp();
#pragma unroll
  for (int t = 0; t < R; ++t) {
    if (lane + 32 * t < fill && orank[t] < k) {
      lv[orank[t]] = ov[t];
      li[orank[t]] = oi[t];
    }
  }
  if (lane < c && nrank < k) {
    lv[nrank] = nv;
    li[nrank] = ni;
  }
  __syncwarp();
  return min(k, fill + c);
}

// ---- the fused kernel -----------------------------------------------------------------------

// wgmma: the block's 8 computing warps (2 warpgroups) each hold 16 query rows of all 128 candidates
// of a tile: warpgroup g computes rows 64 g .. 64 g + 63 as one 64 x 128 accumulator.
constexpr int kWgmmaWarps = 8;                            // computing warps of a wgmma block
constexpr int kWgmmaThreads = (kWgmmaWarps + 4) * 32;     // and a warpgroup that copies
constexpr int warps_m(int block_rows, bool wgmma) { return wgmma ? kWgmmaWarps : (block_rows >= 64 ? 4 : 2); }

// Seed groups per row and tile: one per thread holding scores of that row (wgmma: two, one per
// half of its 32 columns, so that a group stays 16 candidates).
constexpr int groups_per_tile(int block_rows, bool wgmma) { return wgmma ? 8 : 4 * (kWarps / warps_m(block_rows, false)); }

// Warp layout over the BM x kTileN score tile: kWarpsM x kWarpsN warps of (16 MT) x (8 NT) scores;
// warp w computes the rows of block row_block(w) and the candidates of block col_block(w).
template <int BM, bool kWgmma>
struct WarpLayout {
  static_assert(!kWgmma || BM == 128, "wgmma tiles: 2 warpgroups of 64 x 128");
  static constexpr int kWarpsM = warps_m(BM, kWgmma);
  static constexpr int kWarpsN = (kWgmma ? kWgmmaWarps : kWarps) / kWarpsM;
  static constexpr int kRows = BM / kWarpsM;       // query rows per warp
  static constexpr int kCols = kTileN / kWarpsN;   // candidates per warp
  static constexpr int MT = kRows / 16;            // m16 tiles per warp
  static constexpr int NT = kCols / 8;             // n8 tiles per warp
  static constexpr int kSlots = MT * NT * 4;       // scores per thread per tile
  static constexpr int kParts = kWgmma ? 2 : 1;    // seed groups per thread, row and tile
  static constexpr int kGroups = groups_per_tile(BM, kWgmma);
  static_assert(MT >= 1 && NT % (2 * kParts) == 0 && kSlots <= 64, "a 64-bit mask has a bit per score");
  static_assert(kGroups == 4 * kWarpsN * kParts, "a group per thread and part");
  static_assert(!kWgmma || (MT == 1 && NT == 16), "a warp's share of an m64n128 accumulator");
  __device__ static int row_block(int warp) { return warp / kWarpsN; }
  __device__ static int col_block(int warp) { return warp % kWarpsN; }
};

// kSeed: the seed pass (group maxima into p.group_max, no selection); else the main pass.
// kWgmma: scores by wgmma (sm_90a; bf16, BM = 128, rows of kChunks chunks), the block specialized
// into 2 computing warpgroups and a copying one; else by mma.sync through a kPipe-stage pipeline.
template <bool kBF16, int BM, int KMAX, bool kSeed, bool kWgmma, int kPipe, int kChunks>
__global__ void __launch_bounds__(kWgmma ? kWgmmaThreads : kThreads, 1) topk_dot_kernel(const Params p) {
  using L = WarpLayout<BM, kWgmma>;
  constexpr int MT = L::MT;
  constexpr int NT = L::NT;
  // Float32 inputs are filtered (see "Float32" above): wgmma kernels round them to bf16 on the way to
  // shared memory, mma.sync kernels to tf32 in the fragments.
  constexpr bool kFilter = !kBF16;
  constexpr int kBlockThreads = kWgmma ? kWgmmaThreads : kThreads;
  constexpr int kStageRow = kWgmma ? kChunkBytes : kStageStride;  // bytes per shared candidate row
  constexpr int kStageBytes = kTileN * kStageRow;
  // Teams: the threads that share query rows and their selection state, and sync only among
  // themselves. wgmma: each computing warpgroup (rows 64 g ..), with named barrier 1 + g, so that
  // one warpgroup's selection runs while the other's wgmma do; mma.sync: the block.
  constexpr int kTeamThreads = kWgmma ? 128 : kThreads;
  constexpr int kTeamRows = kWgmma ? 64 : BM;
  constexpr int kTeamWarps = kTeamThreads / 32;
  const int num_chunks = kWgmma ? kChunks : (p.dpad_bytes + kChunkBytes - 1) / kChunkBytes;
  const int num_stages = kWgmma ? p.stages : kPipe;

  // wgmma: stages of 128 rows x 128 bytes, 1024-byte aligned (the host adds 1 KiB for the
  // alignment), then a full and an empty mbarrier per stage. mma.sync: query rows, then stages
  // of padded rows. Then the selection state.
  extern __shared__ __align__(128) unsigned char smem_raw[];
  unsigned char* q_s = kWgmma ? smem_raw + ((1024u - (smem_addr(smem_raw) & 1023u)) & 1023u) : smem_raw;
  unsigned char* e_s = kWgmma ? q_s : q_s + BM * p.q_stride;
  uint64_t* full_bar = reinterpret_cast<uint64_t*>(e_s + num_stages * kStageBytes);
  uint64_t* empty_bar = full_bar + (kWgmma ? num_stages : 0);
  float* list_v = reinterpret_cast<float*>(empty_bar + (kWgmma ? num_stages : 0));
  int* list_i = reinterpret_cast<int*>(list_v + BM * KMAX);
  float* buf_v = reinterpret_cast<float*>(list_i + BM * KMAX);
  int* buf_i = reinterpret_cast<int*>(buf_v + BM * kBufCap);
  int* cnt = buf_i + BM * kBufCap;  // appended to each row's buffer (may exceed kBufCap)
  int* fill = cnt + BM;             // pairs in each row's list
  float* theta = reinterpret_cast<float*>(fill + BM);  // k-th listed value, -FLT_MAX until full
  uint32_t* xmask = reinterpret_cast<uint32_t*>(theta + BM);  // [2][BM][kMaskWords]

  const int tid = threadIdx.x;
  const int lane = tid & 31;
  const int warp = tid >> 5;
  const bool copier = kWgmma && warp >= kWgmmaWarps;  // wgmma: the copying warpgroup
  const int team = kWgmma ? warp >> 2 : 0;
  const int team_tid = tid % kTeamThreads;
  const int team_row0 = team * kTeamRows;
  const int wm = L::row_block(warp);  // the warp's block of query rows
  const int wn = L::col_block(warp);  // the warp's block of the tile's candidates
  const int g = lane >> 2;
  const int t4 = lane & 3;
  const int row0 = blockIdx.x * BM;
  const int split = blockIdx.y;
  const int n_begin = split * p.tiles_per_split * kTileN;
  const int n_end = min(p.num_candidates, n_begin + p.tiles_per_split * kTileN);
  const int num_tiles = (n_end - n_begin + kTileN - 1) / kTileN;
  const int64_t tile_bytes = static_cast<int64_t>(kTileN) * p.e_stride;

  auto team_sync = [&]() {
    if constexpr (kWgmma) {
      named_sync(1 + team, kTeamThreads);
    } else {
      __syncthreads();
    }
  };
  auto team_any = [&](bool x) {
    if constexpr (kWgmma) {
      return named_sync_or(1 + team, kTeamThreads, x);
    } else {
      return __syncthreads_or(x) != 0;
    }
  };

  // A row's threshold while its list is not full: the seed bound, at least -FLT_MAX.
  auto floor_threshold = [&](int r) {
    return p.seed != nullptr && row0 + r < p.num_queries ? fmaxf(p.seed[row0 + r], -FLT_MAX) : -FLT_MAX;
  };
  for (int r = tid; r < BM; r += kBlockThreads) {
    cnt[r] = 0;
    fill[r] = 0;
    theta[r] = row0 + r < p.num_queries ? floor_threshold(r) : INFINITY;  // padding rows take nothing
  }

  // A builder thread per row (team thread r of the team's rows) walks the row's sorted exclusions
  // into the tiles' masks: ex_next is the next id >= the tile being walked.
  const bool builder = !copier && team_tid < kTeamRows;
  const int brow = team_row0 + team_tid;
  const int64_t* ex_row = nullptr;
  int64_t ex_pos = 0;
  int64_t ex_next = LLONG_MAX;
  if (builder && row0 + brow < p.num_queries && p.m > 0) {
    ex_row = p.excl + static_cast<int64_t>(row0 + brow) * p.m;
    int64_t lo = 0, hi = p.m;
    while (lo < hi) {
      const int64_t mid = (lo + hi) >> 1;
      if (ex_row[mid] < n_begin) {
        lo = mid + 1;
      } else {
        hi = mid;
      }
    }
    ex_pos = lo;
    ex_next = lo < p.m ? ex_row[lo] : LLONG_MAX;
  }
  // Exclusion bits of a tile, double-buffered by tile parity: built a tile ahead, before a barrier
  // of the team that follows the last reads of that buffer.
  auto build_mask = [&](int tile) {
    if (builder) {
      const int64_t t0 = n_begin + static_cast<int64_t>(tile) * kTileN;
      uint32_t* w = xmask + ((tile & 1) * BM + brow) * kMaskWords;
#pragma unroll
      for (int i = 0; i < kMaskWords; ++i) w[i] = 0;
      while (ex_next < t0 + kTileN) {
        const int off = static_cast<int>(ex_next - t0);
        if (off >= 0) w[off >> 5] |= 1u << (off & 31);
        ++ex_pos;
        ex_next = ex_pos < p.m ? ex_row[ex_pos] : LLONG_MAX;
      }
    }
  };
  build_mask(0);

  if constexpr (kWgmma) {
    // A stage is full when the 128 copying threads' copies into it have landed, empty when the
    // 256 computing threads' wgmma have read it.
    if (tid == 0) {
      for (int s = 0; s < num_stages; ++s) {
        mbar_init(smem_addr(full_bar + s), 128);
        mbar_init(smem_addr(empty_bar + s), kWgmmaWarps * 32);
      }
    }
  }
  __syncthreads();

  if constexpr (kWgmma && kFilter) {
    if (copier) {
      // Float32 rows, rounded to bf16 here: thread ctid takes unit ctid % 8 (8 elements, 16 bytes of
      // bf16) of rows ctid / 8 + 16 i of every step. It loads the step's 64 floats (all in flight at
      // once), waits until the stage is empty, stores them rounded into the stage in the 128-byte
      // swizzle, and arrives on the stage's full mbarrier after a proxy fence (the tensor cores read
      // what these generic stores wrote; the computing threads fence again after their wait).
      const int ctid = tid - kWgmmaWarps * 32;
      const int unit = ctid & 7;
      const int first = ctid >> 3;
      const int64_t src_step = 16 * p.e_stride;
      const char* src = p.e + static_cast<int64_t>(n_begin + first) * p.e_stride;  // the tile's
      int rows_left = n_end - n_begin - first;
      int stage = 0, phase = 0;
      for (int tile = 0; tile < num_tiles; ++tile) {
        for (int chunk = 0; chunk < kChunks; ++chunk) {
          const int col = chunk * (kChunkBytes / 2) + unit * 8;  // the unit's first element
          float x[8][8];
#pragma unroll
          for (int i = 0; i < 8; ++i) {
            const bool row_valid = i * 16 < rows_left;
            const float* row_src = reinterpret_cast<const float*>(row_valid ? src + i * src_step : p.e) + col;
            load_floats8(x[i], row_src, row_valid, col, p.dim, p.copy_e);
          }
          mbar_wait(smem_addr(empty_bar + stage), phase ^ 1);
          unsigned char* dst = e_s + stage * kStageBytes;
#pragma unroll
          for (int i = 0; i < 8; ++i) {
            const int row = first + 16 * i;
            const uint4 v = make_uint4(pack_bf16x2(x[i][0], x[i][1]), pack_bf16x2(x[i][2], x[i][3]),
                                       pack_bf16x2(x[i][4], x[i][5]), pack_bf16x2(x[i][6], x[i][7]));
            *reinterpret_cast<uint4*>(dst + row * kChunkBytes + swizzle128(row, unit * 16)) = v;
          }
          fence_proxy_async();
          mbar_arrive(smem_addr(full_bar + stage));
          if (++stage == num_stages) {
            stage = 0;
            phase ^= 1;
          }
        }
        src += tile_bytes;
        rows_left -= kTileN;
      }
      return;
    }
  } else if constexpr (kWgmma) {
    if (copier) {
      // Copies every step (tile, chunk) in order into the next stage once it is empty; never waits
      // for its own copies (the full mbarrier does), so that up to num_stages steps are in flight.
      const int ctid = tid - kWgmmaWarps * 32;
      const int per_row = kChunkBytes / p.copy_e;  // copies per row and chunk
      const int first = ctid / per_row;
      const int col = (ctid % per_row) * p.copy_e;
      const int64_t src_step = static_cast<int64_t>(128 / per_row) * p.e_stride;
      const char* src = p.e + static_cast<int64_t>(n_begin + first) * p.e_stride + col;  // the tile's
      int rows_left = n_end - n_begin - first;
      int stage = 0, phase = 0;
      for (int tile = 0; tile < num_tiles; ++tile) {
        for (int chunk = 0; chunk < kChunks; ++chunk) {
          mbar_wait(smem_addr(empty_bar + stage), phase ^ 1);
          const unsigned dst = smem_addr(e_s) + stage * kStageBytes;
          const bool col_valid = chunk * kChunkBytes + col < p.row_bytes;
          const char* chunk_src = src + chunk * kChunkBytes;
          if (p.copy_e == 16) {
            copy_stage<16, kStageRow, 128, true>(dst, first, col, chunk_src, src_step, rows_left, col_valid, p.e);
          } else if (p.copy_e == 8) {
            copy_stage<8, kStageRow, 128, true>(dst, first, col, chunk_src, src_step, rows_left, col_valid, p.e);
          } else {
            copy_stage<4, kStageRow, 128, true>(dst, first, col, chunk_src, src_step, rows_left, col_valid, p.e);
          }
          cp_async_mbar_arrive(smem_addr(full_bar + stage));
          if (++stage == num_stages) {
            stage = 0;
            phase ^= 1;
          }
        }
        src += tile_bytes;
        rows_left -= kTileN;
      }
      cp_async_wait<0>();
      return;
    }
  }

  // wgmma: the warp's query rows as A fragments (rows 16 warp + g (+ 8), zero-padded to whole
  // chunks), loaded once. mma.sync: the query rows to shared memory, zero-padded to dpad_bytes, as a
  // cp.async group of its own that the first step waits for.
  uint32_t a_frag[kWgmma ? kChunks : 1][kChunkBytes / 32][4];
  if constexpr (kWgmma) {
#pragma unroll
    for (int c = 0; c < kChunks; ++c)
#pragma unroll
      for (int ks = 0; ks < kChunkBytes / 32; ++ks)
#pragma unroll
        for (int i = 0; i < 4; ++i) {
          const int row = row0 + wm * 16 + g + (i & 1) * 8;
          const int byte = c * kChunkBytes + ks * 32 + (i >> 1) * 16 + t4 * 4;
          if constexpr (kFilter) {  // float32 rows, rounded to bf16: element `byte / 2` and the next
            const float* q_row = reinterpret_cast<const float*>(p.q) + static_cast<int64_t>(row) * p.dim;
            const int elem = byte / 2;
            const bool valid = row < p.num_queries;
            a_frag[c][ks][i] = pack_bf16x2(valid && elem < p.dim ? __ldg(q_row + elem) : 0.0f,
                                           valid && elem + 1 < p.dim ? __ldg(q_row + elem + 1) : 0.0f);
          } else {
            a_frag[c][ks][i] =
                row < p.num_queries && byte < p.row_bytes
                    ? __ldg(reinterpret_cast<const uint32_t*>(p.q + static_cast<int64_t>(row) * p.row_bytes + byte))
                    : 0u;
          }
        }
  } else {
    const int units = p.dpad_bytes / p.copy_q;
    for (int u = tid; u < BM * units; u += kThreads) {
      const int r = u / units;
      const int byte = (u - r * units) * p.copy_q;
      const bool valid = row0 + r < p.num_queries && byte < p.row_bytes;
      const char* src = valid ? p.q + static_cast<int64_t>(row0 + r) * p.row_bytes + byte : p.q;
      cp_async_any(smem_addr(q_s + r * p.q_stride + byte), src, p.copy_q, valid);
    }
    cp_async_commit();
  }

  // mma.sync candidate copies: the thread always moves the same column bytes of rows r_first +
  // i * r_step; steps (tile, chunk) are issued in order, kPipe - 1 ahead of use.
  const int total = num_tiles * num_chunks;
  const int per_row = kChunkBytes / p.copy_e;
  const int r_first = tid / per_row;
  const int col_byte = (tid % per_row) * p.copy_e;
  const int64_t src_step = static_cast<int64_t>(kThreads / per_row) * p.e_stride;
  const char* ld_src = p.e + static_cast<int64_t>(n_begin + r_first) * p.e_stride + col_byte;  // tile's row
  int ld_step = 0, ld_chunk = 0, ld_stage = 0;
  int ld_rows_left = n_end - n_begin - r_first;  // rows of the loading tile from r_first on
  auto load_next = [&]() {
    if (ld_step < total) {
      const unsigned dst = smem_addr(e_s) + ld_stage * kStageBytes;
      const char* src = ld_src + ld_chunk * kChunkBytes;
      const bool col_valid = ld_chunk * kChunkBytes + col_byte < p.row_bytes;
      if (p.copy_e == 16) {
        copy_stage<16, kStageRow, kThreads, false>(dst, r_first, col_byte, src, src_step, ld_rows_left, col_valid, p.e);
      } else if (p.copy_e == 8) {
        copy_stage<8, kStageRow, kThreads, false>(dst, r_first, col_byte, src, src_step, ld_rows_left, col_valid, p.e);
      } else {
        copy_stage<4, kStageRow, kThreads, false>(dst, r_first, col_byte, src, src_step, ld_rows_left, col_valid, p.e);
      }
    }
    cp_async_commit();
    ++ld_step;
    ld_stage = ld_stage + 1 == kPipe ? 0 : ld_stage + 1;
    if (++ld_chunk == num_chunks) {
      ld_chunk = 0;
      ld_src += tile_bytes;
      ld_rows_left -= kTileN;
    }
  };
  if constexpr (!kWgmma) {
#pragma unroll
    for (int s = 0; s < kPipe - 1; ++s) load_next();
  }

  // Lane-dependent parts of the ldmatrix addresses (see the fragment layouts of mma.sync).
  const unsigned q_lane = smem_addr(q_s) + (wm * L::kRows + (lane & 15)) * p.q_stride + (lane >> 4) * 16;
  const unsigned e_lane = (wn * L::kCols + (lane >> 4) * 8 + (lane & 7)) * kStageStride + ((lane >> 3) & 1) * 16;

  float acc[MT][NT][4];
  float group_best[MT][2][L::kParts];  // seed pass: the thread's maxima of its rows in the current group
#pragma unroll
  for (int mt = 0; mt < MT; ++mt)
#pragma unroll
    for (int h = 0; h < 2; ++h)
#pragma unroll
      for (int part = 0; part < L::kParts; ++part) group_best[mt][h][part] = -INFINITY;

  // Pending scores: a bit per score of the thread, bit (2 (mt) + h) NT + nt) 2 + cc for
  // acc[mt][nt][2 h + cc], so that each of its rows (mt, h) has a run of 2 NT bits.
  using Mask = std::conditional_t<(L::kSlots > 32), uint64_t, uint32_t>;
  constexpr int kRun = 2 * NT;
  auto slot = [](int mt, int h, int nt, int cc) { return ((mt * 2 + h) * NT + nt) * 2 + cc; };

  // Appends the pending scores that are not excluded to their rows' buffers; a bit stays set
  // when its buffer is full. Scores pass rarely (a thread has any in about one tile in 20), so the
  // thread visits only its set bits (a warp runs as many rounds as its busiest lane) and picks each
  // score by a chain of selects: registers cannot be indexed at run time.
  auto append = [&](Mask& pending, int t0, const uint32_t* mask) {
    Mask todo = pending;
    while (todo != 0) {
      const int i = (sizeof(Mask) == 8 ? __ffsll(static_cast<long long>(todo)) : __ffs(static_cast<int>(todo))) - 1;
      todo &= todo - 1;
      const int run = i / kRun;  // 2 mt + h
      const int j = i % kRun;    // 2 nt + cc
      const int r = wm * L::kRows + (run >> 1) * 16 + g + 8 * (run & 1);
      const int c = wn * L::kCols + (j >> 1) * 8 + 2 * t4 + (j & 1);
      bool done = (mask[r * kMaskWords + (c >> 5)] >> (c & 31)) & 1;  // excluded
      if (!done) {
        const int pos = atomicAdd(&cnt[r], 1);
        if (pos < kBufCap) {
          float v = acc[0][0][0];
#pragma unroll
          for (int mt = 0; mt < MT; ++mt)
#pragma unroll
            for (int h = 0; h < 2; ++h)
#pragma unroll
              for (int nt = 0; nt < NT; ++nt)
#pragma unroll
                for (int cc = 0; cc < 2; ++cc) v = i == slot(mt, h, nt, cc) ? acc[mt][nt][2 * h + cc] : v;
          buf_v[r * kBufCap + pos] = v;
          buf_i[r * kBufCap + pos] = t0 + c;
          done = true;
        }
      }
      if (done) pending &= ~(Mask(1) << i);
    }
  };

  // Scores that reach their row's threshold (ties pass: the merge orders them by index) and whose
  // candidate exists. Thresholds are at least -FLT_MAX, which -inf and NaN scores never reach.
  // select() builds the bits from scratch (a row whose best score misses costs one compare);
  // refilter() clears the bits that a raised threshold no longer lets through.
  auto thresholds = [&](float (&th)[MT][2]) {
#pragma unroll
    for (int mt = 0; mt < MT; ++mt)
#pragma unroll
      for (int h = 0; h < 2; ++h) th[mt][h] = theta[wm * L::kRows + mt * 16 + g + 8 * h];
  };
  auto select = [&](int t0) {
    const bool last_tile = t0 + kTileN > n_end;
    float th[MT][2];
    thresholds(th);
    Mask pending = 0;
#pragma unroll
    for (int mt = 0; mt < MT; ++mt)
#pragma unroll
      for (int h = 0; h < 2; ++h) {
        // The row's best score by a tree of maxima: a chain of 2 NT dependent ones is slow.
        float m[NT];
#pragma unroll
        for (int nt = 0; nt < NT; ++nt) m[nt] = fmaxf(acc[mt][nt][2 * h], acc[mt][nt][2 * h + 1]);
#pragma unroll
        for (int level = 1; level < NT; level *= 2)
#pragma unroll
          for (int nt = 0; nt + level < NT; nt += 2 * level) m[nt] = fmaxf(m[nt], m[nt + level]);
        if (m[0] >= th[mt][h]) {
#pragma unroll
          for (int nt = 0; nt < NT; ++nt)
#pragma unroll
            for (int cc = 0; cc < 2; ++cc) {
              const int n = t0 + wn * L::kCols + nt * 8 + 2 * t4 + cc;
              const bool keep = acc[mt][nt][2 * h + cc] >= th[mt][h] && (!last_tile || n < n_end);
              if (keep) pending |= Mask(1) << slot(mt, h, nt, cc);
            }
        }
      }
    return pending;
  };
  auto refilter = [&](Mask& pending) {
    float th[MT][2];
    thresholds(th);
#pragma unroll
    for (int mt = 0; mt < MT; ++mt)
#pragma unroll
      for (int nt = 0; nt < NT; ++nt)
#pragma unroll
        for (int e = 0; e < 4; ++e) {
          if (!(acc[mt][nt][e] >= th[mt][e >> 1])) pending &= ~(Mask(1) << slot(mt, e >> 1, nt, e & 1));
        }
  };

  // Merges every non-empty buffer of the team's rows into its row's list (the team's warp w takes
  // its rows w, w + kTeamWarps, ...).
  auto merge_buffers = [&]() {
    for (int r = team_row0 + team_tid / 32; r < team_row0 + kTeamRows; r += kTeamWarps) {
      const int c = min(cnt[r], kBufCap);
      if (c > 0) {
        const int f = merge_into_list<KMAX>(list_v + r * KMAX, list_i + r * KMAX, fill[r], buf_v + r * kBufCap,
                                            buf_i + r * kBufCap, c, p.k, lane);
        if (lane == 0) {
          fill[r] = f;
          theta[r] = f == p.k ? fmaxf(list_v[r * KMAX + p.k - 1], -FLT_MAX) : floor_threshold(r);
          cnt[r] = 0;
        }
      }
      __syncwarp();
    }
  };

  int stage = 0;  // of the step being computed
  int phase = 0;  // wgmma: parity of the stage's full phase being waited for
  for (int tile = 0; tile < num_tiles; ++tile) {
    const int t0 = n_begin + tile * kTileN;
    if constexpr (kWgmma) {
      // Each chunk once its stage is full; the stage of the chunk before is released once its
      // wgmma group has completed (wgmma_chunk waits for it), the tile's last one after the tile.
      int prev = 0;
#pragma unroll
      for (int chunk = 0; chunk < kChunks; ++chunk) {
        mbar_wait(smem_addr(full_bar + stage), phase);
        fence_proxy_async();
        wgmma_chunk(acc[0], a_frag[chunk], smem_addr(e_s) + stage * kStageBytes, chunk > 0);
        if (chunk > 0) mbar_arrive(smem_addr(empty_bar + prev));
        prev = stage;
        if (++stage == num_stages) {
          stage = 0;
          phase ^= 1;
        }
      }
      wgmma_wait_all(acc[0]);
      mbar_arrive(smem_addr(empty_bar + prev));
    } else {
#pragma unroll
      for (int mt = 0; mt < MT; ++mt)
#pragma unroll
        for (int nt = 0; nt < NT; ++nt)
#pragma unroll
          for (int e = 0; e < 4; ++e) acc[mt][nt][e] = 0.0f;
      for (int chunk = 0; chunk < num_chunks; ++chunk) {
        cp_async_wait<kPipe - 2>();
        __syncthreads();
        load_next();
        // Tensor-core scores of this chunk: 32 bytes of every row per k-step; the fragments of the
        // next k-step are loaded before the mma of this one.
        const int k_steps = min(kChunkBytes, p.dpad_bytes - chunk * kChunkBytes) / 32;
        const unsigned q_base = q_lane + chunk * kChunkBytes;
        const unsigned e_base = smem_addr(e_s + stage * kStageBytes) + e_lane;
        uint32_t a[2][MT][4], b[2][NT][2];
        auto load_fragments = [&](int buf, int ks) {
#pragma unroll
          for (int mt = 0; mt < MT; ++mt) ldmatrix_x4(a[buf][mt], q_base + mt * 16 * p.q_stride + ks * 32);
#pragma unroll
          for (int pr = 0; pr < NT / 2; ++pr) {
            uint32_t r[4];
            ldmatrix_x4(r, e_base + pr * 16 * kStageStride + ks * 32);
            b[buf][2 * pr][0] = r[0];
            b[buf][2 * pr][1] = r[1];
            b[buf][2 * pr + 1][0] = r[2];
            b[buf][2 * pr + 1][1] = r[3];
          }
        };
        load_fragments(0, 0);
#pragma unroll
        for (int ks = 0; ks < kChunkBytes / 32; ++ks) {
          if (ks < k_steps) {
            const int cur = ks & 1;
            if (ks + 1 < kChunkBytes / 32 && ks + 1 < k_steps) load_fragments(cur ^ 1, ks + 1);
            if constexpr (kBF16) {
#pragma unroll
              for (int mt = 0; mt < MT; ++mt)
#pragma unroll
                for (int nt = 0; nt < NT; ++nt) mma_bf16(acc[mt][nt], a[cur][mt], b[cur][nt]);
            } else {  // float32, filtered: one tf32 product
              uint32_t bt[NT][2];
#pragma unroll
              for (int nt = 0; nt < NT; ++nt)
#pragma unroll
                for (int i = 0; i < 2; ++i) bt[nt][i] = to_tf32(b[cur][nt][i]);
#pragma unroll
              for (int mt = 0; mt < MT; ++mt) {
                uint32_t at[4];
#pragma unroll
                for (int i = 0; i < 4; ++i) at[i] = to_tf32(a[cur][mt][i]);
#pragma unroll
                for (int nt = 0; nt < NT; ++nt) mma_tf32(acc[mt][nt], at, bt[nt]);
              }
            }
          }
        }
        stage = stage + 1 == kPipe ? 0 : stage + 1;
      }
    }

    // ---- epilogue of the tile: scale, filter, append, merge on overflow ----
    const uint32_t* mask = xmask + (tile & 1) * BM * kMaskWords;
    if (p.q_scale != nullptr) {
#pragma unroll
      for (int nt = 0; nt < NT; ++nt) {
#pragma unroll
        for (int cc = 0; cc < 2; ++cc) {
          const int n = t0 + wn * L::kCols + nt * 8 + 2 * t4 + cc;
          const float es = n < n_end ? p.e_scale[n] : 0.0f;
#pragma unroll
          for (int mt = 0; mt < MT; ++mt) {
#pragma unroll
            for (int h = 0; h < 2; ++h) {
              const int row = row0 + wm * L::kRows + mt * 16 + g + 8 * h;
              const float qs = row < p.num_queries ? p.q_scale[row] : 0.0f;
              acc[mt][nt][2 * h + cc] = acc[mt][nt][2 * h + cc] * qs * es;
            }
          }
        }
      }
    }
    if constexpr (kFilter) {
      // Bounds of the exact scores: v -/+ m, m = q_margin[row] e_margin[n] (see "Float32" above).
      // acc becomes the lower bounds v - m (-inf where v or m is not finite), which the rest of the
      // epilogue selects as the scores. Survivors (main pass): candidates that exist, are not
      // excluded and whose upper bound v + m reaches the row's threshold (or whose bounds are not
      // finite), appended to the row's list in global memory with the upper bound lo + 2 m (+inf where
      // not finite; its rounding is far inside the factor 2 of gamma).
      float qm[MT][2], th[MT][2];
#pragma unroll
      for (int mt = 0; mt < MT; ++mt)
#pragma unroll
        for (int h = 0; h < 2; ++h) {
          const int row = row0 + wm * L::kRows + mt * 16 + g + 8 * h;
          qm[mt][h] = row < p.num_queries ? p.q_margin[row] : 0.0f;
          th[mt][h] = kSeed ? INFINITY : theta[wm * L::kRows + mt * 16 + g + 8 * h];  // padding rows: INFINITY
        }
      Mask survive = 0;
#pragma unroll
      for (int nt = 0; nt < NT; ++nt)
#pragma unroll
        for (int cc = 0; cc < 2; ++cc) {
          const int n = t0 + wn * L::kCols + nt * 8 + 2 * t4 + cc;
          const float em = n < n_end ? p.e_margin[n] : 0.0f;
#pragma unroll
          for (int mt = 0; mt < MT; ++mt)
#pragma unroll
            for (int h = 0; h < 2; ++h) {
              float& a = acc[mt][nt][2 * h + cc];
              const float m = qm[mt][h] * em;
              const bool bounded = fabsf(a) <= FLT_MAX && m <= FLT_MAX;  // false for NaN
              if (!kSeed && n < n_end && th[mt][h] < INFINITY && !(bounded && a + m < th[mt][h])) {
                survive |= Mask(1) << slot(mt, h, nt, cc);
              }
              a = bounded ? a - m : -INFINITY;
            }
        }
      while (survive != 0) {  // rare: visit the set bits only (as append does)
        const int i =
            (sizeof(Mask) == 8 ? __ffsll(static_cast<long long>(survive)) : __ffs(static_cast<int>(survive))) - 1;
        survive &= survive - 1;
        const int run = i / kRun;
        const int j = i % kRun;
        const int r = wm * L::kRows + (run >> 1) * 16 + g + 8 * (run & 1);
        const int c = wn * L::kCols + (j >> 1) * 8 + 2 * t4 + (j & 1);
        if ((mask[r * kMaskWords + (c >> 5)] >> (c & 31)) & 1) continue;  // excluded
        float lo = acc[0][0][0];
#pragma unroll
        for (int mt = 0; mt < MT; ++mt)
#pragma unroll
          for (int h = 0; h < 2; ++h)
#pragma unroll
            for (int nt = 0; nt < NT; ++nt)
#pragma unroll
              for (int cc = 0; cc < 2; ++cc) lo = i == slot(mt, h, nt, cc) ? acc[mt][nt][2 * h + cc] : lo;
        const int row = row0 + r;
        const float m = p.q_margin[row] * p.e_margin[t0 + c];
        const int pos = atomicAdd(p.surv_count + row, 1);
        if (pos < p.surv_cap) {
          const int64_t at = static_cast<int64_t>(row) * p.surv_cap + pos;
          p.surv_upper[at] = lo > -INFINITY ? lo + 2.0f * m : INFINITY;
          p.surv_index[at] = t0 + c;
        }
      }
    }
    if constexpr (kSeed) {
      // Group maxima over the candidates that exist and are not excluded; NaN never wins fmaxf.
#pragma unroll
      for (int mt = 0; mt < MT; ++mt)
#pragma unroll
        for (int h = 0; h < 2; ++h) {
          const int r = wm * L::kRows + mt * 16 + g + 8 * h;
#pragma unroll
          for (int nt = 0; nt < NT; ++nt)
#pragma unroll
            for (int cc = 0; cc < 2; ++cc) {
              const int c = wn * L::kCols + nt * 8 + 2 * t4 + cc;
              const bool excluded = p.m > 0 && ((mask[r * kMaskWords + (c >> 5)] >> (c & 31)) & 1);
              float& best = group_best[mt][h][nt / (NT / L::kParts)];
              if (t0 + c < n_end && !excluded) best = fmaxf(best, acc[mt][nt][2 * h + cc]);
            }
        }
      if ((tile + 1) % p.group_tiles == 0 || tile + 1 == num_tiles) {
        const int groups_per_split = (p.tiles_per_split + p.group_tiles - 1) / p.group_tiles;
        const int group0 = (split * groups_per_split + tile / p.group_tiles) * L::kGroups + wn * L::kParts * 4 + t4;
#pragma unroll
        for (int mt = 0; mt < MT; ++mt)
#pragma unroll
          for (int h = 0; h < 2; ++h) {
            const int row = row0 + wm * L::kRows + mt * 16 + g + 8 * h;
#pragma unroll
            for (int part = 0; part < L::kParts; ++part) {
              if (row < p.num_queries) {
                p.group_max[static_cast<int64_t>(row) * p.groups + group0 + part * 4] = group_best[mt][h][part];
              }
              group_best[mt][h][part] = -INFINITY;
            }
          }
      }
      if (tile + 1 < num_tiles) build_mask(tile + 1);
      if constexpr (kWgmma) team_sync();  // (mma.sync: the next tile's barriers)
    } else {
      Mask pending = select(t0);
      if (pending) append(pending, t0, mask);
      if (tile + 1 < num_tiles) build_mask(tile + 1);
      while (team_any(pending != 0)) {
        merge_buffers();
        team_sync();
        refilter(pending);
        if (pending) append(pending, t0, mask);
      }
    }
  }

  if constexpr (!kWgmma) cp_async_wait<0>();
  if constexpr (kSeed) return;
  team_sync();
  merge_buffers();
  team_sync();

  for (int r = team_row0 + team_tid / 32; r < team_row0 + kTeamRows; r += kTeamWarps) {
    const int row = row0 + r;
    if (row >= p.num_queries) continue;
    const int f = fill[r];
    const int64_t base = (static_cast<int64_t>(row) * p.splits + split) * p.k;
    for (int pos = lane; pos < p.k; pos += 32) {
      p.part_v[base + pos] = pos < f ? list_v[r * KMAX + pos] : -INFINITY;
      p.part_i[base + pos] = pos < f ? list_i[r * KMAX + pos] : -1;
    }
  }
}

// The warp merges the sorted run src_v/src_i[0..len) (valid pairs first, then index -1) into its
// sorted list lv/li of `fill` pairs, through the 32-pair staging buffer bv/bi; returns the new fill.
// src may be global or shared memory.
template <int KMAX>
__device__ int merge_run(float* lv, int* li, int fill, const float* src_v, const int* src_i, int len, int k, float* bv,
                         int* bi, int lane) {
  for (int c0 = 0; c0 < len; c0 += 32) {
    float v = -INFINITY;
    int i = -1;
    if (c0 + lane < len) {
      v = src_v[c0 + lane];
      i = src_i[c0 + lane];
    }
    const int c = __popc(__ballot_sync(kAllLanes, i >= 0));  // valid pairs form a prefix
    if (c == 0) break;
    if (fill == k) {  // the rest of the run cannot enter when its best cannot
      const float v0 = __shfl_sync(kAllLanes, v, 0);
      const int i0 = __shfl_sync(kAllLanes, i, 0);
      if (!ranks_before(v0, i0, lv[k - 1], li[k - 1])) break;
    }
    bv[lane] = v;
    bi[lane] = i;
    __syncwarp();
    fill = merge_into_list<KMAX>(lv, li, fill, bv, bi, c, k, lane);
  }
  return fill;
}

// A block per query merges its `splits` partial lists (each sorted, padding last; those of a row
// start row_stride pairs apart, list s at s k) into the output: each of its blockDim.x / 32 warps
// (a power of two, <= kMergeWarps) merges every so many splits into a list of its own, then the
// warps' lists are merged pairwise in shared memory (dynamic: per warp KMAX pairs, 32 staged pairs
// and a fill). More warps overlap the loads of more splits. rows: null (block b merges row b), or
// the rows to merge, *num_rows of them, taken by the blocks in turn.
template <int KMAX>
__global__ void __launch_bounds__(kMergeWarps * 32)
    merge_splits_kernel(const float* __restrict__ part_v, const int* __restrict__ part_i, int splits,
                        int64_t row_stride, int k, float* __restrict__ values, int64_t* __restrict__ indices,
                        const int* __restrict__ rows, const int* __restrict__ num_rows) {
  const int lane = threadIdx.x & 31;
  const int w = threadIdx.x >> 5;
  const int warps = blockDim.x >> 5;
  extern __shared__ float merge_smem[];
  float* lv = merge_smem;                                 // [warps][KMAX]
  int* li = reinterpret_cast<int*>(lv + warps * KMAX);    // [warps][KMAX]
  float* bv = reinterpret_cast<float*>(li + warps * KMAX);  // [warps][32]
  int* bi = reinterpret_cast<int*>(bv + warps * 32);      // [warps][32]
  int* fills = bi + warps * 32;                           // [warps]
  const int count = rows == nullptr ? static_cast<int>(gridDim.x) : *num_rows;
  for (int item = blockIdx.x; item < count; item += gridDim.x) {
    const int64_t row = rows == nullptr ? item : rows[item];
    int fill = 0;
    for (int s = w; s < splits; s += warps) {
      const int64_t base = row * row_stride + static_cast<int64_t>(s) * k;
      fill = merge_run<KMAX>(lv + w * KMAX, li + w * KMAX, fill, part_v + base, part_i + base, k, k, bv + w * 32,
                             bi + w * 32, lane);
    }
    if (lane == 0) fills[w] = fill;
    for (int step = 1; step < warps; step <<= 1) {
      __syncthreads();
      if (w % (2 * step) == 0 && w + step < warps) {
        const int src = w + step;
        fill = merge_run<KMAX>(lv + w * KMAX, li + w * KMAX, fill, lv + src * KMAX, li + src * KMAX, fills[src], k,
                               bv + w * 32, bi + w * 32, lane);
        if (lane == 0) fills[w] = fill;
      }
    }
    if (w == 0) {
      for (int pos = lane; pos < k; pos += 32) {
        values[row * k + pos] = pos < fill ? lv[pos] : -INFINITY;
        indices[row * k + pos] = pos < fill ? li[pos] : -1;
      }
    }
    __syncthreads();  // the next row reuses the lists
  }
}

// Order-preserving keys of floats: a larger float has a larger key (-0 just below +0).
__device__ __forceinline__ uint32_t order_key(float x) {
  const uint32_t u = __float_as_uint(x);
  return (u & 0x80000000u) ? ~u : (u | 0x80000000u);
}

__device__ __forceinline__ float key_value(uint32_t key) {
  return __uint_as_float((key & 0x80000000u) ? (key & 0x7fffffffu) : ~key);
}

// A block per query: seed[row] = the k-th largest of its `groups` group maxima (k <= groups; -inf
// when fewer than k are finite), by a radix select over their order-preserving keys: 4 rounds of
// 8 bits from the top, each counting the keys that match the digits found so far into 256 bins and
// finding, from the largest bin down, the one that holds the k-th. Lanes of a warp that hit the
// same bin add once (match_any): maxima of one query mostly share their top bits. Group maxima are
// never NaN.
__global__ void __launch_bounds__(kSelectThreads)
    kth_group_max_kernel(const float* __restrict__ group_max, int groups, int k, float* __restrict__ seed) {
  static_assert(kSelectThreads == 256, "a thread per bin");
  constexpr int kSelectWarps = kSelectThreads / 32;
  extern __shared__ uint32_t keys[];  // [groups]
  __shared__ int bins[256];
  __shared__ int warp_sums[kSelectWarps];
  __shared__ uint32_t found_prefix;
  __shared__ int found_rank;
  const int tid = threadIdx.x;
  const int lane = tid & 31;
  const int warp = tid >> 5;
  const float* src = group_max + static_cast<int64_t>(blockIdx.x) * groups;
  for (int i = tid; i < groups; i += kSelectThreads) keys[i] = order_key(src[i]);
  uint32_t prefix = 0;  // the digits found so far
  int rank = k;         // the wanted key is the rank-th largest of the keys that match them
  for (int shift = 24; shift >= 0; shift -= 8) {
    bins[tid] = 0;
    __syncthreads();
    const uint32_t found_mask = shift == 24 ? 0u : ~0u << (shift + 8);
    for (int base = warp * 32; base < groups; base += kSelectThreads) {  // whole warps: match_any
      const int i = base + lane;
      const uint32_t key = i < groups ? keys[i] : 0u;
      const bool match = i < groups && (key & found_mask) == prefix;
      const int bin = match ? static_cast<int>((key >> shift) & 255u) : -1;
      const unsigned peers = __match_any_sync(kAllLanes, bin);
      if (match && lane == __ffs(peers) - 1) atomicAdd(&bins[bin], __popc(peers));
    }
    __syncthreads();
    // Thread t takes bin 255 - t; incl: the matching keys in bins 255 - t .. 255.
    const int count = bins[255 - tid];
    int incl = count;
#pragma unroll
    for (int o = 1; o < 32; o <<= 1) {
      const int x = __shfl_up_sync(kAllLanes, incl, o);
      if (lane >= o) incl += x;
    }
    if (lane == 31) warp_sums[warp] = incl;
    __syncthreads();
    for (int w = 0; w < warp; ++w) incl += warp_sums[w];
    const int excl = incl - count;
    if (excl < rank && rank <= incl) {  // exactly one thread: the matching keys number >= rank
      found_prefix = prefix | (static_cast<uint32_t>(255 - tid) << shift);
      found_rank = rank - excl;
    }
    __syncthreads();
    prefix = found_prefix;
    rank = found_rank;
  }
  if (tid == 0) seed[blockIdx.x] = key_value(prefix);
}

// ---- float32: bounds, exact rescoring, fallback ----------------------------------------------

// Lower limit of the norms in the margins: the bound's absolute part (underflow) stays below
// gamma max(|q|, a) max(|e|, a) for d < 2^14.
constexpr double kMarginFloor = 0x1p-52;

// gamma of the margins (see "Float32" above) for rows of d elements.
double filter_gamma(int64_t d) {
  return 2.0 * (0x1p-8 + 0x1p-17 + static_cast<double>(d + 16) * 0x1p-22 + 0x1p-20);
}

// A warp per row of x ([rows] of d floats, stride elements apart): scale[row] = 1 / max(|x|, eps)
// (where scale is not null; else the scale is 1) and margin[row] = factor max(|x|, a) scale, rounded
// up; +inf where the row holds a subnormal element (rounding it has no relative error bound), NaN
// where it holds NaN.
__global__ void __launch_bounds__(256)
    row_bounds_kernel(const float* __restrict__ x, int64_t stride, int64_t rows, int d, double factor,
                      float* __restrict__ scale, float* __restrict__ margin) {
  const int lane = threadIdx.x & 31;
  const int64_t row = static_cast<int64_t>(blockIdx.x) * (blockDim.x / 32) + (threadIdx.x >> 5);
  if (row >= rows) return;
  const float* r = x + row * stride;
  double sum = 0.0;
  bool subnormal = false;
  for (int i = lane; i < d; i += 32) {
    const float v = r[i];
    sum = fma(static_cast<double>(v), static_cast<double>(v), sum);
    subnormal |= v != 0.0f && fabsf(v) < FLT_MIN;
  }
#pragma unroll
  for (int o = 16; o > 0; o >>= 1) sum += __shfl_xor_sync(kAllLanes, sum, o);
  subnormal = __any_sync(kAllLanes, subnormal);
  if (lane == 0) {
    const double len = sqrt(sum);
    const double s = scale != nullptr ? 1.0 / (len < kTopkNormEps ? kTopkNormEps : len) : 1.0;
    if (scale != nullptr) scale[row] = static_cast<float>(s);
    margin[row] = subnormal ? INFINITY : __double2float_ru(factor * (len < kMarginFloor ? kMarginFloor : len) * s);
  }
}

// sum_i x_i y_i in float64 in the order of the CPU's exact_dot (csrc/topk_ops.cpp), by a half-warp:
// lane hl (< 16) of the half sums the products of elements hl, hl + 16, ... in order (products of
// floats are exact in float64, so fma adds them as mul + add would), then s_l += s_{l + 8}, s_l +=
// s_{l + 4}, s_l += s_{l + 2}, s_l += s_{l + 1}. The whole warp calls it (each half with its own x,
// y); the sum is in lane hl = 0.
__device__ __forceinline__ double exact_dot16(const float* x, const float* y, int d, int hl) {
  double s = 0.0;
  for (int i = hl; i < d; i += 16) s = fma(static_cast<double>(x[i]), static_cast<double>(y[i]), s);
#pragma unroll
  for (int o = 8; o > 0; o >>= 1) s += __shfl_down_sync(kAllLanes, s, o, 16);
  return s;
}

// max(|x|, eps) as the CPU has it: std::max(sqrt(exact_dot(x, x)), eps); in lane hl = 0.
__device__ __forceinline__ double exact_length16(const float* x, int d, int hl) {
  const double len = sqrt(exact_dot16(x, x, d, hl));
  return len < kTopkNormEps ? kTopkNormEps : len;
}

struct ExactParams {
  const float* q;          // [B, d] contiguous
  const float* e;          // [N] rows of d, e_stride elements apart
  int64_t e_stride;
  int dim, num_queries, num_candidates, k;
  bool normalize;
  const int64_t* excl;     // [B, m] sorted rows
  int64_t m;
  float* surv_upper;       // [B, surv_cap]; fallback rows: their partial lists [fb_splits, k]
  int* surv_index;
  const int* surv_count;   // [B]
  int surv_cap;
  int* fb_rows;            // [B] rows whose survivors overflowed, *fb_count of them
  int* fb_count;
  int fb_splits;           // candidate splits of a fallback row, fb_splits k <= surv_cap
  float* values;           // [B, k] in: the merged lower bounds; out: the results
  int64_t* indices;
};

constexpr int kExactWarps = 4;  // per block of the rescoring and fallback kernels

// A warp's shared state in the exact kernels: its list, staged pairs, candidates and their scores.
template <int KMAX>
struct ExactWarp {
  float lv[KMAX];
  int li[KMAX];
  float bv[32];
  int bi[32];
  int ids[32];
  float vals[32];
};

// Scores the c (1..32) candidates w.ids[0..c) exactly, as the CPU does (float64, rounded once to
// float32; cosine: dot / max(|q|, eps) / max(|e|, eps)), two at a time (a half-warp each), and merges
// those that can enter (not NaN or -inf; ranking before the k-th when the list is full) into the
// warp's list of `fill` pairs; returns the new fill. The whole warp calls it.
template <int KMAX>
__device__ int offer_exact(const ExactParams& p, const float* q, double q_len, ExactWarp<KMAX>& w, int c, int fill,
                           int lane) {
  const int half = lane >> 4;
  const int hl = lane & 15;
  for (int j = 0; j < c; j += 2) {
    const int jj = min(j + half, c - 1);  // an odd last one: both halves score it
    const float* e = p.e + static_cast<int64_t>(w.ids[jj]) * p.e_stride;
    double score = exact_dot16(q, e, p.dim, hl);
    if (p.normalize) score = score / q_len / exact_length16(e, p.dim, hl);
    if (hl == 0) w.vals[jj] = static_cast<float>(score);
  }
  __syncwarp();
  const float v = lane < c ? w.vals[lane] : -INFINITY;
  const int id = lane < c ? w.ids[lane] : INT_MAX;
  const bool enter = v > -INFINITY && (fill < p.k || ranks_before(v, id, w.lv[p.k - 1], w.li[p.k - 1]));
  const unsigned ballot = __ballot_sync(kAllLanes, enter);
  if (enter) {
    const int pos = __popc(ballot & ((1u << lane) - 1u));
    w.bv[pos] = v;
    w.bi[pos] = id;
  }
  __syncwarp();
  if (ballot != 0) fill = merge_into_list<KMAX>(w.lv, w.li, fill, w.bv, w.bi, __popc(ballot), p.k, lane);
  __syncwarp();
  return fill;
}

// Whether id is in the sorted row ex[0..m).
__device__ __forceinline__ bool is_excluded(const int64_t* ex, int64_t m, int64_t id) {
  int64_t lo = 0, hi = m;
  while (lo < hi) {
    const int64_t mid = (lo + hi) >> 1;
    if (ex[mid] < id) {
      lo = mid + 1;
    } else {
      hi = mid;
    }
  }
  return lo < m && ex[lo] == id;
}

// The warp's query row and its length (1 unless cosine), in every lane.
__device__ __forceinline__ double query_length(const ExactParams& p, const float* q, int lane) {
  if (!p.normalize) return 1.0;
  return __shfl_sync(kAllLanes, exact_length16(q, p.dim, lane & 15), 0);
}

// A warp per query: the exact top-k of its survivors whose upper bound reaches its k-th largest
// lower bound (the merged lists in p.values), written over that row of p.values / p.indices. Rows
// whose survivors overflowed are listed in p.fb_rows instead (for fallback_kernel).
template <int KMAX>
__global__ void __launch_bounds__(kExactWarps * 32) rescore_kernel(const ExactParams p) {
  __shared__ ExactWarp<KMAX> warps[kExactWarps];
  const int lane = threadIdx.x & 31;
  ExactWarp<KMAX>& w = warps[threadIdx.x >> 5];
  const int row = blockIdx.x * kExactWarps + (threadIdx.x >> 5);
  if (row >= p.num_queries) return;
  const int count = p.surv_count[row];
  if (count > p.surv_cap) {
    if (lane == 0) p.fb_rows[atomicAdd(p.fb_count, 1)] = row;
    return;
  }
  const float bound = p.values[static_cast<int64_t>(row) * p.k + p.k - 1];
  const float* q = p.q + static_cast<int64_t>(row) * p.dim;
  const double q_len = query_length(p, q, lane);
  const float* upper = p.surv_upper + static_cast<int64_t>(row) * p.surv_cap;
  const int* index = p.surv_index + static_cast<int64_t>(row) * p.surv_cap;
  int fill = 0;
  for (int base = 0; base < count; base += 32) {
    const int i = base + lane;
    const bool pass = i < count && !(upper[i] < bound);
    const unsigned ballot = __ballot_sync(kAllLanes, pass);
    if (pass) w.ids[__popc(ballot & ((1u << lane) - 1u))] = index[i];
    __syncwarp();
    if (ballot != 0) fill = offer_exact<KMAX>(p, q, q_len, w, __popc(ballot), fill, lane);
  }
  for (int pos = lane; pos < p.k; pos += 32) {
    p.values[static_cast<int64_t>(row) * p.k + pos] = pos < fill ? w.lv[pos] : -INFINITY;
    p.indices[static_cast<int64_t>(row) * p.k + pos] = pos < fill ? w.li[pos] : -1;
  }
}

// Rows whose survivors overflowed, exactly over all candidates: warp s of the grid's x dimension
// scans split s of the candidates (fb_splits equal parts) for each listed row (blocks of the y
// dimension take them in turn) and writes its top k as partial list s over the row's survivors;
// merge_splits_kernel then merges them into the row's result.
template <int KMAX>
__global__ void __launch_bounds__(kExactWarps * 32) fallback_kernel(const ExactParams p) {
  __shared__ ExactWarp<KMAX> warps[kExactWarps];
  const int lane = threadIdx.x & 31;
  ExactWarp<KMAX>& w = warps[threadIdx.x >> 5];
  const int split = blockIdx.x * kExactWarps + (threadIdx.x >> 5);
  if (split >= p.fb_splits) return;
  const int per_split = (p.num_candidates + p.fb_splits - 1) / p.fb_splits;
  const int n_begin = min(p.num_candidates, split * per_split);
  const int n_end = min(p.num_candidates, n_begin + per_split);
  const int rows = *p.fb_count;
  for (int item = blockIdx.y; item < rows; item += gridDim.y) {
    const int row = p.fb_rows[item];
    const float* q = p.q + static_cast<int64_t>(row) * p.dim;
    const double q_len = query_length(p, q, lane);
    const int64_t* ex = p.excl + static_cast<int64_t>(row) * p.m;
    int fill = 0;
    for (int base = n_begin; base < n_end; base += 32) {
      const int id = base + lane;
      const bool pass = id < n_end && !is_excluded(ex, p.m, id);
      const unsigned ballot = __ballot_sync(kAllLanes, pass);
      if (pass) w.ids[__popc(ballot & ((1u << lane) - 1u))] = id;
      __syncwarp();
      if (ballot != 0) fill = offer_exact<KMAX>(p, q, q_len, w, __popc(ballot), fill, lane);
    }
    const int64_t at = static_cast<int64_t>(row) * p.surv_cap + static_cast<int64_t>(split) * p.k;
    for (int pos = lane; pos < p.k; pos += 32) {
      p.surv_upper[at + pos] = pos < fill ? w.lv[pos] : -INFINITY;
      p.surv_index[at + pos] = pos < fill ? w.li[pos] : -1;
    }
    __syncwarp();
  }
}

// ---- planning -------------------------------------------------------------------------------

struct Plan {
  int kmax = 0;        // list capacity per row: 64, 128 or 256
  int block_rows = 0;  // BM
  bool wgmma = false;  // the wgmma kernels (topk_dot_kernel<..., true, ...>)
  int chunks = 0;      // wgmma: 128-byte chunks of a bf16 row in shared memory
  int stages = 0;      // of the cp.async pipeline
  int row_bytes = 0, dpad_bytes = 0;
  int smem_bytes = 0;
  int splits = 0, tiles_per_split = 0;
  int seed_tiles = 0;   // tiles per split of the seed pass; 0: no seed pass
  int group_tiles = 0;  // tiles per group of the seed pass
  int groups = 0;       // group maxima per query
  int surv_cap = 0;     // float32: survivors per query
  int fb_splits = 0;    // float32: candidate splits of a fallback row
};

int element_bytes(bool bfloat16) { return bfloat16 ? 2 : 4; }

int kmax_for(int64_t k) { return k <= 64 ? 64 : (k <= 128 ? 128 : 256); }

// BM of the mma.sync kernels: as many query rows as keep the lists at 64 KiB or less and float32
// rows affordable (the wgmma kernels: 128).
int block_rows_for(bool bfloat16, int kmax) {
  if (kmax == 64) return bfloat16 ? 128 : 64;
  return kmax == 128 ? 64 : 32;
}

int64_t shared_bytes(int block_rows, int kmax, int64_t dpad_bytes, bool wgmma, int stages) {
  const int64_t tiles = wgmma ? 1024 + static_cast<int64_t>(stages) * (kTileN * kChunkBytes + 2 * sizeof(uint64_t))
                              : block_rows * (dpad_bytes + 16) + static_cast<int64_t>(stages) * kTileN * kStageStride;
  return tiles + static_cast<int64_t>(block_rows) * kmax * 8 + static_cast<int64_t>(block_rows) * kBufCap * 8 +
         static_cast<int64_t>(block_rows) * 12 + 2LL * block_rows * kMaskWords * 4;
}

int device_attribute(cudaDeviceAttr attr) {
  int device = 0, value = 0;
  cudaGetDevice(&device);
  cudaDeviceGetAttribute(&value, attr, device);
  return value;
}

// Has static shared memory in its sm_90a code only: its attributes tell, without a launch, whether
// the code loaded for the current device (the whole file's, one module) has the wgmma main loop.
__global__ void wgmma_probe_kernel(int* out) {
#if defined(__CUDA_ARCH_FEAT_SM90_ALL)
  __shared__ volatile int flag;  // volatile: kept, though its value is known
  flag = 1;
  *out = flag;
#endif
}

bool wgmma_loaded() {
  cudaFuncAttributes attr;
  if (cudaFuncGetAttributes(&attr, wgmma_probe_kernel) != cudaSuccess) {
    cudaGetLastError();  // no code for this device: the launches will say so
    return false;
  }
  return attr.sharedSizeBytes > 0;
}

// Fills the shape-only part of a plan; false when the kernel does not cover (k, d). The wgmma
// kernels take rows of up to kWgmmaMaxChunks chunks of bf16 (float32 rows: rounded to bf16 on the
// way to shared memory) with lists of 64 (BM = 128), with as many pipeline stages as shared memory
// holds (at least 2, at most kWgmmaMaxStages).
bool plan_shape(int64_t k, int64_t dim, bool bfloat16, Plan& plan) {
  if (k < 1 || k > kTopkMaxK || dim < 1) return false;
  const int64_t row_bytes = (dim * element_bytes(bfloat16) + 3) / 4 * 4;
  const int64_t dpad_bytes = (row_bytes + 31) / 32 * 32;
  const int64_t bf16_dpad_bytes = ((dim * 2 + 3) / 4 * 4 + 31) / 32 * 32;  // rows in the wgmma stages
  plan.kmax = kmax_for(k);
  plan.block_rows = block_rows_for(bfloat16, plan.kmax);
  const int64_t limit = device_attribute(cudaDevAttrMaxSharedMemoryPerBlockOptin);
  plan.stages = kStages;
  if (plan.kmax == 64 && bf16_dpad_bytes <= kWgmmaMaxChunks * kChunkBytes && wgmma_loaded()) {
    for (int stages = kWgmmaMaxStages; stages >= 2; --stages) {
      if (shared_bytes(128, plan.kmax, dpad_bytes, true, stages) <= limit) {
        plan.wgmma = true;
        plan.block_rows = 128;
        plan.chunks = static_cast<int>((bf16_dpad_bytes + kChunkBytes - 1) / kChunkBytes);
        plan.stages = stages;
        break;
      }
    }
  }
  const int64_t smem = shared_bytes(plan.block_rows, plan.kmax, dpad_bytes, plan.wgmma, plan.stages);
  if (smem > limit) return false;
  plan.row_bytes = static_cast<int>(row_bytes);
  plan.dpad_bytes = static_cast<int>(dpad_bytes);
  plan.smem_bytes = static_cast<int>(smem);
  return true;
}

// Splits of the candidates so that the grid fills the device once (one block per multiprocessor).
Plan make_plan(const TopkDotArgs& args) {
  Plan plan;
  if (!plan_shape(args.k, args.dim, args.bfloat16, plan)) return plan;
  const int64_t row_blocks = (args.num_queries + plan.block_rows - 1) / plan.block_rows;
  const int64_t tiles = (args.num_candidates + kTileN - 1) / kTileN;
  const int64_t sms = device_attribute(cudaDevAttrMultiProcessorCount);
  int64_t splits = std::max<int64_t>(1, std::min<int64_t>(tiles, sms / row_blocks));
  const int64_t per_split = (tiles + splits - 1) / splits;
  splits = (tiles + per_split - 1) / per_split;
  plan.splits = static_cast<int>(splits);
  plan.tiles_per_split = static_cast<int>(per_split);

  // Seed pass where blocks scan many tiles (float32: a few already, since a lower threshold lets
  // more survivors through): the first splits * seed_tiles tiles (all whole, inside [0, N)),
  // seed_tiles per block, in groups of group_tiles tiles so that a query gets at most max_groups
  // maxima; skipped when that leaves fewer than 2k groups (a weak bound).
  if (per_split >= (args.bfloat16 ? kSeedMinTiles : kFilterSeedMinTiles)) {
    const int64_t seed_tiles = std::clamp<int64_t>(per_split / kSeedShare, 1, kSeedMaxTiles);
    const int64_t per_tile = splits * groups_per_tile(plan.block_rows, plan.wgmma);  // groups of a query per tile
    const int64_t max_groups =
        std::min<int64_t>(kMaxGroups, std::max<int64_t>(4 * args.k, kGroupBytes / 4 / args.num_queries));
    const int64_t group_tiles = (per_tile * seed_tiles + max_groups - 1) / max_groups;
    const int64_t groups = per_tile * ((seed_tiles + group_tiles - 1) / group_tiles);
    if (groups >= 2 * args.k && groups <= kMaxGroups && splits * seed_tiles * kTileN <= args.num_candidates) {
      plan.seed_tiles = static_cast<int>(seed_tiles);
      plan.group_tiles = static_cast<int>(group_tiles);
      plan.groups = static_cast<int>(groups);
    }
  }

  // Float32: survivors per query, as many as kSurvivorBytes hold for all queries, within
  // [4k + 256, kMaxSurvivors], at most N (then they never overflow); a fallback row's candidates in
  // as many splits as its survivors' space holds partial lists, each of kFallbackMinSplit or more.
  if (!args.bfloat16) {
    const int64_t by_memory = kSurvivorBytes / (8 * args.num_queries);
    const int64_t cap = std::min<int64_t>(args.num_candidates,
                                          std::clamp<int64_t>(by_memory, 4 * args.k + 256, kMaxSurvivors));
    plan.surv_cap = static_cast<int>(cap);
    plan.fb_splits = static_cast<int>(std::max<int64_t>(
        1, std::min<int64_t>(cap / args.k, (args.num_candidates + kFallbackMinSplit - 1) / kFallbackMinSplit)));
  }
  return plan;
}

// Workspace, each part 256-byte aligned: partial lists [B, splits, k] (values, then int indices),
// which the seed pass uses before for its group maxima [B, groups]; with a seed pass, the bounds
// [B]; float32: the margins and scales of the queries [B] and candidates [N], the survivors' counts
// [B], the fallback rows' count and list [B], and the survivors [B, surv_cap] (upper bounds, ids).
struct Workspace {
  int64_t seed = 0, q_margin = 0, q_scale = 0, e_margin = 0, e_scale = 0, surv_count = 0, fb_count = 0,
          fb_rows = 0, surv_upper = 0, surv_index = 0, total_bytes = 0;
};

Workspace workspace_layout(const Plan& plan, const TopkDotArgs& args) {
  Workspace w;
  int64_t at = 0;
  auto take = [&](int64_t bytes) {
    const int64_t start = at;
    at += (bytes + 255) / 256 * 256;
    return start;
  };
  const int64_t b = args.num_queries, n = args.num_candidates, f = sizeof(float);
  take(std::max(b * plan.splits * args.k * static_cast<int64_t>(sizeof(float) + sizeof(int)), b * plan.groups * f));
  w.seed = take(plan.seed_tiles > 0 ? b * f : 0);
  if (!args.bfloat16) {
    w.q_margin = take(b * f);
    w.q_scale = take(args.normalize ? b * f : 0);
    w.e_margin = take(n * f);
    w.e_scale = take(args.normalize ? n * f : 0);
    w.surv_count = take(b * static_cast<int64_t>(sizeof(int)));
    w.fb_count = take(sizeof(int));
    w.fb_rows = take(b * static_cast<int64_t>(sizeof(int)));
    w.surv_upper = take(b * plan.surv_cap * f);
    w.surv_index = take(b * plan.surv_cap * static_cast<int64_t>(sizeof(int)));
  }
  w.total_bytes = at;
  return w;
}

int copy_width(uintptr_t address, int64_t stride_bytes, int64_t row_bytes) {
  for (int width : {16, 8, 4}) {
    if (address % width == 0 && stride_bytes % width == 0 && row_bytes % width == 0) return width;
  }
  return 0;
}

// Warps per query of the split merge. A warp merges ceil(splits / warps) splits in a row, then
// log2(warps) pairwise levels follow, each costing about as much as 3.5 more splits in a row (fitted
// to the merge kernel's times on an H100, k = 50, with 1 to 8 warps and 4 to 26 splits); and no more
// warps than let those of all queries be resident at once.
int merge_warps(int64_t num_queries, int splits) {
  const int64_t resident = static_cast<int64_t>(device_attribute(cudaDevAttrMultiProcessorCount)) *
                           (device_attribute(cudaDevAttrMaxThreadsPerMultiProcessor) / 32);
  int best = 1;
  int64_t best_cost = 2LL * splits;  // in half splits merged in a row
  for (int warps = 2, levels = 1; warps <= kMergeWarps && num_queries * warps <= resident; warps *= 2, ++levels) {
    const int64_t cost = 2LL * ((splits + warps - 1) / warps) + 7LL * levels;
    if (cost < best_cost) {
      best = warps;
      best_cost = cost;
    }
  }
  return best;
}

// Merges `splits` partial lists per row (row_stride pairs between rows) into values / indices: a
// block per row, or per listed row (rows, *num_rows of them; grid_rows blocks take them in turn).
template <int KMAX>
cudaError_t launch_merge(const float* part_v, const int* part_i, int splits, int64_t row_stride, int k,
                         float* values, int64_t* indices, int64_t num_queries, unsigned grid_rows, const int* rows,
                         const int* num_rows, cudaStream_t stream) {
  const int warps = merge_warps(num_queries, splits);
  const size_t smem = warps * (KMAX * (sizeof(float) + sizeof(int)) + 32 * (sizeof(float) + sizeof(int)) + sizeof(int));
  merge_splits_kernel<KMAX><<<grid_rows, warps * 32, smem, stream>>>(part_v, part_i, splits, row_stride, k, values,
                                                                     indices, rows, num_rows);
  return cudaGetLastError();
}

// kChunks: wgmma kernels only, 128-byte chunks per bf16 row. Float32 (!kBF16): the filter pass, then
// its merged lower bounds, the exact rescoring of the survivors and the fallback of the rows whose
// survivors overflowed (its kernels start and end at once where none did: no host synchronisation).
template <bool kBF16, int BM, int KMAX, bool kWgmma = false, int kChunks = 0>
cudaError_t launch(const Plan& plan, const Params& params, const ExactParams& exact, float* seed,
                   const TopkDotArgs& args, cudaStream_t stream) {
  const dim3 grid(static_cast<unsigned>((args.num_queries + BM - 1) / BM), static_cast<unsigned>(plan.splits));
  const int threads = kWgmma ? kWgmmaThreads : kThreads;
  cudaError_t err;
  Params main_params = params;
  if (plan.seed_tiles > 0) {
    auto seed_kernel = topk_dot_kernel<kBF16, BM, KMAX, true, kWgmma, kStages, kChunks>;
    err = cudaFuncSetAttribute(seed_kernel, cudaFuncAttributeMaxDynamicSharedMemorySize, plan.smem_bytes);
    if (err != cudaSuccess) return err;
    Params seed_params = params;
    seed_params.num_candidates = plan.splits * plan.seed_tiles * kTileN;
    seed_params.tiles_per_split = plan.seed_tiles;
    seed_params.group_max = params.part_v;  // the partial lists' space, free until the main pass
    seed_params.groups = plan.groups;
    seed_params.group_tiles = plan.group_tiles;
    seed_kernel<<<grid, threads, plan.smem_bytes, stream>>>(seed_params);
    err = cudaGetLastError();
    if (err != cudaSuccess) return err;
    kth_group_max_kernel<<<static_cast<unsigned>(args.num_queries), kSelectThreads, plan.groups * sizeof(uint32_t),
                           stream>>>(seed_params.group_max, plan.groups, params.k, seed);
    err = cudaGetLastError();
    if (err != cudaSuccess) return err;
    main_params.seed = seed;
  }
  auto kernel = topk_dot_kernel<kBF16, BM, KMAX, false, kWgmma, kStages, kChunks>;
  err = cudaFuncSetAttribute(kernel, cudaFuncAttributeMaxDynamicSharedMemorySize, plan.smem_bytes);
  if (err != cudaSuccess) return err;
  kernel<<<grid, threads, plan.smem_bytes, stream>>>(main_params);
  err = cudaGetLastError();
  if (err != cudaSuccess) return err;
  err = launch_merge<KMAX>(params.part_v, params.part_i, params.splits, static_cast<int64_t>(params.splits) * params.k,
                           params.k, args.values, args.indices, args.num_queries,
                           static_cast<unsigned>(args.num_queries), nullptr, nullptr, stream);
  if (err != cudaSuccess || kBF16) return err;

  const unsigned rescore_blocks = static_cast<unsigned>((args.num_queries + kExactWarps - 1) / kExactWarps);
  rescore_kernel<KMAX><<<rescore_blocks, kExactWarps * 32, 0, stream>>>(exact);
  err = cudaGetLastError();
  if (err != cudaSuccess) return err;
  const dim3 fb_grid(static_cast<unsigned>((plan.fb_splits + kExactWarps - 1) / kExactWarps),
                     static_cast<unsigned>(std::min<int64_t>(args.num_queries, kFallbackRowBlocks)));
  fallback_kernel<KMAX><<<fb_grid, kExactWarps * 32, 0, stream>>>(exact);
  err = cudaGetLastError();
  if (err != cudaSuccess) return err;
  return launch_merge<KMAX>(exact.surv_upper, exact.surv_index, plan.fb_splits, plan.surv_cap, params.k, args.values,
                            args.indices, args.num_queries,
                            static_cast<unsigned>(std::min<int64_t>(args.num_queries, kFallbackMergeBlocks)),
                            exact.fb_rows, exact.fb_count, stream);
}

}  // namespace

bool topk_dot_supported(int64_t k, int64_t dim, bool bfloat16) {
  Plan plan;
  return plan_shape(k, dim, bfloat16, plan);
}

int64_t topk_dot_workspace_bytes(const TopkDotArgs& args) {
  const Plan plan = make_plan(args);
  return workspace_layout(plan, args).total_bytes;
}

cudaError_t launch_topk_dot(const TopkDotArgs& args, void* workspace, cudaStream_t stream) {
  const Plan plan = make_plan(args);
  const int elt = element_bytes(args.bfloat16);
  const int64_t row_bytes = args.dim * elt;
  if (plan.kmax == 0 || row_bytes != plan.row_bytes || args.num_queries < 1 || args.num_candidates < args.k ||
      args.num_candidates > INT_MAX || (args.bfloat16 && args.normalize != (args.query_scale != nullptr))) {
    return cudaErrorInvalidValue;
  }
  const Workspace layout = workspace_layout(plan, args);
  char* ws = static_cast<char*>(workspace);
  Params params;
  params.q = static_cast<const char*>(args.queries);
  params.e = static_cast<const char*>(args.candidates);
  params.e_stride = args.candidate_stride * elt;
  params.excl = args.exclude;
  params.m = args.num_exclude;
  params.q_scale = args.query_scale;
  params.e_scale = args.candidate_scale;
  params.part_v = reinterpret_cast<float*>(ws);
  params.part_i = reinterpret_cast<int*>(params.part_v + args.num_queries * plan.splits * args.k);
  params.seed = nullptr;
  params.group_max = nullptr;
  params.groups = 0;
  params.group_tiles = 1;
  float* seed = reinterpret_cast<float*>(ws + layout.seed);
  params.num_queries = static_cast<int>(args.num_queries);
  params.num_candidates = static_cast<int>(args.num_candidates);
  params.k = static_cast<int>(args.k);
  params.row_bytes = plan.row_bytes;
  params.dpad_bytes = plan.dpad_bytes;
  params.q_stride = plan.dpad_bytes + 16;
  params.copy_q = copy_width(reinterpret_cast<uintptr_t>(args.queries), row_bytes, row_bytes);
  params.copy_e = copy_width(reinterpret_cast<uintptr_t>(args.candidates), params.e_stride, row_bytes);
  params.tiles_per_split = plan.tiles_per_split;
  params.splits = plan.splits;
  params.stages = plan.stages;
  params.dim = static_cast<int>(args.dim);
  params.q_margin = nullptr;
  params.e_margin = nullptr;
  params.surv_upper = nullptr;
  params.surv_index = nullptr;
  params.surv_count = nullptr;
  params.surv_cap = plan.surv_cap;
  if (params.copy_q == 0 || params.copy_e == 0) return cudaErrorMisalignedAddress;

  ExactParams exact{};
  if (!args.bfloat16) {
    // The bounds of the filter: margins (and cosine scales) of the queries and the candidates.
    float* q_margin = reinterpret_cast<float*>(ws + layout.q_margin);
    float* e_margin = reinterpret_cast<float*>(ws + layout.e_margin);
    float* q_scale = args.normalize ? reinterpret_cast<float*>(ws + layout.q_scale) : nullptr;
    float* e_scale = args.normalize ? reinterpret_cast<float*>(ws + layout.e_scale) : nullptr;
    const float* q = static_cast<const float*>(args.queries);
    const float* e = static_cast<const float*>(args.candidates);
    constexpr int kRowsPerBlock = 256 / 32;
    row_bounds_kernel<<<static_cast<unsigned>((args.num_queries + kRowsPerBlock - 1) / kRowsPerBlock), 256, 0,
                        stream>>>(q, args.dim, args.num_queries, params.dim, filter_gamma(args.dim), q_scale, q_margin);
    row_bounds_kernel<<<static_cast<unsigned>((args.num_candidates + kRowsPerBlock - 1) / kRowsPerBlock), 256, 0,
                        stream>>>(e, args.candidate_stride, args.num_candidates, params.dim, 1.0, e_scale, e_margin);
    cudaError_t err = cudaGetLastError();
    if (err != cudaSuccess) return err;
    int* surv_count = reinterpret_cast<int*>(ws + layout.surv_count);
    int* fb_count = reinterpret_cast<int*>(ws + layout.fb_count);
    err = cudaMemsetAsync(surv_count, 0, args.num_queries * sizeof(int), stream);
    if (err == cudaSuccess) err = cudaMemsetAsync(fb_count, 0, sizeof(int), stream);
    if (err != cudaSuccess) return err;
    params.q_scale = q_scale;
    params.e_scale = e_scale;
    params.q_margin = q_margin;
    params.e_margin = e_margin;
    params.surv_upper = reinterpret_cast<float*>(ws + layout.surv_upper);
    params.surv_index = reinterpret_cast<int*>(ws + layout.surv_index);
    params.surv_count = surv_count;

    exact.q = q;
    exact.e = e;
    exact.e_stride = args.candidate_stride;
    exact.dim = params.dim;
    exact.num_queries = params.num_queries;
    exact.num_candidates = params.num_candidates;
    exact.k = params.k;
    exact.normalize = args.normalize;
    exact.excl = args.exclude;
    exact.m = args.num_exclude;
    exact.surv_upper = params.surv_upper;
    exact.surv_index = params.surv_index;
    exact.surv_count = surv_count;
    exact.surv_cap = plan.surv_cap;
    exact.fb_rows = reinterpret_cast<int*>(ws + layout.fb_rows);
    exact.fb_count = fb_count;
    exact.fb_splits = plan.fb_splits;
    exact.values = args.values;
    exact.indices = args.indices;
  }

  if (plan.wgmma) {
    if (args.bfloat16) {
      switch (plan.chunks) {
        case 1: return launch<true, 128, 64, true, 1>(plan, params, exact, seed, args, stream);
        case 2: return launch<true, 128, 64, true, 2>(plan, params, exact, seed, args, stream);
        case 3: return launch<true, 128, 64, true, 3>(plan, params, exact, seed, args, stream);
        default: return launch<true, 128, 64, true, 4>(plan, params, exact, seed, args, stream);
      }
    }
    switch (plan.chunks) {
      case 1: return launch<false, 128, 64, true, 1>(plan, params, exact, seed, args, stream);
      case 2: return launch<false, 128, 64, true, 2>(plan, params, exact, seed, args, stream);
      case 3: return launch<false, 128, 64, true, 3>(plan, params, exact, seed, args, stream);
      default: return launch<false, 128, 64, true, 4>(plan, params, exact, seed, args, stream);
    }
  }
  if (args.bfloat16) {
    if (plan.kmax == 64) return launch<true, 128, 64>(plan, params, exact, seed, args, stream);
    if (plan.kmax == 128) return launch<true, 64, 128>(plan, params, exact, seed, args, stream);
    return launch<true, 32, 256>(plan, params, exact, seed, args, stream);
  }
  if (plan.kmax == 64) return launch<false, 64, 64>(plan, params, exact, seed, args, stream);
  if (plan.kmax == 128) return launch<false, 64, 128>(plan, params, exact, seed, args, stream);
  return launch<false, 32, 256>(plan, params, exact, seed, args, stream);
}

}  // namespace tgnn::cuda
