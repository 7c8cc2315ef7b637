// Packing a sample source into an HDF5 dataset (DESIGN.md §4): `images` uint8 [N,S,S,3] RGB
// chunked one image per chunk (so ranks read their own samples cheaply), `labels` int64 [N],
// attribute class_names. Written under a temporary name and renamed when complete.
#pragma once

#include <iosfwd>
#include <string>

#include "parafine/data/sample_source.hpp"

namespace parafine {

// Resized pixels are rounded to the nearest integer. Decoding runs on `threads` threads;
// progress goes to `log` (may be null). Throws, leaving no partial output file, on error.
void write_image_dataset(const SampleSource& source, const std::string& path, int image_size,
                         int threads, std::ostream* log);

}  // namespace parafine
