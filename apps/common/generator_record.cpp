#include "common/generator_record.h"

#include <fstream>

#include <luna/core/atomic_file.h>
#include <luna/core/error.h>

namespace fs = std::filesystem;

namespace luna::apps {

nlohmann::json listops_generator_record(const data::ListOpsGeneratorOptions& options) {
  nlohmann::json record = {{"generator", "listops"},
                           {"seed", options.seed},
                           {"split_seed", options.split_seed},
                           {"num_train", options.num_train},
                           {"num_val", options.num_val},
                           {"num_test", options.num_test},
                           {"min_length", options.min_length},
                           {"max_length", options.max_length},
                           {"complete", true}};
  const data::ListOpsGeneratorOptions original;
  if (options.max_depth != original.max_depth) record["max_depth"] = options.max_depth;
  if (options.max_args != original.max_args) record["max_args"] = options.max_args;
  return record;
}

nlohmann::json pathfinder_generator_record(const std::string& generator, uint64_t seed, int64_t num_images,
                                           const nlohmann::json& non_default) {
  nlohmann::json record = {{"generator", generator}, {"seed", seed}, {"num_images", num_images}, {"complete", true}};
  record.update(non_default);
  return record;
}

nlohmann::json read_generator_record(const fs::path& folder, const std::string& program) {
  std::ifstream in(folder / kGeneratorRecord);
  if (!in) return nullptr;
  try {
    return nlohmann::json::parse(in);
  } catch (const nlohmann::json::exception& e) {
    LUNA_FAIL(program, ": ", (folder / kGeneratorRecord).string(), " is not valid JSON (", e.what(),
              "); delete the folder to regenerate");
  }
}

void write_generator_record(const fs::path& folder, const nlohmann::json& record) {
  write_file_atomically((folder / kGeneratorRecord).string(), record.dump(2) + "\n");
}

}  // namespace luna::apps
