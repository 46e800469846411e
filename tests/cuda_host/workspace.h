// Scratch memory for the launchers run by the host emulation (emulate.h): each allocation is a
// fresh block filled with 0x7f bytes (about 3e38 as float32, 1e306 as float64, neither zero nor
// NaN), as uninitialised device memory would hold anything: a launcher that reads scratch before
// writing it, or relies on it being cleared, gets visibly wrong results.
#pragma once

#include <cstdlib>
#include <cstring>
#include <memory>
#include <vector>

#include "cuda/launch.h"

class HostWorkspace : public fastnn::cuda::Workspace {
 public:
  void* allocate(size_t bytes) override {
    void* p = std::aligned_alloc(256, (bytes + 255) / 256 * 256);
    std::memset(p, 0x7f, bytes);
    blocks_.emplace_back(p, &std::free);
    return p;
  }
  size_t allocations() const { return blocks_.size(); }

 private:
  std::vector<std::unique_ptr<void, decltype(&std::free)>> blocks_;
};
