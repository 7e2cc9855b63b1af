// diff-config: one table of what each config.json field means for the network, then a verdict per
// field from the raw values and from their meaning under each side's reference defaults.
#include "harness/compare/config_diff.h"

#include <algorithm>
#include <cctype>
#include <filesystem>
#include <map>
#include <set>

#include <fmt/format.h>
#include <fmt/ranges.h>

#include "harness/io/checkpoint.h"
#include "harness/io/gguf.h"
#include "harness/model/gguf_checkpoint.h"
#include "harness/model/gguf_model.h"
#include "harness/model/arch_spec.h"

namespace parity::compare {
namespace {

using model::Architecture;
using model::ModelConfig;
using nlohmann::json;

enum class FieldKind {
  kNetwork,            // changes the computation: compared by meaning, a difference is a mismatch
  kArchitecture,       // names the architecture: differs by design across a conversion
  kConversionDropped,  // convert2llama drops it; otherwise irrelevant to the network
  kIrrelevant,         // never changes the network
};

using Meaning = json (*)(const ModelConfig&);

// One row of the field table, under the canonical (HF Llama) name; a family that spells the field
// differently says so in its ArchSpec's field_aliases (InternLM2: attention_bias -> bias).
struct FieldRule {
  const char* canonical;
  FieldKind kind;
  Meaning meaning = nullptr;        // kNetwork: the value the network uses, defaults applied
  const char* default_json = "";    // kIrrelevant: the value an absent field stands for ("" = none)
  const char* why = "";             // note for a difference that is not a mismatch
  bool alias = false;               // another spelling of fields that have rows of their own
  std::string Name(Architecture arch) const {
    for (const model::FieldAlias& alias : model::SpecOf(arch).field_aliases) {
      if (std::string(alias.canonical) == canonical) return alias.name;
    }
    return canonical;
  }
};

json IdOrNull(int64_t id) { return id < 0 ? json(nullptr) : json(id); }
json Scaling(const model::RopeScaling& scaling) {
  if (scaling.type == model::RopeScaling::Type::kNone) return nullptr;
  return {{"type", model::RopeScalingTypeName(scaling.type)}, {"factor", scaling.factor}};
}
json DtypeOrNull(const ModelConfig& c) { return c.torch_dtype.empty() ? json(nullptr) : json(c.torch_dtype); }
// Each layer's attention window (0 = full), the meaning of every sliding-window field.
json Windows(const ModelConfig& c) {
  json windows = json::array();
  bool any = false;
  for (int64_t layer = 0; layer < c.num_layers; ++layer) {
    windows.push_back(c.WindowOf(layer));
    any = any || c.WindowOf(layer) > 0;
  }
  return any ? windows : json(nullptr);  // null: full attention everywhere
}
// Which layers are MoE, the meaning of decoder_sparse_step and mlp_only_layers.
json MoeLayers(const ModelConfig& c) {
  json layers = json::array();
  for (int64_t layer = 0; layer < c.num_layers; ++layer) {
    if (c.IsMoeLayer(layer)) layers.push_back(layer);
  }
  return layers;
}

// Keys of a config that hold other configs (VL checkpoints); compared in a pass of their own.
const std::set<std::string>& ContainerKeys() {
  static const std::set<std::string> keys = {"text_config", "llm_config", "vision_config"};
  return keys;
}

const std::vector<FieldRule>& FieldRules() {
  static const std::vector<FieldRule> rules = {
      // Sizes and the numerics of the network.
      {"vocab_size", FieldKind::kNetwork, [](const ModelConfig& c) { return json(c.vocab_size); }},
      {"hidden_size", FieldKind::kNetwork, [](const ModelConfig& c) { return json(c.hidden_size); }},
      {"num_hidden_layers", FieldKind::kNetwork,
       [](const ModelConfig& c) { return json(c.num_layers); }},
      {"num_attention_heads", FieldKind::kNetwork,
       [](const ModelConfig& c) { return json(c.num_heads); }},
      {"num_key_value_heads", FieldKind::kNetwork,
       [](const ModelConfig& c) { return json(c.num_kv_heads); }},
      {"head_dim", FieldKind::kNetwork, [](const ModelConfig& c) { return json(c.head_dim); }},
      {"intermediate_size", FieldKind::kNetwork,
       [](const ModelConfig& c) { return json(c.intermediate_size); }},
      {"max_position_embeddings", FieldKind::kNetwork,
       [](const ModelConfig& c) { return json(c.max_position_embeddings); }},
      {"rms_norm_eps", FieldKind::kNetwork, [](const ModelConfig& c) { return json(c.rms_norm_eps); }},
      {"rope_theta", FieldKind::kNetwork, [](const ModelConfig& c) { return json(c.rope_theta); }},
      {"rope_scaling", FieldKind::kNetwork,
       [](const ModelConfig& c) { return Scaling(c.rope_scaling); }},
      {"rope_parameters", FieldKind::kNetwork,
       [](const ModelConfig& c) { return json{{"rope_theta", c.rope_theta}, {"scaling", Scaling(c.rope_scaling)}}; },
       "", "", true},
      {"attention_bias", FieldKind::kNetwork, [](const ModelConfig& c) { return json(c.bias); }},
      {"mlp_bias", FieldKind::kNetwork, [](const ModelConfig& c) { return json(c.mlp_bias); }},
      {"tie_word_embeddings", FieldKind::kNetwork,
       [](const ModelConfig& c) { return json(c.tie_word_embeddings); }},
      {"hidden_act", FieldKind::kNetwork, [](const ModelConfig& c) { return json(c.hidden_act); }},
      {"bos_token_id", FieldKind::kNetwork,
       [](const ModelConfig& c) { return IdOrNull(c.bos_token_id); }},
      {"eos_token_id", FieldKind::kNetwork, [](const ModelConfig& c) { return json(c.eos_token_ids); }},
      {"pad_token_id", FieldKind::kNetwork,
       [](const ModelConfig& c) { return IdOrNull(c.pad_token_id); }},
      // Sliding window: what the layers' windows are, however the family spells it.
      {"sliding_window", FieldKind::kNetwork, Windows},
      {"use_sliding_window", FieldKind::kNetwork, Windows, "", "", true},
      {"max_window_layers", FieldKind::kNetwork, Windows, "", "", true},
      {"layer_types", FieldKind::kNetwork, Windows, "", "", true},
      // Mixture of experts (transformers 5 writes num_local_experts).
      {"num_experts", FieldKind::kNetwork, [](const ModelConfig& c) { return json(c.num_experts); }},
      {"num_local_experts", FieldKind::kNetwork, [](const ModelConfig& c) { return json(c.num_experts); },
       "", "", true},
      {"num_experts_per_tok", FieldKind::kNetwork,
       [](const ModelConfig& c) { return json(c.num_experts > 0 ? c.experts_per_token : 0); }},
      {"moe_intermediate_size", FieldKind::kNetwork,
       [](const ModelConfig& c) { return json(c.num_experts > 0 ? c.moe_intermediate_size : 0); }},
      {"norm_topk_prob", FieldKind::kNetwork,
       [](const ModelConfig& c) { return json(c.num_experts > 0 && c.norm_topk_prob); }},
      {"decoder_sparse_step", FieldKind::kNetwork, MoeLayers},
      {"mlp_only_layers", FieldKind::kNetwork, MoeLayers, "", "", true},
      {"torch_dtype", FieldKind::kNetwork, DtypeOrNull},
      {"dtype", FieldKind::kNetwork, DtypeOrNull, "", "", true},
      // What the conversion changes on purpose.
      {"model_type", FieldKind::kArchitecture},
      {"architectures", FieldKind::kArchitecture},
      {"auto_map", FieldKind::kConversionDropped, nullptr, "",
       "points HF at InternLM2's remote code; a Llama checkpoint uses the built-in class"},
      {"attn_implementation", FieldKind::kConversionDropped, nullptr, "",
       "without it HF Llama picks SDPA attention, which rounds differently from eager (same network, "
       "different numerics)"},
      {"tokenizer_class", FieldKind::kConversionDropped, nullptr, "",
       "tokenizer wrapper class, not part of the network"},
      {"_name_or_path", FieldKind::kConversionDropped, nullptr, "",
       "where the config was loaded from"},
      // Never part of the network.
      {"transformers_version", FieldKind::kIrrelevant, nullptr, "",
       "the library version that wrote the file"},
      {"use_cache", FieldKind::kIrrelevant, nullptr, "true", "KV-cache default of generate()"},
      {"initializer_range", FieldKind::kIrrelevant, nullptr, "0.02",
       "initialisation of untrained weights"},
      {"attention_dropout", FieldKind::kIrrelevant, nullptr, "0.0",
       "dropout is off at inference"},
      {"router_aux_loss_coef", FieldKind::kIrrelevant, nullptr, "", "MoE load-balancing loss weight (training)"},
      {"output_router_logits", FieldKind::kIrrelevant, nullptr, "false", "returns router logits (training)"},
      {"pretraining_tp", FieldKind::kIrrelevant, nullptr, "1",
       "HF Llama slices its projections when > 1: rounding changes, the network does not"},
  };
  return rules;
}

// PretrainedConfig's generic fields (generation defaults, training and export flags) that
// to_dict() writes: none of them changes the network.
const std::set<std::string>& GenericIrrelevantFields() {
  static const std::set<std::string> fields = {
      "_commit_hash", "_attn_implementation_autoset", "add_cross_attention", "bad_words_ids",
      "begin_suppress_tokens", "chunk_size_feed_forward", "cross_attention_hidden_size",
      "decoder_start_token_id", "diversity_penalty", "do_sample", "early_stopping",
      "encoder_no_repeat_ngram_size", "exponential_decay_length_penalty", "finetuning_task",
      "forced_bos_token_id", "forced_eos_token_id", "id2label", "is_decoder", "is_encoder_decoder",
      "label2id", "length_penalty", "max_length", "min_length", "no_repeat_ngram_size",
      "num_beam_groups", "num_beams", "num_return_sequences", "output_attentions",
      "output_hidden_states", "output_scores", "prefix", "problem_type", "pruned_heads",
      "remove_invalid_values", "repetition_penalty", "return_dict", "return_dict_in_generate",
      "sep_token_id", "suppress_tokens", "task_specific_params", "temperature", "tf_legacy_loss",
      "tie_encoder_decoder", "top_k", "top_p", "torchscript", "typical_p", "use_bfloat16"};
  return fields;
}

std::optional<json> Lookup(const json& object, const std::string& key) {
  auto it = object.find(key);
  if (it == object.end()) return std::nullopt;
  return *it;
}

std::string Shown(const std::optional<json>& value) { return value ? value->dump() : "(absent)"; }

// Explains a kMatch reached through meaning rather than identical text.
std::string MeaningNote(const std::optional<json>& a, const std::optional<json>& b, const json& meaning) {
  if (!a) return fmt::format("absent in A, where it means {}", meaning.dump());
  if (!b) return fmt::format("absent in B, where it means {}", meaning.dump());
  return fmt::format("written differently, same meaning: {}", meaning.dump());
}

// One side of the comparison: the whole config.json, and the object holding the text model's fields
// (the same object, or its text_config / llm_config).
struct DiffSide {
  const json& top;
  const json& text;
  std::string prefix;  // "text_config." when nested, else ""
  const ModelConfig& config;
};

class Differ {
 public:
  Differ(const DiffSide& a, const DiffSide& b) : a_(a), b_(b) {}

  std::vector<FieldComparison> Run() {
    for (const auto& rule : FieldRules()) CompareRule(rule);
    // The text model's remaining fields, then the container's (vision_config, other top-level keys).
    CompareObjects(a_.prefix, a_.text, Remaining(a_.text, true), b_.prefix, b_.text, Remaining(b_.text, true));
    CompareObjects("", a_.top, TopLevel(a_), "", b_.top, TopLevel(b_));
    std::sort(rows_.begin(), rows_.end(),
              [](const FieldComparison& x, const FieldComparison& y) { return x.field < y.field; });
    return std::move(rows_);
  }

 private:
  const ModelConfig& config_a() const { return a_.config; }
  const ModelConfig& config_b() const { return b_.config; }

  // Keys of `object` no rule handled (without the container keys in the text pass).
  std::set<std::string> Remaining(const json& object, bool text_pass) {
    std::set<std::string> keys;
    for (auto it = object.begin(); it != object.end(); ++it) {
      if (handled_[&object].count(it.key())) continue;
      if (text_pass && ContainerKeys().count(it.key())) continue;
      keys.insert(it.key());
    }
    return keys;
  }
  // The top-level keys left for the container pass: everything but the nested text config when the
  // text model is nested; only the other configs (vision_config) when the fields are at the top.
  std::set<std::string> TopLevel(const DiffSide& side) {
    std::set<std::string> keys;
    for (const auto& key : Remaining(side.top, false)) {
      const bool nested = &side.text != &side.top;
      if (nested ? &side.top[key] != &side.text : ContainerKeys().count(key) > 0) keys.insert(key);
    }
    return keys;
  }

  void CompareRule(const FieldRule& rule) {
    const bool top = rule.kind == FieldKind::kArchitecture;
    const json& object_a = top ? a_.top : a_.text;
    const json& object_b = top ? b_.top : b_.text;
    std::string key_a = rule.Name(config_a().arch);
    std::string key_b = rule.Name(config_b().arch);
    const std::string shown_a = (top ? "" : a_.prefix) + key_a;
    const std::string shown_b = (top ? "" : b_.prefix) + key_b;
    FieldComparison row;
    row.a = Lookup(object_a, key_a);
    row.b = Lookup(object_b, key_b);
    if (!row.a && !row.b) {
      // Absent from both files, the field still has a meaning: each side's default. Where the
      // defaults differ (InternLM2 `bias` true, Llama `attention_bias` false) the networks differ.
      if (rule.kind == FieldKind::kNetwork && !rule.alias &&
          rule.meaning(config_a()) != rule.meaning(config_b())) {
        row.field = shown_a;
        if (shown_a != shown_b) row.field_b = shown_b;
        row.verdict = FieldVerdict::kMismatch;
        row.note = fmt::format("absent in both; by default A means {}, B means {}",
                               rule.meaning(config_a()).dump(), rule.meaning(config_b()).dump());
        rows_.push_back(std::move(row));
      }
      return;
    }
    if (row.a) handled_[&object_a].insert(key_a);
    if (row.b) handled_[&object_b].insert(key_b);
    row.field = row.a ? shown_a : shown_b;
    if (row.a && row.b && shown_a != shown_b) row.field_b = shown_b;
    bool same_text = row.a && row.b && *row.a == *row.b;

    switch (rule.kind) {
      case FieldKind::kNetwork: {
        json meaning_a = rule.meaning(config_a());
        json meaning_b = rule.meaning(config_b());
        if (same_text && key_a == key_b) {
          row.verdict = FieldVerdict::kMatch;
        } else if (meaning_a == meaning_b) {
          if (row.a && row.b && key_a != key_b) {
            row.verdict = FieldVerdict::kExpectedRename;
            row.note = fmt::format("renamed {} -> {} by the conversion, value kept", key_a, key_b);
          } else {
            row.verdict = FieldVerdict::kMatch;
            row.by_meaning = true;
            row.note = MeaningNote(row.a, row.b, meaning_a);
          }
        } else {
          row.verdict = FieldVerdict::kMismatch;
          row.note = fmt::format("A means {}, B means {}", meaning_a.dump(), meaning_b.dump());
        }
        break;
      }
      case FieldKind::kArchitecture: {
        const std::string& container_a = config_a().container.model_type;
        const std::string& container_b = config_b().container.model_type;
        if (same_text) {
          row.verdict = FieldVerdict::kMatch;
        } else if (config_a().arch == config_b().arch && container_a != container_b) {
          // e.g. InternVLA-N1 (internvla_n1) and Qwen2.5-VL (qwen2_5_vl): the same language model.
          row.verdict = FieldVerdict::kExpectedDifference;
          row.note = fmt::format("names the checkpoint type ({} vs {}); both hold a {} language model",
                                 container_a.empty() ? config_a().model_type : container_a,
                                 container_b.empty() ? config_b().model_type : container_b,
                                 model::ArchitectureName(config_a().arch));
        } else if (config_a().arch == config_b().arch) {
          row.verdict = FieldVerdict::kMatch;
          row.by_meaning = true;
          row.note = fmt::format("both describe a {} model", model::ArchitectureName(config_a().arch));
        } else {
          row.verdict = FieldVerdict::kExpectedDifference;
          row.note = fmt::format("names the architecture: {} vs {}", model::ArchitectureName(config_a().arch),
                                 model::ArchitectureName(config_b().arch));
        }
        break;
      }
      case FieldKind::kConversionDropped: {
        // Dropped by a known conversion between the two families (convert2llama: internlm2 -> llama).
        auto converted = [](const ModelConfig& from, const ModelConfig& to) {
          const char* source = model::SpecOf(to.arch).converted_from;
          return source != nullptr && Architecture(source) == from.arch;
        };
        bool a_to_b = converted(config_a(), config_b());
        bool b_to_a = converted(config_b(), config_a());
        if (same_text) {
          row.verdict = FieldVerdict::kMatch;
        } else if ((row.a && !row.b && a_to_b) || (row.b && !row.a && b_to_a)) {
          row.verdict = FieldVerdict::kExpectedDrop;
          row.note = fmt::format("dropped by convert2llama; {}", rule.why);
        } else {
          row.verdict = FieldVerdict::kIrrelevant;
          row.note = rule.why;
        }
        break;
      }
      case FieldKind::kIrrelevant: {
        if (same_text) {
          row.verdict = FieldVerdict::kMatch;
          break;
        }
        if (*rule.default_json != '\0') {
          json fallback = json::parse(rule.default_json);
          json meaning_a = row.a ? *row.a : fallback;
          json meaning_b = row.b ? *row.b : fallback;
          if (meaning_a == meaning_b) {
            row.verdict = FieldVerdict::kMatch;
            row.by_meaning = true;
            row.note = MeaningNote(row.a, row.b, meaning_a);
            break;
          }
        }
        row.verdict = FieldVerdict::kIrrelevant;
        row.note = rule.why;
        break;
      }
    }
    rows_.push_back(std::move(row));
  }

  // Fields no rule covers, by name: generic PretrainedConfig fields are irrelevant; anything else
  // that differs is a mismatch, because Parity cannot tell whether it changes the network. Two
  // objects that differ (vision_config) are compared field by field under "key.".
  void CompareObjects(const std::string& prefix_a, const json& a, const std::set<std::string>& keys_a,
                      const std::string& prefix_b, const json& b, const std::set<std::string>& keys_b) {
    std::set<std::string> keys = keys_a;
    keys.insert(keys_b.begin(), keys_b.end());
    for (const auto& key : keys) {
      FieldComparison row;
      if (keys_a.count(key)) row.a = Lookup(a, key);
      if (keys_b.count(key)) row.b = Lookup(b, key);
      if (!row.a && !row.b) continue;
      row.field = (row.a ? prefix_a : prefix_b) + key;
      if (row.a && row.b && prefix_a != prefix_b) row.field_b = prefix_b + key;
      if (row.a && row.b && row.a->is_object() && row.b->is_object() && *row.a != *row.b) {
        std::set<std::string> sub_a, sub_b;
        for (auto it = row.a->begin(); it != row.a->end(); ++it) sub_a.insert(it.key());
        for (auto it = row.b->begin(); it != row.b->end(); ++it) sub_b.insert(it.key());
        CompareObjects(prefix_a + key + ".", *row.a, sub_a, prefix_b + key + ".", *row.b, sub_b);
        continue;
      }
      if (row.a && row.b && *row.a == *row.b) {
        row.verdict = FieldVerdict::kMatch;
      } else if (GenericIrrelevantFields().count(key)) {
        row.verdict = FieldVerdict::kIrrelevant;
        row.note = "generic HF config field (generation or training default), not part of the network";
      } else {
        row.verdict = FieldVerdict::kMismatch;
        row.note = "a field Parity does not know differs; it may change the network";
      }
      rows_.push_back(std::move(row));
    }
  }

  DiffSide a_;
  DiffSide b_;
  std::map<const json*, std::set<std::string>> handled_;  // keys a rule compared, per object
  std::vector<FieldComparison> rows_;
};

std::string Plural(int count, const char* singular, const char* plural) {
  return fmt::format("{} {}", count, count == 1 ? singular : plural);
}

std::string Truncate(const std::string& text, size_t width) {
  return text.size() <= width ? text : text.substr(0, width - 3) + "...";
}

}  // namespace

const char* FieldVerdictName(FieldVerdict verdict) {
  switch (verdict) {
    case FieldVerdict::kMatch: return "match";
    case FieldVerdict::kExpectedRename: return "expected rename";
    case FieldVerdict::kExpectedDrop: return "expected drop";
    case FieldVerdict::kExpectedDifference: return "expected difference";
    case FieldVerdict::kIrrelevant: return "irrelevant";
    case FieldVerdict::kMismatch: return "MISMATCH";
  }
  return "unknown";
}

bool ConfigDiff::same_network() const { return Count(FieldVerdict::kMismatch) == 0; }

int ConfigDiff::Count(FieldVerdict verdict) const {
  return static_cast<int>(std::count_if(fields.begin(), fields.end(),
                                        [&](const FieldComparison& row) { return row.verdict == verdict; }));
}

std::string ConfigDiff::Summary() const {
  int total = static_cast<int>(fields.size());
  int mismatches = Count(FieldVerdict::kMismatch);
  int by_meaning = static_cast<int>(std::count_if(
      fields.begin(), fields.end(), [](const FieldComparison& row) { return row.by_meaning; }));
  std::vector<std::string> details;
  if (by_meaning > 0) details.push_back(fmt::format("{} by meaning", by_meaning));
  if (int n = Count(FieldVerdict::kExpectedRename)) details.push_back(Plural(n, "expected rename", "expected renames"));
  if (int n = Count(FieldVerdict::kExpectedDrop)) details.push_back(Plural(n, "expected drop", "expected drops"));
  if (int n = Count(FieldVerdict::kExpectedDifference))
    details.push_back(Plural(n, "expected difference", "expected differences"));
  if (int n = Count(FieldVerdict::kIrrelevant))
    details.push_back(Plural(n, "irrelevant difference", "irrelevant differences"));
  std::string summary = fmt::format("{}/{} fields match", total - mismatches, total);
  if (!details.empty()) summary += fmt::format(" ({})", fmt::join(details, ", "));
  if (mismatches > 0) {
    std::vector<std::string> names;
    for (const auto& row : fields) {
      if (row.verdict == FieldVerdict::kMismatch) names.push_back(row.field);
    }
    summary += fmt::format("; {} MISMATCH: {}", mismatches, fmt::join(names, ", "));
  }
  return summary;
}

nlohmann::json ConfigDiff::ToJson() const {
  json rows = json::array();
  for (const auto& row : fields) {
    json entry = {{"field", row.field},
                  {"a_present", row.a.has_value()},
                  {"a", row.a ? *row.a : json(nullptr)},
                  {"b_present", row.b.has_value()},
                  {"b", row.b ? *row.b : json(nullptr)},
                  {"verdict", FieldVerdictName(row.verdict)},
                  {"by_meaning", row.by_meaning},
                  {"note", row.note}};
    if (!row.field_b.empty()) entry["field_b"] = row.field_b;
    rows.push_back(std::move(entry));
  }
  json counts = {{"fields", fields.size()}};
  for (auto verdict : {FieldVerdict::kMatch, FieldVerdict::kExpectedRename, FieldVerdict::kExpectedDrop,
                       FieldVerdict::kExpectedDifference, FieldVerdict::kIrrelevant, FieldVerdict::kMismatch}) {
    std::string key = FieldVerdictName(verdict);
    std::transform(key.begin(), key.end(), key.begin(), [](char c) {
      return c == ' ' ? '_' : static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
    });
    counts[key] = Count(verdict);
  }
  return {{"a", {{"path", source_a}, {"architecture", model::ArchitectureName(arch_a)}}},
          {"b", {{"path", source_b}, {"architecture", model::ArchitectureName(arch_b)}}},
          {"same_network", same_network()},
          {"summary", Summary()},
          {"counts", counts},
          {"fields", rows}};
}

std::string ConfigDiff::ToText() const {
  constexpr size_t kValueWidth = 28;
  size_t field_width = 5;
  for (const auto& row : fields) {
    std::string name = row.field_b.empty() ? row.field : row.field + " / " + row.field_b;
    field_width = std::max(field_width, name.size());
  }
  std::string text = fmt::format("A: {} ({})\nB: {} ({})\n\n", source_a, model::ArchitectureName(arch_a),
                                 source_b, model::ArchitectureName(arch_b));
  text += fmt::format("{:<{}}  {:<{}}  {:<{}}  {}\n", "field", field_width, "A", kValueWidth, "B",
                      kValueWidth, "verdict");
  for (const auto& row : fields) {
    std::string name = row.field_b.empty() ? row.field : row.field + " / " + row.field_b;
    std::string verdict = FieldVerdictName(row.verdict);
    if (row.by_meaning) verdict += " (by meaning)";
    text += fmt::format("{:<{}}  {:<{}}  {:<{}}  {}\n", name, field_width, Truncate(Shown(row.a), kValueWidth),
                        kValueWidth, Truncate(Shown(row.b), kValueWidth), kValueWidth, verdict);
    if (!row.note.empty()) text += fmt::format("{:<{}}  -> {}\n", "", field_width, row.note);
  }
  text += fmt::format("\n{}\n", Summary());
  text += same_network() ? "verdict: the two configs describe the same network\n"
                         : "verdict: the two configs describe DIFFERENT networks\n";
  return text;
}

ConfigDiff DiffConfigs(const nlohmann::json& a, const std::string& source_a, const nlohmann::json& b,
                       const std::string& source_b) {
  ModelConfig config_a = model::ParseConfig(a, source_a);
  ModelConfig config_b = model::ParseConfig(b, source_b);
  ConfigDiff diff;
  diff.source_a = source_a;
  diff.source_b = source_b;
  diff.arch_a = config_a.arch;
  diff.arch_b = config_b.arch;
  // A VL config's text model is in its text_config / llm_config when the container nests it.
  auto side = [](const json& top, const ModelConfig& config) {
    const std::string& field = config.container.text_field;
    if (!field.empty() && top.contains(field) && top[field].is_object()) {
      return DiffSide{top, top[field], field + ".", config};
    }
    return DiffSide{top, top, "", config};
  };
  diff.fields = Differ(side(a, config_a), side(b, config_b)).Run();
  return diff;
}

std::string ConfigPathOf(const std::string& dir_or_file) {
  if (std::filesystem::is_directory(dir_or_file)) {
    return (std::filesystem::path(dir_or_file) / "config.json").string();
  }
  return dir_or_file;
}

ConfigDiff DiffConfigPaths(const std::string& a, const std::string& b) {
  // A GGUF file's config is the config.json its metadata describes (model/gguf_model.h).
  auto read = [](const std::string& path) -> std::pair<nlohmann::json, std::string> {
    if (model::IsGgufFile(path)) {
      return {model::GgufConfigJson(io::GgufFile::Open(path)), path + " (GGUF metadata)"};
    }
    const std::string config_path = ConfigPathOf(path);
    return {io::ReadJsonFile(config_path), config_path};
  };
  auto [json_a, source_a] = read(a);
  auto [json_b, source_b] = read(b);
  ConfigDiff diff = DiffConfigs(json_a, source_a, json_b, source_b);
  if (model::IsGgufFile(a) || model::IsGgufFile(b)) {
    // GGUF has no storage dtype for the model: each tensor has its own ggml type.
    for (FieldComparison& field : diff.fields) {
      if ((field.field == "torch_dtype" || field.field == "dtype") &&
          field.verdict == FieldVerdict::kMismatch && (!field.a || !field.b)) {
        field.verdict = FieldVerdict::kIrrelevant;
        field.note = "a GGUF file has no model dtype, only a ggml type per tensor (see `parity "
                     "inspect FILE.gguf`, and `parity diff-weights` for what the types do to the "
                     "weights)";
      }
    }
  }
  return diff;
}

}  // namespace parity::compare
