// Harmonic time encoding: the fast cosine against std::cos in double, over the argument range of
// time differences (fast path) and beyond it (std::cos rows), NaN, and range splitting.
#include <cmath>
#include <limits>
#include <vector>

#include "core/time_encoding.h"
#include "harness.h"

namespace {

// Max |out - cos(a)| over dt x w with b = 0, where a = float(dt * w) is what the kernel forms.
double max_error(const std::vector<float>& dt, const std::vector<float>& w) {
  const int64_t dim = static_cast<int64_t>(w.size());
  std::vector<float> b(w.size(), 0.0f), out(dt.size() * w.size());
  tgnn::harmonic_encoding(dt.data(), w.data(), b.data(), dim, out.data(), 0, static_cast<int64_t>(dt.size()));
  double worst = 0.0;
  for (size_t i = 0; i < dt.size(); ++i) {
    for (size_t j = 0; j < w.size(); ++j) {
      const float a = dt[i] * w[j];
      worst = std::max(worst, std::abs(out[i * w.size() + j] - std::cos(static_cast<double>(a))));
    }
  }
  return worst;
}

std::vector<float> tgat_frequencies(int dim) {
  std::vector<float> w(dim);
  for (int j = 0; j < dim; ++j) w[j] = static_cast<float>(1.0 / std::pow(10.0, 9.0 * j / (dim - 1)));
  return w;
}

}  // namespace

TEST_CASE(fast_path_matches_double_cosine) {
  std::vector<float> dt;
  for (int i = 0; i < 4000; ++i) dt.push_back(static_cast<float>(std::pow(10.0, 8.2 * i / 3999.0) - 1.0));
  for (int i = 0; i < 500; ++i) dt.push_back(-dt[i * 7]);  // negative differences too
  CHECK(max_error(dt, tgat_frequencies(100)) < 1e-7);
  // Arguments at multiples of pi / 4, where the quadrant changes.
  std::vector<float> edges;
  for (int i = -4000; i <= 4000; ++i) edges.push_back(static_cast<float>(i * 0.7853981633974483));
  CHECK(max_error(edges, {1.0f, 1.0000001f, 0.9999999f}) < 1e-7);
}

TEST_CASE(large_and_non_finite_differences_take_std_cos) {
  const std::vector<float> w = tgat_frequencies(7);
  CHECK(max_error({3e8f, -1e12f, 1e30f}, w) < 1e-7);
  const float nan = std::numeric_limits<float>::quiet_NaN(), inf = std::numeric_limits<float>::infinity();
  std::vector<float> dt = {nan, inf, 1.0f}, b(7, 0.0f), out(21);
  tgnn::harmonic_encoding(dt.data(), w.data(), b.data(), 7, out.data(), 0, 3);
  bool nan_rows = true;
  for (int j = 0; j < 7; ++j) nan_rows = nan_rows && std::isnan(out[j]) && std::isnan(out[7 + j]);
  CHECK(nan_rows);
  CHECK(std::abs(out[14] - std::cos(1.0)) < 1e-7);
}

TEST_CASE(bias_shifts_the_argument) {
  const std::vector<float> dt = {0.0f, 2.5f, 1000.0f}, w = {1.0f, 0.25f}, b = {0.5f, -2.0f};
  std::vector<float> out(6);
  tgnn::harmonic_encoding(dt.data(), w.data(), b.data(), 2, out.data(), 0, 3);
  bool ok = true;
  for (int i = 0; i < 3; ++i) {
    for (int j = 0; j < 2; ++j) {
      // These products and sums are exact in float32, so the argument has no rounding to allow for.
      ok = ok && std::abs(out[i * 2 + j] - std::cos(static_cast<double>(dt[i]) * w[j] + b[j])) < 1e-7;
    }
  }
  CHECK(ok);
}

TEST_CASE(split_ranges_give_the_same_rows) {
  const std::vector<float> w = tgat_frequencies(9), b(9, 0.25f);
  std::vector<float> dt(50);
  for (int i = 0; i < 50; ++i) dt[i] = static_cast<float>(i * 12345.678);
  std::vector<float> whole(450), parts(450);
  tgnn::harmonic_encoding(dt.data(), w.data(), b.data(), 9, whole.data(), 0, 50);
  tgnn::harmonic_encoding(dt.data(), w.data(), b.data(), 9, parts.data(), 0, 17);
  tgnn::harmonic_encoding(dt.data(), w.data(), b.data(), 9, parts.data(), 17, 50);
  CHECK(whole == parts);
}

TEST_MAIN()
