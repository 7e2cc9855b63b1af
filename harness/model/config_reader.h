// Reads typed fields out of one config.json object, collecting every problem instead of stopping at
// the first one, so that a user fixing a config sees everything at once. Shared by the common parser
// (config.cpp) and the family-specific fields of each architecture (harness/archs/*.cpp).
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "harness/model/config.h"

namespace parity::model {

class ConfigReader {
 public:
  explicit ConfigReader(const nlohmann::json& object) : object_(object) {}

  const nlohmann::json& object() const { return object_; }
  // The field's value, or nullptr when absent or null (HF writes null for "unset").
  const nlohmann::json* Find(const std::string& field) const;
  bool Has(const std::string& field) const { return Find(field) != nullptr; }

  int64_t Int(const std::string& field, bool required, int64_t fallback);
  double Number(const std::string& field, double fallback);
  bool Bool(const std::string& field, bool fallback);
  std::string String(const std::string& field, const std::string& fallback);
  // A list of integers (absent or null: `fallback`).
  std::vector<int64_t> IntList(const std::string& field, const std::vector<int64_t>& fallback);

  void Add(const std::string& field, const std::string& message) { problems_.push_back({field, message}); }
  const std::vector<ConfigProblem>& problems() const { return problems_; }

 private:
  const nlohmann::json& object_;
  std::vector<ConfigProblem> problems_;
};

// A short rendering of a JSON value for messages.
std::string ShowJson(const nlohmann::json& value);

}  // namespace parity::model
