// mpsrun: a command-line driver for the miniaten ops.
//
//   mpsrun add N      adds [0, 1, ..., N-1] and [0, 2, ..., 2N-2], prints the sum of the result
//   mpsrun scale N F  scales [0, 1, ..., N-1] by F, prints the sum of the result
//   mpsrun info       prints the default stream and its command count
//
// Bad arguments print the usage and exit with status 2.

#include <ATen/mps/Stream.h>
#include <ATen/native/mps/Ops.h>

#include <cmath>
#include <cstddef>
#include <cstdlib>
#include <exception>
#include <iostream>
#include <optional>
#include <stdexcept>
#include <string>
#include <vector>

namespace {

constexpr int kUsageError = 2;
constexpr std::size_t kMaxCount = 1000000;

int usage() {
  std::cerr << "usage: mpsrun add N | scale N F | info\n";
  return kUsageError;
}

// Accepts decimal integers in [1, max]; anything else is a usage error.
std::optional<std::size_t> parseCount(const std::string& text, std::size_t max) {
  if (text.empty() || text.size() > 9 ||
      text.find_first_not_of("0123456789") != std::string::npos) {
    return std::nullopt;
  }
  const std::size_t value = std::stoul(text);
  if (value == 0 || value > max) {
    return std::nullopt;
  }
  return value;
}

// Accepts a whole decimal float such as "2" or "-0.5"; "inf" and "nan" reach the op, which rejects
// them.
std::optional<float> parseFactor(const std::string& text) {
  char* end = nullptr;
  const float value = std::strtof(text.c_str(), &end);
  if (text.empty() || end != text.c_str() + text.size()) {
    return std::nullopt;
  }
  return value;
}

std::vector<float> ramp(std::size_t n, float step) {
  std::vector<float> values(n);
  for (std::size_t i = 0; i < n; ++i) {
    values[i] = static_cast<float>(i) * step;
  }
  return values;
}

double total(const std::vector<float>& values) {
  double sum = 0.0;
  for (float v : values) {
    sum += v;
  }
  return sum;
}

void printSum(const std::vector<float>& values) {
  std::cout << "sum=" << std::llround(total(values)) << "\n";
}

int run(const std::vector<std::string>& args) {
  namespace ops = at::native::mps;
  if (args.size() == 2 && args[0] == "add") {
    const auto n = parseCount(args[1], kMaxCount);
    if (!n) {
      return usage();
    }
    printSum(ops::vector_add(ramp(*n, 1.0f), ramp(*n, 2.0f)));
    return 0;
  }
  if (args.size() == 3 && args[0] == "scale") {
    const auto n = parseCount(args[1], kMaxCount);
    const auto factor = parseFactor(args[2]);
    if (!n || !factor) {
      return usage();
    }
    printSum(ops::vector_scale(ramp(*n, 1.0f), *factor));
    return 0;
  }
  if (args.size() == 1 && args[0] == "info") {
    const at::mps::MPSStream* stream = at::mps::getDefaultMPSStream();
    std::cout << "default_stream=" << stream->id() << "\n";
    std::cout << "commands=" << stream->commands() << "\n";
    return 0;
  }
  return usage();
}

}  // namespace

int main(int argc, char** argv) {
  try {
    return run(std::vector<std::string>(argv + 1, argv + argc));
  } catch (const std::exception& error) {
    // The ops report bad input by throwing.
    std::cerr << "mpsrun: " << error.what() << "\n";
    return kUsageError;
  }
}
