// Executor.h: submits native ops to a stream.

#pragma once

#include <ATen/mps/Stream.h>

#include <functional>

namespace at::mps {

class Executor {
 public:
  // Submits to the default stream.
  Executor();
  explicit Executor(MPSStream* stream);

  MPSStream* stream() const { return stream_; }

  // Runs `op` as one command buffer on this executor's stream.
  void run(const std::function<void()>& op);

 private:
  MPSStream* stream_;
};

}  // namespace at::mps
