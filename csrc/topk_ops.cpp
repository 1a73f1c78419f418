// Fused top-K dot product: torch glue, input checks, and the CPU implementation.
//
// CPU path. Parallel tasks take up to kCpuTaskQueries queries (fewer where the candidates are too
// few to split among the threads) and a contiguous split of the candidates; a task walks its
// candidates in tiles of kCpuTile rows and, per tile and block of kCpuQueryBlock queries, gets
// float32 scores from one ATen matmul into a scratch of its own of at most 2 MiB (no [B, N] buffer).
// Those scores only filter: a candidate whose float32 score, raised by a proven bound of the
// matmul's rounding error, reaches the query's running k-th best is rescored exactly
// (products and sum in float64, rounded once to float32) and offered to the query's
// tgnn::TopKSelector. So the result is the exact top-k of the correctly rounded scores, whatever
// the BLAS, its blocking or the thread count, and ties follow the smaller index.
#include <ATen/Parallel.h>
#include <torch/library.h>

#include <algorithm>
#include <cmath>
#include <functional>
#include <limits>
#include <optional>
#include <string>
#include <vector>

#include "core/topk_select.h"
#include "core/vector_clones.h"
#include "ops.h"

namespace tgnn::ops {

void check_topk_inputs(const at::Tensor& queries, const at::Tensor& candidates, int64_t k,
                       const std::optional<at::Tensor>& exclude, bool check_exclude) {
  TORCH_CHECK_VALUE(queries.dim() == 2, "queries must be 2-D, got shape ", shape(queries));
  TORCH_CHECK_VALUE(candidates.dim() == 2, "candidates must be 2-D, got shape ", shape(candidates));
  TORCH_CHECK_VALUE(queries.size(1) == candidates.size(1),
                    "queries and candidates must have the same dimension d, got queries ", shape(queries),
                    " and candidates ", shape(candidates));
  TORCH_CHECK_VALUE(queries.device() == candidates.device(), "queries are on ", queries.device().str(),
                    " but candidates on ", candidates.device().str());
  TORCH_CHECK_VALUE(queries.scalar_type() == candidates.scalar_type(), "queries are ",
                    dtype_name(queries.scalar_type()), " but candidates are ", dtype_name(candidates.scalar_type()));
  const auto dtype = queries.scalar_type();
  TORCH_CHECK_VALUE(dtype == at::kFloat || dtype == at::kBFloat16,
                    "queries and candidates must be float32 or bfloat16, got ", dtype_name(dtype));
  TORCH_CHECK_VALUE(dtype == at::kFloat || queries.is_cuda(), "bfloat16 inputs need a CUDA device, got ",
                    queries.device().str(), "; use float32 on the CPU");
  const int64_t n = candidates.size(0);
  TORCH_CHECK_VALUE(k >= 1 && k <= n, "k must be in [1, N] with N=", num(n), " candidates, got k=", num(k));
  TORCH_CHECK_VALUE(n <= std::numeric_limits<int32_t>::max(), "candidates: at most 2^31-1, got ", num(n));
  if (!exclude.has_value()) return;
  const at::Tensor& ex = *exclude;
  TORCH_CHECK_VALUE(ex.dim() == 2 && ex.size(0) == queries.size(0), "exclude must have shape [B=",
                    num(queries.size(0)), ", m], got ", shape(ex));
  TORCH_CHECK_VALUE(ex.device() == queries.device(), "exclude is on ", ex.device().str(), " but queries on ",
                    queries.device().str());
  TORCH_CHECK_VALUE(ex.scalar_type() == at::kLong, "exclude must be int64, got ", dtype_name(ex.scalar_type()));
  if (check_exclude && ex.numel() > 0) {  // on a GPU a host synchronisation
    const auto [lo_t, hi_t] = at::aminmax(ex);
    const int64_t lo = lo_t.item<int64_t>(), hi = hi_t.item<int64_t>();
    TORCH_CHECK_VALUE(lo >= -1 && hi < n, "exclude ids must be in [-1, N=", num(n), ") (-1 pads), got ",
                      num(lo < -1 ? lo : hi));
  }
}

at::Tensor sorted_exclusions(const at::Tensor& queries, const std::optional<at::Tensor>& exclude) {
  if (!exclude.has_value() || exclude->size(1) == 0) {
    return at::empty({queries.size(0), 0}, queries.options().dtype(at::kLong));
  }
  return std::get<0>(exclude->sort(1)).contiguous();
}

std::tuple<at::Tensor, at::Tensor> topk_dot_chunked(const at::Tensor& queries, const at::Tensor& candidates,
                                                    int64_t k, const std::optional<at::Tensor>& exclude,
                                                    bool normalize) {
  const int64_t num_queries = queries.size(0), n = candidates.size(0);
  const float inf = std::numeric_limits<float>::infinity();
  const at::Tensor q = queries.to(at::kDouble);
  const at::Tensor q_norm = q.norm(2, {1}).clamp_min(kNormEps);
  const int64_t chunk = std::max<int64_t>(1024, (int64_t{1} << 24) / std::max<int64_t>(num_queries, 1));
  const auto long_options = queries.options().dtype(at::kLong);
  at::Tensor best_values = at::empty({num_queries, 0}, queries.options().dtype(at::kFloat));
  at::Tensor best_indices = at::empty({num_queries, 0}, long_options);
  for (int64_t j0 = 0; j0 < n; j0 += chunk) {
    const int64_t width = std::min(chunk, n - j0);
    const at::Tensor e = candidates.narrow(0, j0, width).to(at::kDouble);
    at::Tensor scores = at::matmul(q, e.t());
    if (normalize) scores = scores / q_norm.unsqueeze(1) / e.norm(2, {1}).clamp_min(kNormEps).unsqueeze(0);
    scores = scores.to(at::kFloat);
    scores.masked_fill_(scores.isnan(), -inf);
    if (exclude.has_value()) {
      const at::Tensor inside = exclude->ge(j0).logical_and_(exclude->lt(j0 + width));
      const at::Tensor rows = at::arange(num_queries, long_options).unsqueeze(1).expand_as(*exclude);
      scores.index_put_({rows.masked_select(inside), exclude->masked_select(inside) - j0},
                        at::scalar_tensor(-inf, scores.options()));
    }
    const at::Tensor ids = at::arange(j0, j0 + width, long_options).expand({num_queries, width});
    const at::Tensor values = at::cat({best_values, scores}, 1);
    const at::Tensor indices = at::cat({best_indices, ids}, 1);
    const at::Tensor order =
        std::get<1>(values.sort(/*stable=*/true, 1, /*descending=*/true)).narrow(1, 0, std::min(k, values.size(1)));
    best_values = values.gather(1, order);
    best_indices = indices.gather(1, order);
  }
  best_indices = best_indices.masked_fill(best_values == -inf, -1);
  return {best_values, best_indices};
}

}  // namespace tgnn::ops

namespace {

constexpr int64_t kCpuTile = 2048;        // candidates per score tile
constexpr int64_t kCpuQueryBlock = 256;   // queries per score tile (2 MiB of scores)
constexpr int64_t kCpuTaskQueries = 4096; // queries per parallel task
constexpr int64_t kCpuMinTaskQueries = 16; // ... at least, where fewer feed more threads
constexpr int64_t kScanBlock = 16;        // scores tested at once against a query's threshold
using tgnn::ops::kNormEps;

// Sum of q_i e_i in float64: the products are exact; 16 partial sums (4 AVX2 vectors) keep the
// adds independent. The result is within d 2^-53 sum |q_i e_i| of the exact value, far below
// float32 resolution.
TGNN_VECTOR_CLONES double exact_dot(const float* q, const float* e, int64_t d) {
  constexpr int64_t kLanes = 16;
  double s[kLanes] = {};
  int64_t i = 0;
  for (; i + kLanes <= d; i += kLanes) {
    for (int64_t l = 0; l < kLanes; ++l) s[l] += static_cast<double>(q[i + l]) * static_cast<double>(e[i + l]);
  }
  for (int64_t l = 0; i + l < d; ++l) s[l] += static_cast<double>(q[i + l]) * static_cast<double>(e[i + l]);
  for (int64_t width = kLanes / 2; width > 0; width /= 2) {
    for (int64_t l = 0; l < width; ++l) s[l] += s[l + width];
  }
  return s[0];
}

double norm2(const float* x, int64_t d) { return std::sqrt(exact_dot(x, x, d)); }

// Scans the candidates [n_begin, n_end) for the queries [q0, q0 + qb) into selectors[0..qb).
// Single-threaded (it runs inside a parallel task); scores is a scratch tensor of at least
// min(kCpuQueryBlock, qb) * min(kCpuTile, n_end - n_begin) floats.
void scan_candidates(const at::Tensor& queries, const at::Tensor& candidates, const at::Tensor& exclude,
                     const std::vector<double>& q_norm, bool normalize, int64_t q0, int64_t qb, int64_t n_begin,
                     int64_t n_end, at::Tensor& scores, std::vector<tgnn::TopKSelector>& selectors) {
  const int64_t d = queries.size(1);
  const int64_t m = exclude.size(1);
  const int64_t row_stride = candidates.stride(0);
  const float* q_data = queries.data_ptr<float>();
  const float* e_data = candidates.data_ptr<float>();
  const int64_t* ex_data = exclude.data_ptr<int64_t>();
  const float inf = std::numeric_limits<float>::infinity();
  // |float32 matmul - exact| <= d u sum_i |q_i e_i| / (1 - d u) <= d u |q| |e| / (1 - d u) for any
  // summation order (u = 2^-24). The filter uses twice (d + 8) u: room for the scaling by the
  // inverse norms (cosine) and for a BLAS that rounds a little worse than the textbook bound.
  const double bound = 2.0 * static_cast<double>(d + 8) * std::ldexp(1.0, -24);

  std::vector<int64_t> ex_pos(static_cast<size_t>(qb));  // each query's first exclusion >= the tile
  for (int64_t r = 0; r < qb; ++r) {
    const int64_t* ex = ex_data + (q0 + r) * m;
    ex_pos[r] = std::lower_bound(ex, ex + m, n_begin) - ex;
  }
  std::vector<double> e_norm(static_cast<size_t>(kCpuTile));   // max(|e|, eps)
  std::vector<float> e_scale(static_cast<size_t>(kCpuTile));   // 1 / max(|e|, eps) (cosine), else 1
  std::vector<float> e_margin(static_cast<size_t>(kCpuTile));  // the candidate's factor of the bound
  std::vector<float> lows(static_cast<size_t>(kCpuTile));      // lower bounds of one query's scores

  for (int64_t j0 = n_begin; j0 < n_end; j0 += kCpuTile) {
    const int64_t tn = std::min(kCpuTile, n_end - j0);
    for (int64_t j = 0; j < tn; ++j) {
      const double norm = norm2(e_data + (j0 + j) * row_stride, d);
      e_norm[j] = std::max(norm, kNormEps);
      e_scale[j] = normalize ? static_cast<float>(1.0 / e_norm[j]) : 1.0f;
      e_margin[j] = static_cast<float>(normalize ? norm / e_norm[j] : norm);
    }
    for (int64_t r0 = 0; r0 < qb; r0 += kCpuQueryBlock) {  // one matmul per block of queries
      const int64_t rb = std::min(kCpuQueryBlock, qb - r0);
      at::Tensor tile_scores = scores.view({-1}).narrow(0, 0, rb * tn).view({rb, tn});
      at::mm_out(tile_scores, queries.narrow(0, q0 + r0, rb), candidates.narrow(0, j0, tn).t());
      const float* s_data = tile_scores.data_ptr<float>();
      for (int64_t r = r0; r < r0 + rb; ++r) {
        const int64_t b = q0 + r;
        const float* q = q_data + b * d;
        const double q_len = std::max(q_norm[b], kNormEps);
        const float q_scale = normalize ? static_cast<float>(1.0 / q_len) : 1.0f;
        const float q_margin = static_cast<float>(bound * (normalize ? q_norm[b] / q_len : q_norm[b]));
        const int64_t* ex = ex_data + b * m;
        int64_t& pos = ex_pos[r];
        tgnn::TopKSelector& selector = selectors[r];
        const float* row = s_data + (r - r0) * tn;
        // Float32 score raised (lowered) by its error bound: the exact score is at most (least) that.
        const auto upper = [&](int64_t j) { return row[j] * q_scale * e_scale[j] + q_margin * e_margin[j]; };
        float threshold = selector.threshold();
        if (!selector.full()) {
          // Nothing to compare with yet: split the tile into groups of candidates that are not
          // excluded; k groups have a lower bound at least the k-th largest group maximum, so k
          // distinct candidates score at least that much and it is a floor for the k-th best score.
          // With ~4k groups few more than k candidates have an upper bound reaching it.
          const auto lower = [&](int64_t j) { return row[j] * q_scale * e_scale[j] - q_margin * e_margin[j]; };
          for (int64_t j = 0; j < tn; ++j) {
            const float low = lower(j);
            lows[j] = low > -inf ? low : -inf;  // NaN scores never count
          }
          for (int64_t i = pos; i < m && ex[i] < j0 + tn; ++i) {
            if (ex[i] >= j0) lows[ex[i] - j0] = -inf;
          }
          const int64_t k = selector.k();
          const int64_t group = std::max<int64_t>(1, tn / (4 * k));
          const int64_t groups = (tn + group - 1) / group;
          if (k <= groups) {
            for (int64_t g = 0; g < groups; ++g) {
              float best = -inf;
              for (int64_t j = g * group; j < std::min(tn, (g + 1) * group); ++j) best = std::max(best, lows[j]);
              lows[g] = best;  // g * group >= g: the group's own entries are read before this write
            }
            std::nth_element(lows.begin(), lows.begin() + (k - 1), lows.begin() + groups, std::greater<float>());
            threshold = lows[k - 1];
          }
        }
        const float floor = threshold;  // the threshold never drops below it
        for (int64_t jb = 0; jb < tn; jb += kScanBlock) {
          const int64_t je = std::min(jb + kScanBlock, tn);
          if (threshold > -inf) {  // vectorised scan: most blocks hold no candidate
            bool any = false;
            for (int64_t j = jb; j < je; ++j) any |= upper(j) >= threshold;
            if (!any) continue;
          }
          for (int64_t j = jb; j < je; ++j) {
            if (threshold > -inf && !(upper(j) >= threshold)) continue;
            const int64_t id = j0 + j;
            while (pos < m && ex[pos] < id) ++pos;
            if (pos < m && ex[pos] == id) continue;
            const double dot = exact_dot(q, e_data + id * row_stride, d);
            selector.offer(static_cast<float>(normalize ? dot / q_len / e_norm[j] : dot), id);
            threshold = std::max(selector.threshold(), floor);
          }
        }
      }
    }
  }
}

// One parallel region: tasks are (block of queries, split of the candidates), each with its own
// selectors; splits exist only when there are too few query blocks to feed every thread twice, and
// their partial results are merged per query at the end.
std::tuple<at::Tensor, at::Tensor> topk_dot_cpu(const at::Tensor& queries_in, const at::Tensor& candidates_in,
                                                int64_t k, const at::Tensor& exclude, bool normalize) {
  const at::Tensor queries = queries_in.contiguous();
  const at::Tensor candidates = candidates_in.stride(1) == 1 ? candidates_in : candidates_in.contiguous();
  const int64_t num_queries = queries.size(0);
  const int64_t n = candidates.size(0);
  const int64_t d = queries.size(1);
  at::Tensor values = at::empty({num_queries, k}, queries.options());
  at::Tensor indices = at::empty({num_queries, k}, queries.options().dtype(at::kLong));
  if (num_queries == 0) return {values, indices};

  std::vector<double> q_norm(static_cast<size_t>(num_queries));
  for (int64_t b = 0; b < num_queries; ++b) q_norm[b] = norm2(queries.data_ptr<float>() + b * d, d);

  // Tasks: every thread should get two. Candidates of fewer tiles than that (a training batch's
  // table: one tile) are not split further; the queries are, into blocks of fewer queries.
  const int64_t tasks_wanted = 2 * at::get_num_threads();
  const int64_t tiles = (n + kCpuTile - 1) / kCpuTile;
  int64_t task_queries = kCpuTaskQueries;
  if (tiles < tasks_wanted) {
    const int64_t query_blocks = (tasks_wanted + tiles - 1) / tiles;
    task_queries = std::clamp((num_queries + query_blocks - 1) / query_blocks, kCpuMinTaskQueries, kCpuTaskQueries);
  }
  const int64_t blocks = (num_queries + task_queries - 1) / task_queries;
  const int64_t wanted = (tasks_wanted + blocks - 1) / blocks;
  const int64_t tiles_per_split = (tiles + std::min(tiles, wanted) - 1) / std::min(tiles, wanted);
  const int64_t splits = (tiles + tiles_per_split - 1) / tiles_per_split;
  // Results of split s for query b at [(s * B + b) * k, ... + k).
  std::vector<float> part_values(static_cast<size_t>(splits * num_queries * k));
  std::vector<int64_t> part_indices(part_values.size());

  at::parallel_for(0, blocks * splits, 1, [&](int64_t begin, int64_t end) {
    at::Tensor scores = at::empty({std::min(kCpuQueryBlock, task_queries) * std::min(kCpuTile, n)}, queries.options());
    for (int64_t task = begin; task < end; ++task) {
      const int64_t block = task / splits;
      const int64_t split = task % splits;
      const int64_t q0 = block * task_queries;
      const int64_t qb = std::min(task_queries, num_queries - q0);
      std::vector<tgnn::TopKSelector> selectors;
      selectors.reserve(static_cast<size_t>(qb));
      for (int64_t r = 0; r < qb; ++r) selectors.emplace_back(k, std::max<int64_t>(16, k / 4));
      const int64_t n_begin = split * tiles_per_split * kCpuTile;
      const int64_t n_end = std::min(n, n_begin + tiles_per_split * kCpuTile);
      scan_candidates(queries, candidates, exclude, q_norm, normalize, q0, qb, n_begin, n_end, scores, selectors);
      for (int64_t r = 0; r < qb; ++r) {
        const int64_t at = (split * num_queries + q0 + r) * k;
        selectors[r].finish(part_values.data() + at, part_indices.data() + at);
      }
    }
  });

  float* out_values = values.data_ptr<float>();
  int64_t* out_indices = indices.data_ptr<int64_t>();
  at::parallel_for(0, num_queries, 16, [&](int64_t begin, int64_t end) {
    for (int64_t b = begin; b < end; ++b) {
      tgnn::TopKSelector merged(k, k);
      for (int64_t s = 0; s < splits; ++s) {
        const int64_t at = (s * num_queries + b) * k;
        for (int64_t i = 0; i < k && part_indices[at + i] >= 0; ++i) {
          merged.offer(part_values[at + i], part_indices[at + i]);
        }
      }
      merged.finish(out_values + b * k, out_indices + b * k);
    }
  });
  return {values, indices};
}

std::tuple<at::Tensor, at::Tensor> topk_dot(const at::Tensor& queries, const at::Tensor& candidates, int64_t k,
                                            const std::optional<at::Tensor>& exclude, bool normalize,
                                            bool check_exclude) {
  tgnn::ops::check_topk_inputs(queries, candidates, k, exclude, check_exclude);
  return topk_dot_cpu(queries, candidates, k, tgnn::ops::sorted_exclusions(queries, exclude), normalize);
}

}  // namespace

TORCH_LIBRARY_IMPL(dgl_tgnn, CPU, m) { m.impl("topk_dot", &topk_dot); }
