// What the fuzz target feeds its mutants to: one entry per parser of untrusted input (the
// JPEG/PNG decoder, the HDF5 image dataset reader, both Keras weight layouts, the checkpoint
// reader), each calling the public API the commands use. An entry returns when the library
// accepts the input and lets the library's exception out when it rejects it; the driver runs
// every entry in a forked child, so a crash or a hang is caught there, not here.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "mutator.hpp"
#include "parafine/model/model.hpp"

namespace parafine {
namespace fuzz {

struct ParserSpec {
  std::string name;           // --parser value
  std::string corpus_subdir;  // under --corpus, "" when the seeds are generated (checkpoint)
  bool hdf5 = false;          // mutation profile: HDF5 metadata or image headers
};

// image, h5_dataset, keras_tf, keras1, checkpoint, keras_model (a .keras archive),
// keras_config (a config.json's text).
const std::vector<ParserSpec>& parser_specs();
const ParserSpec* find_parser(const std::string& name);

// The tiny model the Keras and checkpoint entries load into: ResNet50 width 2, image size 32,
// head 4 units, 2 classes (tests/fuzz/make_corpus.py writes its weight files).
Model build_fuzz_model();

// Writes the checkpoint seed of the `checkpoint` parser into `dir` with save_checkpoint (a
// committed file would go stale when the format changes) and returns its path.
std::string write_checkpoint_seed(const std::string& dir, const Model& model);

// The seed of a parser without a committed corpus (checkpoint, keras_model), written into `dir`
// from `model` by the library's own writer; returns its path.
std::string write_generated_seed(const ParserSpec& spec, const std::string& dir,
                                 const Model& model);

// Where a mutant of `spec` is written inside the work directory `work_dir` (the checkpoint
// reader finds files by name in a directory, so its mutant gets a checkpoint's name).
std::string mutant_path(const ParserSpec& spec, const std::string& work_dir,
                        const std::string& extension);

// Runs the parser on the file at `path`; `model` is a fresh build_fuzz_model() (the child's
// copy: loading into it changes nothing in the driver). Throws what the library throws.
void run_parser(const ParserSpec& spec, const std::string& path, Model& model);

}  // namespace fuzz
}  // namespace parafine
