// `mpirun -np N qkv train` when something is wrong: ranks that disagree are refused at start,
// and a rank killed mid-run ends the whole job, leaving the run resumable.
#include <doctest/doctest.h>
#include <signal.h>

#include <chrono>
#include <cstdlib>
#include <fstream>
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

}  // namespace

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
