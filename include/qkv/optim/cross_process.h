// The interface ExactGradSum reduces across processes through; the MPI process group
// implements it (parallel::Distributed), tests with threads.
#pragma once

#include <cstdint>
#include <memory>
#include <span>

namespace qkv::optim {

// How the processes that share a step combine their parts, element-wise and in place: the
// maximum of integers and the sum of integers. Both are exact, so any reduction order gives
// the same result. Without one, a process's own micro-batches are the whole step.
class CrossProcess {
 public:
  virtual ~CrossProcess() = default;
  virtual void max(std::span<int32_t> values) const = 0;
  virtual void sum(std::span<int64_t> values) const = 0;

  // The same reductions, started without waiting for them: poll done() until it is true, and
  // only then read the values. Every process starts them in the same order, from one thread at a
  // time. By default they complete before they return. (The MPI group's done() may instead end
  // the whole job: a stop was requested and the others did not come.)
  class Started {
   public:
    virtual ~Started() = default;
    virtual bool done() = 0;
  };
  virtual std::unique_ptr<Started> start_max(std::span<int32_t> values) const;
  virtual std::unique_ptr<Started> start_sum(std::span<int64_t> values) const;
};

}  // namespace qkv::optim
