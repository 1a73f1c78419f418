#include "core/tcsr.h"

#include <algorithm>
#include <cmath>
#include <limits>
#include <numeric>

#include "core/format.h"
#include "core/parallel.h"

namespace tgnn {

namespace {

struct Entry {
  double ts;
  int64_t eid;
  int64_t nbr;
};

int64_t room_for(int64_t len) { return len + len / 2 + 4; }

}  // namespace

std::string validate_events(const int64_t* src, const int64_t* dst, const double* t, int64_t num_events,
                            int64_t num_nodes, double min_time) {
  for (int64_t i = 0; i < num_events; ++i) {
    const int64_t* ids[2] = {src, dst};
    const char* names[2] = {"src", "dst"};
    for (int a = 0; a < 2; ++a) {
      const int64_t v = ids[a][i];
      if (v < 0 || v >= num_nodes) {
        return std::string(names[a]) + ": id " + format_int(v) + " at position " + format_int(i) +
               " is out of range [0, " + format_int(num_nodes) + ")";
      }
    }
    if (!std::isfinite(t[i])) {
      return "t: time " + format_double(t[i]) + " at position " + format_int(i) + " is not finite";
    }
    if (t[i] < min_time) {
      return "t: time " + format_double(t[i]) + " at position " + format_int(i) +
             " is older than the graph's latest event (" + format_double(min_time) +
             "); appended events must not go back in time";
    }
  }
  return "";
}

std::string validate_packed(const int64_t* indptr, const int64_t* nbr, const int64_t* eid, const double* ts,
                            int64_t num_nodes, int64_t num_entries, int64_t num_events, bool undirected,
                            double max_time) {
  // Row structure first: nothing below reads past an entry that indptr does not cover.
  if (indptr[0] != 0) return "indptr: expected 0 at position 0, got " + format_int(indptr[0]);
  for (int64_t v = 0; v < num_nodes; ++v) {
    if (indptr[v + 1] < indptr[v]) {
      return "indptr: " + format_int(indptr[v + 1]) + " at position " + format_int(v + 1) +
             " is smaller than the " + format_int(indptr[v]) + " before it";
    }
  }
  if (indptr[num_nodes] != num_entries) {
    return "indptr: expected " + format_int(num_entries) + " (the number of entries) at position " +
           format_int(num_nodes) + ", got " + format_int(indptr[num_nodes]);
  }
  // build() lists each event once (directed) or once or twice (undirected): this also bounds the
  // memory taken below by the entries already held.
  const bool counts_fit = undirected ? num_events <= num_entries && num_entries <= 2 * num_events
                                     : num_events == num_entries;
  if (!counts_fit) {
    return "num_events: " + format_int(num_events) + " events cannot make " + format_int(num_entries) +
           (undirected ? " entries of an undirected graph (expected num_events to 2 * num_events)"
                       : " entries of a directed graph (expected one per event)");
  }
  // Per event: how often it was seen, and the row, neighbour and time of its first entry.
  std::vector<uint8_t> seen(num_events, 0);
  std::vector<int64_t> first_row(num_events), first_nbr(num_events);
  std::vector<double> first_ts(num_events);
  double latest = -std::numeric_limits<double>::infinity();
  for (int64_t v = 0; v < num_nodes; ++v) {
    for (int64_t p = indptr[v]; p < indptr[v + 1]; ++p) {
      const auto at = [p, v] { return " at position " + format_int(p) + " (row " + format_int(v) + ")"; };
      if (nbr[p] < 0 || nbr[p] >= num_nodes) {
        return "nbr: id " + format_int(nbr[p]) + at() + " is out of range [0, " + format_int(num_nodes) + ")";
      }
      if (eid[p] < 0 || eid[p] >= num_events) {
        return "eid: id " + format_int(eid[p]) + at() + " is out of range [0, " + format_int(num_events) + ")";
      }
      if (!std::isfinite(ts[p])) return "ts: time " + format_double(ts[p]) + at() + " is not finite";
      if (p > indptr[v] && !(ts[p - 1] < ts[p] || (ts[p - 1] == ts[p] && eid[p - 1] < eid[p]))) {
        return "ts, eid: (" + format_double(ts[p]) + ", " + format_int(eid[p]) + ")" + at() +
               " does not come after (" + format_double(ts[p - 1]) + ", " + format_int(eid[p - 1]) +
               ") before it; rows must be sorted by (time, eid)";
      }
      latest = std::max(latest, ts[p]);
      const int64_t e = eid[p];
      if (seen[e] == 0) {
        first_row[e] = v;
        first_nbr[e] = nbr[p];
        first_ts[e] = ts[p];
      } else if (!undirected) {
        return "eid: event " + format_int(e) + at() + " is listed again; a directed graph lists an event once";
      } else if (seen[e] == 2 || first_row[e] == first_nbr[e] || first_row[e] != nbr[p] || first_nbr[e] != v ||
                 first_ts[e] != ts[p]) {
        return "eid: event " + format_int(e) + at() + " is listed again, but not as the other endpoint's entry " +
               "(first in row " + format_int(first_row[e]) + ", neighbour " + format_int(first_nbr[e]) +
               ", time " + format_double(first_ts[e]) + ")";
      }
      ++seen[e];
    }
  }
  for (int64_t e = 0; e < num_events; ++e) {
    if (seen[e] == 0) return "eid: event " + format_int(e) + " is in no row";
    if (undirected && seen[e] == 1 && first_row[e] != first_nbr[e]) {
      return "eid: event " + format_int(e) + " of the undirected graph is in row " + format_int(first_row[e]) +
             " only, not in the row of its other endpoint " + format_int(first_nbr[e]);
    }
  }
  if (!(max_time == latest)) {
    return "max_time: expected " + format_double(latest) + " (the latest time listed), got " +
           format_double(max_time);
  }
  return "";
}

TCSR::TCSR(int64_t num_nodes, bool undirected)
    : undirected_(undirected),
      max_time_(-std::numeric_limits<double>::infinity()),
      begin_(num_nodes, 0),
      end_(num_nodes, 0),
      cap_(num_nodes, 0) {}

TCSR TCSR::build(const int64_t* src, const int64_t* dst, const double* t, int64_t num_events,
                 int64_t num_nodes, bool undirected, int num_threads) {
  TCSR g(num_nodes, undirected);
  g.num_events_ = num_events;

  // Counting pass: row lengths, then row starts.
  std::vector<int64_t>& cursor = g.end_;
  for (int64_t e = 0; e < num_events; ++e) {
    ++cursor[src[e]];
    if (undirected && dst[e] != src[e]) ++cursor[dst[e]];
  }
  int64_t total = 0;
  for (int64_t v = 0; v < num_nodes; ++v) {
    g.begin_[v] = total;
    total += cursor[v];
    cursor[v] = g.begin_[v];
  }
  g.num_entries_ = total;
  g.nbr_.resize(total);
  g.eid_.resize(total);
  g.ts_.resize(total);

  // Scatter in eid order: within a row, eids increase, so equal times are already eid-ordered.
  for (int64_t e = 0; e < num_events; ++e) {
    int64_t p = cursor[src[e]]++;
    g.nbr_[p] = dst[e];
    g.eid_[p] = e;
    g.ts_[p] = t[e];
    if (undirected && dst[e] != src[e]) {
      p = cursor[dst[e]]++;
      g.nbr_[p] = src[e];
      g.eid_[p] = e;
      g.ts_[p] = t[e];
    }
  }
  g.cap_ = g.end_;
  for (int64_t e = 0; e < num_events; ++e) g.max_time_ = std::max(g.max_time_, t[e]);

  // Sort each row that is out of time order by (time, eid), rows in parallel.
  parallel_for(num_nodes, 1024, num_threads, [&g](int64_t first, int64_t last) {
    std::vector<Entry> buffer;
    for (int64_t v = first; v < last; ++v) {
      const int64_t b = g.begin_[v], e = g.end_[v];
      if (std::is_sorted(g.ts_.begin() + b, g.ts_.begin() + e)) continue;
      buffer.resize(e - b);
      for (int64_t p = b; p < e; ++p) buffer[p - b] = {g.ts_[p], g.eid_[p], g.nbr_[p]};
      std::sort(buffer.begin(), buffer.end(), [](const Entry& x, const Entry& y) {
        return x.ts < y.ts || (x.ts == y.ts && x.eid < y.eid);
      });
      for (int64_t p = b; p < e; ++p) {
        g.ts_[p] = buffer[p - b].ts;
        g.eid_[p] = buffer[p - b].eid;
        g.nbr_[p] = buffer[p - b].nbr;
      }
    }
  });
  return g;
}

TCSR TCSR::from_packed(const int64_t* indptr, const int64_t* nbr, const int64_t* eid, const double* ts,
                       int64_t num_nodes, int64_t num_events, bool undirected, double max_time) {
  TCSR g(num_nodes, undirected);
  const int64_t total = indptr[num_nodes];
  g.num_events_ = num_events;
  g.num_entries_ = total;
  g.max_time_ = max_time;
  std::copy(indptr, indptr + num_nodes, g.begin_.begin());
  std::copy(indptr + 1, indptr + num_nodes + 1, g.end_.begin());
  g.cap_ = g.end_;  // no slack: the first append to a row moves it, as after build()
  g.nbr_.assign(nbr, nbr + total);
  g.eid_.assign(eid, eid + total);
  g.ts_.assign(ts, ts + total);
  return g;
}

void TCSR::append(const int64_t* src, const int64_t* dst, const double* t, int64_t n) {
  // All new events are no older than every stored one and have larger eids, so taking them in
  // (time, eid) order and pushing each at the end of its rows keeps every row sorted.
  std::vector<int64_t> order(n);
  std::iota(order.begin(), order.end(), 0);
  std::stable_sort(order.begin(), order.end(), [t](int64_t a, int64_t b) { return t[a] < t[b]; });
  for (int64_t i : order) {
    const int64_t e = num_events_ + i;
    push(src[i], dst[i], e, t[i]);
    if (undirected_ && dst[i] != src[i]) push(dst[i], src[i], e, t[i]);
    max_time_ = std::max(max_time_, t[i]);
  }
  num_events_ += n;
  if (dead_ > num_entries_) repack();
}

void TCSR::push(int64_t v, int64_t u, int64_t e, double time) {
  if (end_[v] == cap_[v]) move_row(v);
  const int64_t p = end_[v]++;
  nbr_[p] = u;
  eid_[p] = e;
  ts_[p] = time;
  ++num_entries_;
}

void TCSR::move_row(int64_t v) {
  const int64_t len = end_[v] - begin_[v];
  const int64_t at = storage_size();
  const int64_t room = room_for(len);
  nbr_.resize(at + room);  // std::vector grows geometrically: amortised O(1) per slot
  eid_.resize(at + room);
  ts_.resize(at + room);
  std::copy(nbr_.begin() + begin_[v], nbr_.begin() + end_[v], nbr_.begin() + at);
  std::copy(eid_.begin() + begin_[v], eid_.begin() + end_[v], eid_.begin() + at);
  std::copy(ts_.begin() + begin_[v], ts_.begin() + end_[v], ts_.begin() + at);
  dead_ += cap_[v] - begin_[v];
  begin_[v] = at;
  end_[v] = at + len;
  cap_[v] = at + room;
}

void TCSR::repack() {
  const int64_t n = num_nodes();
  std::vector<int64_t> begin(n), end(n), cap(n);
  int64_t total = 0;
  for (int64_t v = 0; v < n; ++v) {
    const int64_t len = end_[v] - begin_[v];
    begin[v] = total;
    end[v] = total + len;
    total += len > 0 ? room_for(len) : 0;
    cap[v] = total;
  }
  std::vector<int64_t> nbr(total), eid(total);
  std::vector<double> ts(total);
  copy_rows(begin.data(), nbr.data(), eid.data(), ts.data(), 0);
  begin_.swap(begin);
  end_.swap(end);
  cap_.swap(cap);
  nbr_.swap(nbr);
  eid_.swap(eid);
  ts_.swap(ts);
  dead_ = 0;
}

void TCSR::pack(int64_t* indptr, int64_t* nbr, int64_t* eid, double* ts, int num_threads) const {
  const int64_t n = num_nodes();
  indptr[0] = 0;
  for (int64_t v = 0; v < n; ++v) indptr[v + 1] = indptr[v] + (end_[v] - begin_[v]);
  copy_rows(indptr, nbr, eid, ts, num_threads);
}

void TCSR::copy_rows(const int64_t* to, int64_t* nbr, int64_t* eid, double* ts, int num_threads) const {
  parallel_for(num_nodes(), 1024, num_threads, [&](int64_t first, int64_t last) {
    for (int64_t v = first; v < last; ++v) {
      std::copy(nbr_.begin() + begin_[v], nbr_.begin() + end_[v], nbr + to[v]);
      std::copy(eid_.begin() + begin_[v], eid_.begin() + end_[v], eid + to[v]);
      std::copy(ts_.begin() + begin_[v], ts_.begin() + end_[v], ts + to[v]);
    }
  });
}

}  // namespace tgnn
