// H5ImageDataset and H5Source on hostile HDF5 datasets (issue 11): empty images, sizes that do
// not fit an int, one-hot labels without columns, labels at INT_MAX or far above any real class
// count, and (found by tests/fuzz) storage layouts that do not fit the shape: a compact dataset
// storing fewer bytes than it holds, chunks larger than the dataset. Each is refused with a
// message naming the file and what is wrong, never a crash.
#include <gtest/gtest.h>

#include <algorithm>
#include <climits>
#include <cstdint>
#include <fstream>
#include <iostream>
#include <iterator>
#include <string>
#include <vector>

#include "parafine/data/h5_dataset.hpp"
#include "parafine/data/sample_source.hpp"
#include "test_util.hpp"

namespace parafine {
namespace {

using test_util::error_message;
using test_util::TempDir;

// Creates `name` in `path` (created when `create`) with `dims`, writing `data` when non-null;
// without data the dataset is only declared (HDF5 allocates its storage late).
void h5_dataset(const std::string& path, bool create, const char* name,
                const std::vector<hsize_t>& dims, hid_t type, const void* data) {
  const hid_t f = create ? H5Fcreate(path.c_str(), H5F_ACC_TRUNC, H5P_DEFAULT, H5P_DEFAULT)
                         : H5Fopen(path.c_str(), H5F_ACC_RDWR, H5P_DEFAULT);
  ASSERT_GE(f, 0);
  const hid_t space = H5Screate_simple(static_cast<int>(dims.size()), dims.data(), nullptr);
  const hid_t d = H5Dcreate2(f, name, type, space, H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT);
  ASSERT_GE(d, 0);
  if (data) {
    ASSERT_GE(H5Dwrite(d, type, H5S_ALL, H5S_ALL, H5P_DEFAULT, data), 0);
  }
  H5Dclose(d);
  H5Sclose(space);
  H5Fclose(f);
}

std::string open_error(const std::string& path) {
  return error_message<std::runtime_error>([&] { H5ImageDataset d(path); });
}

std::string source_error(const std::string& path) {
  return error_message<std::runtime_error>([&] { H5Source s(path); });
}

TEST(H5DatasetInputs, ZeroHeightOrWidthIsRefusedNamingFileAndShape) {
  TempDir tmp;
  for (const std::vector<hsize_t>& dims :
       {std::vector<hsize_t>{2, 0, 4, 3}, std::vector<hsize_t>{2, 4, 0, 3}}) {
    const std::string path = tmp.file("empty.h5");
    h5_dataset(path, true, "/images", dims, H5T_NATIVE_UCHAR, nullptr);
    const std::string msg = open_error(path);
    EXPECT_NE(msg.find(path), std::string::npos) << msg;
    EXPECT_NE(msg.find("height or width 0"), std::string::npos) << msg;
    const std::string shape = "[2," + std::to_string(dims[1]) + "," + std::to_string(dims[2]);
    EXPECT_NE(msg.find(shape + ",3]"), std::string::npos) << msg;
    EXPECT_EQ(source_error(path), msg);
  }
}

TEST(H5DatasetInputs, DimensionsAboveIntMaxAreRefusedNotWrapped) {
  TempDir tmp;
  const hsize_t big = static_cast<hsize_t>(INT_MAX) + 2;
  for (const std::vector<hsize_t>& dims :
       {std::vector<hsize_t>{big, 1, 1, 3}, std::vector<hsize_t>{1, big, 1, 3},
        std::vector<hsize_t>{1, 1, big, 3}, std::vector<hsize_t>{1, 40000, 40000, 3}}) {
    const std::string path = tmp.file("big.h5");
    h5_dataset(path, true, "/images", dims, H5T_NATIVE_UCHAR, nullptr);
    const std::string msg = open_error(path);
    EXPECT_NE(msg.find(path), std::string::npos) << msg;
    const std::string shape = "[" + std::to_string(dims[0]) + "," + std::to_string(dims[1]) + "," +
                              std::to_string(dims[2]) + ",3]";
    EXPECT_NE(msg.find(shape), std::string::npos) << msg;
  }
}

TEST(H5DatasetInputs, LabelCountIsComparedWithoutWrapping) {
  TempDir tmp;
  const std::string path = tmp.file("labels.h5");
  test_util::write_h5_images(path, 2, 2, 2, test_util::random_pixels(24, 1), {});
  // 2^32 + 2 labels (declared, never written): as an int that count would wrap to 2.
  const hsize_t count = (hsize_t{1} << 32) + 2;
  h5_dataset(path, false, "/labels", {count}, H5T_NATIVE_LLONG, nullptr);
  const std::string msg = open_error(path);
  EXPECT_NE(msg.find("'labels' has " + std::to_string(count) + " entries for 2 images"),
            std::string::npos)
      << msg;
}

TEST(H5DatasetInputs, OneHotWithoutColumnsIsRefused) {
  TempDir tmp;
  const std::string path = tmp.file("onehot0.h5");
  test_util::write_h5_images(path, 2, 2, 2, test_util::random_pixels(24, 1), {});
  h5_dataset(path, false, "/labels", {2, 0}, H5T_NATIVE_DOUBLE, nullptr);
  const std::string msg = open_error(path);
  EXPECT_NE(msg.find(path), std::string::npos) << msg;
  EXPECT_NE(msg.find("[2,0]"), std::string::npos) << msg;
}

TEST(H5DatasetInputs, OneHotWiderThanTheClassBoundIsRefused) {
  TempDir tmp;
  const std::string path = tmp.file("wide.h5");
  test_util::write_h5_images(path, 1, 2, 2, test_util::random_pixels(12, 1), {});
  std::vector<double> row(200000, 0.0);
  row[7] = 1.0;
  h5_dataset(path, false, "/labels", {1, 200000}, H5T_NATIVE_DOUBLE, row.data());
  const std::string msg = open_error(path);
  EXPECT_NE(msg.find("200000 classes"), std::string::npos) << msg;
  EXPECT_NE(msg.find("at most 100000"), std::string::npos) << msg;
}

TEST(H5DatasetInputs, LabelAtIntMaxIsRefusedWithACorrectMessage) {
  TempDir tmp;
  const std::string path = tmp.file("intmax.h5");
  for (long long top : {static_cast<long long>(INT_MAX), 3000000000LL, 1000000LL}) {
    test_util::write_h5_images(path, 2, 2, 2, test_util::random_pixels(24, 1), {0, top});
    const std::string msg = open_error(path);
    EXPECT_NE(msg.find(path), std::string::npos) << msg;
    EXPECT_NE(msg.find("label " + std::to_string(top) + " of sample 1"), std::string::npos) << msg;
    EXPECT_NE(msg.find(std::to_string(top + 1) + " classes"), std::string::npos) << msg;
    EXPECT_NE(msg.find("at most 100000"), std::string::npos) << msg;
    EXPECT_EQ(msg.find(",-"), std::string::npos) << msg;  // no wrapped negative count
  }
}

TEST(H5DatasetInputs, LabelAboveIntMaxWithClassNamesIsOutsideTheNamedClasses) {
  TempDir tmp;
  const std::string path = tmp.file("named.h5");
  test_util::write_h5_images(path, 2, 2, 2, test_util::random_pixels(24, 1), {0, 4294967296LL},
                             {"a", "b"});
  const std::string msg = open_error(path);
  EXPECT_NE(msg.find("label 4294967296 of sample 1 is outside [0,2)"), std::string::npos) << msg;
}

TEST(H5DatasetInputs, ClassBoundItselfIsAcceptedAndOneClassIsReadAsIs) {
  TempDir tmp;
  const std::string path = tmp.file("ok.h5");
  test_util::write_h5_images(path, 2, 2, 2, test_util::random_pixels(24, 1), {0, 99999});
  EXPECT_EQ(H5ImageDataset(path).classes(), 100000);
  // One class: legitimate to predict or evaluate (the trainer is where one class is refused).
  test_util::write_h5_images(path, 2, 2, 2, test_util::random_pixels(24, 1), {0, 0});
  EXPECT_EQ(H5ImageDataset(path).classes(), 1);
}

// Writes `images` uint8 [4,8,10,3] in `layout`: compact, or chunked one image per chunk with
// gzip (as `parafine convert` writes).
void write_images_with_layout(const std::string& path, H5D_layout_t layout) {
  const std::vector<hsize_t> dims = {4, 8, 10, 3};
  std::vector<unsigned char> pixels(4 * 8 * 10 * 3);
  for (std::size_t i = 0; i < pixels.size(); ++i) pixels[i] = static_cast<unsigned char>(i);
  const hid_t f = H5Fcreate(path.c_str(), H5F_ACC_TRUNC, H5P_DEFAULT, H5P_DEFAULT);
  const hid_t space = H5Screate_simple(4, dims.data(), nullptr);
  const hid_t plist = H5Pcreate(H5P_DATASET_CREATE);
  const hsize_t chunk[4] = {1, 8, 10, 3};
  if (layout == H5D_CHUNKED) {
    H5Pset_chunk(plist, 4, chunk);
    H5Pset_deflate(plist, 4);
  } else {
    H5Pset_layout(plist, layout);
  }
  const hid_t d =
      H5Dcreate2(f, "/images", H5T_NATIVE_UCHAR, space, H5P_DEFAULT, plist, H5P_DEFAULT);
  ASSERT_GE(d, 0);
  ASSERT_GE(H5Dwrite(d, H5T_NATIVE_UCHAR, H5S_ALL, H5S_ALL, H5P_DEFAULT, pixels.data()), 0);
  H5Dclose(d);
  H5Pclose(plist);
  H5Sclose(space);
  H5Fclose(f);
}

// Replaces the one occurrence of `from` in the file with `to` (as long): a damaged header.
void patch_file(const std::string& path, const std::vector<unsigned char>& from,
                const std::vector<unsigned char>& to) {
  std::ifstream in(path, std::ios::binary);
  std::vector<unsigned char> bytes((std::istreambuf_iterator<char>(in)), {});
  in.close();
  const auto at = std::search(bytes.begin(), bytes.end(), from.begin(), from.end());
  ASSERT_NE(at, bytes.end()) << "pattern not in " << path;
  ASSERT_EQ(std::search(at + 1, bytes.end(), from.begin(), from.end()), bytes.end());
  std::copy(to.begin(), to.end(), at);
  std::ofstream(path, std::ios::binary)
      .write(reinterpret_cast<const char*>(bytes.data()),
             static_cast<std::streamsize>(bytes.size()));
}

std::vector<float> read_all_samples(const std::string& path) {
  H5Source source(path);
  std::vector<float> all, one(16 * 16 * 3);
  for (int i = 0; i < source.size(); ++i) {
    source.load(i, 16, one.data());
    all.insert(all.end(), one.begin(), one.end());
  }
  return all;
}

TEST(H5DatasetInputs, CompactAndChunkedLayoutsReadTheSamePixels) {
  TempDir tmp;
  const std::string compact = tmp.file("compact.h5"), chunked = tmp.file("chunked.h5");
  write_images_with_layout(compact, H5D_COMPACT);
  write_images_with_layout(chunked, H5D_CHUNKED);
  EXPECT_EQ(read_all_samples(compact), read_all_samples(chunked));
}

// Fuzz finding h5_dataset seed 7 mutant 2696: HDF5 1.10 reads a compact dataset through its
// stored size without comparing it with the shape; a size of 0 crashed in H5Dread, a size of 1
// returned memory past the message as pixels.
TEST(H5DatasetInputs, CompactImagesStoringFewerBytesThanTheirShapeAreRefused) {
  TempDir tmp;
  const std::string path = tmp.file("compact.h5");
  for (unsigned char stored : {0, 1}) {
    write_images_with_layout(path, H5D_COMPACT);
    // Layout message v3, compact: version 3, class 0, size 960 (0x03c0, little-endian).
    patch_file(path, {3, 0, 0xc0, 0x03}, {3, 0, stored, 0});
    const std::string msg = source_error(path);
    EXPECT_NE(msg.find(path), std::string::npos) << msg;
    EXPECT_NE(msg.find("stores " + std::to_string(stored) + " bytes for [4,8,10,3] (960 bytes)"),
              std::string::npos)
        << msg;
  }
}

// Fuzz finding h5_dataset seed 7 mutant 4703: chunks [1,8,10,65539] of a [4,8,10,3] dataset made
// HDF5 copy a whole declared chunk out of a 240-byte inflated one (SIGSEGV in H5Dread).
TEST(H5DatasetInputs, ChunksLargerThanTheDatasetAreRefused) {
  TempDir tmp;
  const std::string path = tmp.file("chunked.h5");
  write_images_with_layout(path, H5D_CHUNKED);
  // Layout message v3 chunk dimensions (uint32 little-endian), the last being the element size.
  const std::vector<unsigned char> chunk_dims = {1, 0, 0, 0, 8, 0, 0, 0, 10, 0,
                                                 0, 0, 3, 0, 0, 0, 1, 0, 0,  0};
  std::vector<unsigned char> damaged = chunk_dims;
  damaged[14] = 1;  // 3 -> 65539
  patch_file(path, chunk_dims, damaged);
  const std::string msg = source_error(path);
  EXPECT_NE(msg.find(path), std::string::npos) << msg;
  EXPECT_NE(msg.find("chunks [1,8,10,65539] larger than its maximum shape [4,8,10,3]"),
            std::string::npos)
      << msg;
}

TEST(H5DatasetInputs, ResizeOfAnEmptyImageThrows) {
  std::vector<float> out(12);
  const unsigned char px[3] = {1, 2, 3};
  EXPECT_THROW(resize_bilinear(px, 0, 1, out.data(), 2, 2), std::invalid_argument);
  EXPECT_THROW(resize_bilinear(px, 1, 0, out.data(), 2, 2), std::invalid_argument);
}

}  // namespace
}  // namespace parafine

namespace parafine {
namespace {

// The place of the pixels is checked before any sample is read (issue 11: damaged HDF5 files
// must give a message): the layout message of a contiguous `images` dataset holds its address
// and size; the address is moved far beyond the end of the file.
TEST(H5DatasetInputs, PixelsBeyondTheEndOfTheFileAreRefusedAtOpen) {
  TempDir dir;
  const std::string path = dir.file("moved.h5");
  test_util::write_h5_images(path, 4, 8, 8, test_util::random_pixels(4 * 8 * 8 * 3, 1),
                             {0, 1, 0, 1});
  haddr_t offset = 0;
  hsize_t size = 0;
  {
    const hid_t f = H5Fopen(path.c_str(), H5F_ACC_RDONLY, H5P_DEFAULT);
    const hid_t d = H5Dopen2(f, "/images", H5P_DEFAULT);
    offset = H5Dget_offset(d);
    size = H5Dget_storage_size(d);
    H5Dclose(d);
    H5Fclose(f);
  }
  ASSERT_NE(offset, HADDR_UNDEF) << "write_h5_images should write a contiguous dataset";
  std::cout << "images: " << size << " bytes at offset " << offset << "\n";
  std::string bytes = test_util::bytes_of(path);
  const std::uint64_t layout[2] = {offset, size};
  // (rfind: the dataspace before it can hold the same bytes, misaligned: dims 8 then 3)
  const std::size_t at = bytes.rfind(std::string(reinterpret_cast<const char*>(layout), 16));
  ASSERT_NE(at, std::string::npos) << "layout message (address, size) not found";
  bytes[at + 5] = '\x10';  // address + 2^44
  test_util::write_bytes(path, bytes);
  const std::string msg = source_error(path);
  std::cout << msg << "\n";
  EXPECT_NE(msg.find(path + ": 'images' is damaged or truncated"), std::string::npos) << msg;
  EXPECT_NE(msg.find("beyond the end of the file"), std::string::npos) << msg;
}

}  // namespace
}  // namespace parafine
