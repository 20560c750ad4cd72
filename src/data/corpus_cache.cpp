// open_corpus: a prepared corpus as given, or raw text prepared once into the cache.
#include <fcntl.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstdlib>
#include <filesystem>
#include <nlohmann/json.hpp>

#include "qkv/data/prepare.h"
#include "qkv/data/sha256.h"
#include "qkv/error.h"
#include "qkv/io/durable_file.h"

namespace qkv::data {

namespace fs = std::filesystem;

std::string default_cache_dir() {
  if (const char* xdg = std::getenv("XDG_CACHE_HOME"); xdg && *xdg)
    return (fs::path(xdg) / "qkv" / "corpora").string();
  if (const char* home = std::getenv("HOME"); home && *home)
    return (fs::path(home) / ".cache" / "qkv" / "corpora").string();
  throw Error("data.cache_dir: neither XDG_CACHE_HOME nor HOME is set; set data.cache_dir to a "
              "directory where qkv may keep prepared corpora");
}

namespace {

// The sources' identity: what they are (paths, sizes, times) and how they are read.
std::string cache_key(const std::vector<std::string>& files, const CorpusOptions& o) {
  nlohmann::json id = {{"version", kCorpusVersion},
                       {"pairs", o.pairs},
                       {"jsonl_field", o.prepare.jsonl_field},
                       {"files", nlohmann::json::array()}};
  for (const std::string& f : files) {
    struct stat st {};
    ::stat(f.c_str(), &st);
    id["files"].push_back(
        {f, int64_t(st.st_size), int64_t(st.st_mtim.tv_sec) * 1000000000 + st.st_mtim.tv_nsec});
  }
  return sha256_hex(id.dump()).substr(0, 32);
}

// An exclusive flock held for its lifetime.
class FileLock {
 public:
  explicit FileLock(const std::string& path) {
    fd_ = ::open(path.c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0644);
    if (fd_ < 0) io::throw_os_error(path, "cannot create the lock file", errno);
    while (::flock(fd_, LOCK_EX) != 0)
      if (errno != EINTR) io::throw_os_error(path, "cannot lock", errno);
  }
  ~FileLock() { ::close(fd_); }
  FileLock(const FileLock&) = delete;
  FileLock& operator=(const FileLock&) = delete;

 private:
  int fd_ = -1;
};

}  // namespace

Corpus open_corpus(const std::vector<std::string>& paths, const CorpusOptions& options) {
  if (paths.size() == 1 && is_prepared_corpus(paths[0])) {
    Corpus c = Corpus::open(paths[0]);
    QKV_CHECK((c.kind() == Corpus::Kind::pairs) == options.pairs,
              "data.path '{}' is a prepared corpus of {}, but this model needs {}", paths[0],
              options.pairs ? "text" : "pairs",
              options.pairs ? "source<TAB>target pairs" : "text");
    c.check_sources();
    return c;
  }
  const std::vector<std::string> files = expand_inputs(paths, "data.path");
  QKV_CHECK(!options.pairs || files.size() == 1,
            "data.path: model.kind = encoder_decoder reads one TSV file, got {} files",
            files.size());
  const std::string dir = options.cache_dir.empty() ? default_cache_dir() : options.cache_dir;
  std::error_code ec;
  fs::create_directories(dir, ec);
  QKV_CHECK(!ec, "data.cache_dir '{}': cannot create it: {}", dir, ec.message());
  const std::string entry = (fs::path(dir) / cache_key(files, options)).string();
  FileLock lock(entry + ".lock");
  if (is_prepared_corpus(entry)) {
    Corpus c = Corpus::open(entry);
    c.check_sources();
    return c;
  }
  return options.pairs ? prepare_pairs(files[0], entry, options.prepare)
                       : prepare_text(files, entry, options.prepare);
}

}  // namespace qkv::data
