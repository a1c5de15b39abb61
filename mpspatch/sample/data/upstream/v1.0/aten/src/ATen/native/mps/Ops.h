// Ops.h: element-wise vector ops that run through the MPS executor.

#pragma once

#include <vector>

namespace at::native::mps {

// Returns a + b, element by element.
std::vector<float> vector_add(const std::vector<float>& a, const std::vector<float>& b);

// Returns a * factor, element by element. The factor must be finite.
std::vector<float> vector_scale(const std::vector<float>& a, float factor);

}  // namespace at::native::mps
