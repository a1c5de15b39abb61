// Stream.h: the command stream that MPS ops are submitted to.
//
// A stream runs the work handed to it in submission order and counts the
// command buffers it has committed. Streams live in a fixed-size pool and
// each thread is bound to one of them (see MPSStreamPool).
//
// Work runs eagerly on the calling thread, which keeps the library portable.

#pragma once

#include <atomic>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <memory>
#include <mutex>
#include <vector>

namespace at::mps {

using StreamId = std::uint32_t;

class MPSStream {
 public:
  explicit MPSStream(StreamId id);
  MPSStream(const MPSStream&) = delete;
  MPSStream& operator=(const MPSStream&) = delete;

  StreamId id() const { return id_; }

  // Runs `work` on this stream as one command buffer. Safe to call from
  // several threads: command buffers on one stream never overlap.
  void commit(const std::function<void()>& work);

  // Waits until every committed command buffer has finished and returns how
  // many have been committed so far.
  std::uint64_t synchronize();

  // Number of command buffers committed so far.
  std::uint64_t commands() const;

 private:
  StreamId id_;
  // Serialises command buffers on this stream and guards commands_.
  mutable std::mutex mutex_;
  std::uint64_t commands_ = 0;
};

// A fixed set of streams shared by every thread in the process. A thread is
// bound to one stream the first time it asks for one, in round-robin order,
// so up to size() threads each get a stream of their own and further threads
// share them.
class MPSStreamPool {
 public:
  static constexpr std::size_t kDefaultSize = 4;
  static constexpr std::size_t kMaxSize = 64;

  explicit MPSStreamPool(std::size_t size);
  MPSStreamPool(const MPSStreamPool&) = delete;
  MPSStreamPool& operator=(const MPSStreamPool&) = delete;

  // The process-wide pool. Its size comes from MPS_STREAM_POOL_SIZE when set
  // (1 to kMaxSize) and is kDefaultSize otherwise; a bad value throws
  // std::invalid_argument.
  static MPSStreamPool& instance();

  std::size_t size() const { return streams_.size(); }
  MPSStream* stream(std::size_t index) const;

  // Index of the stream the next newly bound thread gets.
  std::size_t nextIndex();

  // Command buffers committed on all streams of the pool.
  std::uint64_t totalCommands() const;

 private:
  std::vector<std::unique_ptr<MPSStream>> streams_;
  std::atomic<std::size_t> next_{0};
};

// Stream 0 of the pool; kept for code that predates the pool.
MPSStream* getDefaultMPSStream();

// The calling thread's stream, bound on first use.
MPSStream* getCurrentMPSStream();

}  // namespace at::mps
