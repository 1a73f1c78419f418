// TGNN_HOST_DEVICE: for torch-free helpers that the CPU code and the CUDA kernels share.
#pragma once

#if defined(__CUDACC__)
#define TGNN_HOST_DEVICE __host__ __device__
#else
#define TGNN_HOST_DEVICE
#endif
