// train_lra: trains a Long Range Arena classifier (spec/LRA.md) with any attention kind.
//
//   train_lra                                   the demo: generated ListOps, LUNA, minutes on 2 cores
//   train_lra --task listops --data lra_release --attention luna           skyformer protocol
//   train_lra --task listops --generate --data lra_data --protocol lra     generated data, JAX configs
//   train_lra --task fmnist --attention elu --steps 2000 --out runs/fm      Debian's Fashion-MNIST
//   train_lra ... --resume                      continue the run in --out (after Ctrl-C, say)
//   train_lra ... --eval-only                   evaluate the run in --out; per-example predictions
//
// The pieces live in apps/train_lra/: config (presets, flags), task_data (find/generate/read),
// trainer (the loop, checkpoints), kernels (LUNA ψ plot); apps/common/ has the progress bar,
// metrics.jsonl, curves.svg and run utilities shared with the other apps.
#include <cstdio>
#include <exception>
#include <string>

#include <luna/core/error.h>

#include "common/run_util.h"
#include "train_lra/config.h"
#include "train_lra/trainer.h"

int main(int argc, char** argv) {
  luna::apps::prefer_passive_openmp(argv);
  const luna::train_lra::ParsedCommandLine parsed = luna::train_lra::parse_command_line(argc, argv);
  if (!parsed.run) return parsed.exit_code;
  try {
    if (parsed.config.eval_only) return luna::train_lra::run_evaluation(parsed.config);
    return luna::train_lra::run_training(parsed.config);
  } catch (const std::exception& e) {  // luna::Error and anything the standard library throws
    luna::apps::print_error("train_lra", e.what());
    return 1;
  }
}
