// Fused masked attention: a hand-computed two-slot example (forward and every gradient), masked and
// empty rows.
#include <cmath>
#include <vector>

#include "core/attention.h"
#include "harness.h"

namespace {

bool near(float a, float b) { return std::fabs(a - b) < 1e-5f; }

}  // namespace

TEST_CASE(two_slots_by_hand) {
  // One root, one head, width 1: qk = 1, x = (2, 0). scores (2, 0), alpha = (e^2, 1) / (e^2 + 1).
  tgnn::AttentionShape s{1, 1, 2, {1}};
  const std::vector<float> qk = {1.0f}, x = {2.0f, 0.0f};
  const bool mask[] = {true, true};
  std::vector<float> alpha(2), agg(1);
  tgnn::attention_forward(s, qk.data(), {x.data()}, mask, alpha.data(), agg.data(), 0, 1);
  const float a0 = std::exp(2.0f) / (std::exp(2.0f) + 1.0f);
  CHECK(near(alpha[0], a0) && near(alpha[1], 1.0f - a0));
  CHECK(near(agg[0], 2.0f * a0));
  // d agg / d qk = 4 e^2 / (e^2 + 1)^2; d agg / d x_j = alpha_j + grad_score_j * qk with
  // grad_score = alpha_j (x_j - agg).
  std::vector<float> grad_qk(1), grad_x(2);
  const std::vector<float> grad_agg = {1.0f};
  tgnn::attention_backward(s, qk.data(), {x.data()}, alpha.data(), grad_agg.data(), grad_qk.data(),
                           {grad_x.data()}, 0, 1);
  const float e2 = std::exp(2.0f);
  CHECK(near(grad_qk[0], 4.0f * e2 / ((e2 + 1.0f) * (e2 + 1.0f))));
  CHECK(near(grad_x[0], a0 + a0 * (2.0f - 2.0f * a0)));
  CHECK(near(grad_x[1], (1.0f - a0) + (1.0f - a0) * (0.0f - 2.0f * a0)));
}

TEST_CASE(masked_and_empty_rows) {
  // Root 0: slot 1 masked, so alpha = (1, 0) and agg = x_0 whatever x_1 is. Root 1: no valid slot:
  // zero weights, zero message, zero gradients. Two parts (widths 1 and 2), two heads.
  tgnn::AttentionShape s{2, 2, 2, {1, 2}};
  std::vector<float> qk(2 * 2 * 3, 0.5f), p0 = {1, 9, 3, 4}, p1 = {1, 2, 9, 9, 5, 6, 7, 8};
  const bool mask[] = {true, false, false, false};
  std::vector<float> alpha(2 * 2 * 2, -1.0f), agg(2 * 2 * 3, -1.0f);
  tgnn::attention_forward(s, qk.data(), {p0.data(), p1.data()}, mask, alpha.data(), agg.data(), 0, 2);
  for (int h = 0; h < 2; ++h) {
    CHECK(alpha[h * 2] == 1.0f && alpha[h * 2 + 1] == 0.0f);
    CHECK(agg[h * 3] == 1.0f && agg[h * 3 + 1] == 1.0f && agg[h * 3 + 2] == 2.0f);
  }
  for (int i = 4; i < 8; ++i) CHECK(alpha[i] == 0.0f);
  for (int i = 6; i < 12; ++i) CHECK(agg[i] == 0.0f);
  std::vector<float> grad_agg(12, 1.0f), grad_qk(12, -1.0f), grad_p1(8, -1.0f);
  tgnn::attention_backward(s, qk.data(), {p0.data(), p1.data()}, alpha.data(), grad_agg.data(), grad_qk.data(),
                           {nullptr, grad_p1.data()}, 0, 2);
  // A single valid slot has weight 1 whatever its score: no gradient to qk; x_0 gets sum_h grad_agg.
  for (float g : grad_qk) CHECK(g == 0.0f);
  CHECK(grad_p1[0] == 2.0f && grad_p1[1] == 2.0f);
  for (int i = 2; i < 8; ++i) CHECK(grad_p1[i] == 0.0f);
}

TEST_MAIN()
