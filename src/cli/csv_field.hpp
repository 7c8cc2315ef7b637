// One CSV field as RFC 4180 has it, for the CSV files the commands write.
#pragma once

#include <string>

namespace parafine {

// Quoted (with doubled quotes) when it holds a comma, a quote or a line break, so a file name
// like "a,b.jpg" or a class name like "tabby, striped" cannot shift the columns.
inline std::string csv_field(const std::string& text) {
  if (text.find_first_of(",\"\r\n") == std::string::npos) return text;
  std::string quoted = "\"";
  for (char ch : text) quoted += ch == '"' ? std::string("\"\"") : std::string(1, ch);
  return quoted + "\"";
}

}  // namespace parafine
