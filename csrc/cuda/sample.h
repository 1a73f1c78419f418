// CUDA launcher of one sampling hop on a packed T-CSR (same semantics and random draws as
// tgnn::sample_hop on the CPU). Torch-free: pointers in, pointers out, on the given stream.
#pragma once

#include <cuda_runtime.h>

#include <cstdint>

namespace tgnn::cuda {

// Largest fanout the kernel supports (8 slots per lane of a warp).
constexpr int64_t kMaxFanout = 256;

// indptr [num_nodes + 1], nbr/eid/ts: a packed T-CSR on the device. roots/times [num_roots].
// Outputs are dense [num_roots, fanout]. Roots outside [0, num_nodes) (e.g. -1 padding) and NaN
// times get empty rows; when error is not null (user roots), such a root ORs 1 and such a time
// ORs 2 into *error. strategy: 0 recent, 1 uniform, 2 labor (replace ignored; draws from
// rng::call_key(seed, *call), whatever the hop). 1 <= fanout <= kMaxFanout. The draws are
// those of rng::hop_key(seed, *call, hop): the call number is read on the device, so a CUDA graph
// that holds the launch draws anew at each replay once *call has moved on. Returns the launch
// status (asynchronous: nothing waits for the kernel). keyed: uniform roots draw from
// rng::content_key(hop key, node, time), not from their position.
cudaError_t launch_sample_hop(const int64_t* indptr, const int64_t* nbr, const int64_t* eid, const double* ts,
                              int64_t num_nodes, const int64_t* roots, const double* times, int64_t num_roots,
                              int64_t fanout, int strategy, bool replace, uint64_t seed, const int64_t* call,
                              uint64_t hop, int* error,
                              int64_t* out_nodes, int64_t* out_eids, double* out_times, bool* out_mask,
                              cudaStream_t stream, bool keyed = false);

}  // namespace tgnn::cuda
