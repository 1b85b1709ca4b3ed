// Train-state checkpoints: model, optimizer state, every RNG stream, the step, the data cursor and
// the run config in one safetensors file, written atomically, so a run resumes bit-exactly.
// Layout (spec/CHECKPOINTS.md): tensors "model.<name>" and "optim.<param name>.<state>";
// metadata "format", "format_version", "step", "rng", "data_cursor", "config", "optimizer".
#pragma once
#include <cstdint>
#include <map>
#include <string>

#include <luna/core/generator.h>
#include <luna/nn/module.h>
#include <luna/nn/optimizer.h>

namespace luna::nn {

struct TrainState {
  int64_t step = 0;
  // Named random streams besides the default one (which is always saved as "default").
  std::map<std::string, Generator*> generators;
  std::string data_cursor = "{}";  // the data pipeline's position, as JSON
  std::string config = "{}";       // the run's configuration, as JSON
};

// Writes the checkpoint atomically (temp file, fsync, rename): an interrupted write leaves the
// previous checkpoint intact. `optimizer` may be null.
void save_train_state(const std::string& path, const Module& model, const optim::Optimizer* optimizer,
                      const TrainState& state);

// Restores model, optimizer (if given), the default generator and every generator named in
// `state.generators`, and fills step, data_cursor and config. Everything is validated before
// anything is written: on error the model, optimizer and generators are unchanged.
void load_train_state(const std::string& path, Module& model, optim::Optimizer* optimizer, TrainState& state);

}  // namespace luna::nn
