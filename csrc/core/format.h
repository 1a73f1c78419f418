// Numbers in error messages, formatted without iostreams: on the CUDA build machine (torch
// 2.11+cu130, g++ 13.3) any `std::ostream << number` inside the extension segfaulted.
#pragma once

#include <cstdio>
#include <cstdlib>
#include <string>

namespace tgnn {

inline std::string format_int(long long x) { return std::to_string(x); }

// Shortest of %.15g / %.17g that reads back as x ("4", "0.5", "1700000000123", "nan", "inf").
inline std::string format_double(double x) {
  char buffer[32];
  std::snprintf(buffer, sizeof buffer, "%.15g", x);
  if (std::strtod(buffer, nullptr) != x) std::snprintf(buffer, sizeof buffer, "%.17g", x);
  return buffer;
}

}  // namespace tgnn
