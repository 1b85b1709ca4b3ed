// One knob for parallelism: set_num_threads(n) or LUNA_NUM_THREADS sets both luna's OpenMP loops
// and OpenBLAS, so the two never oversubscribe the machine. Default: the cores available to us.
#pragma once

namespace luna {

void set_num_threads(int n);
int get_num_threads();
// Reads LUNA_NUM_THREADS once; every backend entry point calls it.
void init_threads();

}  // namespace luna
