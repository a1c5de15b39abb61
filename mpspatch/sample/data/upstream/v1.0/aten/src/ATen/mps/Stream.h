// Stream.h: the command stream that MPS ops are submitted to.
//
// A stream runs the work handed to it in submission order and counts the
// command buffers it has committed. There is one stream per process.
//
// Work runs eagerly on the calling thread, which keeps the library portable.

#pragma once

#include <cstdint>
#include <functional>

namespace at::mps {

using StreamId = std::uint32_t;

class MPSStream {
 public:
  explicit MPSStream(StreamId id);
  MPSStream(const MPSStream&) = delete;
  MPSStream& operator=(const MPSStream&) = delete;

  StreamId id() const { return id_; }

  // Runs `work` on this stream as one command buffer.
  void commit(const std::function<void()>& work);

  // Waits until every committed command buffer has finished and returns how
  // many have been committed so far.
  std::uint64_t synchronize();

  // Number of command buffers committed so far.
  std::uint64_t commands() const;

 private:
  StreamId id_;
  std::uint64_t commands_ = 0;
};

// The process-wide stream, created on first use and never destroyed.
MPSStream* getDefaultMPSStream();

}  // namespace at::mps
