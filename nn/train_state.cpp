// Train-state checkpoint (de)serialisation on top of safetensors.
#include <luna/nn/train_state.h>
#include <luna/core/safetensors.h>

#include <nlohmann/json.hpp>

#include <unordered_map>

namespace luna::nn {
namespace {

constexpr const char* kFormat = "luna.train_state";
constexpr const char* kFormatVersion = "1";

// Optimizer parameter index -> the model's name for that parameter.
std::vector<std::string> optimizer_param_names(const Module& model, const optim::Optimizer& optimizer) {
  std::unordered_map<const TensorImpl*, std::string> names;
  for (const auto& [name, p] : model.named_parameters()) names.emplace(p.impl(), name);
  std::vector<std::string> out;
  const std::vector<Tensor> params = optimizer.parameters();
  for (size_t i = 0; i < params.size(); ++i) {
    auto it = names.find(params[i].impl());
    LUNA_CHECK(it != names.end(), "train state: optimizer parameter ", i, " (", params[i].str(),
               ") is not a parameter of the model; checkpoints name optimizer state by model parameter");
    out.push_back(it->second);
  }
  return out;
}

std::string get_meta(const SafetensorsFile& file, const std::string& key) {
  auto it = file.metadata.find(key);
  LUNA_CHECK(it != file.metadata.end(), "train state: ", file.source, " has no '", key,
             "' metadata; it is not a luna train-state checkpoint (or a damaged one)");
  return it->second;
}

}  // namespace

void save_train_state(const std::string& path, const Module& model, const optim::Optimizer* optimizer,
                      const TrainState& state) {
  std::vector<std::pair<std::string, Tensor>> tensors;
  for (const auto& [name, t] : model.state_dict()) tensors.emplace_back("model." + name, t);
  if (optimizer) {
    const std::vector<std::string> names = optimizer_param_names(model, *optimizer);
    for (const auto& [key, t] : optimizer->state_dict()) {
      const size_t dot = key.find('.');
      const size_t index = std::stoul(key.substr(0, dot));
      tensors.emplace_back("optim." + names.at(index) + key.substr(dot), t);
    }
  }
  nlohmann::json rng = nlohmann::json::object();
  const GeneratorState d = default_generator().get_state();
  rng["default"] = {d.seed, d.offset};
  for (const auto& [name, gen] : state.generators) {
    LUNA_CHECK(gen != nullptr && name != "default", "train state: generator '", name, "' is null or reserved");
    const GeneratorState g = gen->get_state();
    rng[name] = {g.seed, g.offset};
  }
  std::map<std::string, std::string> metadata{
      {"format", kFormat},
      {"format_version", kFormatVersion},
      {"step", std::to_string(state.step)},
      {"rng", rng.dump()},
      {"data_cursor", state.data_cursor},
      {"config", state.config},
      {"optimizer", optimizer ? optimizer->name() : ""},
  };
  save_safetensors(path, tensors, metadata);
}

void load_train_state(const std::string& path, Module& model, optim::Optimizer* optimizer, TrainState& state) {
  const SafetensorsFile file = load_safetensors(path);
  LUNA_CHECK(get_meta(file, "format") == kFormat, "train state: ", path, " has format '", get_meta(file, "format"),
             "', expected '", kFormat, "'");
  LUNA_CHECK(get_meta(file, "format_version") == kFormatVersion, "train state: ", path, " has format_version ",
             get_meta(file, "format_version"), ", this build reads version ", kFormatVersion);

  // Parse and validate everything before touching any live object.
  int64_t step = 0;
  try {
    size_t used = 0;
    const std::string text = get_meta(file, "step");
    step = std::stoll(text, &used);
    LUNA_CHECK(used == text.size() && step >= 0, "bad step");
  } catch (const std::exception&) {
    LUNA_FAIL("train state: ", path, " has an invalid step '", get_meta(file, "step"), "'");
  }
  nlohmann::json rng;
  try {
    rng = nlohmann::json::parse(get_meta(file, "rng"));
  } catch (const nlohmann::json::exception& e) {
    LUNA_FAIL("train state: ", path, " has malformed rng metadata: ", e.what());
  }
  auto read_stream = [&](const std::string& name) {
    LUNA_CHECK(rng.is_object() && rng.contains(name) && rng[name].is_array() && rng[name].size() == 2 &&
                   rng[name][0].is_number_unsigned() && rng[name][1].is_number_unsigned(),
               "train state: ", path, " has no valid RNG stream '", name, "'");
    return GeneratorState{rng[name][0].get<uint64_t>(), rng[name][1].get<uint64_t>()};
  };
  const GeneratorState default_stream = read_stream("default");
  std::map<std::string, GeneratorState> streams;
  for (const auto& [name, gen] : state.generators) streams[name] = read_stream(name);

  NamedTensors model_state, optim_state;
  std::unordered_map<std::string, size_t> index_of;
  if (optimizer) {
    const std::vector<std::string> names = optimizer_param_names(model, *optimizer);
    for (size_t i = 0; i < names.size(); ++i) index_of.emplace(names[i], i);
  }
  for (const auto& [key, t] : file.tensors) {
    if (key.rfind("model.", 0) == 0) {
      model_state.emplace_back(key.substr(6), t);
    } else if (key.rfind("optim.", 0) == 0) {
      if (!optimizer) continue;
      const std::string rest = key.substr(6);
      const size_t dot = rest.rfind('.');
      LUNA_CHECK(dot != std::string::npos, "train state: ", path, ": malformed optimizer key '", key, "'");
      auto it = index_of.find(rest.substr(0, dot));
      LUNA_CHECK(it != index_of.end(), "train state: ", path, ": optimizer state '", key,
                 "' names no parameter of this model");
      optim_state.emplace_back(std::to_string(it->second) + rest.substr(dot), t);
    } else {
      LUNA_FAIL("train state: ", path, ": unexpected tensor '", key, "' (expected model.* or optim.*)");
    }
  }
  model.check_state_dict(model_state, true);
  // The optimizer validates all of its state before writing any; after it, nothing can fail.
  if (optimizer) optimizer->load_state_dict(optim_state);
  model.load_state_dict(model_state, true);
  default_generator().set_state(default_stream);
  for (const auto& [name, gen] : state.generators) gen->set_state(streams.at(name));
  state.step = step;
  state.data_cursor = get_meta(file, "data_cursor");
  state.config = get_meta(file, "config");
}

}  // namespace luna::nn
