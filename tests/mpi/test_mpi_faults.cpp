// `mpirun -np N qkv train` when something is wrong: ranks that disagree are refused at start,
// a rank killed mid-run ends the whole job, leaving the run resumable, and a SIGTERM ends the
// job in bounded time even while a rank waits for one that hangs.
#include <doctest/doctest.h>
#include <signal.h>

#include <chrono>
#include <cstdlib>
#include <fstream>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include "mpi/mpirun.h"

using namespace qkv::testing;
using namespace std::chrono_literals;

namespace {

// The pid of the process that runs `rank` among mpirun's children (Open MPI tells each its rank
// in OMPI_COMM_WORLD_RANK), or -1.
pid_t rank_pid(pid_t mpirun, int rank) {
  const std::string want = "OMPI_COMM_WORLD_RANK=" + std::to_string(rank);
  for (const auto& e : fs::directory_iterator("/proc")) {
    const std::string name = e.path().filename().string();
    if (name.find_first_not_of("0123456789") != std::string::npos) continue;
    std::ifstream stat(e.path() / "stat");
    std::string line;
    std::getline(stat, line);
    const size_t paren = line.rfind(')');  // then " state ppid"
    if (paren == std::string::npos || std::atoi(line.c_str() + paren + 4) != mpirun) continue;
    std::ifstream environ_file(e.path() / "environ");
    for (std::string var; std::getline(environ_file, var, '\0');)
      if (var == want) return std::stoi(name);
  }
  return -1;
}

// SIGKILL to rank `rank` of the job; true when the whole job then ends within 30 s, failing.
bool kill_ends_job(Process& job, int rank) {
  const pid_t victim = rank_pid(job.pid(), rank);
  REQUIRE(victim > 0);
  ::kill(victim, SIGKILL);
  const auto killed = std::chrono::steady_clock::now();
  while (job.running() && std::chrono::steady_clock::now() - killed < 30s)
    std::this_thread::sleep_for(10ms);
  return !job.running() && job.wait().exit_code != 0;
}

// Whether `pid` has a handler for `signal` (SigCgt in /proc): qkv sets its own once it has
// joined the job; a SIGTERM before that ends it by the default action, proving nothing.
bool catches(pid_t pid, int signal) {
  std::ifstream status("/proc/" + std::to_string(pid) + "/status");
  for (std::string line; std::getline(status, line);)
    if (line.starts_with("SigCgt:"))
      return (std::stoull(line.substr(7), nullptr, 16) >> (signal - 1)) & 1;
  return false;
}

// A job stopped by SIGTERM to one rank: whether it ended in time, and how.
struct Stopped {
  bool in_time = false;
  CommandResult result;
};

// SIGTERM to `signalled`, then the job's end. A job still running after `bound` is killed, with
// its ranks (a stopped or hung one would outlive mpirun), and is not in time.
Stopped sigterm_and_wait(Process& job, pid_t signalled, const std::vector<pid_t>& ranks,
                         std::chrono::seconds bound) {
  ::kill(signalled, SIGTERM);
  const auto sent = std::chrono::steady_clock::now();
  while (job.running() && std::chrono::steady_clock::now() - sent < bound)
    std::this_thread::sleep_for(10ms);
  Stopped s{.in_time = !job.running()};
  if (!s.in_time)
    for (pid_t rank : ranks) ::kill(rank, SIGKILL);
  s.result = job.wait();
  return s;
}

// The lines of `text` that start with "error: " (mpirun adds its own lines after an abort).
std::vector<std::string> error_lines(const std::string& text) {
  std::vector<std::string> out;
  std::istringstream in(text);
  for (std::string line; std::getline(in, line);)
    if (line.starts_with("error: ")) out.push_back(line);
  return out;
}

// What the waiting rank says: rank 0 gives the others 5 s, the others give rank 0 20 s.
std::string stopped_waiting(int rank) {
  return "error: stopped while rank " + std::to_string(rank) +
         " of 2 waited for the other processes, which did not come within " +
         (rank == 0 ? "5" : "20") + " s; ended the whole job";
}

}  // namespace

TEST_CASE("mpirun qkv train: SIGTERM ends the job in bounded time while a rank never comes") {
  TempDir dir("mpi_stop_hung_peer");
  const std::string data = dir.write("corpus.txt", generated_corpus(300));
  const fs::path run = dir.path() / "run";
  // One rank joins the job and then never reaches a collective: qkv's rank waits in its first
  // one, the check that every rank runs the same command.
  for (const int waiting : {0, 1}) {
    CAPTURE(waiting);
    std::vector<std::string> qkv{"-np", "1", kQkv};
    const std::vector<std::string> args = train_args(data, run);
    qkv.insert(qkv.end(), args.begin(), args.end());
    const std::vector<std::string> hung{"-np", "1", QKV_HUNG_PEER};
    std::vector<std::string> argv = mpirun_options();
    for (const auto& part :
         {waiting == 0 ? qkv : hung, std::vector<std::string>{":"}, waiting == 0 ? hung : qkv})
      argv.insert(argv.end(), part.begin(), part.end());
    Process job(argv);
    pid_t waiter = -1, peer = -1;
    REQUIRE(wait_until(job, [&] {
      waiter = rank_pid(job.pid(), waiting);
      peer = rank_pid(job.pid(), 1 - waiting);
      return waiter > 0 && peer > 0 && catches(waiter, SIGTERM);
    }));
    // Its grace (5 or 20 s), and 3 s more for a rank other than 0 to let rank 0 speak first.
    const Stopped s = sigterm_and_wait(job, waiter, {waiter, peer}, waiting == 0 ? 15s : 35s);
    CHECK_MESSAGE(s.in_time, "the job went on after SIGTERM to the rank that waits");
    CHECK(s.result.exit_code == 130);
    CHECK_MESSAGE(error_lines(s.result.err).size() == 1, s.result.err);
    CHECK_MESSAGE(s.result.err.find(stopped_waiting(waiting)) != std::string::npos, s.result.err);
    CHECK(!fs::exists(run));
  }
}

TEST_CASE("mpirun qkv train: SIGTERM ends the job in bounded time when a rank stops mid-run") {
  TempDir dir("mpi_stop_mid_run");
  const std::string data = dir.write("corpus.txt", generated_corpus(600));
  // Rank 0 then waits in the gradient sum: its reducer thread's (buckets of 6250 elements,
  // several for the tiny model) or, without overlap, the main thread's.
  for (const std::string reduce : {"train.bucket_mb=0.05", "train.overlap=false"}) {
    CAPTURE(reduce);
    const fs::path run = dir.path() / reduce.substr(6);
    Process job(mpirun_argv(2, train_args(data, run,
                                          {"train.max_iters=100000", "train.eval_interval=100000",
                                           "train.checkpoint_interval=2", reduce})));
    REQUIRE(wait_until(job, [&] { return latest_step(run) >= 2; }));
    const pid_t rank0 = rank_pid(job.pid(), 0), rank1 = rank_pid(job.pid(), 1);
    REQUIRE((rank0 > 0 && rank1 > 0));
    ::kill(rank1, SIGSTOP);  // alive, so mpirun does not end the job, but never answering
    const Stopped s = sigterm_and_wait(job, rank0, {rank0, rank1}, 15s);
    CHECK_MESSAGE(s.in_time, "the job went on 15 s after SIGTERM to rank 0");
    CHECK(s.result.exit_code == 130);
    CHECK_MESSAGE(error_lines(s.result.err).size() == 1, s.result.err);
    CHECK_MESSAGE(s.result.err.find(stopped_waiting(0)) != std::string::npos, s.result.err);
    // `latest` names a complete checkpoint.
    const CommandResult info = run_qkv({"info", run.string()});
    CHECK_MESSAGE(info.exit_code == 0, info.err);
  }
}

TEST_CASE("mpirun qkv train: a rank started with another config is named, and nothing is written") {
  TempDir dir("mpi_mismatch");
  const std::string data = dir.write("corpus.txt", generated_corpus(300));
  const fs::path run = dir.path() / "run";
  // Open MPI's MPMD form: rank 0 and rank 1 run different command lines.
  auto rank = [&](const char* setting) {
    std::vector<std::string> part{"-np", "1", kQkv};
    const std::vector<std::string> args = train_args(data, run, {setting});
    part.insert(part.end(), args.begin(), args.end());
    return part;
  };
  std::vector<std::string> argv = mpirun_options();
  for (const auto& part : {rank("train.max_iters=3"), std::vector<std::string>{":"},
                           rank("train.max_iters=4")})
    argv.insert(argv.end(), part.begin(), part.end());
  const CommandResult r = run_command(argv);
  CHECK(r.exit_code != 0);
  CHECK(r.err.find("error: rank 1 of 2 runs a different config than rank 0") != std::string::npos);
  CHECK(!fs::exists(run));
}

TEST_CASE("mpirun qkv train: ranks started to resume and to start anew are refused, not stuck") {
  TempDir dir("mpi_mpmd_modes");
  const std::string data = dir.write("corpus.txt", generated_corpus(300));
  const fs::path run = dir.path() / "run", other = dir.path() / "other";
  const CommandResult trained = run_qkv(train_args(data, run, {"train.max_iters=2"}));
  REQUIRE_MESSAGE(trained.exit_code == 0, trained.err);
  const Snapshot before = snapshot(dir.path());
  std::vector<std::string> argv = mpirun_options();
  const std::vector<std::string> fresh = train_args(data, other, {"train.max_iters=2"});
  argv.insert(argv.end(), {"-np", "1", kQkv, "train", "--resume", run.string(), "--threads", "1",
                           ":", "-np", "1", kQkv});
  argv.insert(argv.end(), fresh.begin(), fresh.end());
  Process job(argv);
  const auto deadline = std::chrono::steady_clock::now() + 60s;
  while (job.running() && std::chrono::steady_clock::now() < deadline)
    std::this_thread::sleep_for(10ms);
  REQUIRE_MESSAGE(!job.running(), "the job still runs 60 s after it started");
  const CommandResult r = job.wait();
  CHECK(r.exit_code != 0);
  CHECK_MESSAGE(r.err.find("error: rank 1 of 2 runs another command than rank 0's `qkv train "
                           "--resume " + run.string() + "`") != std::string::npos,
                r.err);
  CHECK(snapshot(dir.path()) == before);
}

TEST_CASE("mpirun qkv train: kill -9 of one rank ends the job in bounded time, latest intact") {
  TempDir dir("mpi_kill");
  const std::string data = dir.write("corpus.txt", generated_corpus(600));
  const fs::path run = dir.path() / "run";
  Process job(mpirun_argv(2, train_args(data, run,
                                        {"train.max_iters=100000", "train.checkpoint_interval=1",
                                         "train.eval_interval=100000"})));
  const auto deadline = std::chrono::steady_clock::now() + 60s;
  while (latest_step(run) < 3 && job.running() && std::chrono::steady_clock::now() < deadline)
    std::this_thread::sleep_for(1ms);
  REQUIRE(latest_step(run) >= 3);
  CHECK_MESSAGE(kill_ends_job(job, 1), "the job went on 30 s after rank 1 was killed");
  // `latest` names a complete checkpoint, and the run goes on from it at another scale.
  const int64_t latest = latest_step(run);
  const CommandResult info = run_qkv({"info", run.string()});
  REQUIRE_MESSAGE(info.exit_code == 0, info.err);
  const CommandResult resumed =
      run_qkv({"train", "--resume", run.string(), "--threads", "1", "--set",
               "train.max_iters=" + std::to_string(latest + 2)});
  CHECK_MESSAGE(resumed.exit_code == 0, resumed.err);
  CHECK(latest_step(run) == latest + 2);
}

TEST_CASE("mpirun qkv train: kill -9 of rank 0 while it saves ends the job, latest intact") {
  TempDir dir("mpi_kill_save");
  const std::string data = dir.write("corpus.txt", generated_corpus(600));
  const fs::path run = dir.path() / "run";
  // A model of 3M parameters, so that a save (36 MB with AdamW's moments, fsynced) takes a
  // while; a checkpoint every step.
  Process job(mpirun_argv(
      2, train_args(data, run,
                    {"model.n_embd=256", "model.n_layer=4", "train.max_iters=100000",
                     "train.checkpoint_interval=1", "train.eval_interval=100000"})));
  // Rank 0 writes each checkpoint into .checkpoint-<step>.tmp-<pid>/ and renames it when done.
  auto saving = [&] {
    std::error_code ec;
    for (const auto& e : fs::directory_iterator(run, ec))
      if (e.path().filename().string().find(".tmp-") != std::string::npos) return true;
    return false;
  };
  const auto deadline = std::chrono::steady_clock::now() + 120s;
  while (!(latest_step(run) >= 2 && saving()) && job.running() &&
         std::chrono::steady_clock::now() < deadline)
    std::this_thread::sleep_for(200us);
  REQUIRE(job.running());
  CHECK_MESSAGE(kill_ends_job(job, 0), "the job went on 30 s after rank 0 was killed");
  const int64_t latest = latest_step(run);
  CHECK(latest >= 2);
  const CommandResult info = run_qkv({"info", run.string()});
  REQUIRE_MESSAGE(info.exit_code == 0, info.err);
  // It goes on, as 1 process × grad_accum 2, past the half-written checkpoint.
  const CommandResult resumed =
      run_qkv({"train", "--resume", run.string(), "--threads", "2", "--set",
                 "train.max_iters=" + std::to_string(latest + 2)});
  CHECK_MESSAGE(resumed.exit_code == 0, resumed.err);
  CHECK(latest_step(run) == latest + 2);
}
