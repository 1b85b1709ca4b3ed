// generator.json, the record that marks an LRA data folder as generated (by `train_lra --generate`
// or `generate_lra`) and says with what settings: train_lra then reports the data as "generated"
// rather than "official", and with --generate reuses the folder only if its record equals the one
// the run asks for. The record is written last, so a folder without one was not finished.
#pragma once
#include <cstdint>
#include <filesystem>
#include <string>

#include <nlohmann/json.hpp>

#include <luna/data/listops_generator.h>

namespace luna::apps {

inline constexpr const char* kGeneratorRecord = "generator.json";

// generator "listops", seed, split_seed, num_train/val/test, min/max_length, complete = true; and
// max_depth / max_args only where they differ from the original's 10 (line endings do not count).
nlohmann::json listops_generator_record(const data::ListOpsGeneratorOptions& options);
// generator ("pathfinder32" or "pathfinder128"), seed, num_images, complete = true, and the
// settings in `non_default` (those that differ from the preset train_lra uses).
nlohmann::json pathfinder_generator_record(const std::string& generator, uint64_t seed, int64_t num_images,
                                           const nlohmann::json& non_default = nlohmann::json::object());

// The folder's record, or null where it has none; an error (prefixed by `program`) names a record
// that is not JSON.
nlohmann::json read_generator_record(const std::filesystem::path& folder, const std::string& program);
// Written atomically (write_file_atomically), so a reader sees the old record or the new one.
void write_generator_record(const std::filesystem::path& folder, const nlohmann::json& record);

}  // namespace luna::apps
