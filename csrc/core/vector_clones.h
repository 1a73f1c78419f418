// TGNN_VECTOR_CLONES: compile a function twice on x86-64, with AVX2 and for the baseline; the
// loader picks one by the CPU's features. (A clone for "arch=haswell" would be picked by CPU model,
// i.e. never on AMD or on later Intel cores.) For short vector loops that the compiler vectorises.
#pragma once

#if defined(__x86_64__) && defined(__GNUC__)
#define TGNN_VECTOR_CLONES __attribute__((target_clones("avx2", "default")))
#else
#define TGNN_VECTOR_CLONES
#endif
