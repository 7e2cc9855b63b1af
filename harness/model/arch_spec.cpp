// The registry of architecture and container descriptions, filled during static initialisation by
// harness/archs/*.cpp.
#include "harness/model/arch_spec.h"

#include <algorithm>
#include <cstring>
#include <map>
#include <memory>
#include <stdexcept>

#include <fmt/format.h>
#include <fmt/ranges.h>

namespace parity::model {
namespace {

struct Registry {
  std::map<std::string, std::unique_ptr<ArchSpec>> archs;  // by id
  std::vector<std::unique_ptr<ContainerSpec>> containers;
};

// Function-local so that registrars in other translation units find it constructed.
Registry& TheRegistry() {
  static Registry registry;
  return registry;
}

}  // namespace

TensorSpec::TensorSpec(Role role_, const char* name_pattern_, Presence presence_)
    : role(role_),
      name_pattern(name_pattern_),
      presence(presence_),
      per_layer(std::strstr(name_pattern_, "{layer}") != nullptr),
      per_expert(std::strstr(name_pattern_, "{expert}") != nullptr),
      required(presence_ == Presence::kAlways) {}

void RegisterArch(ArchSpec spec) {
  std::string id = spec.id;
  if (!TheRegistry().archs.emplace(id, std::make_unique<ArchSpec>(std::move(spec))).second) {
    throw std::logic_error("architecture registered twice: " + id);
  }
}

void RegisterContainer(ContainerSpec spec) {
  TheRegistry().containers.push_back(std::make_unique<ContainerSpec>(std::move(spec)));
}

std::vector<const ArchSpec*> AllArchs() {
  std::vector<const ArchSpec*> all;
  for (const auto& [id, spec] : TheRegistry().archs) all.push_back(spec.get());
  return all;
}

const ArchSpec& SpecOf(Architecture arch) {
  auto found = TheRegistry().archs.find(arch.id());
  if (found == TheRegistry().archs.end()) {
    throw std::logic_error(fmt::format("architecture '{}' is not registered", arch.id()));
  }
  return *found->second;
}

const ArchSpec* FindArchByModelType(const std::string& model_type) {
  if (model_type.empty()) return nullptr;
  for (const auto& [id, spec] : TheRegistry().archs) {
    const auto& types = spec->model_types;
    if (std::find(types.begin(), types.end(), model_type) != types.end()) return spec.get();
  }
  return nullptr;
}

const ArchSpec* FindArchByClassName(const std::string& class_name) {
  for (const auto& [id, spec] : TheRegistry().archs) {
    const auto& names = spec->architectures;
    if (std::find(names.begin(), names.end(), class_name) != names.end()) return spec.get();
  }
  return nullptr;
}

const ContainerSpec* FindContainer(const std::string& model_type) {
  for (const auto& container : TheRegistry().containers) {
    const auto& types = container->model_types;
    if (std::find(types.begin(), types.end(), model_type) != types.end()) return container.get();
  }
  return nullptr;
}

std::string KnownModelTypes() {
  std::vector<std::string> types;
  for (const auto& [id, spec] : TheRegistry().archs) {
    types.insert(types.end(), spec->model_types.begin(), spec->model_types.end());
  }
  for (const auto& container : TheRegistry().containers) {
    types.insert(types.end(), container->model_types.begin(), container->model_types.end());
  }
  std::sort(types.begin(), types.end());
  return fmt::format("{}", fmt::join(types, ", "));
}

}  // namespace parity::model
