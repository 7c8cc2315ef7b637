// --class-weight parsing and resolution against the training classes (see class_weights.hpp).
#include "parafine/train/class_weights.hpp"

#include <cerrno>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <set>
#include <sstream>
#include <stdexcept>

#include "parafine/data/sample_source.hpp"

namespace parafine {

namespace {

[[noreturn]] void bad(const std::string& why) {
  throw std::invalid_argument("--class-weight: " + why +
                              " (expected balanced or CLASS:WEIGHT,CLASS:WEIGHT,... with CLASS a "
                              "class name or index and WEIGHT a finite number >= 0)");
}

std::string trim(const std::string& s) {
  const auto b = s.find_first_not_of(" \t");
  if (b == std::string::npos) return "";
  return s.substr(b, s.find_last_not_of(" \t") - b + 1);
}

// A whole number >= 0 written in decimal digits only, else -1.
long index_of(const std::string& s) {
  if (s.empty() || s.size() > 9 || s.find_first_not_of("0123456789") != std::string::npos)
    return -1;
  return std::stol(s);
}

std::string exact(double v) {
  char buf[40];
  std::snprintf(buf, sizeof buf, "%.17g", v);
  return buf;
}

}  // namespace

ClassWeightSpec parse_class_weight(const std::string& text) {
  ClassWeightSpec spec;
  const std::string all = trim(text);
  if (all.empty()) return spec;
  if (all == "balanced") {
    spec.balanced = true;
    return spec;
  }
  std::set<std::string> seen;
  std::istringstream in(all);
  for (std::string item; std::getline(in, item, ',');) {
    item = trim(item);
    const auto colon = item.rfind(':');
    if (item.empty()) bad("an empty entry in '" + text + "'");
    if (colon == std::string::npos) bad("'" + item + "' has no ':'");
    const std::string cls = trim(item.substr(0, colon));
    const std::string weight = trim(item.substr(colon + 1));
    if (cls.empty()) bad("'" + item + "' names no class");
    char* end = nullptr;
    errno = 0;
    const double w = std::strtod(weight.c_str(), &end);
    if (weight.empty() || *end != '\0' || errno == ERANGE)
      bad("the weight '" + weight + "' of class '" + cls + "' is not a number");
    if (!std::isfinite(w) || w < 0)
      bad("the weight of class '" + cls + "' is " + weight + ", not a finite number >= 0");
    if (!seen.insert(cls).second) bad("class '" + cls + "' is given twice");
    spec.entries.emplace_back(cls, w);
  }
  if (!all.empty() && all.back() == ',') bad("an empty entry in '" + text + "'");
  return spec;
}

std::vector<double> balanced_class_weights(const std::vector<long>& counts) {
  long n = 0;
  for (long c : counts) n += c;
  std::vector<double> w(counts.size());
  const double k = static_cast<double>(counts.size());
  for (std::size_t c = 0; c < counts.size(); ++c)
    w[c] = static_cast<double>(n) / (k * static_cast<double>(counts[c]));
  return w;
}

ClassWeights resolve_class_weights(const ClassWeightSpec& spec,
                                   const std::vector<std::string>& class_names,
                                   const std::vector<long>& counts) {
  if (spec.empty()) return {};
  const int classes = static_cast<int>(counts.size());
  const auto name_of = [&](int c) {
    return c < static_cast<int>(class_names.size()) ? "'" + class_names[c] + "'"
                                                    : std::to_string(c);
  };
  std::vector<double> w(counts.size(), 1.0);
  if (spec.balanced) {
    for (int c = 0; c < classes; ++c)
      if (counts[c] == 0)
        throw std::invalid_argument("--class-weight balanced: class " + name_of(c) +
                                    " has no training samples (sklearn's balanced weight "
                                    "n / (k * count) is undefined for it)");
    w = balanced_class_weights(counts);
  } else {
    std::vector<std::string> given_as(counts.size());
    for (const auto& [cls, weight] : spec.entries) {
      int c = -1;
      for (int k = 0; k < static_cast<int>(class_names.size()) && c < 0; ++k)
        if (class_names[k] == cls) c = k;
      if (c < 0) {
        const long index = index_of(cls);
        if (index >= 0 && index < classes) c = static_cast<int>(index);
      }
      if (c < 0) {
        std::string known;
        for (const auto& name : class_names) known += (known.empty() ? "" : ", ") + name;
        throw std::invalid_argument("--class-weight: unknown class '" + cls +
                                    "': the training data has " + std::to_string(classes) +
                                    " classes (indices 0.." + std::to_string(classes - 1) +
                                    (known.empty() ? "" : "; names " + known) + ")");
      }
      if (!given_as[c].empty())
        throw std::invalid_argument("--class-weight: '" + given_as[c] + "' and '" + cls +
                                    "' are the same class " + name_of(c));
      given_as[c] = cls;
      w[c] = weight;
    }
  }
  for (double& x : w) x = static_cast<double>(static_cast<float>(x));  // Keras's floatx array
  return w;
}

std::vector<long> class_counts(const SampleSource& data) {
  std::vector<long> counts(static_cast<std::size_t>(std::max(data.classes(), 0)), 0);
  for (int i = 0; i < data.size(); ++i) {
    const int y = data.label(i);
    if (y >= 0 && y < static_cast<int>(counts.size())) ++counts[y];
  }
  return counts;
}

std::string class_weights_text(const ClassWeights& weights,
                               const std::vector<std::string>& class_names, bool balanced) {
  std::ostringstream o;
  o << "class weights" << (balanced ? " (balanced)" : "") << ":";
  for (std::size_t c = 0; c < weights.size(); ++c)
    o << (c ? ", " : " ") << (c < class_names.size() ? class_names[c] : std::to_string(c)) << " "
      << weights[c];
  return o.str();
}

std::string class_weights_option(const ClassWeights& weights) {
  if (weights.empty()) return "";
  std::string o = "--class-weight ";
  for (std::size_t c = 0; c < weights.size(); ++c)
    o += (c ? "," : "") + std::to_string(c) + ":" + exact(weights[c]);
  return o;
}

}  // namespace parafine
