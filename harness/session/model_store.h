// The one model store every command gets its models from (run, compare, localize, explain, check).
// A model is known by what it is, never by a label: its source directory's canonical path and
// content fingerprint, the conversion applied to it (if any), and, once loaded, the precision and the
// device. Conversions go through the ConversionCache, so a converted model is reused exactly when
// its source is unchanged.
//
// Opening a model checks, before anything expensive, that its tensors agree with its config.json
// (no missing tensor, no wrong shape: the same check as `parity inspect`), so that a broken source is
// refused before it is converted or decoded.
#pragma once

#include <map>
#include <memory>
#include <set>
#include <string>

#include <c10/core/Device.h>

#include "harness/forward/causal_lm.h"
#include "harness/forward/numerics.h"
#include "harness/forward/placement.h"
#include "harness/io/checkpoint.h"
#include "harness/model/config.h"
#include "harness/session/conversion_cache.h"

namespace parity::session {

// A checkpoint as the store holds it.
struct StoredModel {
  std::string identity;     // "<canonical dir>#<fingerprint>", or "<conversion>(<source identity>)"
  std::string path;         // the directory loaded (a cache entry for a converted model)
  std::string source_path;  // the directory given (the conversion's source for a converted model)
  std::string conversion;   // "" or e.g. "internlm2-to-llama"
  bool reused_conversion = false;  // the conversion came from the cache
  std::shared_ptr<const io::Checkpoint> checkpoint;  // mapped once
  model::ModelConfig config;
};

// Opens `dir` (no conversion): the checkpoint, its parsed config and its identity. Throws InputError
// naming the file when the config or the tensor files are wrong, or the tensors disagree with the
// config.
std::shared_ptr<const StoredModel> OpenCheckpoint(const std::string& dir);

// Conversions the store knows: "internlm2-to-llama". Throws InputError for another name.
void CheckConversionName(const std::string& conversion);

class ModelStore {
 public:
  // `cache_dir` as given by --cache-dir (may be empty: ResolveCacheDir's defaults).
  explicit ModelStore(const std::string& cache_dir = "");

  // The model in `dir`, opened once per directory (shared: it stays mapped while anyone holds it).
  std::shared_ptr<const StoredModel> Open(const std::string& dir);
  // `conversion` of the model in `source_dir`, from the cache or converted into it.
  std::shared_ptr<const StoredModel> OpenConverted(const std::string& source_dir,
                                                   const std::string& conversion);

  // The forward pass of `model` at `precision` (a plain precision or a policy) on `device`, built
  // once per LoadKey and kept until KeepOnly releases it.
  forward::CausalLM& Get(const StoredModel& model, const forward::PrecisionPolicy& precision,
                         c10::Device device);
  static std::string LoadKey(const StoredModel& model, const forward::PrecisionPolicy& precision,
                             c10::Device device);
  // The same with the layers placed over devices (forward/placement.h); a one-stage placement is
  // the device's model above.
  forward::CausalLM& Get(const StoredModel& model, const forward::PrecisionPolicy& precision,
                         const forward::Placement& placement);
  static std::string LoadKey(const StoredModel& model, const forward::PrecisionPolicy& precision,
                             const forward::Placement& placement);
  // Releases every loaded forward pass whose LoadKey is not in `keep`.
  void KeepOnly(const std::set<std::string>& keep);

  ConversionCache& cache() { return cache_; }

 private:
  ConversionCache cache_;
  std::map<std::string, std::shared_ptr<const StoredModel>> opened_;  // by source dir + conversion
  std::map<std::string, std::unique_ptr<forward::CausalLM>> loaded_;  // by LoadKey
};

}  // namespace parity::session
