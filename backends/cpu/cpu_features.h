// Runtime CPU feature checks for the kernels that have an AVX-512 variant. The library is built for
// x86-64-v3 (AVX2/FMA); a function compiled for AVX-512 by target attribute (LUNA_TARGET_AVX512) runs
// only after cpu_has_avx512() said yes, so the same binary still runs where AVX-512 is missing.
#pragma once

// F, VL, BW and DQ: what x86-64-v4 adds, and all the AVX-512 kernels use.
#define LUNA_TARGET_AVX512 __attribute__((target("avx512f,avx512vl,avx512bw,avx512dq,fma,avx2")))

namespace luna::cpu {

// Whether this CPU (and OS: libgcc checks the saved register state) runs AVX-512 F/VL/BW/DQ, and
// the AVX-512 kernels are allowed. LUNA_DISABLE_AVX512=1 in the environment, or
// allow_avx512(false), turns them off: to compare, or to test the AVX2 paths on a machine that has
// AVX-512. Both paths give the same bits wherever a kernel has two (the tests check that).
bool cpu_has_avx512();
void allow_avx512(bool allowed);

}  // namespace luna::cpu
