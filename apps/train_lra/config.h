// train_lra's run configuration: every setting of a run in one struct, the protocol presets of
// spec/LRA.md ("skyformer", "lra") plus luna's "demo" preset, the command line that fills it, and
// its JSON form (written into checkpoints and compared on --resume).
#pragma once
#include <cstdint>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include <luna/ops/luna.h>

namespace luna::train_lra {

// The tasks, protocols and devices train_lra accepts, in the order errors list them.
const std::vector<std::string>& task_names();      // listops text retrieval image pathfinder pathx fmnist
const std::vector<std::string>& protocol_names();  // skyformer lra demo

struct RunConfig {
  // ---- what is trained
  std::string task = "listops";
  std::string protocol = "skyformer";
  std::string attention = "luna";

  // ---- data
  std::string data_dir;   // release root or the task's folder; empty = lra_data (fmnist: Debian's folder)
  bool generate = false;  // write generated data into data_dir when it is absent
  // Generated sizes with --generate (0 = the official size); otherwise a cap on what is read (0 = all).
  int64_t train_examples = 0;
  int64_t dev_examples = 0;
  int64_t test_examples = 0;
  uint64_t data_seed = 0;  // generator seed (trees / images; the ListOps split uses it too)
  // ListOps generator length limits (kept: min < length < max); the official script's 500 and 2000.
  int64_t listops_min_length = 500;
  int64_t listops_max_length = 2000;
  bool skip_bad_records = false;

  // ---- model
  int64_t layers = 2;
  int64_t dim = 64;
  int64_t heads = 2;
  int64_t ffn = 128;
  int64_t head_hidden = 128;  // hidden width of the classifier MLP
  int64_t max_len = 2048;     // tokens per sequence (per document for retrieval), CLS included
  double dropout = 0.1;
  std::string pooling = "mean";        // mean | cls
  std::string positions = "learned";   // learned | sinusoidal
  double token_embedding_std = 0.02;     // N(0, std²) initialisation (the protocols differ)
  double position_embedding_std = 0.02;
  std::string interaction = "concat4";  // retrieval: concat4 | concat2
  LunaFeatureMapOptions luna;
  int64_t performer_features = 128;  // performer: random features m
  int64_t performer_redraw = 1000;    // performer: training steps between redraws (0 = never)

  // ---- optimisation
  int64_t steps = 5000;
  int64_t batch = 32;
  double lr = 1e-4;  // peak lr; for schedule "rsqrt" the LRA base factor (peak = lr / sqrt(warmup))
  int64_t warmup = 1000;
  std::string schedule = "linear";  // linear (warmup, linear decay) | cosine (warmup, cosine) | rsqrt
  double weight_decay = 0.0;
  double beta1 = 0.9;
  double beta2 = 0.999;
  double adam_eps = 1e-6;
  double clip_norm = 0.0;  // 0 = no clipping
  bool bucket_by_length = true;

  // ---- the run (not part of what a resumed run must match)
  uint64_t seed = 0;
  int threads = 0;  // 0 = LUNA_NUM_THREADS or every core
  std::string device = "cpu";
  std::string out_dir;  // empty = lra_runs/<task>_<protocol>_<attention>_seed<seed>
  bool resume = false;
  bool eval_only = false;          // evaluate the run in out_dir (its best-dev weights) and exit
  int64_t eval_every = 500;
  int64_t log_every = 10;
  int64_t stop_after = 0;          // stop with a checkpoint after this step (0 = run to the end)
  std::string progress = "auto";   // auto (bar on a terminal) | bar | lines

  nlohmann::json to_json() const;
  // The settings that decide the numbers a run produces; a --resume must match them exactly.
  nlohmann::json training_json() const;
};

// The preset of `protocol` for `task` (spec/LRA.md table); an error names an unknown pair.
RunConfig protocol_preset(const std::string& task, const std::string& protocol);

// Checks every value (ranges, names, combinations); errors name the flag and the value.
void validate(const RunConfig& config);

// The outcome of parsing a command line: a config to run, or an exit code after --help / an error
// (messages already printed).
struct ParsedCommandLine {
  RunConfig config;
  bool run = false;
  int exit_code = 0;
};

// argv as given to main. No arguments at all means --demo.
ParsedCommandLine parse_command_line(int argc, char** argv);

// The keys of training_json() whose values differ between a checkpoint's config and this run's,
// as "key: checkpoint X, now Y" lines.
std::vector<std::string> config_differences(const nlohmann::json& saved, const nlohmann::json& now);

}  // namespace luna::train_lra
