// Opt-in per-op time profile of a training step (bench_train_step --breakdown). While it is on, the
// time from one recorded forward op to the next is charged to the later op ("forward <op>": its own
// work plus anything unrecorded since the previous op, such as a copy it made), each backward node's
// time to "backward <op>", and the sums of gradients that meet at a tensor to "backward (sum of
// gradients)"; callers add their own phases with op_profile_mark. Process CPU time (all threads) and
// wall time are both kept. Off, it costs one relaxed atomic load per op. Marks must come from one
// thread at a time (the thread running the ops).
#pragma once
#include <cstdint>
#include <string>
#include <vector>

namespace luna::autograd {

struct OpTime {
  std::string name;
  double cpu_ms = 0, wall_ms = 0;
  int64_t calls = 0;
};

// Clears the totals and starts charging time from now.
void start_op_profile();
// Stops and returns the totals by name, most CPU time first.
std::vector<OpTime> stop_op_profile();
bool op_profile_on();
// Charges the time since the previous mark to "<phase> <name>".
void op_profile_mark(const char* phase, const char* name);

}  // namespace luna::autograd
