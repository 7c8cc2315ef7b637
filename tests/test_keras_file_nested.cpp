// Keras 2 / tf.keras whole-model .h5 files with nested models (io/keras_file): the fixture
// k2_full_nested.h5 (tests/reference/make_keras3_container_fixtures.py, written with h5py as
// hdf5_format.save_model_to_hdf5 writes: model_config, /model_weights, a nested model's group
// holding "<inner layer>/<var>:0" in _legacy_weights order) reads as one StoredLayer per inner
// layer with `model` set, every field and value checked against expect.json; the same file
// without model_config expands the same way (weight names decide); write_tf_keras_weights ->
// read back bitwise, in both layouts, and h5py sees the tf.keras layout (checked by the script).
#include <gtest/gtest.h>

#include <nlohmann/json.hpp>

#include <filesystem>
#include <fstream>
#include <string>
#include <vector>

#include "keras3_fixtures.hpp"
#include "parafine/io/keras_file.hpp"
#include "test_util.hpp"

namespace parafine {
namespace {

namespace fs = std::filesystem;
using test_util::error_message;
using test_util::run_command;
using test_util::TempDir;

using keras3_fixtures::fixture;
using keras3_fixtures::python;
using keras3_fixtures::script;
nlohmann::json expect_nested() {
  std::ifstream in(fixture("expect.json"));
  return nlohmann::json::parse(in)["k2_full_nested"];
}

std::size_t value_diffs(const H5File& h5, const StoredWeight& w, const nlohmann::json& values) {
  const Tensor t = h5.read_tensor(w.dataset);
  const auto want = values.get<std::vector<double>>();
  if (t.numel() != want.size()) return want.size() + 1;
  std::size_t diffs = 0;
  for (std::size_t i = 0; i < want.size(); ++i) diffs += t.data()[i] != static_cast<float>(want[i]);
  return diffs;
}

void check_layers(const H5File& h5, const KerasWeightFile& file, const nlohmann::json& want) {
  ASSERT_EQ(file.layers.size(), want.size());
  for (std::size_t i = 0; i < want.size(); ++i) {
    const StoredLayer& l = file.layers[i];
    SCOPED_TRACE("layer " + l.name);
    EXPECT_EQ(l.name, want[i]["name"].get<std::string>());
    EXPECT_EQ(l.stored_name, want[i]["name"].get<std::string>());
    EXPECT_EQ(l.model, want[i]["model"].get<std::string>());
    ASSERT_EQ(l.weights.size(), want[i]["vars"].size());
    for (std::size_t k = 0; k < l.weights.size(); ++k) {
      const auto& w = l.weights[k];
      const auto& wv = want[i]["vars"][k];
      EXPECT_EQ(w.var, wv["var"].get<std::string>());
      EXPECT_EQ(w.dataset, wv["dataset"].get<std::string>());
      EXPECT_EQ(w.dtype, "float32");
      EXPECT_TRUE(w.is_float);
      const std::size_t d = value_diffs(h5, w, wv["values"]);
      EXPECT_EQ(d, 0u) << w.dataset << ": " << d << " values differ";
    }
  }
}

TEST(KerasFileNested, FullModelFileExposesConfigAndExpandsNestedModels) {
  H5File h5(fixture("k2_full_nested.h5"), H5File::Mode::kRead);
  const KerasWeightFile file = read_keras_weight_file(h5);
  const auto want = expect_nested();
  EXPECT_EQ(file.root, "/model_weights");
  EXPECT_EQ(file.keras_version, "2.12.0");
  EXPECT_EQ(file.backend, "tensorflow");
  EXPECT_EQ(file.model_config, want["model_config"].get<std::string>());
  check_layers(h5, file, want["layers"]);
  // conv_in belongs to a model nested in the nested model: its variables are in backbone's
  // group, and only model_config tells the middle level.
  ASSERT_NE(file.find("conv_in"), nullptr);
  EXPECT_EQ(file.find("conv_in")->model, "backbone");
  EXPECT_EQ(file.find("dense")->model, "");
}

TEST(KerasFileNested, WithoutModelConfigTheWeightNamesDecide) {
  TempDir dir;
  const std::string copy = dir.file("no_config.h5");
  fs::copy_file(fixture("k2_full_nested.h5"), copy);
  const auto r = run_command(python() + " -c \"import h5py; f = h5py.File('" + copy +
                             "', 'r+'); del f.attrs['model_config']; f.close()\"");
  ASSERT_EQ(r.exit_code, 0) << r.output;
  H5File h5(copy, H5File::Mode::kRead);
  const KerasWeightFile file = read_keras_weight_file(h5);
  EXPECT_EQ(file.model_config, "");
  auto want = expect_nested()["layers"];
  for (auto& l : want)
    for (auto& v : l["vars"]) v["dataset"] = v["dataset"];  // same datasets, same order
  check_layers(h5, file, want);
}

// The fixture's entries, as write_tf_keras_weights takes them (values kept alive in `storage`).
std::vector<TfKerasEntryToWrite> entries_of(const H5File& h5, const KerasWeightFile& file,
                                            std::vector<Tensor>& storage, nlohmann::json& expect) {
  std::vector<TfKerasEntryToWrite> entries;
  storage.reserve(64);
  expect["entries"] = nlohmann::json::array();
  const std::vector<std::string> order = {"input_1", "backbone", "flatten", "dense"};
  for (const auto& name : order) {
    TfKerasEntryToWrite e{name, {}};
    nlohmann::json je{{"name", name}, {"weights", nlohmann::json::array()}};
    // The fixture writes the backbone's weight_names in legacy order; read them back so.
    const std::string group = file.root + "/" + name;
    const auto names = h5.has_attribute(group, "weight_names")
                           ? h5.read_string_list_attribute(group, "weight_names")
                           : std::vector<std::string>{};
    for (const auto& wn : names) {
      storage.push_back(h5.read_tensor(group + "/" + wn));
      const Tensor& t = storage.back();
      std::vector<int> shape(t.shape().begin(), t.shape().end());
      e.weights.push_back({wn, t.data(), shape});
      je["weights"].push_back({{"name", wn},
                               {"shape", shape},
                               {"values", std::vector<double>(t.data(), t.data() + t.numel())}});
    }
    entries.push_back(std::move(e));
    expect["entries"].push_back(je);
  }
  return entries;
}

void round_trip(bool whole_model) {
  TempDir dir;
  H5File src(fixture("k2_full_nested.h5"), H5File::Mode::kRead);
  const KerasWeightFile file = read_keras_weight_file(src);
  std::vector<Tensor> storage;
  nlohmann::json expect;
  const auto entries = entries_of(src, file, storage, expect);
  TfKerasRootAttrs attrs;
  if (whole_model) {
    attrs.model_config = file.model_config;
    expect["model_config"] = file.model_config;
  }
  const std::string out = dir.file("written.h5");
  write_tf_keras_weights(out, entries, attrs);

  H5File back(out, H5File::Mode::kRead);
  const KerasWeightFile read = read_keras_weight_file(back);
  EXPECT_EQ(read.root, whole_model ? "/model_weights" : "/");
  EXPECT_EQ(read.model_config, whole_model ? file.model_config : "");
  auto want = expect_nested()["layers"];
  const std::string prefix = whole_model ? "/model_weights/" : "/";
  for (auto& l : want)
    for (auto& v : l["vars"]) {
      std::string d = v["dataset"];
      v["dataset"] = prefix + d.substr(std::string("/model_weights/").size());
    }
  if (whole_model) {
    check_layers(back, read, want);
  } else {
    // Without model_config the nested group is recognised from its weight names.
    check_layers(back, read, want);
  }
  const std::string expect_path = dir.file("expect.json");
  std::ofstream(expect_path) << expect.dump();
  const auto r = run_command(python() + " " + script() + " --check-tf-keras " + out + " --expect " +
                             expect_path);
  std::cout << r.output;
  EXPECT_EQ(r.exit_code, 0) << r.output;
}

TEST(KerasFileNested, WriteFullModelLayoutThenReadIsBitwise) {
  round_trip(true);
}
TEST(KerasFileNested, WriteSaveWeightsLayoutThenReadIsBitwise) {
  round_trip(false);
}

TEST(KerasFileNested, WriterSplitsLongNameListsLikeKeras) {
  TempDir dir;
  std::vector<TfKerasEntryToWrite> entries;
  for (int i = 0; i < 3000; ++i)
    entries.push_back({"layer_with_a_long_name_" + std::to_string(i), {}});
  const std::string out = dir.file("many.h5");
  write_tf_keras_weights(out, entries, {});
  H5File h5(out, H5File::Mode::kRead);
  EXPECT_FALSE(h5.has_attribute("/", "layer_names"));
  EXPECT_TRUE(h5.has_attribute("/", "layer_names0"));
  const auto names = h5.read_string_list_attribute("/", "layer_names");
  ASSERT_EQ(names.size(), entries.size());
  for (std::size_t i = 0; i < names.size(); ++i) EXPECT_EQ(names[i], entries[i].name);
}

TEST(KerasFileNested, WithoutModelConfigAGraphUniquifiedNameIsNoNestedModel) {
  TempDir dir;
  const std::string out = dir.file("names.h5");
  const float k[4] = {1, 2, 3, 4};
  write_tf_keras_weights(out,
                         {{"conv1", {{"conv1_1/kernel:0", k, {2, 2}}}},    // TF1 graph renaming
                          {"seq", {{"dense/kernel:0", k, {2, 2}}}},        // a nested Sequential
                          {"seq2", {{"seq2/dense_3/kernel:0", k, {4}}}}},  // built in its scope
                         {});
  H5File h5(out, H5File::Mode::kRead);
  const KerasWeightFile f = read_keras_weight_file(h5);
  ASSERT_EQ(f.layers.size(), 3u);
  EXPECT_EQ(f.layers[0].name, "conv1");
  EXPECT_EQ(f.layers[0].model, "");
  EXPECT_EQ(f.layers[0].weights[0].var, "kernel");
  EXPECT_EQ(f.layers[1].name, "dense");
  EXPECT_EQ(f.layers[1].model, "seq");
  EXPECT_EQ(f.layers[1].weights[0].dataset, "/seq/dense/kernel:0");
  EXPECT_EQ(f.layers[2].name, "dense_3");
  EXPECT_EQ(f.layers[2].model, "seq2");
}

TEST(KerasFileNested, WriterKeepsAModelConfigOver64KiB) {  // ResNet50's is about 100 KB
  TempDir dir;
  const std::string out = dir.file("big_config.h5");
  TfKerasRootAttrs attrs;
  attrs.model_config =
      "{\"class_name\": \"Functional\", \"pad\": \"" + std::string(200000, 'x') + "\"}";
  write_tf_keras_weights(out, {{"input_1", {}}}, attrs);
  H5File h5(out, H5File::Mode::kRead);
  EXPECT_EQ(read_keras_weight_file(h5).model_config, attrs.model_config);
}

TEST(KerasFileNested, WriterRefusesDuplicatesAndLeavesNoFile) {
  TempDir dir;
  const std::string out = dir.file("dup.h5");
  const float x = 0.f;
  const std::string msg = error_message<std::runtime_error>([&] {
    write_tf_keras_weights(out, {{"dense", {{"dense/kernel:0", &x, {1}}}}, {"dense", {}}}, {});
  });
  EXPECT_NE(msg.find("two layers named 'dense'"), std::string::npos) << msg;
  EXPECT_FALSE(fs::exists(out));
}

}  // namespace
}  // namespace parafine
