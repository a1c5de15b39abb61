#include <ATen/mps/Stream.h>

#include <cstdlib>
#include <stdexcept>
#include <string>

namespace at::mps {

MPSStream::MPSStream(StreamId id) : id_(id) {}

void MPSStream::commit(const std::function<void()>& work) {
  std::lock_guard<std::mutex> guard(mutex_);
  work();
  ++commands_;
}

std::uint64_t MPSStream::synchronize() {
  // Work already ran inside commit(), so there is nothing left to wait for.
  return commands();
}

std::uint64_t MPSStream::commands() const {
  std::lock_guard<std::mutex> guard(mutex_);
  return commands_;
}

MPSStreamPool::MPSStreamPool(std::size_t size) {
  if (size == 0 || size > kMaxSize) {
    throw std::invalid_argument("MPSStreamPool: size must be between 1 and " +
                                std::to_string(kMaxSize));
  }
  streams_.reserve(size);
  for (std::size_t i = 0; i < size; ++i) {
    streams_.push_back(std::make_unique<MPSStream>(static_cast<StreamId>(i)));
  }
}

namespace {

std::size_t poolSizeFromEnv() {
  const char* text = std::getenv("MPS_STREAM_POOL_SIZE");
  if (text == nullptr || *text == '\0') {
    return MPSStreamPool::kDefaultSize;
  }
  char* end = nullptr;
  const unsigned long value = std::strtoul(text, &end, 10);
  if (*end != '\0' || value == 0 || value > MPSStreamPool::kMaxSize) {
    throw std::invalid_argument("MPS_STREAM_POOL_SIZE must be an integer from 1 to " +
                                std::to_string(MPSStreamPool::kMaxSize));
  }
  return value;
}

}  // namespace

MPSStreamPool& MPSStreamPool::instance() {
  // Leaked on purpose: ops may still run while static destructors do.
  static MPSStreamPool* pool = new MPSStreamPool(poolSizeFromEnv());
  return *pool;
}

MPSStream* MPSStreamPool::stream(std::size_t index) const {
  if (index >= streams_.size()) {
    throw std::out_of_range("MPSStreamPool: no stream " + std::to_string(index));
  }
  return streams_[index].get();
}

std::size_t MPSStreamPool::nextIndex() {
  return next_.fetch_add(1, std::memory_order_relaxed) % streams_.size();
}

std::uint64_t MPSStreamPool::totalCommands() const {
  std::uint64_t total = 0;
  for (const auto& stream : streams_) {
    total += stream->commands();
  }
  return total;
}

MPSStream* getDefaultMPSStream() { return MPSStreamPool::instance().stream(0); }

MPSStream* getCurrentMPSStream() {
  MPSStreamPool& pool = MPSStreamPool::instance();
  // Bound once per thread, so every op a thread runs lands on the same stream.
  thread_local const std::size_t index = pool.nextIndex();
  return pool.stream(index);
}

}  // namespace at::mps
