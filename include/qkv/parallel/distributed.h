// Distributed: the processes of one `mpirun -np N qkv train` (Open MPI, or any launcher MPI
// supports): which one this is, and the exact reductions a step needs across them. A process
// started alone is rank 0 of 1, and every reduction is then the identity.
//   Every collective waits for the others without blocking inside MPI: once a stop is requested
// (the signal handler's flag), a process that has waited stop_grace() for the others ends the
// whole job, so that a peer that hangs or runs something else cannot keep the job alive past a
// SIGTERM or Ctrl-C.
#pragma once

#include <atomic>
#include <chrono>
#include <cstdint>
#include <memory>
#include <span>
#include <string>
#include <utility>
#include <vector>

#include "qkv/environment.h"
#include "qkv/optim/exact_grad_sum.h"

namespace qkv::parallel {

class Distributed : public optim::CrossProcess {
 public:
  int rank() const { return rank_; }
  int size() const { return size_; }
  // Rank 0 alone writes the run directory (checkpoints, metrics.jsonl, loss.svg) and logs.
  bool writes() const { return rank_ == 0; }
  // Whether a thread other than the main one may reduce (the MPI library allows it), so that
  // a step can overlap its reduction with its backward.
  bool reduces_during_backward() const { return size_ > 1 && reduces_during_backward_; }
  // How long this process waits in a collective for the others after a stop request: rank 0
  // for processes that only compute, as it does; the others also for rank 0 writing a
  // checkpoint. Both end a job well before a batch scheduler's SIGKILL (Slurm's KillWait: 30 s).
  std::chrono::seconds stop_grace() const { return std::chrono::seconds(rank_ == 0 ? 5 : 20); }

  // Element-wise across all processes, in place; the same result on every process.
  void max(std::span<int32_t> values) const override;
  void sum(std::span<int64_t> values) const override;
  std::unique_ptr<Started> start_max(std::span<int32_t> values) const override;
  std::unique_ptr<Started> start_sum(std::span<int64_t> values) const override;
  // Exact only where at most one process holds a non-zero element: each process fills its own
  // slots of a shared vector (its micro-batches' losses), and the sum gathers them.
  void sum(std::span<double> values) const;
  bool any(bool flag) const;  // true on every process when it is true on one
  // Rank 0's bytes or values on every process (the others' are replaced; strings resized).
  void broadcast(std::string& bytes) const;
  void broadcast(std::span<float> values) const;

  // What every process must agree on, as (what, digest): e.g. ("config", its SHA-256). Throws
  // qkv::Error on every process when one differs from rank 0, naming the first such rank and
  // what differs. Digests must have the same length on every process.
  void check_same(const std::vector<std::pair<std::string, std::string>>& facts) const;

  // After an error on this process: prints its line to stderr, then ends every process of the
  // job, so that none waits forever in a reduction. Returns only when the process runs alone.
  // Rank 0 prints at once; the others wait 3 seconds first: an error every process meets (a
  // checkpoint that cannot resume at this scale) then prints once, as rank 0's abort ends them.
  void end_job_after_error(int exit_code, const std::string& line) const;

 private:
  friend const Distributed& join_launched_processes(const Environment& env,
                                                    const std::atomic<bool>& stop);
  int rank_ = 0, size_ = 1;
  bool reduces_during_backward_ = false;
  const std::atomic<bool>* stop_ = nullptr;
};

// Joins the processes this one was launched with (MPI_Init), once; alone, it is one process.
// `stop`: the stop request that bounds every wait in a collective (see the top of this file); it
// must outlive the process group. Throws qkv::Error when a launcher started N > 1 copies of a
// qkv built without MPI: each would train the same run into the same directory.
const Distributed& join_launched_processes(const Environment& env, const std::atomic<bool>& stop);

}  // namespace qkv::parallel
