// Keras 3 `.keras` archives (io/keras_archive): read against zips written with Python's zipfile
// the way saving_lib._save_model_to_fileobj writes them (tests/reference/
// make_keras3_container_fixtures.py, directory in PARAFINE_KERAS3_FIXTURES): config.json,
// metadata.json, the weights extracted bit for bit to a temp file that goes away with the
// archive; the bad archives (not a zip, truncated, no config.json, npz weights, no weights, a
// decompression bomb) with messages naming the file and member; write -> read back bitwise,
// checked with zipfile (member order, ZIP_STORED) by the same script; a failed write leaves an
// existing file untouched.
#include <gtest/gtest.h>

#include <nlohmann/json.hpp>

#include <filesystem>
#include <fstream>
#include <iterator>
#include <string>

#include "keras3_fixtures.hpp"
#include "parafine/io/keras3_weights_file.hpp"
#include "parafine/io/keras_archive.hpp"
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
std::string slurp(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  return {std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>()};
}
nlohmann::json expect_archive() {
  std::ifstream in(fixture("expect.json"));
  return nlohmann::json::parse(in)["archive"];
}

TEST(KerasArchive, ReadsConfigMetadataAndWeights) {
  std::string weights_path;
  {
    const KerasArchive a = read_keras_archive(fixture("model.keras"));
    EXPECT_EQ(nlohmann::json::parse(a.config_json), expect_archive()["config"]);
    EXPECT_EQ(nlohmann::json::parse(a.metadata_json), expect_archive()["metadata"]);
    EXPECT_EQ(a.members, (std::vector<std::string>{"metadata.json", "config.json",
                                                   "model.weights.h5", "assets/vocab.txt"}));
    weights_path = a.weights_h5_path();
    const std::string got = slurp(weights_path), want = slurp(fixture("k3_model.weights.h5"));
    EXPECT_EQ(got.size(), want.size());
    EXPECT_TRUE(got == want) << "the extracted model.weights.h5 differs from what was zipped";
    H5File h5(weights_path, H5File::Mode::kRead);  // and it reads as Keras 3 weights
    EXPECT_NE(read_keras3_weights_file(h5).find("layers/functional/layers/conv2d"), nullptr);
  }
  EXPECT_FALSE(fs::exists(weights_path)) << weights_path << " outlived its archive";
}

TEST(KerasArchive, MetadataIsOptional) {
  const KerasArchive a = read_keras_archive(fixture("no_metadata.keras"));
  EXPECT_EQ(a.metadata_json, "");
  EXPECT_FALSE(a.config_json.empty());
}

void expect_refused(const std::string& name, const std::vector<std::string>& parts) {
  const std::string msg =
      error_message<std::runtime_error>([&] { read_keras_archive(fixture(name)); });
  std::cout << name << ": " << msg << "\n";
  EXPECT_NE(msg.find(fixture(name)), std::string::npos) << msg;
  for (const auto& p : parts)
    EXPECT_NE(msg.find(p), std::string::npos) << "'" << p << "' in " << msg;
}

TEST(KerasArchive, RefusesBadArchivesWithNamedMessages) {
  expect_refused("not_zip.keras", {"not a zip archive"});
  expect_refused("truncated.keras", {"truncated or damaged zip archive"});
  expect_refused("no_config.keras",
                 {"no config.json in the archive", "members: metadata.json, model.weights.h5"});
  expect_refused("npz.keras", {"model.weights.npz", "h5 weights format only"});
  expect_refused("no_weights.keras",
                 {"no model.weights.h5", "members: metadata.json, config.json"});
  expect_refused("bomb.keras", {"config.json", "300.0 MB", "decompression bomb"});
  expect_refused("missing.keras", {"cannot open"});
}

TEST(KerasArchive, WriteThenReadIsBitwiseAndZipfileSeesKerasLayout) {
  TempDir dir;
  const std::string out = dir.file("written.keras");
  const std::string config = expect_archive()["config"].dump();
  const std::string metadata = expect_archive()["metadata"].dump();
  write_keras_archive(out, config, metadata, fixture("k3_model.weights.h5"));
  {
    const KerasArchive a = read_keras_archive(out);
    EXPECT_EQ(a.config_json, config);
    EXPECT_EQ(a.metadata_json, metadata);
    EXPECT_EQ(a.members,
              (std::vector<std::string>{"metadata.json", "config.json", "model.weights.h5"}));
    EXPECT_TRUE(slurp(a.weights_h5_path()) == slurp(fixture("k3_model.weights.h5")));
  }
  // The checker wants {"config", "metadata"}: the fixture's archive entry.
  const std::string expect_path = dir.file("expect_archive.json");
  std::ofstream(expect_path) << expect_archive().dump();
  const auto r2 = run_command(python() + " " + script() + " --check-archive " + out + " --expect " +
                              expect_path);
  std::cout << r2.output;
  EXPECT_EQ(r2.exit_code, 0) << r2.output;
}

TEST(KerasArchive, FailedWriteLeavesTheExistingFileUntouched) {
  TempDir dir;
  const std::string out = dir.file("existing.keras");
  std::ofstream(out) << "previous contents";
  const std::string msg = error_message<std::runtime_error>(
      [&] { write_keras_archive(out, "{}", "{}", dir.file("no_such_weights.h5")); });
  EXPECT_NE(msg.find("no_such_weights.h5"), std::string::npos) << msg;
  EXPECT_EQ(slurp(out), "previous contents");
  for (const auto& e : fs::directory_iterator(dir.path))
    EXPECT_EQ(e.path().filename(), "existing.keras") << "left behind: " << e.path();
}

}  // namespace
}  // namespace parafine
