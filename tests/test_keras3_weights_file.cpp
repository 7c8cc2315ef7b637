// The Keras 3 `vars` weights layout (io/keras3_weights_file): read against fixtures written with
// h5py from Keras's saving rules by tests/reference/make_keras3_container_fixtures.py (CTest
// fixture, directory in PARAFINE_KERAS3_FIXTURES, expected values in expect.json): every vars
// group, its path, its name attribute, each variable's shape, dtype and value (bitwise);
// bfloat16-tagged data; the damaged and wrong layouts with their messages; write -> read
// bitwise and the written file checked with h5py by the same script; to_snake_case and
// _get_unique_name against Keras's own regexes run in python.
#include <gtest/gtest.h>

#include <nlohmann/json.hpp>

#include <cstring>
#include <fstream>
#include <sstream>
#include <string>
#include <vector>

#include "keras3_fixtures.hpp"
#include "parafine/io/keras3_weights_file.hpp"
#include "test_util.hpp"

namespace parafine {
namespace {

using test_util::error_message;
using test_util::run_command;
using test_util::TempDir;

using keras3_fixtures::fixture;
using keras3_fixtures::python;
using keras3_fixtures::script;

nlohmann::json expect() {
  std::ifstream in(fixture("expect.json"));
  EXPECT_TRUE(in.good()) << "no " << fixture("expect.json");
  return nlohmann::json::parse(in);
}

// Compares a file's groups with expect.json's list (path, name, shapes, dtypes, values bitwise).
void check_against(const H5File& h5, const Keras3WeightsFile& file, const nlohmann::json& want,
                   bool names) {
  ASSERT_EQ(file.groups.size(), want.size());
  for (std::size_t i = 0; i < want.size(); ++i) {
    const auto& g = file.groups[i];
    const auto& w = want[i];
    SCOPED_TRACE("group '" + g.path + "'");
    EXPECT_EQ(g.path, w["path"].get<std::string>());
    EXPECT_EQ(g.name, names ? w["name"].get<std::string>() : "");
    ASSERT_EQ(g.vars.size(), w["vars"].size());
    for (std::size_t k = 0; k < g.vars.size(); ++k) {
      const auto& v = g.vars[k];
      const auto& wv = w["vars"][k];
      EXPECT_EQ(v.stored_name, std::to_string(k));
      EXPECT_EQ(v.dataset, (g.path.empty() ? "" : "/" + g.path) + "/vars/" + std::to_string(k));
      EXPECT_EQ(v.shape, wv["shape"].get<std::vector<int>>());
      const std::string dtype = wv["dtype"];
      if (dtype == "int64") {
        EXPECT_FALSE(v.is_float);
        EXPECT_EQ(v.dtype, "int64");
        continue;
      }
      EXPECT_TRUE(v.is_float);
      const Tensor t = read_keras3_var(h5, v);
      const auto values = wv["values"].get<std::vector<double>>();
      ASSERT_EQ(t.numel(), values.size());
      std::size_t diffs = 0;
      for (std::size_t e = 0; e < values.size(); ++e)
        diffs += t.data()[e] != static_cast<float>(values[e]);
      EXPECT_EQ(diffs, 0u) << v.dataset << ": " << diffs << " of " << values.size()
                           << " values differ from the fixture";
    }
  }
}

TEST(Keras3WeightsFile, ReadsEveryVarsGroupAsKerasWroteIt) {
  H5File h5(fixture("k3_model.weights.h5"), H5File::Mode::kRead);
  const auto file = read_keras3_weights_file(h5);
  check_against(h5, file, expect()["k3_model"], true);
  // The paths Keras builds: class-name containers, never the layers' own names.
  ASSERT_NE(file.find("layers/functional/layers/conv2d_1"), nullptr);
  EXPECT_EQ(file.find("layers/functional/layers/conv2d_1")->name, "conv_b");
  EXPECT_EQ(file.find("")->name, "outer_model");
  EXPECT_EQ(file.find("layers/re_lu")->vars.size(), 0u);  // an empty vars group, named
  EXPECT_EQ(file.find("layers/re_lu")->name, "relu1");
}

TEST(Keras3WeightsFile, ReadsFilesWithoutNameAttributes) {  // Keras < 3.6
  H5File h5(fixture("k3_unnamed.weights.h5"), H5File::Mode::kRead);
  check_against(h5, read_keras3_weights_file(h5), expect()["k3_model"], false);
}

TEST(Keras3WeightsFile, WidensBfloat16TaggedDataExactly) {
  H5File h5(fixture("k3_bf16.weights.h5"), H5File::Mode::kRead);
  const auto file = read_keras3_weights_file(h5);
  ASSERT_NE(file.find("layers/conv2d"), nullptr);
  EXPECT_EQ(file.find("layers/conv2d")->vars[0].dtype, "bfloat16");
  check_against(h5, file, expect()["k3_bf16"], true);
}

void expect_refused(const std::string& name, const std::vector<std::string>& parts) {
  const std::string msg = error_message<std::runtime_error>([&] {
    H5File h5(fixture(name), H5File::Mode::kRead);
    read_keras3_weights_file(h5);
  });
  std::cout << name << ": " << msg << "\n";
  EXPECT_NE(msg.find(fixture(name)), std::string::npos) << msg;
  for (const auto& p : parts)
    EXPECT_NE(msg.find(p), std::string::npos) << "'" << p << "' in " << msg;
}

TEST(Keras3WeightsFile, RefusesDamagedAndOtherLayoutsWithNamedMessages) {
  expect_refused("k3_gap.weights.h5", {"/layers/conv2d/vars", "variable 1 is missing"});
  expect_refused("k3_badkey.weights.h5", {"/layers/dense/vars", "'kernel'", "0, 1, 2"});
  expect_refused("k3_novars.weights.h5", {"no 'vars' group", "not a Keras 3 weights file"});
  expect_refused("k3_softlink.weights.h5", {"/layers/alias", "soft link"});
  expect_refused("k3_string.weights.h5", {"/layers/dense/vars/0", "not numbers"});
  expect_refused("k2_full_nested.h5", {"tf.keras / Keras 2", "layer_names"});
}

TEST(Keras3WeightsFile, RefusesATfKerasSaveWeightsFile) {
  TempDir dir;
  const std::string out = dir.file("tf_keras.weights.h5");
  const float k[2] = {1, 2};
  write_tf_keras_weights(out, {{"dense", {{"dense/kernel:0", k, {2}}}}}, {});
  const std::string msg = error_message<std::runtime_error>([&] {
    H5File h5(out, H5File::Mode::kRead);
    read_keras3_weights_file(h5);
  });
  EXPECT_NE(msg.find("layer_names attribute at /)"), std::string::npos) << msg;
}

TEST(Keras3WeightsFile, WriteThenReadIsBitwiseAndH5pyReadsWhatKerasWould) {
  TempDir dir;
  const std::string out = dir.file("written.weights.h5");
  // The fixture's groups, values and names, written back out.
  H5File src(fixture("k3_model.weights.h5"), H5File::Mode::kRead);
  const auto file = read_keras3_weights_file(src);
  std::vector<Tensor> storage;
  std::vector<Keras3VarsToWrite> groups;
  nlohmann::json want = nlohmann::json::array();
  for (const auto& g : file.groups) {
    Keras3VarsToWrite w{g.path, g.name, {}};
    nlohmann::json jg{{"path", g.path}, {"name", g.name}, {"vars", nlohmann::json::array()}};
    for (const auto& v : g.vars) {
      if (!v.is_float) continue;  // the writer writes float32 only
      storage.push_back(read_keras3_var(src, v));
    }
    groups.push_back(std::move(w));
    want.push_back(jg);
  }
  std::size_t next = 0;
  for (std::size_t i = 0; i < file.groups.size(); ++i)
    for (const auto& v : file.groups[i].vars) {
      if (!v.is_float) continue;
      const Tensor& t = storage[next++];
      groups[i].vars.push_back({t.data(), v.shape});
      std::vector<double> vals(t.data(), t.data() + t.numel());
      want[i]["vars"].push_back({{"shape", v.shape}, {"dtype", "float32"}, {"values", vals}});
    }
  write_keras3_weights_file(out, groups);

  H5File back(out, H5File::Mode::kRead);
  check_against(back, read_keras3_weights_file(back), want, true);

  const std::string expect_path = dir.file("expect.json");
  std::ofstream(expect_path) << want.dump();
  const auto r = run_command(python() + " " + script() + " --check-keras3 " + out + " --expect " +
                             expect_path);
  std::cout << r.output;
  EXPECT_EQ(r.exit_code, 0) << r.output;
}

TEST(Keras3WeightsFile, WriterRefusesDuplicatePathsAndLeavesNoFile) {
  TempDir dir;
  const std::string out = dir.file("dup.weights.h5");
  const float x = 1.f;
  const std::string msg = error_message<std::runtime_error>([&] {
    write_keras3_weights_file(out, {{"layers/dense", "a", {{&x, {1}}}}, {"layers/dense", "b", {}}});
  });
  EXPECT_NE(msg.find("layers/dense"), std::string::npos) << msg;
  EXPECT_FALSE(std::filesystem::exists(out));
}

TEST(Keras3Naming, SnakeCaseMatchesKerasRegexes) {
  const std::vector<std::string> names = {"Conv2D",
                                          "BatchNormalization",
                                          "GlobalAveragePooling2D",
                                          "ReLU",
                                          "InputLayer",
                                          "Functional",
                                          "Sequential",
                                          "DepthwiseConv2D",
                                          "ZeroPadding2D",
                                          "MaxPooling2D",
                                          "Dense",
                                          "Activation",
                                          "Add",
                                          "Concatenate",
                                          "Dropout",
                                          "Rescaling",
                                          "Normalization",
                                          "PReLU",
                                          "ELU",
                                          "LeakyReLU",
                                          "SeparableConv2D",
                                          "Conv2DTranspose",
                                          "LSTM",
                                          "GRUCell",
                                          "MyHTTPLayer",
                                          "Adam",
                                          "SGD",
                                          "AdamW",
                                          "Layer_Norm2",
                                          "ABCDef",
                                          "aB"};
  std::string args;
  for (const auto& n : names) args += " " + n;
  const auto r = run_command(python() + " " + script() + " --snake" + args);
  ASSERT_EQ(r.exit_code, 0) << r.output;
  std::istringstream in(r.output);
  for (const auto& n : names) {
    std::string want;
    std::getline(in, want);
    EXPECT_EQ(keras3_container_name(n), want) << n;
  }
  EXPECT_EQ(keras3_container_name("GlobalAveragePooling2D"), "global_average_pooling2d");
  EXPECT_EQ(keras3_container_name("ReLU"), "re_lu");
}

TEST(Keras3Naming, UniqueNamesNumberLikeGetUniqueName) {
  Keras3UniqueNames used;
  EXPECT_EQ(used.next("conv2d"), "conv2d");
  EXPECT_EQ(used.next("conv2d"), "conv2d_1");
  EXPECT_EQ(used.next("dense"), "dense");
  EXPECT_EQ(used.next("conv2d"), "conv2d_2");
}

}  // namespace
}  // namespace parafine
