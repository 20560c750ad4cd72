// safetensors: a validating reader (every entry is checked before any data is copied) and a
// writer whose layout matches the reference implementation (header padded to 8 bytes).
#include "qkv/io/safetensors.h"

#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <bit>
#include <cerrno>
#include <cmath>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <set>

#include <nlohmann/json.hpp>

#include "qkv/error.h"
#include "qkv/io/durable_file.h"
#include "qkv/io/regular_file.h"

namespace qkv::io {

// Tensors are read and written straight from memory, so the host must match the file's byte order.
static_assert(std::endian::native == std::endian::little, "safetensors data is little-endian");

namespace {

using nlohmann::json;

// One header entry after validation; begin/end are byte offsets into the data section.
struct Entry {
  std::string name;
  bool is_int = false;
  Shape shape;
  uint64_t begin = 0, end = 0;
};

uint64_t read_u64_le(const unsigned char* p) {
  uint64_t v = 0;
  for (int i = 7; i >= 0; --i) v = (v << 8) | p[i];
  return v;
}

Entry parse_entry(const std::string& path, const std::string& name, const json& e,
                  uint64_t data_size) {
  QKV_CHECK(e.is_object(), "{}: header entry '{}' is not an object", path, name);
  for (const char* key : {"dtype", "shape", "data_offsets"})
    QKV_CHECK(e.contains(key), "{}: header entry '{}' has no '{}'", path, name, key);

  Entry out;
  out.name = name;
  const json& dtype = e["dtype"];
  const bool known = dtype.is_string() && (dtype == "F32" || dtype == "I32");
  QKV_CHECK(known, "{}: tensor '{}' has dtype {}; qkv reads only F32 and I32", path, name,
            dtype.dump());
  out.is_int = dtype == "I32";

  const json& shape = e["shape"];
  const bool shape_ok = shape.is_array() && std::all_of(shape.begin(), shape.end(), [](auto& d) {
                          return d.is_number_unsigned();
                        });
  QKV_CHECK(shape_ok, "{}: tensor '{}' has shape {}; expected a list of non-negative integers",
            path, name, shape.dump());
  QKV_CHECK(shape.size() <= Shape::kMaxRank, "{}: tensor '{}' has rank {}; qkv supports at most {}",
            path, name, shape.size(), Shape::kMaxRank);

  const json& offsets = e["data_offsets"];
  const bool offsets_ok = offsets.is_array() && offsets.size() == 2 &&
                          offsets[0].is_number_unsigned() && offsets[1].is_number_unsigned() &&
                          offsets[0].get<uint64_t>() <= offsets[1].get<uint64_t>();
  QKV_CHECK(offsets_ok,
            "{}: tensor '{}' has data_offsets {}; expected [begin, end] with begin <= end", path,
            name, offsets.dump());
  out.begin = offsets[0].get<uint64_t>();
  out.end = offsets[1].get<uint64_t>();

  // Saturating byte count: an absurd shape must fail the comparison, not wrap around to pass it.
  uint64_t bytes = 4;
  bool overflow = false;
  for (const json& d : shape) {
    const auto extent = d.get<uint64_t>();
    overflow = overflow || __builtin_mul_overflow(bytes, extent, &bytes);
    out.shape.push_back(static_cast<int64_t>(std::min<uint64_t>(extent, INT64_MAX)));
  }
  QKV_CHECK(!overflow && bytes == out.end - out.begin,
            "{}: tensor '{}' has shape {} ({} bytes as {}) but data_offsets [{}, {}] span {} bytes",
            path, name, shape.dump(), overflow ? std::string("too many") : std::to_string(bytes),
            dtype.get<std::string>(), out.begin, out.end, out.end - out.begin);
  QKV_CHECK(out.end <= data_size,
            "{}: tensor '{}' needs bytes [{}, {}) of the data section, which has only {}; the file "
            "is truncated",
            path, name, out.begin, out.end, data_size);
  return out;
}

// Sorted by offset; empty tensors occupy no bytes, so they cannot overlap anything.
void check_no_overlap(const std::string& path, const std::vector<Entry>& sorted) {
  const Entry* prev = nullptr;
  for (const Entry& e : sorted) {
    if (e.begin == e.end) continue;
    QKV_CHECK(!prev || e.begin >= prev->end,
              "{}: tensor '{}' at bytes [{}, {}) overlaps tensor '{}' at [{}, {})", path, e.name,
              e.begin, e.end, prev->name, prev->begin, prev->end);
    prev = &e;
  }
}

// Weights that are not numbers would make every output nan (eval would print "loss nan" and
// succeed), so a file holding one is refused as damaged whatever wrote it.
void check_finite(const std::string& path, const std::string& name, const Tensor& t) {
  const float* p = t.data();
  const auto bad = std::find_if(p, p + t.numel(), [](float x) { return !std::isfinite(x); });
  QKV_CHECK(bad == p + t.numel(),
            "{}: tensor '{}' holds {} at element {}; the file is damaged (or was saved from a "
            "diverged run): use an earlier checkpoint",
            path, name, *bad, bad - p);
}

// Closes the file however reading ends.
struct FdCloser {
  int fd;
  ~FdCloser() { ::close(fd); }
};

}  // namespace

const Tensor* SafetensorsContents::find(const std::string& name) const {
  for (const auto& [n, t] : tensors)
    if (n == name) return &t;
  return nullptr;
}

SafetensorsContents read_safetensors(const std::string& path) {
  const FdCloser in{open_regular(path)};
  struct stat st {};
  if (::fstat(in.fd, &st) != 0) throw_os_error(path, "cannot read", errno);
  const uint64_t file_size = uint64_t(st.st_size);
  QKV_CHECK(file_size >= 8, "{}: file has {} bytes, too few for the 8-byte header length", path,
            file_size);

  unsigned char len_bytes[8];
  read_at(in.fd, path, 0, len_bytes, 8);
  const uint64_t header_len = read_u64_le(len_bytes);
  QKV_CHECK(header_len <= file_size - 8,
            "{}: truncated: the header claims {} bytes but the file has only {} after the 8-byte "
            "length",
            path, header_len, file_size - 8);
  QKV_CHECK(header_len > 0, "{}: the header is empty (length 0); expected a JSON object", path);
  const uint64_t data_start = 8 + header_len, data_size = file_size - data_start;

  std::string text(header_len, '\0');
  read_at(in.fd, path, 8, text.data(), header_len);
  json header;
  try {
    header = json::parse(text);
  } catch (const json::parse_error& e) {
    // nlohmann prefixes "[json.exception.parse_error.101] "; the rest says where and what.
    const std::string what = e.what();
    const size_t bracket = what.find("] ");
    throw Error(fmt::format("{}: header is not valid JSON: {}", path,
                            bracket == std::string::npos ? what : what.substr(bracket + 2)));
  } catch (const json::exception&) {  // out_of_range: a number too large for a double
    throw Error(fmt::format("{}: header is not valid JSON (a number is out of range)", path));
  }
  QKV_CHECK(header.is_object(), "{}: header is not a JSON object", path);

  SafetensorsContents out;
  std::vector<Entry> entries;
  for (const auto& [name, value] : header.items()) {
    if (name == "__metadata__") {
      QKV_CHECK(value.is_object(), "{}: __metadata__ is not an object", path);
      for (const auto& [key, v] : value.items()) {
        QKV_CHECK(v.is_string(), "{}: __metadata__ '{}' is {}, not a string", path, key, v.dump());
        out.metadata[key] = v.get<std::string>();
      }
      continue;
    }
    entries.push_back(parse_entry(path, name, value, data_size));
  }
  std::sort(entries.begin(), entries.end(), [](const Entry& a, const Entry& b) {
    return std::pair(a.begin, a.end) < std::pair(b.begin, b.end);
  });
  check_no_overlap(path, entries);

  for (const Entry& e : entries) {
    const uint64_t bytes = e.end - e.begin;
    if (e.is_int) {
      IntTensor t{.shape = e.shape, .values = std::vector<int32_t>(bytes / 4)};
      if (bytes) read_at(in.fd, path, data_start + e.begin, t.values.data(), bytes);
      out.int_tensors.emplace(e.name, std::move(t));
    } else {
      Tensor t = Tensor::empty(e.shape);
      if (bytes) read_at(in.fd, path, data_start + e.begin, t.data(), bytes);
      check_finite(path, e.name, t);
      out.tensors.emplace_back(e.name, std::move(t));
    }
  }
  return out;
}

void write_safetensors(const std::string& path, const NamedTensors& tensors,
                       const std::map<std::string, std::string>& metadata) {
  nlohmann::ordered_json header = nlohmann::ordered_json::object();
  if (!metadata.empty()) header["__metadata__"] = metadata;
  std::set<std::string> seen{"__metadata__"};
  uint64_t offset = 0;
  for (const auto& [name, t] : tensors) {
    QKV_CHECK(t.defined(), "{}: tensor '{}' is undefined", path, name);
    QKV_CHECK(seen.insert(name).second, "{}: tensor name '{}' is used twice or reserved", path,
              name);
    const uint64_t bytes = static_cast<uint64_t>(t.numel()) * sizeof(float);
    header[name] = {{"dtype", "F32"},
                    {"shape", std::vector<int64_t>(t.shape().begin(), t.shape().end())},
                    {"data_offsets", {offset, offset + bytes}}};
    offset += bytes;
  }
  std::string text;
  try {
    text = header.dump();
  } catch (const nlohmann::ordered_json::type_error&) {
    throw Error(fmt::format("{}: tensor names and metadata must be valid UTF-8", path));
  }
  // The reference implementation pads with spaces so the data section starts 8-byte aligned.
  text.append((8 - text.size() % 8) % 8, ' ');

  std::ofstream out(output_target(path), std::ios::binary | std::ios::trunc);
  QKV_CHECK(out.is_open(), "{}: cannot open for writing ({})", path, std::strerror(errno));
  unsigned char len_bytes[8];
  for (int i = 0; i < 8; ++i) len_bytes[i] = static_cast<unsigned char>(text.size() >> (8 * i));
  out.write(reinterpret_cast<const char*>(len_bytes), 8);
  out.write(text.data(), static_cast<std::streamsize>(text.size()));
  for (const auto& [name, t] : tensors)
    out.write(reinterpret_cast<const char*>(t.data()),
              static_cast<std::streamsize>(t.numel() * sizeof(float)));
  out.close();
  QKV_CHECK(!out.fail(), "{}: write failed ({})", path, std::strerror(errno));
}

}  // namespace qkv::io
