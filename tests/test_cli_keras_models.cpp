// Keras model files through the parafine commands, end to end (issue 14): predict, evaluate and
// inspect of the same model in every format agree (and with the float64 references of
// tests/reference); train --init X --save Y round-trips weights bitwise and a .keras written by
// parafine is a fixed point; training the transfer-learning guide's nested model moves only
// what Keras moves (head in phase 1, the last base layers in phase 2, BN of a training=False
// base in inference mode); damaged files are refused with a message naming the file and the
// layer or variable, exit 2, and no output written; the config.json parafine writes is the one
// Keras 3 reads, and a .h5 it writes reads back.
// Fixtures: CTest keras_model_fixtures (the good files) and bad_keras_files
// (tests/reference/make_bad_keras_files.py); weights compared by
// tests/reference/compare_keras_weights.py.
#include <gtest/gtest.h>

#include <algorithm>
#include <cctype>
#include <cmath>
#include <cstdio>
#include <filesystem>
#include <ostream>
#include <string>
#include <utility>
#include <vector>

#include "parafine/io/h5_tensors.hpp"
#include "run_binary.hpp"

namespace fs = std::filesystem;

namespace parafine {
namespace {

const std::string kFixtures = test_util::env_or("PARAFINE_KERAS_MODEL_FIXTURES", "");
const std::string kBad = test_util::env_or("PARAFINE_BAD_KERAS_FILES", "");
const std::string kPython = test_util::env_or("PARAFINE_REFERENCE_PYTHON", "/usr/bin/python3");
const std::string kCompare = test_util::env_or("PARAFINE_COMPARE_KERAS_WEIGHTS", "");

std::string fixture(const std::string& name) {
  return kFixtures + "/" + name;
}

// The probability columns of a predict CSV, row by row ([N, classes]).
std::vector<std::vector<double>> probabilities(const std::string& csv) {
  std::vector<std::vector<double>> out;
  const auto rows = read_csv(csv);
  for (std::size_t r = 1; r < rows.size(); ++r) {
    std::vector<double> p;
    for (std::size_t c = 1; c + 1 < rows[r].size(); ++c) p.push_back(std::stod(rows[r][c]));
    out.push_back(p);
  }
  return out;
}

double max_distance(const std::vector<std::vector<double>>& a,
                    const std::vector<std::vector<double>>& b) {
  if (a.size() != b.size()) return INFINITY;
  double worst = 0;
  for (std::size_t i = 0; i < a.size(); ++i) {
    if (a[i].size() != b[i].size()) return INFINITY;
    for (std::size_t j = 0; j < a[i].size(); ++j)
      worst = std::max(worst, std::abs(a[i][j] - b[i][j]));
  }
  return worst;
}

// compare_keras_weights.py A B ARGS: its exit code, its report printed.
int compare_weights(const std::string& a, const std::string& b, const std::string& args) {
  const CommandResult r =
      test_util::run_command(kPython + " " + kCompare + " " + a + " " + b + " " + args);
  std::printf("compare_keras_weights %s %s %s\n%s", fs::path(a).filename().c_str(),
              fs::path(b).filename().c_str(), args.c_str(), r.output.c_str());
  return r.exit_code;
}

// "loss 1.6164 - accuracy 0.0000 (4 samples)" of evaluate: {loss, accuracy}.
std::pair<double, double> loss_and_accuracy(const std::string& output) {
  double loss = NAN, acc = NAN;
  const auto at = output.find("loss ");
  if (at != std::string::npos)
    std::sscanf(output.c_str() + at, "loss %lf - accuracy %lf", &loss, &acc);
  return {loss, acc};
}

class CliKerasModels : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    dir_ = new test_util::TempDir("parafine_cli_keras");
    // 12 colour-coded 32x32 images of 3 classes (red, green, blue), labels i % 3.
    const int n = 12, size = 32;
    std::vector<unsigned char> pixels(n * size * size * 3);
    const auto noise = test_util::random_pixels(pixels.size(), 5);
    std::vector<long long> labels;
    for (int i = 0; i < n; ++i) {
      labels.push_back(i % 3);
      for (int p = 0; p < size * size; ++p)
        for (int c = 0; c < 3; ++c) {
          const std::size_t at = (static_cast<std::size_t>(i) * size * size + p) * 3 + c;
          pixels[at] = static_cast<unsigned char>((c == i % 3 ? 150 : 30) + noise[at] % 64);
        }
    }
    H5File f(path("rgb.h5"), H5File::Mode::kTruncate);
    f.write_uint8("/images", {static_cast<hsize_t>(n), size, size, 3}, pixels.data());
    f.write_int64("/labels", labels);
    f.write_string_list_attribute("/", "class_names", {"r", "g", "b"});
  }
  static void TearDownTestSuite() {
    delete dir_;
    dir_ = nullptr;
  }
  void SetUp() override {
    ASSERT_FALSE(kFixtures.empty()) << "PARAFINE_KERAS_MODEL_FIXTURES is not set";
    ASSERT_TRUE(fs::exists(fixture("nested.keras"))) << kFixtures;
  }
  static std::string path(const std::string& name) { return (dir_->path / name).string(); }

  // predict MODEL on INPUT into a CSV named after `tag`; asserts exit 0; returns the CSV path.
  static std::string predict(const std::string& model, const std::string& input,
                             const std::string& tag, const std::string& extra = "") {
    const std::string csv = path("pred_" + tag + ".csv");
    const CommandResult r = run_parafine("predict --model " + model + " --input " + input +
                                         " --output " + csv + " " + extra);
    EXPECT_EQ(r.exit_code, 0) << model << "\n" << r.output;
    return csv;
  }
  static test_util::TempDir* dir_;
};
test_util::TempDir* CliKerasModels::dir_ = nullptr;

// ---- 1. every format of one model: the same predictions, loss and inspect report ------------

TEST_F(CliKerasModels, SmallCnnKerasAndKeras2FullModelPredictTheSameCsv) {
  const std::string data = fixture("small_cnn_data.h5");
  const std::string k3 =
      predict(fixture("small_cnn.keras"), data, "cnn_k3", "--preprocess rescale:1/255");
  const std::string k2 =
      predict(fixture("small_cnn_k2.h5"), data, "cnn_k2", "--preprocess rescale:1/255");
  EXPECT_EQ(test_util::bytes_of(k3), test_util::bytes_of(k2)) << "the CSVs differ";
  // Keras 3's own model.save("m.h5"): weight names without ":0".
  const std::string k3_h5 = predict(kBad + "/small_cnn_k3legacy.h5", data, "cnn_k3_h5",
                                    "--preprocess rescale:1/255");
  EXPECT_EQ(test_util::bytes_of(k3), test_util::bytes_of(k3_h5)) << "the CSVs differ";
  // p_class1 is the sigmoid unit: against the float64 PyTorch forward of the same weights.
  H5File ref(fixture("small_cnn_ref.h5"), H5File::Mode::kRead);
  const std::vector<double> want = ref.read_doubles("/probs");
  const auto got = probabilities(k3);
  ASSERT_EQ(got.size(), want.size());
  double worst = 0;
  for (std::size_t i = 0; i < want.size(); ++i)
    worst = std::max(worst, std::abs(got[i][1] - want[i]));
  const double tol = 2e-6;  // the CSV's 6 significant digits + float32
  std::printf("small CNN: max |p(class1) - float64 reference| = %.3g (tol %.0e)\n", worst, tol);
  EXPECT_LE(worst, tol);
}

TEST_F(CliKerasModels, NestedKeras2AndFlatTwinPredictTheSame) {
  const std::string data = fixture("nested_ref.h5");  // its /images: predict ignores the rest
  H5File ref(data, H5File::Mode::kRead);
  const std::vector<double> flat_ref = ref.read_doubles("/probs_nested");
  std::vector<std::vector<double>> want;
  for (std::size_t i = 0; i < flat_ref.size(); i += 3)
    want.push_back({flat_ref[i], flat_ref[i + 1], flat_ref[i + 2]});
  const auto nested = probabilities(predict(fixture("nested.keras"), data, "nested_k3"));
  const double tol_ref = 2e-6, tol_formats = 0;  // 6 significant digits; formats: same floats
  for (const char* model : {"nested.keras", "nested_k2.h5", "flat.keras", "flat_k2.h5"}) {
    const bool first = std::string(model) == "nested.keras";
    const auto got =
        first ? nested : probabilities(predict(fixture(model), data, std::string("n_") + model));
    const double to_ref = max_distance(got, want), to_nested = max_distance(got, nested);
    std::printf(
        "%-14s max |p - float64 reference| %.3g (tol %.0e), |p - nested.keras's| %.3g (tol %g)\n",
        model, to_ref, tol_ref, to_nested, tol_formats);
    EXPECT_LE(to_ref, tol_ref) << model;
    EXPECT_LE(to_nested, tol_formats) << model;
  }
}

TEST_F(CliKerasModels, EvaluateReportsTheSameLossForEveryFormat) {
  struct Case {
    std::vector<const char*> models;
    std::string data, extra;
  };
  const std::vector<Case> cases = {
      {{"small_cnn.keras", "small_cnn_k2.h5"},
       fixture("small_cnn_data.h5"),
       "--preprocess rescale:1/255"},
      {{"nested.keras", "nested_k2.h5", "flat.keras"}, path("rgb.h5"), ""}};
  double nested_loss = NAN;
  for (const Case& c : cases) {
    std::string first;
    for (const char* model : c.models) {
      const CommandResult r =
          run_parafine("evaluate --model " + fixture(model) + " --data " + c.data + " " + c.extra);
      ASSERT_EQ(r.exit_code, 0) << model << "\n" << r.output;
      const auto [loss, acc] = loss_and_accuracy(r.output);
      std::printf("%-16s loss %.4f accuracy %.4f (tol: printed digits equal)\n", model, loss, acc);
      ASSERT_FALSE(std::isnan(loss)) << r.output;
      if (std::string(model) == "nested.keras") nested_loss = loss;
      if (first.empty()) first = r.output.substr(r.output.find("loss "));
      EXPECT_EQ(r.output.substr(r.output.find("loss ")), first) << model;
    }
  }
  // The loss is the mean cross-entropy of predict's probabilities (4 decimals + CSV rounding).
  const auto p = probabilities(predict(fixture("nested.keras"), path("rgb.h5"), "nested_rgb"));
  double ce = 0;
  for (std::size_t i = 0; i < p.size(); ++i) ce -= std::log(p[i][i % 3]);
  ce /= p.size();
  const double tol = 2e-4;
  std::printf("nested.keras: evaluate loss %.4f, cross-entropy of predict's CSV %.6f (tol %.0e)\n",
              nested_loss, ce, tol);
  EXPECT_NEAR(nested_loss, ce, tol);
}

// A .keras saved after compile() and fit() holds the optimizer's variables (optimizer/vars) and
// a compile_config besides the layers' weights; Keras's load_model reads it. parafine must run
// it as the same model (its training starts a fresh Adam anyway).
TEST_F(CliKerasModels, KerasFileSavedAfterFitWithOptimizerStateIsRead) {
  const std::string model = kBad + "/compiled_nested.keras";
  ASSERT_TRUE(fs::exists(model)) << model;
  const std::string data = fixture("nested_ref.h5");
  const std::string want = test_util::bytes_of(predict(fixture("nested.keras"), data, "plain"));
  const std::string csv = path("compiled.csv");
  const CommandResult r =
      run_parafine("predict --model " + model + " --input " + data + " --output " + csv);
  ASSERT_EQ(r.exit_code, 0) << r.output;
  EXPECT_EQ(test_util::bytes_of(csv), want);
}

TEST_F(CliKerasModels, InspectShowsTheNestingAndThatParafineCanRunIt) {
  for (const char* model :
       {"nested.keras", "nested_k2.h5", "tm.keras", "flat.keras", "small_cnn_k2.h5"}) {
    const CommandResult r = run_parafine("inspect " + fixture(model));
    EXPECT_EQ(r.exit_code, 0) << model << "\n" << r.output;
    EXPECT_NE(r.output.find("can run it"), std::string::npos) << model << "\n" << r.output;
    const std::string name(model);
    if (name.rfind("nested", 0) == 0) {
      EXPECT_NE(r.output.find("mini_resnet (Functional, nested, called with training=False)"),
                std::string::npos)
          << model << "\n"
          << r.output;
      EXPECT_NE(r.output.find("base: 11 layers (the nested model 'mini_resnet')"),
                std::string::npos)
          << model << "\n"
          << r.output;
    } else if (name.rfind("tm", 0) == 0) {
      EXPECT_NE(r.output.find("(Sequential, nested"), std::string::npos) << model << "\n"
                                                                         << r.output;
    } else {
      EXPECT_EQ(r.output.find(", nested"), std::string::npos) << model << "\n" << r.output;
    }
  }
}

// ---- 2. round trips through parafine's writers ----------------------------------------------

// train --init SOURCE with no epochs, --save OUT; asserts exit 0.
void save_through_train(const std::string& source, const std::string& data, const std::string& out,
                        const std::string& extra = "") {
  const CommandResult r =
      run_parafine("train --train " + data + " --init " + source +
                   " --phase1-epochs 0 --phase2-epochs 0 --threads 2 --save " + out + " " + extra);
  ASSERT_EQ(r.exit_code, 0) << source << " -> " << out << "\n" << r.output;
}

TEST_F(CliKerasModels, KerasRoundTripIsBitwiseAndAFixedPoint) {
  struct Case {
    const char *source, *data, *reference;  // reference: the .keras holding the same weights
    bool again;                             // also: saved again, the same file
  };
  const std::string rgb = path("rgb.h5"), cnn_data = fixture("small_cnn_data.h5");
  for (const Case& c : {Case{"small_cnn_k2.h5", "cnn", "small_cnn.keras", true},
                        Case{"nested.keras", "rgb", "nested.keras", true},
                        Case{"tm.keras", "rgb", "tm.keras", false}}) {
    SCOPED_TRACE(c.source);
    const bool cnn = std::string(c.data) == "cnn";
    const std::string data = cnn ? cnn_data : rgb;
    const std::string once = path(std::string("once_") + c.source + ".keras");
    const std::string twice = path(std::string("twice_") + c.source + ".keras");
    save_through_train(fixture(c.source), data, once);
    EXPECT_EQ(compare_weights(fixture(c.reference), once, "--exact"), 0)
        << c.source << ": the weights parafine saved differ from the source's";
    if (!c.again) continue;
    save_through_train(once, data, twice);
    EXPECT_EQ(compare_weights(once, twice, "--exact --config"), 0)
        << c.source << ": a .keras written by parafine is not a fixed point";
    const std::string pre = cnn ? "--preprocess rescale:1/255" : "";
    const std::string a = predict(fixture(c.source), data, std::string("src_") + c.source, pre);
    const std::string b = predict(once, data, std::string("once_") + c.source, pre);
    EXPECT_EQ(test_util::bytes_of(a), test_util::bytes_of(b))
        << c.source << ": predictions changed by the round trip";
  }
}

// Keras 3's load_model must rebuild the source's model from the config.json parafine writes:
// each layer with only the arguments Keras's own config of it has (Layer.__init__ rejects
// others), and the same keras_history node indices (deserialize_node indexes
// layer._inbound_nodes with them; a Keras 3 Functional has no built-in node, so the first call
// of a nested model is node 0: keras/src/models/functional.py serialize_node).
TEST_F(CliKerasModels, SavedConfigIsTheOneKeras3Reads) {
  for (const auto& [source, reference] :
       {std::pair{"small_cnn_k2.h5", "small_cnn.keras"}, std::pair{"nested.keras", "nested.keras"},
        std::pair{"flat.keras", "flat.keras"}, std::pair{"tm.keras", "tm.keras"}}) {
    SCOPED_TRACE(source);
    const std::string data = std::string(source).rfind("small_cnn", 0) == 0
                                 ? fixture("small_cnn_data.h5")
                                 : path("rgb.h5");
    const std::string out = path(std::string("config_") + source + ".keras");
    save_through_train(fixture(source), data, out);
    EXPECT_EQ(compare_weights(fixture(reference), out, "--config-like"), 0)
        << source << ": Keras 3 would not read parafine's config.json as the source's model";
  }
}

// A nested model's Keras 3 weights as Keras's save_weights writes them (the fixture
// nested.weights.h5, tests/reference/keras_model_writer.py), bitwise.
TEST_F(CliKerasModels, NestedModelWeightsH5EqualsKerasSaveWeights) {
  const std::string out = path("nested_saved.weights.h5");
  save_through_train(fixture("nested.keras"), path("rgb.h5"), out);
  EXPECT_EQ(compare_weights(fixture("nested.weights.h5"), out, "--exact"), 0);
}

// --save X.h5 of a model read from a config: Keras 3's model.save("X.h5") writes the Keras 2
// full model (keras/src/saving/saving_api.py save_model -> legacy_h5_format.save_model_to_hdf5:
// model_config + model_weights), which load_model reads back. parafine either writes a file it
// reads back as the same model, or refuses (exit 2) before writing anything; it must not write a
// file no command can load.
// Keras's model.save("m.h5") of a model with a config writes a full model (model_config plus
// /model_weights); parafine's --save m.h5 does too, and reads it back.
TEST_F(CliKerasModels, ConfigModelSavedAsH5IsReadBack) {
  const std::string data = fixture("small_cnn_data.h5"), out = path("small_cnn_saved.h5");
  const CommandResult r =
      run_parafine("train --train " + data + " --init " + fixture("small_cnn.keras") +
                   " --phase1-epochs 0 --phase2-epochs 0 --save " + out);
  ASSERT_EQ(r.exit_code, 0) << r.output;
  const std::string pre = "--preprocess rescale:1/255";
  const std::string want =
      test_util::bytes_of(predict(fixture("small_cnn.keras"), data, "cnn_src", pre));
  const CommandResult p = run_parafine("predict --model " + out + " --input " + data + " " + pre +
                                       " --output " + path("cnn_from_h5.csv"));
  ASSERT_EQ(p.exit_code, 0) << "parafine cannot read the .h5 it wrote:\n" << p.output;
  EXPECT_EQ(test_util::bytes_of(path("cnn_from_h5.csv")), want) << "predictions differ";
}

// A parafine backbone + head in the three formats. MobileNetV2 alpha 0.35 (2 MB of weights; the
// same check on ResNet50 moves 94 MB per file, seconds per run): its .weights.h5 has no config,
// so the backbone and alpha are told from the layer names and block_16_project's filters.
TEST_F(CliKerasModels, BackboneWeightsH5H5AndKerasOfOneRunPredictTheSame) {
  const std::string rgb = path("rgb.h5");
  const std::string weights = path("mnv2.weights.h5");
  const CommandResult r = run_parafine(
      "train --train " + rgb +
      " --backbone mobilenet_v2 --alpha 0.35 --weights none --image-size 32 --head-units 8"
      " --phase1-epochs 0 --phase2-epochs 0 --threads 2 --seed 3 --save " +
      weights);
  ASSERT_EQ(r.exit_code, 0) << r.output;
  // The same weights in the other two formats (.weights.h5 has no config: the size is given).
  save_through_train(weights, rgb, path("mnv2.h5"), "--image-size 32");
  save_through_train(weights, rgb, path("mnv2.keras"), "--image-size 32");
  EXPECT_EQ(compare_weights(weights, path("mnv2.keras"), "--exact"), 0);
  const std::string want =
      test_util::bytes_of(predict(weights, rgb, "mnv2_weights", "--image-size 32"));
  EXPECT_FALSE(want.empty());
  for (const char* other : {"mnv2.h5", "mnv2.keras"}) {
    const std::string got =
        test_util::bytes_of(predict(path(other), rgb, other, "--image-size 32"));
    EXPECT_EQ(got, want) << other << "'s predictions differ from mnv2.weights.h5's";
  }
}

// ---- 3. training the nested model ----------------------------------------------------------

// Keras 3 vars paths of nested.keras: mini_resnet is layers/functional/, its Conv2D layers
// conv2d (conv1_conv), conv2d_1 (block1_1_conv), conv2d_2 (block1_2_conv), its BN layers
// batch_normalization, _1, _2 (conv1_bn, block1_1_bn, block1_2_bn; vars 0..3 = gamma, beta,
// moving_mean, moving_variance); the head's Dense is layers/dense/.
const char* kBase = "'^layers/functional/'";
const char* kBaseUnfrozenByLast3 = "'batch_normalization_2/vars/[01]$'";
const char* kBaseFrozenAfterLast3 =
    "'^layers/functional/layers/(conv2d(_1|_2)?|batch_normalization(_1)?)/|/vars/[23]$'";

TEST_F(CliKerasModels, NestedModelPhase1TrainsOnlyTheHead) {
  const std::string out = path("nested_phase1.keras");
  const CommandResult r =
      run_parafine("train --train " + path("rgb.h5") + " --init " + fixture("nested.keras") +
                   " --phase1-epochs 2 --phase2-epochs 0 --batch-size 4"
                   " --shuffle false --threads 2 --save " +
                   out);
  ASSERT_EQ(r.exit_code, 0) << r.output;
  EXPECT_NE(r.output.find("phase 1: base frozen, training the head (27 weights)"),
            std::string::npos)
      << "Dense(8 -> 3) has 27 weights\n"
      << r.output;
  EXPECT_EQ(compare_weights(fixture("nested.keras"), out, std::string("--exact --only ") + kBase),
            0)
      << "phase 1 changed mini_resnet";
  EXPECT_EQ(compare_weights(fixture("nested.keras"), out, "--changed --only '^layers/dense/'"), 0)
      << "phase 1 did not train the head";
}

TEST_F(CliKerasModels, NestedModelPhase2UnfreezesTheBasesLastLayersWithBnInInferenceMode) {
  const std::string out = path("nested_trained.keras");
  const CommandResult r =
      run_parafine("train --train " + path("rgb.h5") + " --init " + fixture("nested.keras") +
                   " --phase1-epochs 2 --phase2-epochs 2 --unfreeze-last 3"
                   " --phase2-lr 1e-3 --batch-size 4 --shuffle false"
                   " --threads 2 --save " +
                   out);
  ASSERT_EQ(r.exit_code, 0) << r.output;
  // mini_resnet's last 3 layers: block1_2_bn, block1_add, block1_out (16 + the head's 27).
  EXPECT_NE(r.output.find("phase 2: last 3 base layers unfrozen (from block1_2_bn, 43 weights)"),
            std::string::npos)
      << r.output;
  // Called with training=False: BN normalises with its moving statistics and never updates them
  // (all three BN layers, the unfrozen block1_2_bn included); the frozen layers stay as read.
  EXPECT_EQ(compare_weights(fixture("nested.keras"), out,
                            std::string("--exact --only ") + kBaseFrozenAfterLast3),
            0);
  EXPECT_EQ(compare_weights(fixture("nested.keras"), out,
                            std::string("--changed --only ") + kBaseUnfrozenByLast3),
            0)
      << "block1_2_bn's gamma and beta were not trained";
}

// The Keras 2 full-model file of the same nested model (model_config, the training=False call as
// a node kwarg) trains exactly as the .keras does.
TEST_F(CliKerasModels, NestedKeras2FileTrainsAsTheKerasArchive) {
  const std::string options =
      " --phase1-epochs 1 --phase2-epochs 1 --unfreeze-last 3 --phase2-lr 1e-3 --batch-size 4"
      " --shuffle false --threads 2 --save ";
  for (const char* source : {"nested.keras", "nested_k2.h5"}) {
    const CommandResult r =
        run_parafine("train --train " + path("rgb.h5") + " --init " + fixture(source) + options +
                     path(std::string("tr_") + source + ".keras"));
    ASSERT_EQ(r.exit_code, 0) << source << "\n" << r.output;
  }
  EXPECT_EQ(
      compare_weights(path("tr_nested.keras.keras"), path("tr_nested_k2.h5.keras"), "--exact"), 0);
}

// A run of a nested model with Dropout stopped after 3 steps and resumed from its checkpoint
// ends with the weights of the run made in one go (the Dropout masks are keyed by epoch and
// sample, so the resumed steps draw the same ones).
TEST_F(CliKerasModels, NestedModelResumesBitForBit) {
  const std::string run = "train --train " + path("rgb.h5") + " --init " + fixture("nested.keras") +
                          " --phase1-epochs 2 --phase2-epochs 2 --unfreeze-last 3 --batch-size 4"
                          " --seed 9 --save ";
  const std::string ckpt = " --checkpoint-dir " + path("resume_ckpt");
  fs::create_directories(path("resume_ckpt"));
  ASSERT_EQ(run_parafine(run + path("whole.keras")).exit_code, 0);
  const CommandResult first = run_parafine(run + path("part.keras") + ckpt + " --max-steps 3");
  ASSERT_EQ(first.exit_code, 0) << first.output;
  const CommandResult rest = run_parafine(run + path("resumed.keras") + ckpt + " --resume");
  ASSERT_EQ(rest.exit_code, 0) << rest.output;
  EXPECT_EQ(compare_weights(path("whole.keras"), path("resumed.keras"), "--exact"), 0);
}

// A nested model saved as .h5 keeps its nesting (the Keras 2 full-model layout: the base's
// weights in its own group) and predicts what the same run saved as .keras predicts.
TEST_F(CliKerasModels, NestedModelSavedAsH5KeepsItsNesting) {
  const std::string run = "train --train " + path("rgb.h5") + " --init " + fixture("nested.keras") +
                          " --phase1-epochs 1 --phase2-epochs 1 --unfreeze-last 3 --seed 5 --save ";
  for (const char* out : {"nested_saved.h5", "nested_saved.keras"}) {
    const CommandResult r = run_parafine(run + path(out));
    ASSERT_EQ(r.exit_code, 0) << r.output;
  }
  const std::string want =
      test_util::bytes_of(predict(path("nested_saved.keras"), path("rgb.h5"), "nk", ""));
  EXPECT_EQ(test_util::bytes_of(predict(path("nested_saved.h5"), path("rgb.h5"), "nh", "")), want);
  const CommandResult i = run_parafine("inspect " + path("nested_saved.h5"));
  EXPECT_EQ(i.exit_code, 0) << i.output;
  EXPECT_NE(i.output.find("mini_resnet (Functional, nested"), std::string::npos) << i.output;
}

// ---- 4. bad input -----------------------------------------------------------------------------

struct BadFile {
  std::string file;                  // in the bad_keras_files directory, or a fixture
  std::vector<std::string> mention;  // what the message must name besides the file
};

void PrintTo(const BadFile& b, std::ostream* os) {
  *os << b.file;
}

class CliKerasBadFiles : public CliKerasModels, public ::testing::WithParamInterface<BadFile> {};

std::string bad_path(const std::string& file) {
  return fs::exists(kBad + "/" + file) ? kBad + "/" + file : fixture(file);
}

TEST_P(CliKerasBadFiles, PredictAndTrainRefuseItNamingTheFileAndWriteNothing) {
  const BadFile& b = GetParam();
  const std::string model = bad_path(b.file);
  ASSERT_TRUE(fs::exists(model)) << model << " (PARAFINE_BAD_KERAS_FILES " << kBad << ")";
  const std::string csv = path("bad_" + b.file + ".csv");
  const std::string target = path("bad_target_" + b.file + ".keras");
  test_util::write_bytes(target, "an earlier model");
  const CommandResult p = run_parafine("predict --model " + model + " --input " +
                                       fixture("small_cnn_data.h5") + " --output " + csv);
  const CommandResult t = run_parafine("train --train " + fixture("small_cnn_data.h5") +
                                       " --init " + model + " --phase1-epochs 1 --save " + target);
  for (const auto& [command, r] : {std::pair{"predict", p}, std::pair{"train", t}}) {
    SCOPED_TRACE(std::string(command) + " on " + b.file);
    std::printf("%s %s: exit %d: %s", command, b.file.c_str(), r.exit_code, r.output.c_str());
    EXPECT_EQ(r.exit_code, 2);
    EXPECT_NE(r.output.find(model), std::string::npos) << "the message does not name " << model;
    for (const std::string& m : b.mention)
      EXPECT_NE(r.output.find(m), std::string::npos) << "the message does not name " << m;
  }
  EXPECT_FALSE(fs::exists(csv)) << "predict wrote " << csv;
  EXPECT_EQ(test_util::bytes_of(target), "an earlier model") << "train replaced " << target;
}

INSTANTIATE_TEST_SUITE_P(
    Files, CliKerasBadFiles,
    ::testing::Values(BadFile{"no_config.keras", {"config.json"}},
                      BadFile{"bad_json.keras", {"config.json", "not JSON"}},
                      BadFile{"unknown_class.keras", {"max_pooling2d", "FancyPool"}},
                      BadFile{"lambda.keras", {"max_pooling2d", "Lambda"}},
                      BadFile{"missing_var.keras", {"conv2d_1", "bias"}},
                      BadFile{"wrong_shape.keras", {"conv2d_1", "kernel", "[3,3,8,15]"}},
                      BadFile{"int_dtype.keras", {"dense", "bias", "int32"}},
                      BadFile{"not_a_zip.keras", {"zip"}},
                      // Another model's Keras 3 weights: no config, and not a parafine backbone.
                      BadFile{"small_cnn.weights.h5", {}}),
    [](const ::testing::TestParamInfo<BadFile>& info) {
      std::string name = info.param.file;
      std::replace_if(
          name.begin(), name.end(), [](unsigned char c) { return !std::isalnum(c); }, '_');
      return name;
    });

TEST_F(CliKerasModels, SaveSuffixesKerasDoesNotWriteAreRefused) {
  for (const char* name : {"model.pt", "model.json"}) {
    const std::string target = path(name);
    const CommandResult r =
        run_parafine("train --train " + path("rgb.h5") + " --init " + fixture("nested.keras") +
                     " --phase1-epochs 1 --save " + target);
    std::printf("--save %s: exit %d: %s", name, r.exit_code, r.output.c_str());
    EXPECT_EQ(r.exit_code, 2);
    EXPECT_NE(r.output.find(target), std::string::npos) << r.output;
    EXPECT_NE(r.output.find(".keras"), std::string::npos) << "no suffix named\n" << r.output;
    EXPECT_NE(r.output.find(".weights.h5"), std::string::npos) << r.output;
    EXPECT_EQ(r.output.find("phase 1"), std::string::npos) << "it trained first:\n" << r.output;
    EXPECT_FALSE(fs::exists(target));
  }
}

}  // namespace
}  // namespace parafine
