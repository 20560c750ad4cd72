// The MPI side of data-parallel training: built with MPI when CMake found it (QKV_HAVE_MPI),
// and without it a process that knows it runs alone and refuses to run as one of many.
#include "qkv/parallel/distributed.h"

#include <spdlog/spdlog.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <string>
#include <string_view>
#include <thread>

#include "qkv/error.h"

#ifdef QKV_HAVE_MPI
// The C API only: mpi.h would otherwise pull in the deprecated C++ bindings, which need libraries
// FindMPI's C target does not link.
#define OMPI_SKIP_MPICXX 1
#define MPICH_SKIP_MPICXX 1
#include <mpi.h>
#endif

namespace qkv::parallel {

namespace {

#ifdef QKV_HAVE_MPI
// MPI counts elements in int: larger buffers go in chunks, a request each.
constexpr size_t kChunk = size_t{1} << 30;

// A started collective: its requests, tested rather than waited for inside MPI, so that a stop
// request is seen while the others do not come (see the header). Open MPI moves the data inside
// MPI_Testall, as it would inside a blocking call.
class Pending {
 public:
  Pending(const Distributed& group, const std::atomic<bool>* stop) : group_(group), stop_(stop) {}
  MPI_Request* add() { return &requests_.emplace_back(); }

  // Whether every request completed. Once a stop was requested, stop_grace() of this returning
  // false ends the job.
  bool done() {
    int flag = 0;
    MPI_Testall(int(requests_.size()), requests_.data(), &flag, MPI_STATUSES_IGNORE);
    if (flag != 0 || stop_ == nullptr || !stop_->load(std::memory_order_relaxed)) return flag != 0;
    const auto now = std::chrono::steady_clock::now();
    if (deadline_ == kNever) deadline_ = now + group_.stop_grace();
    if (now >= deadline_)
      group_.end_job_after_error(
          130, fmt::format("error: stopped while rank {} of {} waited for the other processes, "
                           "which did not come within {} s; ended the whole job (checkpoints "
                           "saved so far are intact)",
                           group_.rank(), group_.size(), group_.stop_grace().count()));
    return false;
  }
  void wait() {
    while (!done()) {
    }
  }

 private:
  const Distributed& group_;
  const std::atomic<bool>* stop_;
  std::vector<MPI_Request> requests_;
  static constexpr auto kNever = std::chrono::steady_clock::time_point::max();
  std::chrono::steady_clock::time_point deadline_ = kNever;  // set when a stop is first seen
};

template <class T>
void start_allreduce(Pending& pending, std::span<T> values, MPI_Datatype type, MPI_Op op) {
  for (size_t i = 0; i < values.size(); i += kChunk)
    MPI_Iallreduce(MPI_IN_PLACE, values.data() + i, int(std::min(kChunk, values.size() - i)), type,
                   op, MPI_COMM_WORLD, pending.add());
}

template <class T>
void allreduce(const Distributed& group, const std::atomic<bool>* stop, std::span<T> values,
               MPI_Datatype type, MPI_Op op) {
  Pending pending(group, stop);
  start_allreduce(pending, values, type, op);
  pending.wait();
}

template <class T>
void broadcast_from_rank0(const Distributed& group, const std::atomic<bool>* stop,
                          std::span<T> values, MPI_Datatype type) {
  Pending pending(group, stop);
  for (size_t i = 0; i < values.size(); i += kChunk)
    MPI_Ibcast(values.data() + i, int(std::min(kChunk, values.size() - i)), type, 0, MPI_COMM_WORLD,
               pending.add());
  pending.wait();
}

// A reduction started for the caller to poll (ExactGradSum's reducer thread).
class StartedMpi : public optim::CrossProcess::Started {
 public:
  template <class T>
  StartedMpi(const Distributed& group, const std::atomic<bool>* stop, std::span<T> values,
             MPI_Datatype type, MPI_Op op)
      : pending_(group, stop) {
    start_allreduce(pending_, values, type, op);
  }
  bool done() override { return pending_.done(); }

 private:
  Pending pending_;
};

// MPI_Finalize at exit, after every reduction; MPI_Abort (end_job_after_error) skips it. It
// waits for every process inside MPI, so a barrier comes first: a process that a stopped run
// leaves waiting there for one that hangs still ends the job.
struct Finalizer {
  const Distributed& group;
  const std::atomic<bool>& stop;
  ~Finalizer() {
    Pending all_here(group, &stop);
    MPI_Ibarrier(MPI_COMM_WORLD, all_here.add());
    all_here.wait();
    MPI_Finalize();
  }
};
#endif

}  // namespace

void Distributed::max(std::span<int32_t> values) const {
#ifdef QKV_HAVE_MPI
  if (size_ > 1) allreduce(*this, stop_, values, MPI_INT32_T, MPI_MAX);
#endif
}

void Distributed::sum(std::span<int64_t> values) const {
#ifdef QKV_HAVE_MPI
  if (size_ > 1) allreduce(*this, stop_, values, MPI_INT64_T, MPI_SUM);
#endif
}

void Distributed::sum(std::span<double> values) const {
#ifdef QKV_HAVE_MPI
  if (size_ > 1) allreduce(*this, stop_, values, MPI_DOUBLE, MPI_SUM);
#endif
}

std::unique_ptr<optim::CrossProcess::Started> Distributed::start_max(
    std::span<int32_t> values) const {
#ifdef QKV_HAVE_MPI
  if (size_ > 1) return std::make_unique<StartedMpi>(*this, stop_, values, MPI_INT32_T, MPI_MAX);
#endif
  return CrossProcess::start_max(values);
}

std::unique_ptr<optim::CrossProcess::Started> Distributed::start_sum(
    std::span<int64_t> values) const {
#ifdef QKV_HAVE_MPI
  if (size_ > 1) return std::make_unique<StartedMpi>(*this, stop_, values, MPI_INT64_T, MPI_SUM);
#endif
  return CrossProcess::start_sum(values);
}

void Distributed::broadcast(std::string& bytes) const {
#ifdef QKV_HAVE_MPI
  if (size_ == 1) return;
  uint64_t size = bytes.size();
  broadcast_from_rank0(*this, stop_, std::span(&size, 1), MPI_UINT64_T);
  bytes.resize(size);
  broadcast_from_rank0(*this, stop_, std::span(bytes.data(), bytes.size()), MPI_CHAR);
#endif
}

void Distributed::broadcast(std::span<float> values) const {
#ifdef QKV_HAVE_MPI
  if (size_ > 1) broadcast_from_rank0(*this, stop_, values, MPI_FLOAT);
#endif
}

bool Distributed::any(bool flag) const {
  int32_t v = flag;
  max(std::span(&v, 1));
  return v != 0;
}

void Distributed::check_same(const std::vector<std::pair<std::string, std::string>>& facts) const {
  if (size_ == 1) return;
  std::string mine;
  for (const auto& [what, digest] : facts) mine += digest;
  std::string all(mine.size() * size_t(size_), '\0');
#ifdef QKV_HAVE_MPI
  Pending gathered(*this, stop_);
  MPI_Iallgather(mine.data(), int(mine.size()), MPI_CHAR, all.data(), int(mine.size()), MPI_CHAR,
                 MPI_COMM_WORLD, gathered.add());
  gathered.wait();
#endif
  for (int r = 1; r < size_; ++r) {
    size_t at = 0;
    for (const auto& [what, digest] : facts) {
      const std::string_view first(all.data() + at, digest.size());
      const std::string_view other(all.data() + size_t(r) * mine.size() + at, digest.size());
      QKV_CHECK(first == other,
                "rank {} of {} runs a different {} than rank 0 (SHA-256 {} against {}); every "
                "process must run the same qkv on the same config and data",
                r, size_, what, other.substr(0, 12), first.substr(0, 12));
      at += digest.size();
    }
  }
}

void Distributed::end_job_after_error(int exit_code, const std::string& line) const {
  if (rank_ > 0) std::this_thread::sleep_for(std::chrono::seconds(3));
  std::fprintf(stderr, "%s\n", line.c_str());
#ifdef QKV_HAVE_MPI
  if (size_ > 1) MPI_Abort(MPI_COMM_WORLD, exit_code);
#endif
}

const Distributed& join_launched_processes(const Environment& env, const std::atomic<bool>& stop) {
  static Distributed g;
  if (env.launched == 1) return g;
#ifdef QKV_HAVE_MPI
  g.stop_ = &stop;
  static Finalizer finalizer{g, stop};
  int provided = 0;
  // One thread calls MPI at a time: the main thread, or during a step's backward the thread
  // that reduces its gradient buckets (ExactGradSum); OpenMP's threads only compute.
  // Open MPI's non-blocking allreduce below 4 processes reduces to one process and then
  // broadcasts, each bucket crossing a link one way at a time; the ring sends both ways at once
  // (docs/scaling.md has the measurement). The user's choice wins (Environment).
  if (env.iallreduce_set_by_qkv)
    setenv("OMPI_MCA_coll_libnbc_iallreduce_algorithm", env.ompi_iallreduce_algorithm.c_str(), 0);
  MPI_Init_thread(nullptr, nullptr, MPI_THREAD_SERIALIZED, &provided);
  g.reduces_during_backward_ = provided >= MPI_THREAD_SERIALIZED;
  MPI_Comm_rank(MPI_COMM_WORLD, &g.rank_);
  MPI_Comm_size(MPI_COMM_WORLD, &g.size_);
  if (g.rank_ != 0) spdlog::set_level(spdlog::level::err);
  return g;
#else
  throw Error(fmt::format(
      "{}={}: a launcher started {} copies of qkv, but this qkv was built without MPI, so each "
      "would train the same run into one directory; rebuild it with libopenmpi-dev installed, "
      "or run one process",
      env.launch_variable, env.launched, env.launched));
#endif
}

}  // namespace qkv::parallel
