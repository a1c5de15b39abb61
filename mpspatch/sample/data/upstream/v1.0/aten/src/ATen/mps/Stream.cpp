#include <ATen/mps/Stream.h>

namespace at::mps {

MPSStream::MPSStream(StreamId id) : id_(id) {}

void MPSStream::commit(const std::function<void()>& work) {
  work();
  ++commands_;
}

std::uint64_t MPSStream::synchronize() {
  // Work already ran inside commit(), so there is nothing left to wait for.
  return commands();
}

std::uint64_t MPSStream::commands() const { return commands_; }

MPSStream* getDefaultMPSStream() {
  // Leaked on purpose: ops may still run while static destructors do.
  static MPSStream* stream = new MPSStream(0);
  return stream;
}

}  // namespace at::mps
