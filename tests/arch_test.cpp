// Self-consistency of the architecture tables, and their agreement with BRIEF.md's names and shapes.
#include "harness/model/arch.h"

#include <algorithm>
#include <map>
#include <set>

#include <gtest/gtest.h>

#include "harness/model/arch_spec.h"
#include "tests/test_util.h"

namespace parity::model {
namespace {

// Every registered architecture (harness/archs/*.cpp).
std::vector<Architecture> AllArchitectures() {
  std::vector<Architecture> all;
  for (const ArchSpec* spec : AllArchs()) all.push_back(Architecture(spec->id));
  return all;
}

ModelConfig Example(const std::string& name) { return LoadConfig(TestDataPath("configs/" + name + "/config.json")); }

int64_t Numel(const std::vector<int64_t>& shape) {
  int64_t n = 1;
  for (int64_t d : shape) n *= d;
  return n;
}

class ArchTableTest : public ::testing::TestWithParam<Architecture> {};

TEST_P(ArchTableTest, EveryRoleOnceAndEveryNameUnique) {
  std::set<Role> roles;
  std::set<std::string> patterns;
  for (const auto& spec : TensorTable(GetParam())) {
    EXPECT_TRUE(roles.insert(spec.role).second) << "role twice: " << RoleName(spec.role);
    EXPECT_TRUE(patterns.insert(spec.name_pattern).second) << "name twice: " << spec.name_pattern;
    bool has_placeholder = std::string(spec.name_pattern).find("{layer}") != std::string::npos;
    EXPECT_EQ(spec.per_layer, has_placeholder) << spec.name_pattern;
    // `required` is false exactly for rows whose presence depends on the config.
    EXPECT_EQ(spec.required, spec.presence == Presence::kAlways) << spec.name_pattern;
    EXPECT_EQ(FindSpec(GetParam(), spec.role), &spec);
  }
  // The roles every architecture has (dense MLP roles on MoE families' dense layers).
  for (Role role : {Role::kEmbedding, Role::kFinalNorm, Role::kLmHead, Role::kAttentionNorm, Role::kO,
                    Role::kMlpNorm, Role::kGate, Role::kUp, Role::kDown}) {
    EXPECT_TRUE(roles.count(role)) << RoleName(role);
  }
  // Either a packed qkv or the three projections; q/k norm as the features say; experts only in MoE.
  const ArchSpec& spec = SpecOf(GetParam());
  EXPECT_EQ(roles.count(Role::kQkv) == 1, spec.features.packed_qkv);
  EXPECT_EQ(roles.count(Role::kQ) == 1, !spec.features.packed_qkv);
  EXPECT_EQ(roles.count(Role::kQNorm) == 1, spec.features.qk_norm);
  EXPECT_EQ(roles.count(Role::kRouter) == 1, spec.features.moe);
  // The global rows sit before and after one contiguous block of per-layer rows.
  const auto& table = TensorTable(GetParam());
  auto first = std::find_if(table.begin(), table.end(), [](const TensorSpec& t) { return t.per_layer; });
  auto after = std::find_if(first, table.end(), [](const TensorSpec& t) { return !t.per_layer; });
  EXPECT_TRUE(std::none_of(after, table.end(), [](const TensorSpec& t) { return t.per_layer; }));
  // Per-expert rows are per-layer rows.
  for (const auto& row : table) EXPECT_TRUE(!row.per_expert || row.per_layer) << row.name_pattern;
}

TEST_P(ArchTableTest, ParseTensorNameInvertsTensorName) {
  for (const auto& spec : TensorTable(GetParam())) {
    for (int64_t layer : spec.per_layer ? std::vector<int64_t>{0, 7, 10, 31, 123} : std::vector<int64_t>{-1}) {
      const int64_t expert = spec.per_expert ? layer + 3 : -1;
      std::string name = TensorName(GetParam(), spec.role, layer, expert);
      EXPECT_EQ(name.find('{'), std::string::npos) << name;
      auto parsed = ParseTensorName(GetParam(), name);
      ASSERT_TRUE(parsed.has_value()) << name;
      EXPECT_EQ(parsed->role, spec.role) << name;
      EXPECT_EQ(parsed->layer, layer) << name;
      EXPECT_EQ(parsed->expert, expert) << name;
    }
  }
}

TEST_P(ArchTableTest, ParseTensorNameRejectsNamesNotInTheTable) {
  for (const char* name : {"", "model.layers.x.attention.wqkv.weight", "model.layers.01.attention.wqkv.weight",
                           "model.layers..self_attn.q_proj.weight", "model.layers.-1.self_attn.q_proj.weight",
                           "model.layers.3.attention.wqkv.weightx", "model.layers.3.self_attn.q_proj",
                           "layers.3.mlp.gate_proj.weight", "model.norm.bias",
                           "model.layers.3.attention.rotary_emb.inv_freq"}) {
    EXPECT_FALSE(ParseTensorName(GetParam(), name).has_value()) << name;
  }
}

TEST_P(ArchTableTest, RoleNamesAreDistinct) {
  std::set<std::string> names;
  for (const auto& spec : TensorTable(GetParam())) EXPECT_TRUE(names.insert(RoleName(spec.role)).second);
}

INSTANTIATE_TEST_SUITE_P(AllArchitectures, ArchTableTest, ::testing::ValuesIn(AllArchitectures()),
                         [](const auto& info) { return std::string(ArchitectureName(info.param)); });

TEST(ArchTest, NamesAreThoseOfBrief) {
  // BRIEF.md, "Tensor names" and convert2llama's renames, written out independently of the tables.
  const std::vector<std::pair<std::string, std::string>> renames = {
      {"model.tok_embeddings.weight", "model.embed_tokens.weight"},
      {"model.layers.5.attention.wo.weight", "model.layers.5.self_attn.o_proj.weight"},
      {"model.layers.5.feed_forward.w1.weight", "model.layers.5.mlp.gate_proj.weight"},
      {"model.layers.5.feed_forward.w3.weight", "model.layers.5.mlp.up_proj.weight"},
      {"model.layers.5.feed_forward.w2.weight", "model.layers.5.mlp.down_proj.weight"},
      {"model.layers.5.attention_norm.weight", "model.layers.5.input_layernorm.weight"},
      {"model.layers.5.ffn_norm.weight", "model.layers.5.post_attention_layernorm.weight"},
      {"model.norm.weight", "model.norm.weight"},
      {"output.weight", "lm_head.weight"},
  };
  for (const auto& [internlm2_name, llama_name] : renames) {
    auto parsed = ParseTensorName(Architecture::kInternLM2, internlm2_name);
    ASSERT_TRUE(parsed.has_value()) << internlm2_name;
    auto counterparts = CounterpartRoles(Architecture::kInternLM2, parsed->role, Architecture::kLlama);
    ASSERT_EQ(counterparts.size(), 1u) << internlm2_name;
    EXPECT_EQ(TensorName(Architecture::kLlama, counterparts[0], parsed->layer), llama_name);
    // And back.
    auto back = CounterpartRoles(Architecture::kLlama, counterparts[0], Architecture::kInternLM2);
    ASSERT_EQ(back.size(), 1u);
    EXPECT_EQ(back[0], parsed->role);
  }
  // The packed wqkv splits into q_proj, k_proj, v_proj (in that order).
  auto split = CounterpartRoles(Architecture::kInternLM2, Role::kQkv, Architecture::kLlama);
  ASSERT_EQ(split.size(), 3u);
  EXPECT_EQ(TensorName(Architecture::kLlama, split[0], 2), "model.layers.2.self_attn.q_proj.weight");
  EXPECT_EQ(TensorName(Architecture::kLlama, split[1], 2), "model.layers.2.self_attn.k_proj.weight");
  EXPECT_EQ(TensorName(Architecture::kLlama, split[2], 2), "model.layers.2.self_attn.v_proj.weight");
  for (Role role : {Role::kQ, Role::kK, Role::kV}) {
    EXPECT_EQ(CounterpartRoles(Architecture::kLlama, role, Architecture::kInternLM2), std::vector<Role>{Role::kQkv});
  }
  EXPECT_EQ(TensorName(Architecture::kInternLM2, Role::kQkv, 2), "model.layers.2.attention.wqkv.weight");
  // Llama's MLP biases have no InternLM2 counterpart; roles an architecture lacks map to nothing.
  EXPECT_TRUE(CounterpartRoles(Architecture::kLlama, Role::kGateBias, Architecture::kInternLM2).empty());
  EXPECT_TRUE(CounterpartRoles(Architecture::kInternLM2, Role::kQ, Architecture::kLlama).empty());
}

TEST(ArchTest, TensorNameRefusesRolesTheArchitectureLacks) {
  EXPECT_THROW(TensorName(Architecture::kLlama, Role::kQkv, 0), std::logic_error);
  EXPECT_THROW(TensorName(Architecture::kInternLM2, Role::kQ, 0), std::logic_error);
  EXPECT_THROW(TensorName(Architecture::kInternLM2, Role::kQkv), std::logic_error);  // no layer
  EXPECT_EQ(TensorName(Architecture::kInternLM2, Role::kFinalNorm, 3), "model.norm.weight");  // layer ignored
}

TEST(ArchTest, ShapesOfInternLM2_5_7bChat) {
  ModelConfig c = Example("internlm2_5-7b-chat");
  // wqkv: 8 KV groups of (4 query + 1 key + 1 value) heads of 128 rows = 6144 rows.
  EXPECT_EQ(ExpectedShape(c, Role::kQkv), (std::vector<int64_t>{6144, 4096}));
  EXPECT_EQ(ExpectedShape(c, Role::kQ), (std::vector<int64_t>{4096, 4096}));
  EXPECT_EQ(ExpectedShape(c, Role::kK), (std::vector<int64_t>{1024, 4096}));
  EXPECT_EQ(ExpectedShape(c, Role::kV), (std::vector<int64_t>{1024, 4096}));
  EXPECT_EQ(ExpectedShape(c, Role::kO), (std::vector<int64_t>{4096, 4096}));
  EXPECT_EQ(ExpectedShape(c, Role::kGate), (std::vector<int64_t>{14336, 4096}));
  EXPECT_EQ(ExpectedShape(c, Role::kUp), (std::vector<int64_t>{14336, 4096}));
  EXPECT_EQ(ExpectedShape(c, Role::kDown), (std::vector<int64_t>{4096, 14336}));
  EXPECT_EQ(ExpectedShape(c, Role::kEmbedding), (std::vector<int64_t>{92544, 4096}));
  EXPECT_EQ(ExpectedShape(c, Role::kLmHead), (std::vector<int64_t>{92544, 4096}));
  EXPECT_EQ(ExpectedShape(c, Role::kAttentionNorm), (std::vector<int64_t>{4096}));
  EXPECT_EQ(ExpectedShape(c, Role::kQkvBias), (std::vector<int64_t>{6144}));
}

TEST(ArchTest, ExpectedTensorsCountsAndOrder) {
  ModelConfig internlm2 = Example("internlm2_5-7b-chat");
  ModelConfig llama = Example("internlm2_5-7b-chat-llama");
  auto a = ExpectedTensors(internlm2);
  auto b = ExpectedTensors(llama);
  // InternLM2: embedding, final norm, LM head + 7 per layer; Llama: 3 + 9 per layer.
  EXPECT_EQ(a.size(), 3u + 7u * 32u);
  EXPECT_EQ(b.size(), 3u + 9u * 32u);
  EXPECT_EQ(a.front().name, "model.tok_embeddings.weight");
  EXPECT_EQ(a[1].name, "model.layers.0.attention_norm.weight");
  EXPECT_EQ(a[a.size() - 2].name, "model.norm.weight");
  EXPECT_EQ(a.back().name, "output.weight");
  EXPECT_EQ(b.back().name, "lm_head.weight");
  std::set<std::string> names;
  for (const auto& t : b) {
    EXPECT_TRUE(names.insert(t.name).second) << t.name;
    EXPECT_TRUE(t.required);
    EXPECT_EQ(t.shape, ExpectedShape(llama, t.role));
    auto parsed = ParseTensorName(Architecture::kLlama, t.name);
    ASSERT_TRUE(parsed.has_value());
    EXPECT_EQ(parsed->layer, t.layer);
  }
  // Tied embeddings: the LM head is still listed, but optional.
  internlm2.tie_word_embeddings = true;
  auto tied = ExpectedTensors(internlm2);
  EXPECT_EQ(tied.size(), a.size());
  EXPECT_EQ(tied.back().role, Role::kLmHead);
  EXPECT_FALSE(tied.back().required);
  // Biases appear only when the config enables them: InternLM2 wqkv.bias and wo.bias; Llama q, k, v,
  // o biases (attention_bias) and gate, up, down biases (mlp_bias).
  internlm2.bias = true;
  EXPECT_EQ(ExpectedTensors(internlm2).size(), a.size() + 2u * 32u);
  llama.bias = true;
  EXPECT_EQ(ExpectedTensors(llama).size(), b.size() + 4u * 32u);
  llama.mlp_bias = true;
  EXPECT_EQ(ExpectedTensors(llama).size(), b.size() + 7u * 32u);
}

// The table's shapes and CountParameters' formula are written separately; they must agree for every
// combination of bias, MLP bias and tying.
TEST(ArchTest, ExpectedTensorsSumToTheParameterCount) {
  for (const char* name : {"internlm2_5-7b-chat", "internlm2_5-7b-chat-llama", "internlm2-chat-1_8b"}) {
    for (int variant = 0; variant < 8; ++variant) {
      ModelConfig c = Example(name);
      c.bias = variant & 1;
      c.mlp_bias = (variant & 2) && c.arch == Architecture::kLlama;
      c.tie_word_embeddings = variant & 4;
      int64_t sum = 0;
      for (const auto& t : ExpectedTensors(c)) {
        if (t.required) sum += Numel(t.shape);
      }
      EXPECT_EQ(sum, CountParameters(c).total) << name << " variant " << variant;
    }
  }
}

TEST(ArchTest, RegistryKnowsEveryFamilyByModelTypeAndClassName) {
  for (const char* id : {"internlm2", "llama", "qwen2", "qwen3", "mistral", "qwen3_moe"}) {
    const ArchSpec* spec = FindArchByModelType(id);
    ASSERT_NE(spec, nullptr) << id;
    EXPECT_EQ(std::string(spec->id), id);
    EXPECT_EQ(FindArchByClassName(spec->architectures.front()), spec);
  }
  for (const char* container : {"qwen2_vl", "qwen2_5_vl", "internvla_n1", "qwen3_vl", "qwen3_vl_moe", "internvl_chat"}) {
    EXPECT_NE(FindContainer(container), nullptr) << container;
  }
  EXPECT_EQ(FindArchByModelType("gpt2"), nullptr);
  EXPECT_THROW(SpecOf(Architecture("gpt2")), std::logic_error);
}

// Qwen3-MoE: which layers are MoE, and the tensors each kind of layer has.
TEST(ArchTest, MoeLayersFollowMlpOnlyLayersAndSparseStep) {
  ModelConfig c = LoadConfig(TestDataPath("golden/families/qwen3_moe/config.json"));
  ASSERT_EQ(c.arch, Architecture("qwen3_moe"));
  EXPECT_EQ(c.num_experts, 8);  // read from transformers 5's num_local_experts
  EXPECT_EQ(c.mlp_only_layers, std::vector<int64_t>{1});
  std::vector<bool> moe;
  for (int64_t layer = 0; layer < c.num_layers; ++layer) moe.push_back(c.IsMoeLayer(layer));
  EXPECT_EQ(moe, (std::vector<bool>{true, false, true, true}));
  c.decoder_sparse_step = 2;  // (layer + 1) % 2 == 0: layers 1 and 3, minus mlp_only layer 1
  moe.clear();
  for (int64_t layer = 0; layer < c.num_layers; ++layer) moe.push_back(c.IsMoeLayer(layer));
  EXPECT_EQ(moe, (std::vector<bool>{false, false, false, true}));
  std::map<Role, int> per_layer3, per_layer0;
  for (const auto& t : ExpectedTensors(c)) {
    if (t.layer == 3) per_layer3[t.role]++;
    if (t.layer == 0) per_layer0[t.role]++;
  }
  EXPECT_EQ(per_layer3[Role::kExpertGate], 8);
  EXPECT_EQ(per_layer3[Role::kRouter], 1);
  EXPECT_EQ(per_layer3[Role::kGate], 0);
  EXPECT_EQ(per_layer0[Role::kGate], 1);
  EXPECT_EQ(per_layer0[Role::kRouter], 0);
  EXPECT_EQ(TensorName(c, Role::kExpertDown, 3, 5), "model.layers.3.mlp.experts.5.down_proj.weight");
}

// Every family's table and CountParameters agree, and the families' own config defaults apply.
TEST(ArchTest, FamilyDefaultsAndCountsFromTheGoldenConfigs) {
  for (const char* family : {"qwen2", "qwen2_sliding", "qwen3", "mistral", "qwen3_moe", "qwen3_moe_sparse2"}) {
    ModelConfig c = LoadConfig(TestDataPath(std::string("golden/families/") + family + "/config.json"));
    int64_t sum = 0;
    for (const auto& t : ExpectedTensors(c)) {
      if (t.required) sum += Numel(t.shape);
    }
    EXPECT_EQ(sum, CountParameters(c).total) << family;
    EXPECT_LE(CountParameters(c).active, CountParameters(c).total) << family;
  }
  ModelConfig qwen3 = LoadConfig(TestDataPath("golden/families/qwen3/config.json"));
  EXPECT_EQ(qwen3.head_dim, 16);  // explicit, != 64 / 6
  EXPECT_EQ(ExpectedShape(qwen3, Role::kQNorm), std::vector<int64_t>{16});
  EXPECT_EQ(ExpectedShape(qwen3, Role::kQ), (std::vector<int64_t>{96, 64}));
  ModelConfig sliding = LoadConfig(TestDataPath("golden/families/qwen2_sliding/config.json"));
  EXPECT_EQ(sliding.sliding_window, 8);
  EXPECT_EQ(sliding.sliding_layers, (std::vector<bool>{false, false, true, true}));  // >= max_window_layers 2
  ModelConfig mistral = LoadConfig(TestDataPath("golden/families/mistral/config.json"));
  EXPECT_EQ(mistral.WindowOf(0), 12);
  EXPECT_EQ(mistral.head_dim, 24);
  ModelConfig qwen2 = LoadConfig(TestDataPath("golden/families/qwen2/config.json"));
  EXPECT_TRUE(qwen2.tie_word_embeddings);
  EXPECT_EQ(qwen2.sliding_window, 0);
  bool has_q_bias = false;
  for (const auto& t : ExpectedTensors(qwen2)) has_q_bias = has_q_bias || t.role == Role::kQBias;
  EXPECT_TRUE(has_q_bias);  // Qwen2's q/k/v biases are part of its table
  // Qwen3's default head_dim (128) applies when config.json does not give one.
  nlohmann::json bare = {{"model_type", "qwen3"}, {"vocab_size", 64}, {"hidden_size", 32},
                         {"num_hidden_layers", 1}, {"num_attention_heads", 2}, {"intermediate_size", 48}};
  EXPECT_EQ(ParseConfig(bare, "x").head_dim, 128);
}

}  // namespace
}  // namespace parity::model
