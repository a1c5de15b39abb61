#include <ATen/native/mps/Ops.h>

#include <ATen/mps/Executor.h>

#include <cmath>
#include <stdexcept>

namespace at::native::mps {

std::vector<float> vector_add(const std::vector<float>& a, const std::vector<float>& b) {
  std::vector<float> out(a.size());
  at::mps::Executor executor;
  executor.run([&] {
    for (std::size_t i = 0; i < a.size(); ++i) {
      out[i] = a[i] + b[i];
    }
  });
  return out;
}

std::vector<float> vector_scale(const std::vector<float>& a, float factor) {
  if (!std::isfinite(factor)) {
    throw std::invalid_argument("vector_scale: factor must be finite");
  }
  std::vector<float> out(a.size());
  at::mps::Executor executor;
  executor.run([&] {
    for (std::size_t i = 0; i < a.size(); ++i) {
      out[i] = a[i] * factor;
    }
  });
  return out;
}

}  // namespace at::native::mps
