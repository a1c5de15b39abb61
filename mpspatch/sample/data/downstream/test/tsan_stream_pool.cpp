// Stress test for the stream pool, meant to run under ThreadSanitizer:
//
//   g++ -std=c++17 -fsanitize=thread -g -O1 -pthread -I aten/src <library
//   sources> \
//       test/tsan_stream_pool.cpp -o tsan_stream_pool
//   ./tsan_stream_pool [THREADS [ITERS]]     (defaults: 8 threads, 50
//   iterations)
//
// Every thread runs ITERS rounds of vector_add and vector_scale through its own
// pool stream and checks each result. With more threads than streams, threads
// share streams, which is exactly where a missing lock shows up as a data race.
// Exit status: 0 when every result and the command count are right, 1 when one
// is wrong, 2 for bad arguments; ThreadSanitizer turns a run that reported
// races into exit status 66.

#include <ATen/mps/Stream.h>
#include <ATen/native/mps/Ops.h>

#include <atomic>
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <iostream>
#include <string>
#include <thread>
#include <vector>

namespace {

constexpr std::size_t kLength = 32;

// Parses a positive decimal integer no larger than `max`, or returns 0.
std::size_t parsePositive(const char* text, std::size_t max) {
  char* end = nullptr;
  const unsigned long value = std::strtoul(text, &end, 10);
  if (*text == '\0' || *end != '\0' || value > max) {
    return 0;
  }
  return value;
}

// One thread's share of the work; returns the number of wrong results it saw.
std::size_t hammer(std::size_t thread, std::size_t iters) {
  namespace ops = at::native::mps;
  std::size_t wrong = 0;
  for (std::size_t i = 0; i < iters; ++i) {
    const float x = static_cast<float>(thread);
    const float y = static_cast<float>(i % 100);
    const std::vector<float> sum =
        ops::vector_add(std::vector<float>(kLength, x), std::vector<float>(kLength, y));
    const std::vector<float> scaled = ops::vector_scale(sum, 2.0f);
    for (std::size_t k = 0; k < kLength; ++k) {
      if (sum[k] != x + y || scaled[k] != 2.0f * (x + y)) {
        ++wrong;
        break;
      }
    }
  }
  return wrong;
}

}  // namespace

int main(int argc, char** argv) {
  if (argc > 3) {
    std::cerr << "usage: tsan_stream_pool [THREADS [ITERS]]\n";
    return 2;
  }
  const std::size_t threads = argc > 1 ? parsePositive(argv[1], 1024) : 8;
  const std::size_t iters = argc > 2 ? parsePositive(argv[2], 1000000) : 50;
  if (threads == 0 || iters == 0) {
    std::cerr << "tsan_stream_pool: THREADS and ITERS must be positive integers\n";
    return 2;
  }

  at::mps::MPSStreamPool& pool = at::mps::MPSStreamPool::instance();
  std::atomic<std::size_t> wrong{0};
  std::vector<std::thread> workers;
  workers.reserve(threads);
  for (std::size_t t = 0; t < threads; ++t) {
    workers.emplace_back([&wrong, t, iters] { wrong += hammer(t, iters); });
  }
  for (auto& worker : workers) {
    worker.join();
  }

  // Two ops per iteration, each one command buffer.
  const std::uint64_t expected = static_cast<std::uint64_t>(threads) * iters * 2;
  const std::uint64_t committed = pool.totalCommands();
  std::cout << "threads=" << threads << " iters=" << iters << " streams=" << pool.size()
            << " commands=" << committed << " expected=" << expected << " wrong=" << wrong.load()
            << "\n";
  if (wrong.load() != 0 || committed != expected) {
    std::cerr << "tsan_stream_pool: FAILED\n";
    return 1;
  }
  std::cout << "tsan_stream_pool: OK\n";
  return 0;
}
