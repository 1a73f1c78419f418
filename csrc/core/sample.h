// Temporal neighbour sampling on a T-CSR, one hop at a time. Torch-free; roots are shared among
// threads by parallel_for (core/parallel.h).
#pragma once

#include <cstdint>
#include <string>

#include "core/tcsr.h"

namespace tgnn {

// kLabor: correlated sampling (LABOR, Balin & Catalyurek 2023, on temporal rows). In one call
// (key = rng::call_key(seed, call)) the events of a node's row get numbers shared by all the
// node's roots, in every hop: rng::word(key, eid) in a row of at most rng::kLaborShortRow events,
// else the rank rng::Feistel(key, node, bits).forward(offset) of a keyed random permutation. A root
// takes its min(n, k) past events with the smallest (number, offset): marginally uniform without
// replacement, while roots of one node at different times take the same events where they can.
enum class Strategy : int32_t { kRecent = 0, kUniform = 1, kLabor = 2 };

// "" when every root is a node id in [0, num_nodes) (or -1, a padding root, if allow_padding)
// and every time is not NaN; else a message naming the argument and the offending value.
std::string validate_roots(const int64_t* nodes, const double* times, int64_t num_roots, int64_t num_nodes,
                           bool allow_padding);

// Which of a root's n past events to take, as offsets in [0, n) into its time-ordered row
// (offset n - 1 = most recent). Writes them to out in decreasing order (most recent first) and
// returns how many: recent: min(n, k) latest; uniform: min(n, k) distinct offsets, uniform without
// replacement (Floyd's algorithm, draw j from rng::word(root_key, j)); uniform with replacement:
// k independent offsets if n > 0. out must hold k values. (labor: see choose_labor.)
int64_t choose(int64_t n, int64_t k, Strategy strategy, bool replace, uint64_t root_key, int64_t* out);

// labor: the min(n, k) offsets of the first n events of node `node`'s row of d events (ids
// eids[0, d)) with the smallest numbers (see kLabor), written to out in decreasing order; returns
// how many. A short row is scanned (a bounded max-selection: most events cost one compare); a long
// one either computes the ranks of its n offsets or walks the permutation rank by rank until k
// offsets below n have come, about k * 2^bits / n steps, whichever is cheaper: O(min(n, k d / n)).
int64_t choose_labor(int64_t n, int64_t d, int64_t k, const int64_t* eids, uint64_t key, int64_t node,
                     int64_t* out);

// Dense [num_roots, fanout] row-major output of one hop.
struct HopOutput {
  int64_t* nodes;  // neighbour id, -1 in empty slots
  int64_t* eids;   // event id, -1 in empty slots
  double* times;   // event time, 0 in empty slots
  bool* mask;      // true where a slot holds a neighbour
};

// Samples up to fanout events strictly older than times[i] for each root nodes[i]; root i uses
// rng::root_key(hop_key, i), so the result does not depend on num_threads (<= 0: default_threads()).
// A root outside [0, num_nodes) (e.g. -1 padding) gets an empty row. NaN times get empty rows.
// labor: key is instead rng::call_key(seed, call), the same for every hop of the call.
// keyed: uniform root i uses rng::content_key(hop_key, nodes[i], times[i]) instead: draws that do not
// depend on the root's position among the call's roots.
void sample_hop(const TCSR& g, const int64_t* nodes, const double* times, int64_t num_roots, int64_t fanout,
                Strategy strategy, bool replace, uint64_t hop_key, int num_threads, HopOutput out,
                bool keyed = false);

}  // namespace tgnn
