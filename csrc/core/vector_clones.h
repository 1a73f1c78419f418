// TGNN_VECTOR_CLONES: compile a function twice on x86-64, for AVX2 (with FMA where the compiler can
// dispatch on it) and for the baseline; the loader picks one by the CPU's features. For short vector
// loops that the compiler vectorises. GCC 12 dispatches the ISA level x86-64-v3 (AVX2, FMA, ...) by
// feature; older GCC and clang get an AVX2 clone without FMA. (A clone for a CPU name such as
// "arch=haswell" would be picked by CPU model, i.e. never on AMD or on later Intel cores.)
#pragma once

#if defined(__x86_64__) && defined(__GNUC__) && !defined(__clang__) && __GNUC__ >= 12
#define TGNN_VECTOR_CLONES __attribute__((target_clones("arch=x86-64-v3", "default")))
#elif defined(__x86_64__) && defined(__GNUC__)
#define TGNN_VECTOR_CLONES __attribute__((target_clones("avx2", "default")))
#else
#define TGNN_VECTOR_CLONES
#endif

// TGNN_INLINE: for the helpers of a cloned function. A helper it calls is not cloned (it keeps the
// baseline's code); one that is always inlined is compiled again in each clone.
#define TGNN_INLINE __attribute__((always_inline)) inline
