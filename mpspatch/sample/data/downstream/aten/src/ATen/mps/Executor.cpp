#include <ATen/mps/Executor.h>

#include <stdexcept>

namespace at::mps {

Executor::Executor() : Executor(getCurrentMPSStream()) {}

Executor::Executor(MPSStream* stream) : stream_(stream) {
  if (stream_ == nullptr) {
    throw std::invalid_argument("Executor: stream must not be null");
  }
}

void Executor::run(const std::function<void()>& op) { stream_->commit(op); }

}  // namespace at::mps
