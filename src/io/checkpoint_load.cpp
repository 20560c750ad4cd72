// Loading a checkpoint: every file is checked against manifest.json (size, SHA-256) before
// anything is parsed, so corruption is reported with the file's path, never trained on.
#include <sys/stat.h>

#include <cerrno>
#include <filesystem>
#include <map>

#include "io/checkpoint_layout.h"
#include "qkv/io/durable_file.h"
#include "qkv/data/sha256.h"
#include "qkv/error.h"
#include "qkv/io/regular_file.h"
#include "qkv/io/checkpoint.h"
#include "qkv/io/safetensors.h"

namespace qkv::io {
namespace {

namespace fs = std::filesystem;
using namespace layout;
using nlohmann::json;

constexpr const char* kRemedy = "resume from an earlier checkpoint";

json read_json(const fs::path& p) {
  try {
    return json::parse(read_regular_file(p));
  } catch (const json::exception& e) {
    // nlohmann prefixes "[json.exception.parse_error.101] "; users need only the rest.
    const std::string what = e.what();
    const size_t bracket = what.find("] ");
    throw Error(fmt::format("{}: invalid JSON: {}", p.string(),
                            bracket == std::string::npos ? what : what.substr(bracket + 2)));
  }
}

struct ManifestEntry {
  std::string sha256;
  uint64_t bytes;
};

struct Manifest {
  std::map<std::string, ManifestEntry> files;
  std::string data_fingerprint;
  int64_t step = -1;
};

Manifest read_manifest(const fs::path& dir) {
  const fs::path p = dir / kManifest;
  const std::string where = p.string();
  const json j = read_json(p);
  QKV_CHECK(j.is_object(), "{}: expected a JSON object", where);
  const json version = j.value("format_version", json());
  QKV_CHECK(version.is_number_integer(), "{}: no integer 'format_version'", where);
  QKV_CHECK(version == kFormatVersion,
            "{}: format_version {} is not supported; this qkv ({}) reads format_version {}", where,
            version.dump(), QKV_VERSION, kFormatVersion);
  const json fingerprint = j.value("data_fingerprint", json());
  const json files = j.value("files", json());
  QKV_CHECK(fingerprint.is_string(), "{}: no string 'data_fingerprint'", where);
  QKV_CHECK(files.is_object(), "{}: no object 'files'", where);

  const json step = j.value("step", json());
  QKV_CHECK(step.is_null() || (step.is_number_unsigned() && step.get<uint64_t>() <= INT64_MAX),
            "{}: 'step' is {}, expected a non-negative integer", where, step.dump());

  Manifest m{.files = {},
             .data_fingerprint = fingerprint.get<std::string>(),
             .step = step.is_null() ? -1 : step.get<int64_t>()};
  for (const auto& [name, e] : files.items()) {
    QKV_CHECK(!name.empty() && name.find('/') == std::string::npos && name != "." && name != "..",
              "{}: '{}' is not a file name", where, name);
    const json sha = e.is_object() ? e.value("sha256", json()) : json();
    const json bytes = e.is_object() ? e.value("bytes", json()) : json();
    const bool ok = sha.is_string() && sha.get_ref<const std::string&>().size() == 64 &&
                    bytes.is_number_unsigned();
    QKV_CHECK(ok, "{}: entry '{}' needs a 64-digit 'sha256' and a non-negative 'bytes'", where,
              name);
    m.files[name] = {sha.get<std::string>(), bytes.get<uint64_t>()};
  }
  return m;
}

void verify_file(const fs::path& p, const ManifestEntry& e) {
  struct stat st;
  if (::stat(p.c_str(), &st) != 0) {
    QKV_CHECK(errno != ENOENT, "{}: missing; the checkpoint is incomplete — {}", p.string(),
              kRemedy);
    throw_os_error(p.string(), "cannot read", errno);
  }
  if (!S_ISREG(st.st_mode)) require_regular(p);  // says what it is rather than its size
  QKV_CHECK(uint64_t(st.st_size) == e.bytes,
            "{}: has {} bytes, the manifest records {}; the file is truncated or changed — {}",
            p.string(), st.st_size, e.bytes, kRemedy);
  QKV_CHECK(data::sha256_file_hex(p.string()) == e.sha256,
            "{}: SHA-256 does not match the manifest; the file is corrupt — {}", p.string(),
            kRemedy);
}

SafetensorsContents read_f32(const fs::path& p) {
  SafetensorsContents c = read_safetensors(p.string());
  QKV_CHECK(c.int_tensors.empty(), "{}: tensor '{}' has dtype I32; checkpoints hold only F32",
            p.string(), c.int_tensors.begin()->first);
  return c;
}

int64_t parse_step(const fs::path& p, const std::map<std::string, std::string>& metadata) {
  const auto it = metadata.find("step");
  QKV_CHECK(it != metadata.end(), "{}: __metadata__ has no 'step'", p.string());
  const auto step = parse_uint(it->second);
  QKV_CHECK(step, "{}: __metadata__ 'step' is '{}', expected a non-negative integer", p.string(),
            it->second);
  return *step;
}

}  // namespace

CheckpointData load_checkpoint(const std::string& path, bool with_optimizer) {
  const fs::path dir = resolve_checkpoint(path);
  const Manifest manifest = read_manifest(dir);
  std::vector<const char*> needed = {kModel, kTrainerState, kConfig, kVocab};
  if (with_optimizer) needed.push_back(kOptimizer);
  for (const char* name : needed)
    QKV_CHECK(manifest.files.contains(name), "{}: does not list {}", (dir / kManifest).string(),
              name);
  for (const auto& [name, entry] : manifest.files)
    if (with_optimizer || name != kOptimizer) verify_file(dir / name, entry);

  CheckpointData out;
  out.model = read_f32(dir / kModel).tensors;
  if (with_optimizer) {
    SafetensorsContents opt = read_f32(dir / kOptimizer);
    out.optimizer = std::move(opt.tensors);
    out.optimizer_step = parse_step(dir / kOptimizer, opt.metadata);
  }
  out.trainer_state = read_json(dir / kTrainerState);
  out.config_toml = read_regular_file(dir / kConfig);
  out.vocab = read_json(dir / kVocab);
  out.data_fingerprint = manifest.data_fingerprint;
  out.manifest_step = manifest.step;
  return out;
}

}  // namespace qkv::io
