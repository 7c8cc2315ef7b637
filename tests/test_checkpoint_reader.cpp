// Reading checkpoints back when they are damaged (issue 11): a checkpoint whose attributes or
// datasets a bit flip or a half-finished copy has spoiled is skipped with a message that names
// it and what is wrong, the newest good one is used, and a crash of the HDF5 library on one is
// contained (it is read in a checking child first).
#include <gtest/gtest.h>
#include <hdf5.h>

#include <fstream>
#include <iterator>
#include <sstream>
#include <string>

#include "parafine/train/checkpoint.hpp"
#include "test_util.hpp"

namespace parafine {
namespace {

using test_util::TempDir;

Model tiny_model() {
  return test_util::keras_initialized_resnet50(NetworkConfig{32, 2, 4, 2, 3}, 3);
}

TrainPosition position(int epoch) {
  TrainPosition p;
  p.phase = 1;
  p.epoch = epoch;
  p.step = 0;
  p.seed = 5;
  p.batch_size = 4;
  p.samples = 16;
  return p;
}

// Replaces a root string attribute of an HDF5 file with `value` (raw HDF5: no parafine code).
void set_root_attribute(const std::string& path, const char* name, const std::string& value) {
  const hid_t f = H5Fopen(path.c_str(), H5F_ACC_RDWR, H5P_DEFAULT);
  ASSERT_GE(f, 0) << path;
  ASSERT_GE(H5Adelete(f, name), 0) << name;
  const hid_t type = H5Tcopy(H5T_C_S1);
  H5Tset_size(type, value.size());
  const hid_t space = H5Screate(H5S_SCALAR);
  const hid_t a = H5Acreate2(f, name, type, space, H5P_DEFAULT, H5P_DEFAULT);
  ASSERT_GE(H5Awrite(a, type, value.data()), 0);
  H5Aclose(a);
  H5Sclose(space);
  H5Tclose(type);
  H5Fclose(f);
}

std::string load_log(const std::string& dir, const Model& m, Checkpoint* out = nullptr) {
  std::ostringstream log;
  Checkpoint c = load_latest_checkpoint(dir, m, log);
  if (out) *out = c;
  return log.str();
}

TEST(CheckpointReader, OutOfRangeAttributesAreNamedAndTheOlderCheckpointIsUsed) {
  const Model m = tiny_model();
  const struct {
    const char* attribute;
    const char* value;
    const char* expected;
  } cases[] = {
      {"phase", "7", "attribute phase is '7', not a whole number in [1, 2]"},
      {"epoch", "banana", "attribute epoch is 'banana'"},
      {"partial_correct", "99", "attribute partial_correct is '99'"},  // more than the count
      {"batch_size", "-1", "attribute batch_size is '-1'"},
      {"seed", "12x", "attribute seed is '12x'"},
      {"partial_loss_sum", "nan", "partial_loss_sum is not a finite loss"},
  };
  for (const auto& c : cases) {
    TempDir dir;
    save_checkpoint(dir.path.string(), m, nullptr, position(1), 5);
    save_checkpoint(dir.path.string(), m, nullptr, position(2), 5);
    const std::string newest = dir.file(checkpoint_name(position(2)));
    set_root_attribute(newest, c.attribute, c.value);
    Checkpoint used;
    const std::string log = load_log(dir.path.string(), m, &used);
    std::cout << c.attribute << " = '" << c.value << "': " << log;
    EXPECT_NE(log.find("skipping checkpoint " + newest), std::string::npos) << log;
    EXPECT_NE(log.find(c.expected), std::string::npos) << log;
    EXPECT_EQ(used.position.epoch, 1) << "the older, intact checkpoint should be used";
  }
}

TEST(CheckpointReader, DatasetClaimingMoreThanTheFileStoresIsRefused) {
  const Model m = tiny_model();
  TempDir dir;
  save_checkpoint(dir.path.string(), m, nullptr, position(1), 5);
  const std::string path = dir.file(checkpoint_name(position(1)));
  std::string bytes = test_util::bytes_of(path);
  // /params is a 1-D dataset of params().size() floats: its dataspace holds that size twice
  // (dimension and maximum). Make the dimension 2^32 larger.
  const std::uint64_t n = m.params().size();
  const std::string pattern(reinterpret_cast<const char*>(&n), sizeof n);
  const std::size_t at = bytes.find(pattern + pattern);
  ASSERT_NE(at, std::string::npos) << "the dataspace of /params was not found";
  bytes[at + 4] = '\x01';
  test_util::write_bytes(path, bytes);
  std::ostringstream log;
  const std::string msg = test_util::error_message<std::runtime_error>(
      [&] { load_latest_checkpoint(dir.path.string(), m, log); });
  std::cout << log.str() << "error: " << msg << "\n";
  EXPECT_NE(msg.find("no readable checkpoint"), std::string::npos) << msg;
  EXPECT_NE(log.str().find("/params has shape [" + std::to_string(n + (std::uint64_t{1} << 32)) +
                           "], which needs"),
            std::string::npos)
      << log.str();
}

}  // namespace
}  // namespace parafine

namespace parafine {
namespace {

// A bit flipped on disk in a weight (not in any structure HDF5 checks) used to load silently
// and change the resumed run; the checkpoint's content checksum finds it.
TEST(CheckpointReader, FlippedWeightBitIsFoundByTheContentChecksum) {
  const Model m = tiny_model();
  TempDir dir;
  save_checkpoint(dir.path.string(), m, nullptr, position(1), 5);
  const std::string path = dir.file(checkpoint_name(position(1)));
  std::string bytes = test_util::bytes_of(path);
  const float* first = m.params().data() + 100;  // 16 bytes of params, found in the file
  const std::size_t at = bytes.find(std::string(reinterpret_cast<const char*>(first), 16));
  ASSERT_NE(at, std::string::npos) << "params[100..104) not found in the file";
  bytes[at + 3] ^= 0x01;  // the lowest exponent bit of params[100]: the value halves or doubles
  test_util::write_bytes(path, bytes);
  std::ostringstream log;
  const std::string msg = test_util::error_message<std::runtime_error>(
      [&] { load_latest_checkpoint(dir.path.string(), m, log); });
  std::cout << log.str();
  EXPECT_NE(log.str().find("does not match the checksum written with it"), std::string::npos)
      << log.str();
}

}  // namespace
}  // namespace parafine
