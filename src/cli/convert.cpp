// `parafine convert --input DIR --output DATA.h5 [--image-size 224]`: packs an image folder
// into an HDF5 dataset (images resized once, labels, class names).
#include <iostream>

#include "cli/cli.hpp"
#include "cli/options.hpp"
#include "parafine/data/folder_source.hpp"
#include "parafine/data/h5_dataset_writer.hpp"
#include "parafine/dist/comm.hpp"
#include "parafine/model/backbone.hpp"

namespace po = boost::program_options;

namespace parafine {

namespace {

void report_source(const std::string& input, const FolderSource& source) {
  std::cout << input << ": " << source.size() << " images in " << source.classes() << " classes";
  for (int c = 0; c < source.classes(); ++c)
    std::cout << (c ? ", " : " (") << source.class_names()[static_cast<size_t>(c)];
  std::cout << ")" << std::endl;
  if (Comm::size() > 1)
    std::cout << "decoding shared by " << Comm::size() << " ranks; rank 0 writes" << std::endl;
}

}  // namespace

int run_convert(int argc, char** argv) {
  std::string input, output, on_bad_image;
  int image_size = 224, threads = 0;
  CommandOptions opts("convert", "convert --input DIR --output DATA.h5 [options]");
  auto add = opts.add();
  add("input", po::value(&input)->required(), "image folder: one sub-folder per class");
  add("output", po::value(&output)->required(), "HDF5 dataset to write");
  add("image-size", po::value(&image_size)->default_value(224),
      "resize every image to this square size");
  add("on-bad-image", po::value(&on_bad_image)->default_value("skip"), "skip | fail");
  add_threads_option(opts, threads, "decoding threads");
  opts.describe_range("image-size", kImageSizeRange);
  if (!opts.parse(argc, argv)) return 0;
  check_image_size_option(image_size);
  if (Comm::is_root()) check_output_path("--output", output);  // rank 0 writes it
  // Decoding is CPU-bound, and under mpirun every rank decodes its share at the same time.
  threads = threads_per_rank(threads);
  std::ostream* log = Comm::is_root() ? &std::cout : nullptr;  // one voice under mpirun
  const FolderSource source(input, parse_bad_image_policy(on_bad_image), threads, log);
  if (!log) {
    write_image_dataset(source, output, image_size, threads, nullptr);
    return 0;
  }
  report_source(input, source);
  write_image_dataset(source, output, image_size, threads, &std::cout);
  std::cout << "wrote " << output << ": " << source.size() << " images " << image_size << "x"
            << image_size << ", " << source.skipped().size() << " bad file(s) skipped, "
            << source.ignored().size() << " non-image file(s) ignored" << std::endl;
  return 0;
}

}  // namespace parafine
