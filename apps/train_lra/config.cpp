// Protocol presets (spec/LRA.md "Protocols"), command-line parsing and validation for train_lra.
#include "config.h"

#include <algorithm>
#include <cstdio>
#include <functional>
#include <sstream>

#include <CLI/CLI.hpp>

#include <luna/core/error.h>
#include <luna/nn/attention.h>

namespace luna::train_lra {

namespace {

bool contains(const std::vector<std::string>& names, const std::string& name) {
  return std::find(names.begin(), names.end(), name) != names.end();
}

std::string joined(const std::vector<std::string>& names) {
  std::string out;
  for (const auto& name : names) out += (out.empty() ? "" : ", ") + name;
  return out;
}

bool is_image_task(const std::string& task) {
  return task == "image" || task == "pathfinder" || task == "pathx" || task == "fmnist";
}

// One row of the skyformer table: the model is the same for every task.
RunConfig skyformer_row(const std::string& task, int64_t max_len, int64_t batch, double lr, int64_t warmup,
                        int64_t steps) {
  RunConfig c;
  c.task = task;
  c.protocol = "skyformer";
  c.layers = 2;
  c.dim = 64;
  c.ffn = 128;
  c.heads = 2;
  c.head_hidden = 128;
  c.dropout = 0.1;
  c.pooling = "mean";
  c.positions = "learned";
  c.interaction = "concat4";
  // The PyTorch LRA code (Nyströmformer/Skyformer) draws both embeddings from N(0, 0.02).
  c.token_embedding_std = 0.02;
  c.position_embedding_std = 0.02;
  c.max_len = max_len;
  c.batch = batch;
  c.lr = lr;
  c.warmup = warmup;
  c.steps = steps;
  c.schedule = "linear";
  c.weight_decay = 0.0;
  c.beta1 = 0.9;
  c.beta2 = 0.999;
  c.adam_eps = 1e-6;
  c.eval_every = std::max<int64_t>(100, steps / 20);
  return c;
}

// The original JAX configs: pre-LN with a final LN, Adam (0.9, 0.98, 1e-9) with decoupled weight
// decay, CLS pooling (mean for Pathfinder), rsqrt schedule on text tasks, warmup + cosine on images.
RunConfig lra_row(const std::string& task) {
  RunConfig c;
  c.task = task;
  c.protocol = "lra";
  c.beta1 = 0.9;
  c.beta2 = 0.98;
  c.adam_eps = 1e-9;
  c.pooling = "cls";
  c.positions = "learned";
  c.interaction = "concat2";
  // flax's nn.Embed draws tokens from N(0, 1); AddPositionEmbs learned positions from N(0, 0.02).
  c.token_embedding_std = 1.0;
  c.position_embedding_std = 0.02;
  c.dropout = 0.1;
  if (task == "listops") {  // spec: 4 layers, 512/1024, 8 heads, batch 32, base 0.05, warmup 1000, 5000 steps
    c.layers = 4, c.dim = 512, c.ffn = 1024, c.heads = 8, c.max_len = 2000;
    c.batch = 32, c.lr = 0.05, c.warmup = 1000, c.steps = 5000, c.schedule = "rsqrt", c.weight_decay = 0.1;
  } else if (task == "text") {  // base_tc_config.py: max_length 1000 (the released config)
    c.layers = 4, c.dim = 256, c.ffn = 1024, c.heads = 4, c.max_len = 1000;
    c.batch = 32, c.lr = 0.05, c.warmup = 8000, c.steps = 20000, c.schedule = "rsqrt", c.weight_decay = 0.1;
  } else if (task == "retrieval") {  // base_match_config.py
    c.layers = 4, c.dim = 128, c.ffn = 512, c.heads = 4, c.max_len = 4000;
    c.batch = 32, c.lr = 0.05, c.warmup = 8000, c.steps = 5000, c.schedule = "rsqrt", c.weight_decay = 0.1;
  } else if (task == "image" || task == "fmnist") {  // base_cifar10_config.py (fmnist: ours, same model)
    c.layers = 1, c.dim = 32, c.ffn = 64, c.heads = 1, c.max_len = task == "image" ? 1024 : 784;
    c.dropout = 0.3, c.batch = 256, c.lr = 5e-4, c.warmup = 175, c.steps = 35000, c.schedule = "cosine";
    c.weight_decay = 0.0;
  } else {  // pathfinder / pathx: spec: 4 layers, 32/32, 4 heads, mean pooling, batch 512, lr 1e-3, 62400 steps
    c.layers = 4, c.dim = 32, c.ffn = 32, c.heads = 4, c.max_len = task == "pathfinder" ? 1024 : 16384;
    c.pooling = "mean", c.positions = "sinusoidal";
    c.batch = 512, c.lr = 1e-3, c.warmup = 312, c.steps = 62400, c.schedule = "cosine", c.weight_decay = 0.0;
  }
  c.head_hidden = c.ffn;  // LRA's classifier head is Dense(mlp_dim) -> relu -> Dense(classes)
  c.eval_every = std::max<int64_t>(100, c.steps / 20);
  return c;
}

// `make demo`: generated ListOps with short trees, small enough to train on 2 cores in minutes.
RunConfig demo_row() {
  RunConfig c = skyformer_row("listops", 128, 32, 2e-3, 100, 1200);
  c.protocol = "demo";
  c.generate = true;
  c.train_examples = 12000;
  c.dev_examples = 1000;
  c.test_examples = 1000;
  c.listops_min_length = 20;
  c.listops_max_length = 128;
  c.eval_every = 200;
  c.log_every = 20;
  return c;
}

void check_positive(int64_t value, const char* flag) {
  LUNA_CHECK(value >= 1, "train_lra: ", flag, " must be >= 1, got ", value);
}
void check_non_negative(int64_t value, const char* flag) {
  LUNA_CHECK(value >= 0, "train_lra: ", flag, " must be >= 0, got ", value);
}
void check_one_of(const std::string& value, const std::vector<std::string>& names, const char* flag) {
  LUNA_CHECK(contains(names, value), "train_lra: ", flag, " must be one of ", joined(names), "; got '", value, "'");
}

}  // namespace

const std::vector<std::string>& task_names() {
  static const std::vector<std::string> names = {"listops", "text", "retrieval", "image", "pathfinder", "pathx", "fmnist"};
  return names;
}

const std::vector<std::string>& protocol_names() {
  static const std::vector<std::string> names = {"skyformer", "lra", "demo"};
  return names;
}

RunConfig protocol_preset(const std::string& task, const std::string& protocol) {
  check_one_of(task, task_names(), "--task");
  check_one_of(protocol, protocol_names(), "--protocol");
  if (protocol == "demo") {
    LUNA_CHECK(task == "listops", "train_lra: --protocol demo is defined for --task listops only, got --task ", task);
    return demo_row();
  }
  if (protocol == "lra") return lra_row(task);
  // skyformer (spec/LRA.md table; pathx and fmnist are ours: the pathfinder and image rows at their lengths)
  if (task == "listops") return skyformer_row(task, 2048, 32, 1e-4, 1000, 5000);
  if (task == "text") return skyformer_row(task, 4096, 32, 1e-4, 8000, 20000);
  if (task == "retrieval") return skyformer_row(task, 4000, 16, 2e-4, 800, 30000);
  if (task == "image") return skyformer_row(task, 1024, 256, 1e-4, 175, 35000);
  if (task == "fmnist") return skyformer_row(task, 784, 256, 1e-4, 175, 35000);
  if (task == "pathfinder") return skyformer_row(task, 1024, 128, 2e-4, 312, 62400);
  return skyformer_row(task, 16384, 128, 2e-4, 312, 62400);  // pathx
}

nlohmann::json RunConfig::training_json() const {
  nlohmann::json j;
  j["task"] = task;
  j["protocol"] = protocol;
  j["attention"] = attention;
  j["train_examples"] = train_examples;
  j["dev_examples"] = dev_examples;
  j["test_examples"] = test_examples;
  j["data_seed"] = data_seed;
  j["listops_min_length"] = listops_min_length;
  j["listops_max_length"] = listops_max_length;
  j["skip_bad_records"] = skip_bad_records;
  j["layers"] = layers;
  j["dim"] = dim;
  j["heads"] = heads;
  j["ffn"] = ffn;
  j["head_hidden"] = head_hidden;
  j["max_len"] = max_len;
  j["dropout"] = dropout;
  j["pooling"] = pooling;
  j["positions"] = positions;
  j["token_embedding_std"] = token_embedding_std;
  j["position_embedding_std"] = position_embedding_std;
  j["interaction"] = interaction;
  j["luna"] = {{"m", luna.num_projections}, {"l", luna.channels}, {"hidden", luna.hidden},
               {"activation", luna.activation}, {"layout", luna.layout}, {"envelope", luna.envelope},
               {"per_head", luna.per_head}, {"channel_rms_limit", luna.channel_rms_limit}};
  j["performer_features"] = performer_features;
  j["performer_redraw"] = performer_redraw;
  j["steps"] = steps;
  j["batch"] = batch;
  j["lr"] = lr;
  j["warmup"] = warmup;
  j["schedule"] = schedule;
  j["weight_decay"] = weight_decay;
  j["beta1"] = beta1;
  j["beta2"] = beta2;
  j["adam_eps"] = adam_eps;
  j["clip_norm"] = clip_norm;
  j["bucket_by_length"] = bucket_by_length;
  j["seed"] = seed;
  return j;
}

nlohmann::json RunConfig::to_json() const {
  nlohmann::json j = training_json();
  j["data_dir"] = data_dir;
  j["generate"] = generate;
  j["threads"] = threads;
  j["device"] = device;
  j["out_dir"] = out_dir;
  j["eval_every"] = eval_every;
  j["log_every"] = log_every;
  j["stop_after"] = stop_after;
  return j;
}

void validate(const RunConfig& c) {
  check_one_of(c.task, task_names(), "--task");
  check_one_of(c.protocol, protocol_names(), "--protocol");
  check_one_of(c.attention, nn::available_attention_kinds(), "--attention");
  LUNA_CHECK(!c.generate || c.task == "listops" || c.task == "pathfinder" || c.task == "pathx",
             "train_lra: --generate works for listops, pathfinder and pathx (luna has their generators); task ", c.task,
             " needs --data with the real data");
  check_non_negative(c.train_examples, "--train-examples");
  check_non_negative(c.dev_examples, "--dev-examples");
  check_non_negative(c.test_examples, "--test-examples");
  LUNA_CHECK(c.listops_min_length >= 0 && c.listops_max_length > c.listops_min_length + 1,
             "train_lra: ListOps lengths strictly between --listops-min-length and --listops-max-length are kept; "
             "need 0 <= min and min + 1 < max, got ",
             c.listops_min_length, " and ", c.listops_max_length);
  check_positive(c.layers, "--layers");
  check_positive(c.dim, "--dim");
  check_positive(c.heads, "--heads");
  LUNA_CHECK(c.dim % c.heads == 0, "train_lra: --dim (", c.dim, ") must be divisible by --heads (", c.heads, ")");
  check_positive(c.ffn, "--ffn");
  check_positive(c.head_hidden, "--head-hidden");
  LUNA_CHECK(c.max_len >= 2, "train_lra: --max-len must be >= 2, got ", c.max_len);
  LUNA_CHECK(c.dropout >= 0.0 && c.dropout < 1.0, "train_lra: --dropout must be in [0, 1), got ", c.dropout);
  check_one_of(c.pooling, {"mean", "cls"}, "--pooling");
  check_one_of(c.positions, {"learned", "sinusoidal"}, "--positions");
  check_one_of(c.interaction, {"concat4", "concat2"}, "--interaction");
  check_positive(c.luna.num_projections, "--luna-m");
  check_positive(c.luna.channels, "--luna-l");
  check_positive(c.luna.hidden, "--luna-hidden");
  check_one_of(c.luna.activation, {"relu", "gelu", "silu"}, "--luna-act");
  check_one_of(c.luna.layout, {"per_channel", "shared"}, "--luna-layout");
  check_positive(c.performer_features, "--performer-features");
  check_non_negative(c.performer_redraw, "--performer-redraw");
  check_positive(c.steps, "--steps");
  check_positive(c.batch, "--batch");
  LUNA_CHECK(c.lr > 0.0, "train_lra: --lr must be > 0, got ", c.lr);
  check_non_negative(c.warmup, "--warmup");
  check_one_of(c.schedule, {"linear", "cosine", "rsqrt"}, "--schedule");
  LUNA_CHECK(c.schedule != "rsqrt" || c.warmup >= 1, "train_lra: --schedule rsqrt needs --warmup >= 1, got ", c.warmup);
  // Checked with the other flags, before any data is read or generated: the presets' warmups (1000 for
  // listops) are longer than a short trial run's --steps.
  LUNA_CHECK(c.schedule == "rsqrt" || c.warmup <= c.steps, "train_lra: --warmup (", c.warmup,
             ") must not exceed --steps (", c.steps, ") with the ", c.schedule,
             " schedule; lower --warmup or use --schedule rsqrt");
  LUNA_CHECK(c.weight_decay >= 0.0, "train_lra: --weight-decay must be >= 0, got ", c.weight_decay);
  LUNA_CHECK(c.beta1 >= 0.0 && c.beta1 < 1.0 && c.beta2 >= 0.0 && c.beta2 < 1.0,
             "train_lra: Adam betas must be in [0, 1), got ", c.beta1, " and ", c.beta2);
  LUNA_CHECK(c.adam_eps > 0.0, "train_lra: --adam-eps must be > 0, got ", c.adam_eps);
  LUNA_CHECK(c.clip_norm >= 0.0, "train_lra: --clip-norm must be >= 0 (0 = off), got ", c.clip_norm);
  LUNA_CHECK(c.threads >= 0, "train_lra: --threads must be >= 0 (0 = all cores), got ", c.threads);
  check_positive(c.eval_every, "--eval-every");
  check_positive(c.log_every, "--log-every");
  check_non_negative(c.stop_after, "--stop-after");
  LUNA_CHECK(!(c.eval_only && c.resume), "train_lra: --eval-only and --resume exclude each other: --eval-only "
             "evaluates the run in --out without training");
  LUNA_CHECK(!(c.eval_only && c.stop_after > 0), "train_lra: --stop-after (", c.stop_after,
             ") has no meaning with --eval-only, which does not train");
  check_one_of(c.progress, {"auto", "bar", "lines"}, "--progress");
  const bool cuda = c.device == "cuda" || c.device.rfind("cuda:", 0) == 0;
  LUNA_CHECK(c.device == "cpu" || cuda, "train_lra: --device must be cpu or cuda[:N], got '", c.device, "'");
#ifndef LUNA_WITH_CUDA
  LUNA_CHECK(!cuda, "train_lra: --device ", c.device,
             ": this luna was built without CUDA (no nvcc found, or LUNA_CUDA=OFF); use --device cpu");
#endif
  (void)is_image_task;
}

std::vector<std::string> config_differences(const nlohmann::json& saved, const nlohmann::json& now) {
  std::vector<std::string> out;
  for (const auto& [key, value] : now.items()) {
    if (!saved.contains(key)) {
      out.push_back(key + ": not in the checkpoint, now " + value.dump());
    } else if (saved[key] != value) {
      out.push_back(key + ": checkpoint " + saved[key].dump() + ", now " + value.dump());
    }
  }
  for (const auto& [key, value] : saved.items())
    if (!now.contains(key)) out.push_back(key + ": checkpoint " + value.dump() + ", not set now");
  return out;
}

ParsedCommandLine parse_command_line(int argc, char** argv) {
  ParsedCommandLine result;
  CLI::App app(
      "train_lra: trains a Long Range Arena classifier (spec/LRA.md) with any attention kind and writes\n"
      "metrics.jsonl, summary.json, curves.svg (and kernels.svg for LUNA) into --out.\n"
      "With no arguments it runs the demo: generated ListOps, LUNA attention, a few minutes on 2 cores.\n"
      "A flag left out takes the value of the --protocol preset for --task (the defaults shown are\n"
      "those of --task listops --protocol skyformer).",
      "train_lra");
  app.option_defaults()->always_capture_default();

  RunConfig cli;  // values given on the command line; copied over the preset only when present
  std::vector<std::pair<CLI::Option*, std::function<void(RunConfig&)>>> overrides;
  auto tracked = [&overrides](CLI::Option* option, std::function<void(RunConfig&)> apply) {
    overrides.emplace_back(option, std::move(apply));
    return option;
  };
#define LUNA_TRAIN_FLAG(flag, field, help) \
  tracked(app.add_option(flag, cli.field, help), [&cli](RunConfig& target) { target.field = cli.field; })
#define LUNA_TRAIN_SWITCH(flag, field, help) \
  tracked(app.add_flag(flag, cli.field, help), [&cli](RunConfig& target) { target.field = cli.field; })

  bool demo = false;
  app.add_flag("--demo", demo, "the make-demo preset: --task listops --protocol demo (generated data); same as no arguments");
  app.add_option("--task", cli.task, "listops | text | retrieval | image | pathfinder | pathx | fmnist")
      ->check(CLI::IsMember(task_names()));
  app.add_option("--protocol", cli.protocol, "presets of spec/LRA.md: skyformer | lra, or demo (ListOps)")
      ->check(CLI::IsMember(protocol_names()));
  LUNA_TRAIN_FLAG("--attention", attention, "softmax | luna | elu | performer | cosformer | hedgehog")
      ->check(CLI::IsMember(nn::available_attention_kinds()));

  LUNA_TRAIN_FLAG("--data", data_dir,
                  "the release root (lra_release/) or the task's folder; default lra_data "
                  "(fmnist: /usr/share/datasets/fashion-mnist)");
  LUNA_TRAIN_SWITCH("--generate", generate,
                    "listops/pathfinder/pathx: generate the data in the official format under --data if it is absent");
  LUNA_TRAIN_FLAG("--train-examples", train_examples, "generated train size (0 = official); without --generate a cap on what is read (0 = all)");
  LUNA_TRAIN_FLAG("--dev-examples", dev_examples, "generated dev size / read cap, as --train-examples");
  LUNA_TRAIN_FLAG("--test-examples", test_examples, "generated test size / read cap, as --train-examples");
  LUNA_TRAIN_FLAG("--data-seed", data_seed, "seed of the generators")->check(CLI::NonNegativeNumber);
  LUNA_TRAIN_FLAG("--listops-min-length", listops_min_length, "generated ListOps keeps trees longer than this (official 500)");
  LUNA_TRAIN_FLAG("--listops-max-length", listops_max_length, "... and shorter than this (official 2000)");
  LUNA_TRAIN_SWITCH("--skip-bad-records", skip_bad_records, "skip malformed records (counted) instead of stopping");

  LUNA_TRAIN_FLAG("--layers", layers, "encoder layers");
  LUNA_TRAIN_FLAG("--dim", dim, "model width");
  LUNA_TRAIN_FLAG("--heads", heads, "attention heads");
  LUNA_TRAIN_FLAG("--ffn", ffn, "feed-forward width");
  LUNA_TRAIN_FLAG("--head-hidden", head_hidden, "hidden width of the classifier head");
  LUNA_TRAIN_FLAG("--max-len", max_len, "tokens kept per sequence (per document for retrieval), CLS included");
  LUNA_TRAIN_FLAG("--dropout", dropout, "dropout rate");
  LUNA_TRAIN_FLAG("--pooling", pooling, "mean | cls");
  LUNA_TRAIN_FLAG("--positions", positions, "learned | sinusoidal");
  LUNA_TRAIN_FLAG("--interaction", interaction, "retrieval: concat4 [e1,e2,e1*e2,e1-e2] | concat2 [e1,e2]");

  LUNA_TRAIN_FLAG("--luna-m", luna.num_projections, "LUNA: projections M");
  LUNA_TRAIN_FLAG("--luna-l", luna.channels, "LUNA: channels L (F = M*L features)");
  LUNA_TRAIN_FLAG("--luna-hidden", luna.hidden, "LUNA: hidden width of psi");
  LUNA_TRAIN_FLAG("--luna-act", luna.activation, "LUNA: psi activation relu | gelu | silu");
  LUNA_TRAIN_FLAG("--luna-layout", luna.layout, "LUNA: per_channel | shared");
  LUNA_TRAIN_SWITCH("--luna-envelope", luna.envelope, "LUNA: learnable envelope exp(beta |x|^2 / (2 sqrt d))");
  LUNA_TRAIN_SWITCH("--luna-per-head", luna.per_head, "LUNA: a separate feature map per head");
  LUNA_TRAIN_SWITCH("--luna-channel-rms-limit", luna.channel_rms_limit, "LUNA: limit each channel's RMS to 0.1 (batch statistics)");
  LUNA_TRAIN_FLAG("--performer-features", performer_features, "performer: random features m");
  LUNA_TRAIN_FLAG("--performer-redraw", performer_redraw, "performer: redraw every this many training steps (0 = never)");

  LUNA_TRAIN_FLAG("--steps", steps, "optimizer steps");
  LUNA_TRAIN_FLAG("--batch", batch, "batch size");
  LUNA_TRAIN_FLAG("--lr", lr, "peak learning rate (rsqrt schedule: the base factor)");
  LUNA_TRAIN_FLAG("--warmup", warmup, "warmup steps");
  LUNA_TRAIN_FLAG("--schedule", schedule, "linear | cosine | rsqrt (each after a linear warmup)");
  LUNA_TRAIN_FLAG("--weight-decay", weight_decay, "decoupled weight decay");
  LUNA_TRAIN_FLAG("--adam-eps", adam_eps, "Adam epsilon");
  LUNA_TRAIN_FLAG("--clip-norm", clip_norm, "clip the gradient norm to this (0 = off)");
  LUNA_TRAIN_FLAG("--bucket-by-length", bucket_by_length, "batch similar lengths together (true | false)");

  LUNA_TRAIN_FLAG("--seed", seed, "seed of initialisation, dropout, random features and data order")
      ->check(CLI::NonNegativeNumber);
  LUNA_TRAIN_FLAG("--threads", threads, "CPU threads (0 = LUNA_NUM_THREADS or every core)");
  LUNA_TRAIN_FLAG("--device", device, "cpu | cuda[:N]");
  LUNA_TRAIN_FLAG("--out", out_dir, "output folder; default lra_runs/<task>_<protocol>_<attention>_seed<seed>");
  LUNA_TRAIN_SWITCH("--resume", resume, "continue the run in --out from its checkpoint (bit-exact)");
  LUNA_TRAIN_SWITCH("--eval-only", eval_only,
                    "only evaluate the run in --out (give the command that trained it): its best-dev weights on dev "
                    "and test; writes eval.json and predictions_dev.tsv / predictions_test.tsv");
  LUNA_TRAIN_FLAG("--eval-every", eval_every, "evaluate on dev (and checkpoint) every this many steps");
  LUNA_TRAIN_FLAG("--log-every", log_every, "write a metrics line every this many steps");
  LUNA_TRAIN_FLAG("--stop-after", stop_after, "stop after this step with a checkpoint, as Ctrl-C does (0 = off)");
  LUNA_TRAIN_FLAG("--progress", progress, "auto (a bar on a terminal) | bar | lines");
#undef LUNA_TRAIN_FLAG
#undef LUNA_TRAIN_SWITCH

  try {
    app.parse(argc, argv);
  } catch (const CLI::CallForHelp& e) {
    result.exit_code = app.exit(e);
    return result;
  } catch (const CLI::ParseError& e) {
    std::fprintf(stderr, "train_lra: error: %s\nRun with --help for the options.\n", e.what());
    result.exit_code = 2;
    return result;
  }

  try {
    if (argc <= 1) demo = true;
    const bool task_given = app.count("--task") > 0, protocol_given = app.count("--protocol") > 0;
    LUNA_CHECK(task_given || demo, "train_lra: --task is required (one of ", joined(task_names()),
               "); run with no arguments or --demo for the demo");
    const std::string task = task_given ? cli.task : "listops";
    const std::string protocol = protocol_given ? cli.protocol : (demo ? "demo" : "skyformer");
    RunConfig config = protocol_preset(task, protocol);
    for (const auto& [option, apply] : overrides)
      if (option->count() > 0) apply(config);
    if (config.data_dir.empty()) {
      config.data_dir = config.protocol == "demo" ? "lra_data/demo"
                        : config.task == "fmnist" ? "/usr/share/datasets/fashion-mnist"
                                                  : "lra_data";
    }
    if (config.out_dir.empty()) {
      config.out_dir = "lra_runs/" + config.task + "_" + config.protocol + "_" + config.attention + "_seed" +
                       std::to_string(config.seed);
    }
    validate(config);
    result.config = config;
    result.run = true;
  } catch (const Error& e) {
    const std::string message = e.what(), prefix = "train_lra: ";
    std::fprintf(stderr, "train_lra: error: %s\nRun with --help for the options.\n",
                 (message.rfind(prefix, 0) == 0 ? message.substr(prefix.size()) : message).c_str());
    result.exit_code = 2;
  }
  return result;
}

}  // namespace luna::train_lra
