// ThreadSanitizer harness for the MPS stream pool: THREADS threads run ITERATIONS small inference steps
// on the MPS device at the same time, and every result is checked against the same step on the CPU.
//
// Built by the `tsan` stage of mpspatch.toml against the libtorch of the patched tree:
//   clang++ -std=c++20 -fsanitize=thread -g -O1 tsan_mps_parallel.cpp -I... -L... -ltorch -ltorch_cpu -lc10
// and run as `tsan_mps_parallel 8 50` and `tsan_mps_parallel 31 100`. ThreadSanitizer reports races in
// this file and at every synchronisation call it intercepts; races wholly inside an uninstrumented libtorch
// need a libtorch compiled with -fsanitize=thread as well.
//
// The last line is for mpspatch's parser: `mpspatch-counts: threads=N iterations=M mismatches=K failures=F`.

#include <torch/mps.h>
#include <torch/torch.h>

#include <atomic>
#include <cstdio>
#include <cstdlib>
#include <exception>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

namespace {

int parse_positive(const char* text, const char* what) {
  char* end = nullptr;
  const long value = std::strtol(text, &end, 10);
  if (end == text || *end != '\0' || value <= 0 || value > 4096) {
    std::fprintf(stderr, "%s must be a positive integer, got '%s'\n", what, text);
    std::exit(2);
  }
  return static_cast<int>(value);
}

// One layer of a small network: relu(input @ weight + bias). Small enough that many threads keep the
// command queues busy with short kernels, which is where a shared stream would interleave their work.
torch::Tensor step(const torch::Tensor& input, const torch::Tensor& weight, const torch::Tensor& bias) {
  return torch::relu(torch::addmm(bias, input, weight));
}

}  // namespace

int main(int argc, char** argv) {
  if (argc != 3) {
    std::fprintf(stderr, "usage: %s THREADS ITERATIONS\n", argv[0]);
    return 2;
  }
  const int threads = parse_positive(argv[1], "THREADS");
  const int iterations = parse_positive(argv[2], "ITERATIONS");
  if (!torch::mps::is_available()) {
    std::fprintf(stderr, "MPS is not available on this machine\n");
    return 3;
  }

  torch::manual_seed(0);
  const torch::Tensor weight_cpu = torch::randn({64, 64});
  const torch::Tensor bias_cpu = torch::randn({64});
  const torch::Tensor weight = weight_cpu.to(torch::kMPS);
  const torch::Tensor bias = bias_cpu.to(torch::kMPS);

  std::atomic<int> mismatches{0};
  std::atomic<int> failures{0};
  std::mutex report_mutex;
  std::vector<std::thread> workers;
  workers.reserve(threads);
  for (int t = 0; t < threads; ++t) {
    workers.emplace_back([&, t] {
      try {
        torch::NoGradGuard no_grad;
        for (int i = 0; i < iterations; ++i) {
          // Each thread and iteration has its own input, so a result delivered to the wrong thread shows up.
          const double scale = 0.001 * (t + 1) + 0.0001 * (i + 1);
          const torch::Tensor input_cpu = torch::arange(8 * 64, torch::kFloat).reshape({8, 64}) * scale;
          const torch::Tensor want = step(input_cpu, weight_cpu, bias_cpu);
          const torch::Tensor got = step(input_cpu.to(torch::kMPS), weight, bias).to(torch::kCPU);
          if (!torch::allclose(got, want, /*rtol=*/1e-3, /*atol=*/1e-3)) {
            mismatches.fetch_add(1);
          }
        }
      } catch (const std::exception& error) {
        failures.fetch_add(1);
        const std::lock_guard<std::mutex> hold(report_mutex);
        std::fprintf(stderr, "thread %d failed: %s\n", t, error.what());
      }
    });
  }
  for (auto& worker : workers) {
    worker.join();
  }
  torch::mps::synchronize();

  std::printf("mpspatch-counts: threads=%d iterations=%d mismatches=%d failures=%d\n", threads, iterations,
              mismatches.load(), failures.load());
  return (mismatches.load() == 0 && failures.load() == 0) ? 0 : 1;
}
