// Fused top-K dot product on the GPU, without a [B, N] score matrix.
//
// Grid: blockIdx.x takes BM queries, blockIdx.y a contiguous split of the candidates. A block
// streams its candidates in tiles of 128 through shared memory, 128 bytes of each row per pipeline
// stage, and computes the BM x 128 score tile of each with tensor cores.
//
// mma.sync (the general path): 16 warps keep the BM query rows in shared memory, copy the stages
// through a 3-stage cp.async pipeline with a block barrier per stage, and tile the scores
// (WarpLayout) with mma.sync: bf16 inputs directly (m16n8k16, float32 accumulation), float32 inputs
// as 3xTF32 (m16n8k8: hi*hi + hi*lo + lo*hi, close to float32 accuracy).
//
// wgmma (Hopper: H100, H200, where the sm_90a code is loaded; bf16, k <= 64, rows of up to 512
// bytes): a warp-specialized block of 3 warpgroups, BM = 128. One warpgroup only copies: every
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
#include <cuda_runtime.h>

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

// x = hi + lo with hi, lo representable in tf32 (lo carries the next 11 bits of x).
__device__ __forceinline__ void split_tf32(uint32_t x, uint32_t& hi, uint32_t& lo) {
  asm("cvt.rna.tf32.f32 %0, %1;\n" : "=r"(hi) : "f"(__uint_as_float(x)));
  const float rest = __uint_as_float(x) - __uint_as_float(hi);
  asm("cvt.rna.tf32.f32 %0, %1;\n" : "=r"(lo) : "f"(rest));
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
  static_assert(!kWgmma || kBF16, "wgmma path: bf16 only");
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

  if constexpr (kWgmma) {
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
          a_frag[c][ks][i] = row < p.num_queries && byte < p.row_bytes
                                 ? __ldg(reinterpret_cast<const uint32_t*>(p.q + static_cast<int64_t>(row) * p.row_bytes + byte))
                                 : 0u;
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
            } else {
              uint32_t bh[NT][2], bl[NT][2];
#pragma unroll
              for (int nt = 0; nt < NT; ++nt)
#pragma unroll
                for (int i = 0; i < 2; ++i) split_tf32(b[cur][nt][i], bh[nt][i], bl[nt][i]);
#pragma unroll
              for (int mt = 0; mt < MT; ++mt) {
                uint32_t ah[4], al[4];
#pragma unroll
                for (int i = 0; i < 4; ++i) split_tf32(a[cur][mt][i], ah[i], al[i]);
#pragma unroll
                for (int nt = 0; nt < NT; ++nt) {
                  mma_tf32(acc[mt][nt], al, bh[nt]);
                  mma_tf32(acc[mt][nt], ah, bl[nt]);
                  mma_tf32(acc[mt][nt], ah, bh[nt]);
                }
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

// A block per query merges its `splits` partial lists (each sorted, padding last) into the output:
// each of its blockDim.x / 32 warps (a power of two, <= kMergeWarps) merges every so many splits
// into a list of its own, then the warps' lists are merged pairwise in shared memory (dynamic:
// per warp KMAX pairs, 32 staged pairs and a fill). More warps overlap the loads of more splits.
template <int KMAX>
__global__ void __launch_bounds__(kMergeWarps * 32)
    merge_splits_kernel(const float* __restrict__ part_v, const int* __restrict__ part_i, int splits, int k,
                        float* __restrict__ values, int64_t* __restrict__ indices) {
  const int lane = threadIdx.x & 31;
  const int w = threadIdx.x >> 5;
  const int warps = blockDim.x >> 5;
  extern __shared__ float merge_smem[];
  float* lv = merge_smem;                                 // [warps][KMAX]
  int* li = reinterpret_cast<int*>(lv + warps * KMAX);    // [warps][KMAX]
  float* bv = reinterpret_cast<float*>(li + warps * KMAX);  // [warps][32]
  int* bi = reinterpret_cast<int*>(bv + warps * 32);      // [warps][32]
  int* fills = bi + warps * 32;                           // [warps]
  const int64_t row = blockIdx.x;
  int fill = 0;
  for (int s = w; s < splits; s += warps) {
    const int64_t base = (row * splits + s) * k;
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

// ---- planning -------------------------------------------------------------------------------

struct Plan {
  int kmax = 0;        // list capacity per row: 64, 128 or 256
  int block_rows = 0;  // BM
  bool wgmma = false;  // the wgmma kernels (topk_dot_kernel<..., true, ...>)
  int stages = 0;      // of the cp.async pipeline
  int row_bytes = 0, dpad_bytes = 0;
  int smem_bytes = 0;
  int splits = 0, tiles_per_split = 0;
  int seed_tiles = 0;   // tiles per split of the seed pass; 0: no seed pass
  int group_tiles = 0;  // tiles per group of the seed pass
  int groups = 0;       // group maxima per query
};

int element_bytes(bool bfloat16) { return bfloat16 ? 2 : 4; }

int kmax_for(int64_t k) { return k <= 64 ? 64 : (k <= 128 ? 128 : 256); }

// BM: as many query rows as keep the lists at 64 KiB or less and float32 rows affordable.
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
// kernels take bf16 rows of up to kWgmmaMaxChunks chunks with lists of 64 (BM = 128), with as
// many pipeline stages as shared memory holds (at least 2, at most kWgmmaMaxStages).
bool plan_shape(int64_t k, int64_t dim, bool bfloat16, Plan& plan) {
  if (k < 1 || k > kTopkMaxK || dim < 1) return false;
  const int64_t row_bytes = (dim * element_bytes(bfloat16) + 3) / 4 * 4;
  const int64_t dpad_bytes = (row_bytes + 31) / 32 * 32;
  plan.kmax = kmax_for(k);
  plan.block_rows = block_rows_for(bfloat16, plan.kmax);
  const int64_t limit = device_attribute(cudaDevAttrMaxSharedMemoryPerBlockOptin);
  plan.stages = kStages;
  if (bfloat16 && plan.kmax == 64 && dpad_bytes <= kWgmmaMaxChunks * kChunkBytes && wgmma_loaded()) {
    for (int stages = kWgmmaMaxStages; stages >= 2; --stages) {
      if (shared_bytes(plan.block_rows, plan.kmax, dpad_bytes, true, stages) <= limit) {
        plan.wgmma = true;
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

  // Seed pass where blocks scan many tiles: the first splits * seed_tiles tiles (all whole, inside
  // [0, N)), seed_tiles per block, in groups of group_tiles tiles so that a query gets at most
  // max_groups maxima; skipped when that leaves fewer than 2k groups (a weak bound).
  if (per_split >= kSeedMinTiles) {
    const int64_t seed_tiles = std::min<int64_t>(kSeedMaxTiles, per_split / kSeedShare);
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
  return plan;
}

// Workspace: partial lists [B, splits, k] (values, then int indices), which the seed pass uses
// before for its group maxima [B, groups]; then, with a seed pass, the bounds [B].
struct Workspace {
  int64_t union_bytes = 0, total_bytes = 0;
};

Workspace workspace_layout(const Plan& plan, const TopkDotArgs& args) {
  Workspace w;
  const int64_t part = args.num_queries * plan.splits * args.k * static_cast<int64_t>(sizeof(float) + sizeof(int));
  const int64_t groups = args.num_queries * plan.groups * static_cast<int64_t>(sizeof(float));
  w.union_bytes = (std::max(part, groups) + 255) / 256 * 256;
  w.total_bytes = w.union_bytes + (plan.seed_tiles > 0 ? args.num_queries * static_cast<int64_t>(sizeof(float)) : 0);
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

// kChunks: wgmma kernels only, 128-byte chunks per row.
template <bool kBF16, int BM, int KMAX, bool kWgmma = false, int kChunks = 0>
cudaError_t launch(const Plan& plan, const Params& params, float* seed, const TopkDotArgs& args,
                   cudaStream_t stream) {
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
  const int warps = merge_warps(args.num_queries, plan.splits);
  const size_t merge_smem = warps * (KMAX * (sizeof(float) + sizeof(int)) + 32 * (sizeof(float) + sizeof(int)) + sizeof(int));
  merge_splits_kernel<KMAX><<<static_cast<unsigned>(args.num_queries), warps * 32, merge_smem, stream>>>(
      params.part_v, params.part_i, params.splits, params.k, args.values, args.indices);
  return cudaGetLastError();
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
      args.num_candidates > INT_MAX) {
    return cudaErrorInvalidValue;
  }
  Params params;
  params.q = static_cast<const char*>(args.queries);
  params.e = static_cast<const char*>(args.candidates);
  params.e_stride = args.candidate_stride * elt;
  params.excl = args.exclude;
  params.m = args.num_exclude;
  params.q_scale = args.query_scale;
  params.e_scale = args.candidate_scale;
  params.part_v = static_cast<float*>(workspace);
  params.part_i = reinterpret_cast<int*>(params.part_v + args.num_queries * plan.splits * args.k);
  params.seed = nullptr;
  params.group_max = nullptr;
  params.groups = 0;
  params.group_tiles = 1;
  float* seed = reinterpret_cast<float*>(static_cast<char*>(workspace) + workspace_layout(plan, args).union_bytes);
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
  if (params.copy_q == 0 || params.copy_e == 0) return cudaErrorMisalignedAddress;

  if (args.bfloat16) {
    if (plan.wgmma) {
      switch ((plan.dpad_bytes + kChunkBytes - 1) / kChunkBytes) {
        case 1: return launch<true, 128, 64, true, 1>(plan, params, seed, args, stream);
        case 2: return launch<true, 128, 64, true, 2>(plan, params, seed, args, stream);
        case 3: return launch<true, 128, 64, true, 3>(plan, params, seed, args, stream);
        default: return launch<true, 128, 64, true, 4>(plan, params, seed, args, stream);
      }
    }
    if (plan.kmax == 64) return launch<true, 128, 64>(plan, params, seed, args, stream);
    if (plan.kmax == 128) return launch<true, 64, 128>(plan, params, seed, args, stream);
    return launch<true, 32, 256>(plan, params, seed, args, stream);
  }
  if (plan.kmax == 64) return launch<false, 64, 64>(plan, params, seed, args, stream);
  if (plan.kmax == 128) return launch<false, 64, 128>(plan, params, seed, args, stream);
  return launch<false, 32, 256>(plan, params, seed, args, stream);
}

}  // namespace tgnn::cuda
