// Time-sorted CSR (T-CSR) of a stream of timestamped events: for every node, its incident
// events sorted by (time, eid). Torch-free; the torch glue validates inputs before calling in.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

namespace tgnn {

// "" when the events are valid for a graph of num_nodes nodes, else a message naming the
// argument and the offending value: src/dst ids in [0, num_nodes), t finite and >= min_time.
std::string validate_events(const int64_t* src, const int64_t* dst, const double* t, int64_t num_events,
                            int64_t num_nodes, double min_time);

// "" when indptr [num_nodes + 1] and nbr, eid, ts [num_entries] are what TCSR::pack() writes for
// num_events events, undirected or not, whose latest time is max_time; else a message naming the
// array (or value) and the offending position. Checked: indptr runs from 0 to num_entries without
// going down; every nbr is a node id, every eid an event id, every ts finite; each row is strictly
// increasing in (ts, eid); max_time is the largest ts (-inf with no entries); each event is listed
// exactly as build() lists it: once (directed, or an undirected self-loop), else in the rows of
// both endpoints with the same time. O(num_entries + num_events) time, O(num_events) memory.
// Precondition: num_nodes, num_entries, num_events >= 0.
std::string validate_packed(const int64_t* indptr, const int64_t* nbr, const int64_t* eid, const double* ts,
                            int64_t num_nodes, int64_t num_entries, int64_t num_events, bool undirected,
                            double max_time);

// The T-CSR. Row v is storage [begin(v), end(v)): neighbour id, event id, event time, sorted by
// (time, eid). An undirected graph lists an event u-v in the rows of both u and v (a self-loop once).
//
// Streaming: append() takes events no older than max_time(), so each one goes at the end of its
// rows. A row has free slack [end(v), capacity end) after it; a full row is moved to the end of
// storage with 1.5x room, and storage is repacked (every row keeping 1.5x room) once the dead
// space left by moves exceeds the live entries. Each appended entry thus costs amortised O(1).
// Rows made by build() are packed with no slack: a graph never appended to costs nothing extra.
class TCSR {
 public:
  // Precondition: validate_events(src, dst, t, num_events, num_nodes, -inf) is "".
  // O(E + sum_v d_v log d_v): a counting pass, a scatter in eid order, then a parallel sort of
  // each row that is not already in time order (none is when the input is time-sorted).
  static TCSR build(const int64_t* src, const int64_t* dst, const double* t, int64_t num_events,
                    int64_t num_nodes, bool undirected, int num_threads);

  // Adds events with ids num_events() .. num_events() + n - 1 (in input order), in any order among
  // themselves. Precondition: validate_events(src, dst, t, n, num_nodes(), max_time()) is "".
  void append(const int64_t* src, const int64_t* dst, const double* t, int64_t n);

  // The T-CSR whose pack() is (indptr, nbr, eid, ts), rows packed with no slack as build() makes
  // them; it samples and appends exactly as the T-CSR that was packed. The inverse of pack() (used
  // to unpickle). Precondition: validate_packed(indptr, nbr, eid, ts, num_nodes, indptr[num_nodes],
  // num_events, undirected, max_time) is "".
  static TCSR from_packed(const int64_t* indptr, const int64_t* nbr, const int64_t* eid, const double* ts,
                          int64_t num_nodes, int64_t num_events, bool undirected, double max_time);

  int64_t num_nodes() const { return static_cast<int64_t>(begin_.size()); }
  int64_t num_events() const { return num_events_; }
  int64_t num_entries() const { return num_entries_; }  // live row entries (2E - self-loops if undirected)
  int64_t storage_size() const { return static_cast<int64_t>(nbr_.size()); }
  bool undirected() const { return undirected_; }
  double max_time() const { return max_time_; }  // -inf when empty

  int64_t begin(int64_t v) const { return begin_[v]; }
  int64_t end(int64_t v) const { return end_[v]; }
  const int64_t* nbr() const { return nbr_.data(); }
  const int64_t* eid() const { return eid_.data(); }
  const double* ts() const { return ts_.data(); }

  // Packed copy: indptr [num_nodes + 1], nbr/eid/ts [num_entries] (caller-allocated).
  void pack(int64_t* indptr, int64_t* nbr, int64_t* eid, double* ts, int num_threads) const;

 private:
  TCSR(int64_t num_nodes, bool undirected);
  void push(int64_t v, int64_t u, int64_t e, double time);
  void move_row(int64_t v);
  void repack();
  // Copies every row v into nbr/eid/ts starting at offset to[v], rows in parallel.
  void copy_rows(const int64_t* to, int64_t* nbr, int64_t* eid, double* ts, int num_threads) const;

  bool undirected_;
  int64_t num_events_ = 0;
  int64_t num_entries_ = 0;
  int64_t dead_ = 0;  // storage slots abandoned by move_row
  double max_time_;
  std::vector<int64_t> begin_, end_, cap_;  // per node: row start, row end, end of its slack
  std::vector<int64_t> nbr_, eid_;
  std::vector<double> ts_;
};

}  // namespace tgnn
