// train_lra: trains a Long Range Arena classifier (spec/LRA.md) with any attention kind.
//
//   train_lra                                   the demo: generated ListOps, LUNA, minutes on 2 cores
//   train_lra --task listops --data lra_release --attention luna           skyformer protocol
//   train_lra --task listops --generate --data lra_data --protocol lra     generated data, JAX configs
//   train_lra --task fmnist --attention elu --steps 2000 --out runs/fm      Debian's Fashion-MNIST
//   train_lra ... --resume                      continue the run in --out (after Ctrl-C, say)
//
// The pieces live in apps/train_lra/: config (presets, flags), task_data (find/generate/read),
// trainer (the loop, checkpoints), report (progress, metrics.jsonl, curves.svg), kernels (LUNA ψ
// plot), svg (charts).
#include <unistd.h>

#include <cstdio>
#include <cstdlib>
#include <exception>
#include <string>

#include <luna/core/error.h>

#include "train_lra/config.h"
#include "train_lra/trainer.h"

namespace {
// "train_lra: error: <what>", without repeating the program name the message may start with.
void print_error(const std::string& message) {
  const std::string prefix = "train_lra: ";
  const std::string what = message.rfind(prefix, 0) == 0 ? message.substr(prefix.size()) : message;
  std::fflush(stdout);
  std::fprintf(stderr, "\ntrain_lra: error: %s\n", what.c_str());
}
// libgomp reads OMP_WAIT_POLICY once, when it is loaded (before main), and by default lets idle
// threads spin. On a machine shared with other jobs that made the demo 5-8x slower (100 steps:
// 84 s instead of 11 s, measured on the 2-core dev machine), so unless the user chose a policy the
// program runs itself again with the passive one. execv returns only on failure: then carry on.
void prefer_passive_openmp(char** argv) {
  if (std::getenv("OMP_WAIT_POLICY") != nullptr) return;
  ::setenv("OMP_WAIT_POLICY", "passive", 1);
  ::execv("/proc/self/exe", argv);
}

}  // namespace

int main(int argc, char** argv) {
  prefer_passive_openmp(argv);
  const luna::train_lra::ParsedCommandLine parsed = luna::train_lra::parse_command_line(argc, argv);
  if (!parsed.run) return parsed.exit_code;
  try {
    return luna::train_lra::run_training(parsed.config);
  } catch (const std::exception& e) {  // luna::Error and anything the standard library throws
    print_error(e.what());
    return 1;
  }
}
