// The train_lra run: data, model, optimizer and schedule from a RunConfig; the training loop with
// dev evaluations, checkpoints (resumable bit-exactly, also after Ctrl-C), the best-dev model
// evaluated on test, and the files of the run folder.
//
// Run folder (--out):
//   checkpoint.safetensors  train state (model, optimizer, RNG, step, data cursor, config)
//   best.safetensors        model weights with the best dev accuracy so far
//   metrics.jsonl           one JSON object per logged step (train window averages, dev results)
//   summary.json            the run's result (written when training completes)
//   curves.svg              loss and accuracy curves
//   kernels.svg             attention = luna: each layer's ψ_ℓ over the observed u
//   eval.json, predictions_dev.tsv, predictions_test.tsv   written by --eval-only
#pragma once
#include "config.h"

namespace luna::train_lra {

// Runs (or resumes) the configured training. Returns the process exit code: 0 when training
// completed or stopped at --stop-after, 130 / 143 after SIGINT / SIGTERM (checkpoint saved).
// Errors (bad data, a mismatched --resume, ...) are thrown as luna::Error.
int run_training(const RunConfig& config);

// --eval-only: the best-dev weights of the run in config.out_dir (trained with the same settings,
// which the checkpoint's config must match) on dev and test. Writes eval.json and one prediction
// per example (index, label, prediction) in dataset order; changes nothing else. Returns 0.
int run_evaluation(const RunConfig& config);

}  // namespace luna::train_lra
