// Public controls of the CUDA backend (only in builds with LUNA_WITH_CUDA). Device probing never
// throws: with no driver or no GPU, device_count() is 0 and unavailable_reason() says why.
#pragma once
#include <string>

namespace luna::cuda {

// Number of visible CUDA devices; 0 when the driver or a device is missing. Probed once.
int device_count();
inline bool is_available() { return device_count() > 0; }
// Why device_count() is 0 (the CUDA runtime's message), or "" when a device was found.
std::string unavailable_reason();

// Whether float32 GEMMs may use TF32 tensor cores (10-bit mantissa inputs, fp32 accumulation).
// Off by default, so float32 matmuls on CUDA match the CPU to float32 rounding.
void set_allow_tf32(bool allow);
bool allow_tf32();

// Loads cuBLAS if it is not loaded yet (it is loaded on the first GEMM) and returns the file it
// came from; throws naming the library when it cannot be found. Needs no GPU.
std::string cublas_library();

// Waits for every kernel and copy queued on the device's stream.
void synchronize(int device_index = 0);

}  // namespace luna::cuda
