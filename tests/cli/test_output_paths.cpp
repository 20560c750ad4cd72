// Every file qkv writes is a new regular file or replaces one: an -o naming a symlink writes
// its target and keeps the link, and a FIFO or a device is refused with one line and left as it
// was; a run is never created in a checkpoint or inside another run. Inputs likewise: a FIFO
// where a file is read is refused at once instead of blocking.
#include <doctest/doctest.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>

#include <cstdlib>
#include <memory>

#include "qkv_cli.h"

using namespace qkv::testing;

namespace {

// `qkv args...`, which must end within 20 s (a read of a FIFO would block forever).
CommandResult run_bounded(const std::vector<std::string>& args) {
  std::vector<std::string> argv{kQkv};
  argv.insert(argv.end(), args.begin(), args.end());
  Process p(argv);
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(20);
  while (p.running() && std::chrono::steady_clock::now() < deadline)
    std::this_thread::sleep_for(std::chrono::milliseconds(5));
  REQUIRE_MESSAGE(!p.running(), "qkv ", args.front(), " still runs after 20 s");
  return p.wait();
}

// The commands that write a chart to -o, given where.
std::vector<std::vector<std::string>> chart_commands(const fs::path& out) {
  const std::string run = trained_decoder_run("cli_output_paths_source").string();
  return {{"plot", run, "-o", out.string()},
          {"attention", run, "--prompt", "the cat", "--threads", "1", "-o", out.string()}};
}

bool is_kind(const fs::path& p, mode_t kind) {
  struct stat st {};
  return ::lstat(p.c_str(), &st) == 0 && (st.st_mode & S_IFMT) == kind;
}

}  // namespace

TEST_CASE("qkv plot/attention -o: a symlink's target is written and the link kept") {
  TempDir dir("cli_output_symlink");
  const fs::path target = dir.path() / "chart.svg", link = dir.path() / "link.svg";
  for (const auto& args : chart_commands(link)) {
    CAPTURE(args.front());
    dir.write("chart.svg", "old");
    fs::remove(link);
    fs::create_symlink(target, link);
    const CommandResult r = run_qkv(args);
    REQUIRE_MESSAGE(r.exit_code == 0, r.err);
    CHECK(fs::is_symlink(link));
    CHECK(read_file(target).find("<svg") != std::string::npos);
  }
}

TEST_CASE("qkv plot/attention -o: a FIFO is refused and left as it was") {
  TempDir dir("cli_output_fifo");
  const fs::path fifo = dir.path() / "fifo.svg";
  REQUIRE(::mkfifo(fifo.c_str(), 0644) == 0);
  for (const auto& args : chart_commands(fifo)) {
    CAPTURE(args.front());
    const CommandResult r = run_bounded(args);
    CHECK_MESSAGE(is_one_error_line(r), r.err);
    CHECK(r.err == "error: " + fifo.string() +
                       ": a FIFO, not a regular file; qkv writes only to a new or a regular "
                       "file\n");
    CHECK(is_kind(fifo, S_IFIFO));
  }
}

TEST_CASE("qkv plot/attention -o: a character device is refused and left as it was") {
  if (::geteuid() != 0) {
    const char* need = std::getenv("QKV_TESTS_NEED_ROOT");
    if (need && std::string_view(need) == "1") FAIL("this test makes a device node: run as root");
    MESSAGE("skipped: making a device node (mknod) needs root");
    return;
  }
  TempDir dir("cli_output_device");
  const fs::path device = dir.path() / "full.svg";
  REQUIRE(::mknod(device.c_str(), S_IFCHR | 0666, makedev(1, 7)) == 0);  // as /dev/full
  for (const auto& args : chart_commands(device)) {
    CAPTURE(args.front());
    const CommandResult r = run_bounded(args);
    CHECK_MESSAGE(is_one_error_line(r), r.err);
    CHECK(r.err.find(": a character device, not a regular file") != std::string::npos);
    CHECK(is_kind(device, S_IFCHR));
  }
}

TEST_CASE("qkv train --out: a checkpoint or a directory inside a run is refused") {
  TempDir dir("cli_out_nested");
  const fs::path run = dir.path() / "run";
  fs::copy(trained_decoder_run("cli_output_paths_source"), run, fs::copy_options::recursive);
  const std::string data = dir.write("corpus.txt", generated_corpus(100));
  const Snapshot before = snapshot(dir.path());
  for (const auto& [out, says] : std::vector<std::pair<fs::path, std::string>>{
           {run / "checkpoint-5",
            ": is a checkpoint directory; a run needs a directory of its own"},
           {run / "checkpoint-5" / "sub",
            ": is inside the checkpoint " + (run / "checkpoint-5").string()},
           {run / "sweep" / "a", ": is inside the run directory " + run.string()}}) {
    CAPTURE(out);
    const CommandResult r = run_qkv(train_args(data, out, {"train.max_iters=1"}));
    CHECK_MESSAGE(is_one_error_line(r), r.err);
    CHECK_MESSAGE(r.err.starts_with("error: " + out.string() + says), r.err);
  }
  CHECK(snapshot(dir.path()) == before);
}

TEST_CASE("qkv train/sample: a FIFO given as an input file is refused at once") {
  TempDir dir("cli_input_fifo");
  const fs::path fifo = dir.path() / "fifo";
  REQUIRE(::mkfifo(fifo.c_str(), 0644) == 0);
  const std::string is_fifo = fifo.string() + ": a FIFO, not a regular file\n";
  CHECK(run_bounded({"train", fifo.string()}).err == "error: config file " + is_fifo);
  CHECK(run_bounded({"sample", trained_decoder_run("cli_output_paths_source").string(), "--prompt-file", fifo.string()}).err ==
        "error: --prompt-file " + is_fifo);
  const fs::path run = dir.path() / "run", model = run / "checkpoint-5" / "model.safetensors";
  fs::copy(trained_decoder_run("cli_output_paths_source"), run, fs::copy_options::recursive);
  fs::remove(model);
  REQUIRE(::mkfifo(model.c_str(), 0644) == 0);
  CHECK(run_bounded({"info", run.string()}).err ==
        "error: " + model.string() + ": a FIFO, not a regular file\n");
}
