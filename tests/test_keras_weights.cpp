// Keras HDF5 weight files in and out (issue 3): the loader (load_keras_weights) and the saver
// (save_keras_model) against fixtures written with plain h5py by
// tests/reference/make_keras_weight_fixtures.py (run by CTest as a fixture; directory in
// PARAFINE_KERAS_FIXTURES), all holding the SAME seeded random values:
//  - the tf.keras keras-applications layout and the Keras-1 release layout load to bit-identical
//    tensors and predictions, matched by NAME (positions in layer_names do not matter);
//  - each damaged file (truncated, not HDF5, int32 kernel, missing layer, transposed kernel,
//    NaN, Inf, an extra layer, two problems at once) fails with its own message, listing every
//    offending layer in ONE message, and leaves the model bit-for-bit untouched;
//  - a top classifier is ignored with a note; whole-model files (/model_weights) and
//    save_weights files load with the head; network_config_of recovers the configuration;
//  - save -> load is bitwise, and the saved file has exactly the tf.keras save_weights layout
//    when read with h5py (tests/reference/check_keras_layout.py, path in
//    PARAFINE_KERAS_LAYOUT_CHECKER, run with PARAFINE_REFERENCE_PYTHON).
// Small network for speed: width 8, 3 classes, head 16, 32x32 images.
#include <gtest/gtest.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cfloat>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <functional>
#include <iostream>
#include <iterator>
#include <limits>
#include <set>
#include <sstream>
#include <string>
#include <vector>

#include "parafine/core/rng.hpp"
#include "parafine/io/h5_tensors.hpp"
#include "parafine/io/keras_file.hpp"
#include "parafine/io/backbone_of_file.hpp"
#include "parafine/io/keras_weights.hpp"
#include "parafine/io/model_file.hpp"
#include "parafine/model/initializers.hpp"
#include "parafine/model/backbone.hpp"
#include "test_util.hpp"

namespace parafine {
namespace {

namespace fs = std::filesystem;
using test_util::bit_diffs;
using test_util::env_or;
using test_util::TempDir;

constexpr int kWidth = 8, kClasses = 3, kHead = 16, kImage = 32;
constexpr std::uint64_t kInitSeed = 7;

NetworkConfig config() {
  return NetworkConfig{kImage, kClasses, kHead, kWidth, 3};
}

std::string fixture(const std::string& name) {
  return env_or("PARAFINE_KERAS_FIXTURES", ".") + "/" + name;
}

// A freshly built model with Keras default initialisation (so a load visibly changes it).
Model fresh_model(std::uint64_t seed = kInitSeed) {
  return test_util::keras_initialized_resnet50(config(), seed);
}

struct Snapshot {
  std::vector<float> params, state;
};
Snapshot snapshot(const Model& m) {
  return {m.params(), m.state()};
}

void expect_same_weights(const Model& a, const Model& b, const std::string& what) {
  const std::size_t dp = bit_diffs(a.params(), b.params()), ds = bit_diffs(a.state(), b.state());
  std::cout << what << ": " << dp << " of " << a.params().size() << " params and " << ds << " of "
            << a.state().size() << " state floats differ bitwise\n";
  EXPECT_EQ(dp, 0u) << what;
  EXPECT_EQ(ds, 0u) << what;
}

void expect_untouched(const Model& m, const Snapshot& before, const std::string& what) {
  const std::size_t dp = bit_diffs(m.params(), before.params),
                    ds = bit_diffs(m.state(), before.state);
  std::cout << "  after the failed load of " << what << ": " << dp << " params and " << ds
            << " state floats changed\n";
  EXPECT_EQ(dp, 0u) << what << " left the model half-loaded";
  EXPECT_EQ(ds, 0u) << what << " left the model half-loaded";
}

// Compares every variable of the model's layers [first, last) with the dataset
// `<root>/<layer>/<layer>/<var>:0` of a tf.keras-layout file read with H5File. Returns the
// number of variables compared.
int expect_matches_file(const Model& m, const std::string& path, const std::string& root, int first,
                        int last) {
  H5File f(path, H5File::Mode::kRead);
  int compared = 0;
  std::size_t differing = 0, floats = 0;
  for (const ParamRef& r : m.param_refs()) {
    if (r.node < first || r.node >= last) continue;
    const std::string& layer = m.layer(r.node).name();
    const std::string ds = root + "/" + layer + "/" + layer + "/" + r.name + ":0";
    const Tensor t = f.read_tensor(ds);
    EXPECT_EQ(t.shape(), r.shape) << ds;
    if (t.shape() != r.shape) continue;
    const std::size_t d = bit_diffs(m.data(r), t.data(), t.numel());
    EXPECT_EQ(d, 0u) << ds;
    differing += d;
    floats += t.numel();
    ++compared;
  }
  std::cout << "model vs " << fs::path(path).filename().string() << root << ": " << compared
            << " variables, " << floats << " floats, " << differing << " differ bitwise\n";
  return compared;
}

// The message of the exception thrown by load_keras_weights, or "" when it loaded.
std::string load_error(Model& m, const std::string& path, WeightScope scope,
                       std::ostream* log = nullptr) {
  return test_util::error_message<std::runtime_error>(
      [&] { load_keras_weights(m, path, scope, log); });
}

Tensor test_images() {
  Tensor x(Shape{2, kImage, kImage, 3});
  SplitMix64 rng(2024);
  for (std::size_t i = 0; i < x.numel(); ++i) x[i] = static_cast<float>(rng.uniform() * 2.0 - 1.0);
  return x;
}

std::vector<float> predict(Model& m, const Tensor& x) {
  const Tensor& y = m.forward(x, false);
  return std::vector<float>(y.data(), y.data() + y.numel());
}

// Runs the h5py layout checker; returns its exit status (-1 when it did not exit normally).
int run_layout_checker(const std::string& model_file, const std::string& extra_args) {
  const std::string py = env_or("PARAFINE_REFERENCE_PYTHON", "/usr/bin/python3");
  const std::string script =
      env_or("PARAFINE_KERAS_LAYOUT_CHECKER", "tests/reference/check_keras_layout.py");
  const std::string cmd = "'" + py + "' '" + script + "' '" + model_file + "' --width " +
                          std::to_string(kWidth) + " --classes " + std::to_string(kClasses) +
                          " --head-units " + std::to_string(kHead) + " " + extra_args;
  std::cout << "running: " << cmd << std::endl;
  const int status = std::system(cmd.c_str());
  std::cout << std::flush;
  return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
}

// ----------------------------------------------------------------------------------------

TEST(KerasWeights, FixturesArePresent) {
  for (const char* f : {"tf_keras_notop.h5", "keras1_notop.h5", "full_model.h5", "full_weights.h5"})
    ASSERT_TRUE(fs::exists(fixture(f)))
        << fixture(f) << " missing: run the keras_weight_fixtures test first";
}

TEST(KerasWeights, FileStructureOfBothLayouts) {
  H5File tf(fixture("tf_keras_notop.h5"), H5File::Mode::kRead);
  const KerasWeightFile a = read_keras_weight_file(tf);
  H5File k1(fixture("keras1_notop.h5"), H5File::Mode::kRead);
  const KerasWeightFile b = read_keras_weight_file(k1);
  std::cout << "tf_keras_notop.h5: layout '" << layout_name(a.layout) << "', " << a.layers.size()
            << " weighted layers, keras_version '" << a.keras_version << "', backend '" << a.backend
            << "'\n"
            << "keras1_notop.h5: layout '" << layout_name(b.layout) << "', " << b.layers.size()
            << " weighted layers\n";
  EXPECT_EQ(a.layout, KerasLayout::kTfKeras);
  EXPECT_EQ(b.layout, KerasLayout::kKeras1);
  EXPECT_EQ(a.layers.size(), 106u);  // 53 conv + 53 BN
  EXPECT_EQ(b.layers.size(), 106u);
  EXPECT_EQ(a.keras_version, "2.11.0");
  EXPECT_EQ(a.backend, "tensorflow");
  // Keras-1 names are translated; running_std is the moving variance.
  const StoredLayer* shortcut = b.find("conv2_block1_0_conv");
  ASSERT_NE(shortcut, nullptr);
  EXPECT_EQ(shortcut->stored_name, "res2a_branch1");
  const StoredLayer* bn = b.find("conv5_block3_3_bn");
  ASSERT_NE(bn, nullptr);
  EXPECT_EQ(bn->stored_name, "bn5c_branch2c");
  ASSERT_EQ(bn->weights.size(), 4u);
  EXPECT_EQ(bn->weights[3].stored_name, "bn5c_branch2c_running_std_1:0");
  EXPECT_EQ(bn->weights[3].var, "moving_variance");
  // bn_conv1's weight_names is split in two attributes (weight_names0/1) in the fixture.
  const StoredLayer* bn1 = b.find("conv1_bn");
  ASSERT_NE(bn1, nullptr);
  EXPECT_EQ(bn1->weights.size(), 4u);

  // Positions differ between the layouts (Keras-1 lists res2a_branch2c before res2a_branch1),
  // so a positional loader would mis-assign; count the weighted positions that differ.
  Model m = build_network(config());
  std::vector<std::string> model_order;
  for (int i = 0; i < kResNet50BaseLayers; ++i)
    if (m.layer(i).has_params()) model_order.push_back(m.layer(i).name());
  ASSERT_EQ(model_order.size(), 106u);
  int differ_a = 0, differ_b = 0;
  for (std::size_t i = 0; i < 106; ++i) {
    differ_a += a.layers[i].name != model_order[i];
    differ_b += b.layers[i].name != model_order[i];
  }
  std::cout << "weighted-layer positions that differ from the model order: tf.keras file "
            << differ_a << ", Keras-1 file " << differ_b << "\n";
  EXPECT_EQ(differ_a, 0);
  EXPECT_GT(differ_b, 0);
}

TEST(KerasWeights, BothLayoutsLoadToIdenticalTensors) {
  Model a = fresh_model(), b = fresh_model();
  const Snapshot init = snapshot(a);
  std::ostringstream log_a, log_b;
  load_keras_weights(b, fixture("keras1_notop.h5"), WeightScope::kBase, &log_b);
  load_keras_weights(a, fixture("tf_keras_notop.h5"), WeightScope::kBase, &log_a);
  std::cout << "notes: tf.keras '" << log_a.str() << "', Keras-1 '" << log_b.str() << "'\n";
  expect_same_weights(a, b, "tf.keras vs Keras-1 load");
  // Against the stored values themselves, read back with H5File.
  EXPECT_EQ(expect_matches_file(a, fixture("tf_keras_notop.h5"), "", 0, kResNet50BaseLayers),
            53 * 2 + 53 * 4);
  // Keras-1 paths, spot checks of every kind of variable.
  H5File k1(fixture("keras1_notop.h5"), H5File::Mode::kRead);
  const std::pair<const char*, std::pair<const char*, const char*>> spots[] = {
      {"/conv1/conv1_W_1:0", {"conv1_conv", "kernel"}},
      {"/bn_conv1/bn_conv1_running_std_1:0", {"conv1_bn", "moving_variance"}},
      {"/res2a_branch1/res2a_branch1_W_1:0", {"conv2_block1_0_conv", "kernel"}},
      {"/res2a_branch2c/res2a_branch2c_W_1:0", {"conv2_block1_3_conv", "kernel"}},
      {"/bn2a_branch1/bn2a_branch1_running_mean_1:0", {"conv2_block1_0_bn", "moving_mean"}},
      {"/res4f_branch2b/res4f_branch2b_b_1:0", {"conv4_block6_2_conv", "bias"}},
      {"/bn5c_branch2c/bn5c_branch2c_gamma_1:0", {"conv5_block3_3_bn", "gamma"}},
      {"/bn5c_branch2c/bn5c_branch2c_beta_1:0", {"conv5_block3_3_bn", "beta"}},
  };
  for (const auto& [ds, lv] : spots) {
    const ParamRef& r = b.find_param(lv.first, lv.second);
    const Tensor t = k1.read_tensor(ds);
    ASSERT_EQ(t.shape(), r.shape) << ds;
    const std::size_t d = bit_diffs(b.data(r), t.data(), t.numel());
    std::cout << "Keras-1 " << ds << " -> " << lv.first << "/" << lv.second << ": " << d << " of "
              << t.numel() << " differ\n";
    EXPECT_EQ(d, 0u);
  }
  // The load changed every base variable and left the head (not in a notop file) as it was.
  int base_changed = 0, base_vars = 0, head_changed = 0;
  for (const ParamRef& r : a.param_refs()) {
    const float* before = (r.optimised ? init.params.data() : init.state.data()) + r.offset;
    const bool changed = bit_diffs(a.data(r), before, r.shape.numel()) > 0;
    if (r.node < kResNet50BaseLayers) {
      ++base_vars;
      base_changed += changed;
    } else {
      head_changed += changed;
    }
  }
  std::cout << "base variables changed by the load: " << base_changed << " of " << base_vars
            << "; head variables changed: " << head_changed << "\n";
  EXPECT_EQ(base_changed, base_vars);
  EXPECT_EQ(head_changed, 0);
}

TEST(KerasWeights, PredictionsFromBothLayoutsAreIdentical) {
  Model a = fresh_model(), b = fresh_model(), init = fresh_model();
  load_keras_weights(a, fixture("tf_keras_notop.h5"), WeightScope::kBase);
  load_keras_weights(b, fixture("keras1_notop.h5"), WeightScope::kBase);
  const Tensor x = test_images();
  const std::vector<float> pa = predict(a, x), pb = predict(b, x), p0 = predict(init, x);
  ASSERT_EQ(pa.size(), static_cast<std::size_t>(2 * kClasses));
  double max_change = 0;
  bool finite = true;
  for (std::size_t i = 0; i < pa.size(); ++i) {
    max_change = std::max(max_change, static_cast<double>(std::abs(pa[i] - p0[i])));
    finite = finite && std::isfinite(pa[i]);
  }
  std::cout << "predictions (tf.keras file):";
  for (float v : pa) std::cout << " " << v;
  std::cout << "\npredictions differing bitwise between the two layouts: "
            << bit_diffs(pa.data(), pb.data(), pa.size()) << " of " << pa.size()
            << "; max |change| against the un-loaded model: " << max_change << "\n";
  EXPECT_TRUE(finite);
  EXPECT_EQ(bit_diffs(pa.data(), pb.data(), pa.size()), 0u);
  EXPECT_GT(max_change, 1e-6) << "the loaded weights should change the predictions";
}

TEST(KerasWeights, SwappedPositionsLoadByName) {
  H5File f(fixture("swapped.h5"), H5File::Mode::kRead);
  const auto names = f.read_string_list_attribute("/", "layer_names");
  const auto pos = [&](const std::string& n) {
    return std::find(names.begin(), names.end(), n) - names.begin();
  };
  const auto p0 = pos("conv2_block1_0_conv"), p3 = pos("conv2_block1_3_conv");
  std::cout << "swapped.h5 layer_names: conv2_block1_0_conv at " << p0
            << ", conv2_block1_3_conv at " << p3 << " (the model has them at 13 and 14)\n";
  ASSERT_GT(p0, p3) << "the fixture should list the two convs in swapped positions";

  Model swapped = fresh_model(), plain = fresh_model();
  load_keras_weights(swapped, fixture("swapped.h5"), WeightScope::kBase);
  load_keras_weights(plain, fixture("tf_keras_notop.h5"), WeightScope::kBase);
  expect_same_weights(swapped, plain, "swapped.h5 vs tf_keras_notop.h5");
  // The same shapes, different values: each conv got the values stored under ITS name.
  const Tensor k0 = f.read_tensor("/conv2_block1_0_conv/conv2_block1_0_conv/kernel:0");
  const Tensor k3 = f.read_tensor("/conv2_block1_3_conv/conv2_block1_3_conv/kernel:0");
  ASSERT_EQ(k0.shape(), k3.shape());
  const ParamRef& r0 = swapped.find_param("conv2_block1_0_conv", "kernel");
  const ParamRef& r3 = swapped.find_param("conv2_block1_3_conv", "kernel");
  ASSERT_EQ(r0.shape, k0.shape());
  const std::size_t own0 = bit_diffs(swapped.data(r0), k0.data(), k0.numel());
  const std::size_t own3 = bit_diffs(swapped.data(r3), k3.data(), k3.numel());
  const std::size_t cross = bit_diffs(swapped.data(r0), k3.data(), k3.numel());
  std::cout << "both kernels " << k0.shape().str()
            << "; conv2_block1_0_conv vs its own dataset: " << own0
            << " differ, vs conv2_block1_3_conv's: " << cross
            << " differ; conv2_block1_3_conv vs its own: " << own3 << "\n";
  EXPECT_EQ(own0, 0u);
  EXPECT_EQ(own3, 0u);
  EXPECT_GT(cross, 0u) << "the two kernels must differ for this test to mean anything";
}

struct Damage {
  std::string file;
  WeightScope scope;
  std::vector<std::string> must_contain;
};

TEST(KerasWeights, EachDamagedFileGivesItsOwnErrorAndLeavesTheModelUntouched) {
  const std::vector<Damage> cases = {
      {"not_hdf5.h5", WeightScope::kBase, {"not_hdf5.h5", "not an HDF5 file"}},
      {"does_not_exist.h5", WeightScope::kBase, {"does_not_exist.h5", "no such file"}},
      {"truncated.h5", WeightScope::kBase, {"truncated.h5", "truncated or damaged"}},
      {"wrong_dtype.h5",
       WeightScope::kBase,
       {"wrong_dtype.h5", "1 problem", "conv4_block3_2_conv/kernel", "int32"}},
      {"missing_layer.h5",
       WeightScope::kBase,
       {"missing_layer.h5", "1 problem", "conv3_block2_2_conv", "missing"}},
      {"wrong_shape.h5",
       WeightScope::kBase,
       {"wrong_shape.h5", "1 problem", "conv4_block1_0_conv/kernel", "shape", "[128,64,1,1]",
        "[1,1,64,128]"}},
      {"nan.h5", WeightScope::kBase, {"nan.h5", "1 problem", "conv5_block3_3_bn/gamma", "NaN"}},
      {"inf.h5",
       WeightScope::kBase,
       {"inf.h5", "1 problem", "conv5_block2_1_bn/moving_variance", "Inf"}},
      {"extra_layer.h5",
       WeightScope::kBase,
       {"extra_layer.h5", "1 problem", "my_extra_conv", "not a layer"}},
      {"two_problems.h5",
       WeightScope::kBase,
       {"two_problems.h5", "2 problem(s)", "conv3_block2_2_conv", "missing",
        "conv4_block1_0_conv/kernel", "shape"}},
      // A base (notop) file where the full model is wanted: the head is missing.
      {"tf_keras_notop.h5",
       WeightScope::kFull,
       {"tf_keras_notop.h5", "2 problem(s)", "dense:", "dense_1:", "missing"}},
  };
  std::set<std::string> distinct;
  for (const Damage& c : cases) {
    // Load the good file first, so a half-load of the damaged one would show.
    Model m = fresh_model();
    load_keras_weights(m, fixture("tf_keras_notop.h5"), WeightScope::kBase);
    keras_initialize(m, 99);  // ... then different values everywhere
    const Snapshot before = snapshot(m);
    const std::string msg = load_error(m, fixture(c.file), c.scope);
    std::cout << "[" << c.file << (c.scope == WeightScope::kFull ? ", full" : ", base")
              << "] error:\n"
              << msg << "\n";
    EXPECT_FALSE(msg.empty()) << c.file << " loaded without an error";
    for (const auto& s : c.must_contain)
      EXPECT_NE(msg.find(s), std::string::npos) << c.file << ": no '" << s << "' in: " << msg;
    // Each problem line must be its own: strip the path so identical texts would collide.
    std::string body = msg;
    for (std::size_t p;
         (p = body.find(env_or("PARAFINE_KERAS_FIXTURES", "."))) != std::string::npos;)
      body.erase(p, body.find(".h5", p) + 3 - p);
    // (A file that does not exist may share the non-HDF5 message, which names both causes.)
    if (c.file != "does_not_exist.h5")
      EXPECT_TRUE(distinct.insert(body).second)
          << c.file << " gives the same error as another case: " << body;
    expect_untouched(m, before, c.file);
  }
}

// The issue asks for "its own clear error" for a truncated file: say that it is truncated /
// damaged, not only that HDF5 could not open it (which also covers permissions, locks, ...).
TEST(KerasWeights, TruncatedFileSaysTruncated) {
  Model m = fresh_model();
  const std::string path = fixture("truncated.h5");
  const std::string msg = load_error(m, path, WeightScope::kBase);
  std::string body = msg;
  if (body.compare(0, path.size(), path) == 0)
    body.erase(0, path.size());  // the path says "truncated"
  std::cout << "truncated.h5 error: '" << msg << "'; without the path: '" << body << "'\n";
  EXPECT_NE(body.find("truncated"), std::string::npos)
      << "the error for a truncated file should say so (e.g. 'HDF5 file is truncated or damaged'), "
         "got: "
      << msg;
}

// h5py writes Python str attributes as VARIABLE-length UTF-8 strings (the Keras-1 fixture's
// layer_names0/1 and weight_names). Reading them must not depend on what the process read
// before, so this runs in a fresh process (threadsafe death-test style re-executes the binary).
TEST(KerasWeightsDeathTest, Keras1FileWithVariableLengthUtf8AttributesLoadsInAFreshProcess) {
  GTEST_FLAG_SET(death_test_style, "threadsafe");
  const std::string path = fixture("keras1_notop.h5");
  EXPECT_EXIT(
      {
        try {
          Model m = fresh_model();
          load_keras_weights(m, path, WeightScope::kBase);
          std::fprintf(stderr, "keras1_notop.h5 loaded as the first HDF5 read of the process\n");
          std::exit(0);
        } catch (const std::exception& e) {
          std::fprintf(stderr, "first HDF5 read of the process failed: %s\n", e.what());
          std::exit(1);
        }
      },
      ::testing::ExitedWithCode(0), "loaded as the first HDF5 read");
  std::cout << "a fresh process loaded keras1_notop.h5 (variable-length UTF-8 attributes)\n";
}

// A copy of a fixture with `patch` applied to its bytes, in `dir`.
std::string patched_copy(const std::string& name, const TempDir& dir,
                         const std::function<void(std::string& bytes)>& patch) {
  std::string bytes = test_util::bytes_of(fixture(name));
  patch(bytes);
  const std::string path = dir.file("damaged_" + name);
  test_util::write_bytes(path, bytes);
  return path;
}

// Issue 11, defect 2: bit flips in the global heap that holds a Keras-1 file's
// variable-length layer names crashed HDF5 (SIGSEGV inside its string read) and with it the
// process; under mpirun the job then hung. Here the first heap object's 8-byte length (bytes
// 24..31 of the "GCOL" collection) is made larger than 2^39: HDF5 1.10 crashes reading it.
// The file is read in a checking child first, so the crash is this message.
TEST(KerasWeights, DamagedVariableLengthStringHeapIsAMessageNotACrash) {
  TempDir dir;
  const std::string path = patched_copy("keras1_notop.h5", dir, [](std::string& bytes) {
    const std::size_t heap = bytes.find("GCOL");
    ASSERT_NE(heap, std::string::npos) << "no global heap in keras1_notop.h5";
    bytes[heap + 28] = '\xff';
  });
  Model m = fresh_model();
  const Snapshot before = snapshot(m);
  const std::string msg = load_error(m, path, WeightScope::kBase);
  std::cout << "damaged heap: " << msg << "\n";
  EXPECT_NE(msg.find(path + ": damaged, or not a Keras weight file"), std::string::npos) << msg;
  expect_untouched(m, before, "damaged heap");
}

// Issue 11, defect 2: a flipped bit made conv1_conv's kernel [7,7,3,W] claim 2^35+W output
// channels; the dimension read as W (int truncation), passed the shape check, and the read
// then asked for 2^35 floats: a bare std::bad_alloc. Now the dimension itself is refused.
TEST(KerasWeights, DimensionBeyondIntIsRefusedBeforeAnyAllocation) {
  TempDir dir;
  const std::string path = patched_copy("tf_keras_notop.h5", dir, [](std::string& bytes) {
    const std::uint64_t dims[4] = {7, 7, 3, kWidth};  // the dataspace message's dimensions
    const std::string pattern(reinterpret_cast<const char*>(dims), sizeof dims);
    const std::size_t at = bytes.find(pattern);
    ASSERT_NE(at, std::string::npos) << "conv1_conv kernel dimensions not found";
    bytes[at + 3 * 8 + 4] = '\x08';  // bit 35 of the last dimension
  });
  Model m = fresh_model();
  const std::string msg = load_error(m, path, WeightScope::kBase);
  std::cout << "huge dimension: " << msg << "\n";
  EXPECT_NE(msg.find("conv1_conv"), std::string::npos) << msg;
  EXPECT_NE(msg.find(std::to_string((std::uint64_t{1} << 35) + kWidth)), std::string::npos) << msg;
  EXPECT_NE(msg.find("damaged"), std::string::npos) << msg;
}

TEST(KerasWeights, TopClassifierIsIgnoredWithANote) {
  Model top = fresh_model(), plain = fresh_model();
  std::ostringstream log;
  load_keras_weights(top, fixture("with_top.h5"), WeightScope::kBase, &log);
  load_keras_weights(plain, fixture("tf_keras_notop.h5"), WeightScope::kBase);
  std::cout << "note for with_top.h5: '" << log.str() << "'\n";
  EXPECT_NE(log.str().find("predictions"), std::string::npos);
  EXPECT_NE(log.str().find("ignoring the top classifier"), std::string::npos);
  expect_same_weights(top, plain, "with_top.h5 vs tf_keras_notop.h5");
}

TEST(KerasWeights, FullModelFilesLoadWithTheHead) {
  Model from_model = fresh_model(), from_weights = fresh_model(11);
  std::ostringstream log;
  load_keras_weights(from_model, fixture("full_model.h5"), WeightScope::kFull, &log);
  load_keras_weights(from_weights, fixture("full_weights.h5"), WeightScope::kFull, &log);
  EXPECT_EQ(log.str(), "") << "a full load of a full file should have nothing to note";
  expect_same_weights(from_model, from_weights, "full_model.h5 vs full_weights.h5");
  EXPECT_EQ(expect_matches_file(from_model, fixture("full_model.h5"), "/model_weights", 0,
                                from_model.size()),
            53 * 2 + 53 * 4 + 4);
  EXPECT_EQ(
      expect_matches_file(from_weights, fixture("full_weights.h5"), "", 0, from_weights.size()),
      53 * 2 + 53 * 4 + 4);
  // And the base part equals the base-only files' load.
  Model base = fresh_model();
  load_keras_weights(base, fixture("keras1_notop.h5"), WeightScope::kBase);
  std::size_t d = 0;
  for (const ParamRef& r : base.param_refs())
    if (r.node < kResNet50BaseLayers)
      d += bit_diffs(base.data(r), from_model.data(r), r.shape.numel());
  std::cout << "base floats differing between keras1_notop.h5 and full_model.h5 loads: " << d
            << "\n";
  EXPECT_EQ(d, 0u);

  for (const char* name : {"full_model.h5", "full_weights.h5"}) {
    H5File h5(fixture(name), H5File::Mode::kRead);
    const KerasWeightFile kf = read_keras_weight_file(h5);
    const NetworkConfig c = network_config_of(kf, kImage);
    std::cout << name << ": root " << kf.root << ", config width " << c.width << ", channels "
              << c.channels << ", head units " << c.head_units << ", classes " << c.classes
              << ", image " << c.image_size << "\n";
    EXPECT_EQ(kf.root, std::string(name) == "full_model.h5" ? "/model_weights" : "/");
    EXPECT_EQ(c.width, kWidth);
    EXPECT_EQ(c.channels, 3);
    EXPECT_EQ(c.head_units, kHead);
    EXPECT_EQ(c.classes, kClasses);
    EXPECT_EQ(c.image_size, kImage);
  }
  H5File notop(fixture("tf_keras_notop.h5"), H5File::Mode::kRead);
  try {
    network_config_of(read_keras_weight_file(notop), kImage);
    ADD_FAILURE() << "network_config_of accepted a notop file";
  } catch (const std::runtime_error& e) {
    std::cout << "network_config_of(tf_keras_notop.h5): " << e.what() << "\n";
    EXPECT_NE(std::string(e.what()).find("dense"), std::string::npos);
  }
}

TEST(KerasWeights, BaseLoadFromAFullModelIgnoresTheHeadWithANote) {
  Model m = fresh_model(), plain = fresh_model();
  std::ostringstream log;
  load_keras_weights(m, fixture("full_model.h5"), WeightScope::kBase, &log);
  load_keras_weights(plain, fixture("tf_keras_notop.h5"), WeightScope::kBase);
  std::cout << "notes: " << log.str();
  EXPECT_NE(log.str().find("'dense'"), std::string::npos);
  EXPECT_NE(log.str().find("'dense_1'"), std::string::npos);
  expect_same_weights(m, plain,
                      "base of full_model.h5 vs tf_keras_notop.h5 (head left as initialised)");
}

TEST(KerasWeights, SaveThenLoadIsBitwise) {
  TempDir tmp("parafine_kw");
  Model a = fresh_model();
  load_keras_weights(a, fixture("full_weights.h5"), WeightScope::kFull);
  // Values whose bits a lossy path would change: -0, the smallest denormal, the extremes.
  const float specials[] = {-0.0f,
                            std::numeric_limits<float>::denorm_min(),
                            FLT_MAX,
                            -FLT_MAX,
                            FLT_MIN,
                            -FLT_MIN,
                            1.0f + FLT_EPSILON,
                            3.14159274f};
  for (std::size_t i = 0; i < std::size(specials); ++i) {
    a.params()[i * 997] = specials[i];
    a.state()[i * 101] = specials[i];
  }
  const std::string path = tmp.file("model.h5");
  save_keras_model(a, path, {"cat", "dog", "eel"});
  Model b = fresh_model(12345);
  load_keras_weights(b, path, WeightScope::kFull);
  expect_same_weights(a, b, "save -> load");
  // Saving over an existing file replaces it (temporary file + rename), leaving nothing else.
  a.params()[0] = 0.5f;
  save_keras_model(a, path);
  Model c = fresh_model(3);
  load_keras_weights(c, path, WeightScope::kFull);
  expect_same_weights(a, c, "save over an existing file -> load");
  std::vector<std::string> left;
  for (const auto& e : fs::directory_iterator(tmp.path))
    left.push_back(e.path().filename().string());
  std::cout << "files in the save directory:";
  for (const auto& n : left) std::cout << " " << n;
  std::cout << "\n";
  EXPECT_EQ(left, std::vector<std::string>{"model.h5"});
  // The saved file's structure reads back as a tf.keras file of the same configuration.
  H5File h5(path, H5File::Mode::kRead);
  const KerasWeightFile kf = read_keras_weight_file(h5);
  EXPECT_EQ(kf.layout, KerasLayout::kTfKeras);
  EXPECT_EQ(kf.layers.size(), 108u);
  const NetworkConfig cfg = network_config_of(kf, kImage);
  EXPECT_EQ(cfg.width, kWidth);
  EXPECT_EQ(cfg.head_units, kHead);
  EXPECT_EQ(cfg.classes, kClasses);
}

TEST(KerasWeights, SavedFileHasExactlyTheKerasLayout) {
  TempDir tmp("parafine_kw");
  Model m = fresh_model();
  load_keras_weights(m, fixture("full_weights.h5"), WeightScope::kFull);
  const std::string path = tmp.file("saved.h5");
  save_keras_model(m, path, {"cat", "dog", "eel"});
  const std::string same = "--same-values-as '" + fixture("full_weights.h5") + "'";
  EXPECT_EQ(run_layout_checker(path, "--class-names cat,dog,eel " + same), 0);
  // Without class names there must be no class_names attribute either.
  const std::string plain = tmp.file("plain.h5");
  save_keras_model(m, plain);
  EXPECT_EQ(run_layout_checker(plain, same), 0);

  // Controls: the checker accepts the h5py-written Keras file, and it does fail on a notop file
  // and on a saved file whose values differ from the reference in one float.
  EXPECT_EQ(run_layout_checker(fixture("full_weights.h5"), ""), 0);
  EXPECT_EQ(run_layout_checker(fixture("tf_keras_notop.h5"), ""), 1);
  m.params()[m.find_param("dense_1", "bias").offset] += 1.0f;
  const std::string changed = tmp.file("changed.h5");
  save_keras_model(m, changed);
  EXPECT_EQ(run_layout_checker(changed, same), 1);
}

}  // namespace
}  // namespace parafine
