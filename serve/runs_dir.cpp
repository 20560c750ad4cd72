#include "runs_dir.h"

#include <fmt/format.h>

#include <algorithm>
#include <cctype>

#include "qkv/error.h"
#include "qkv/io/checkpoint.h"

namespace qkv::serve {
namespace {

namespace fs = std::filesystem;

bool within(const fs::path& p, const fs::path& root) {
  const auto [r, q] = std::mismatch(root.begin(), root.end(), p.begin(), p.end());
  return r == root.end();
}

bool is_checkpoint_name(std::string_view name) {
  constexpr std::string_view prefix = "checkpoint-";
  if (!name.starts_with(prefix) || name.size() == prefix.size() || name.size() > prefix.size() + 18)
    return false;
  return std::all_of(name.begin() + prefix.size(), name.end(),
                     [](unsigned char c) { return std::isdigit(c); });
}

}  // namespace

bool is_run_dir(const fs::path& dir) {
  std::error_code ec;
  return fs::exists(dir / "config.toml", ec) || fs::exists(dir / "metrics.jsonl", ec) ||
         io::holds_checkpoint(dir.string());
}

RunsDir::RunsDir(const std::string& root) {
  std::error_code ec;
  root_ = fs::canonical(root, ec);
  QKV_CHECK(!ec, "{}: {}", root, ec.message());
  QKV_CHECK(fs::is_directory(root_, ec), "{}: not a directory; give the directory of your runs",
            root);
  fs::directory_iterator list(root_, ec);
  QKV_CHECK(!ec, "{}: cannot list the runs: {}", root, ec.message());
}

std::vector<Run> RunsDir::runs() const {
  if (is_run_dir(root_)) return {{root_.filename().string(), root_}};
  std::vector<Run> out;
  auto walk = [&](auto& self, const fs::path& dir, const std::string& prefix, int depth) -> void {
    std::error_code ec;
    fs::directory_iterator it(dir, ec), end;
    // Below the root an unreadable directory is only not walked; the root itself is an error,
    // not "0 runs".
    QKV_CHECK(!ec || depth > 0, "{}: cannot list the runs: {}", dir.string(), ec.message());
    for (; !ec && it != end; it.increment(ec)) {
      const std::string name = it->path().filename().string();
      if (name.starts_with('.')) continue;
      const auto resolved = inside(it->path());
      std::error_code is_dir_ec;
      if (!resolved || !fs::is_directory(*resolved, is_dir_ec)) continue;
      const std::string rel = prefix.empty() ? name : prefix + "/" + name;
      if (is_run_dir(*resolved))
        out.push_back({rel, *resolved});
      else if (depth + 1 < kMaxDepth)
        self(self, *resolved, rel, depth + 1);
    }
  };
  walk(walk, root_, "", 0);
  std::sort(out.begin(), out.end(), [](const Run& a, const Run& b) { return a.name < b.name; });
  return out;
}

std::optional<Run> RunsDir::find(std::string_view name) const {
  for (Run& run : runs())
    if (run.name == name) return std::move(run);
  return std::nullopt;
}

std::optional<fs::path> RunsDir::inside(const fs::path& p) const {
  std::error_code ec;
  fs::path resolved = fs::canonical(p, ec);
  if (ec || !within(resolved, root_)) return std::nullopt;
  return resolved;
}

bool RunsDir::absent_or_inside(const fs::path& p) const {
  std::error_code ec;
  return !fs::exists(fs::symlink_status(p, ec)) || inside(p).has_value();
}

std::optional<std::string> RunsDir::checkpoint(const Run& run, std::string_view which) const {
  if (!absent_or_inside(run.path / "latest") || !absent_or_inside(run.path / "best"))
    return std::nullopt;
  fs::path dir;
  if (which.empty() || which == "latest") {
    if (!io::holds_checkpoint(run.path.string())) return std::nullopt;
    dir = io::resolve_checkpoint(run.path.string());
  } else if (which == "best") {
    const auto step = io::read_pointer(run.path.string(), "best");
    if (!step) return std::nullopt;
    dir = run.path / fmt::format("checkpoint-{}", *step);
  } else if (is_checkpoint_name(which)) {
    dir = run.path / which;
  } else {
    return std::nullopt;
  }
  const auto resolved = inside(dir);
  std::error_code ec;
  if (!resolved || !fs::is_directory(*resolved, ec)) return std::nullopt;
  for (fs::directory_iterator it(*resolved, ec), end; !ec && it != end; it.increment(ec))
    if (!inside(it->path())) return std::nullopt;
  if (ec) return std::nullopt;
  return resolved->string();
}

}  // namespace qkv::serve
