#include <doctest/doctest.h>

#include <unistd.h>

#include <cstring>
#include <filesystem>
#include <fstream>
#include <string>

#include "qkv/error.h"
#include "qkv/io/safetensors.h"

using namespace qkv;
using namespace qkv::io;
namespace fs = std::filesystem;

namespace {

// A fresh directory per test case under the build dir, removed when the case ends.
struct TempDir {
  fs::path dir;
  TempDir() {
    static int counter = 0;
    dir = fs::path(QKV_BINARY_DIR) / "tmp" /
          ("safetensors-" + std::to_string(getpid()) + "-" + std::to_string(counter++));
    fs::create_directories(dir);
  }
  ~TempDir() { fs::remove_all(dir); }
  std::string file(const std::string& name) const { return (dir / name).string(); }
};

void write_bytes(const std::string& path, const std::string& bytes) {
  std::ofstream(path, std::ios::binary).write(bytes.data(), std::streamsize(bytes.size()));
}

std::string u64_le(uint64_t v) {
  std::string s(8, '\0');
  for (int i = 0; i < 8; ++i) s[i] = char(v >> (8 * i));
  return s;
}

// A safetensors file from a raw header text and `data_bytes` bytes of data.
std::string raw_file(const std::string& header, size_t data_bytes) {
  return u64_le(header.size()) + header + std::string(data_bytes, '\0');
}

// The message of the qkv::Error that reading `path` throws; fails the test if none is thrown.
std::string read_error(const std::string& path) {
  try {
    read_safetensors(path);
  } catch (const Error& e) {
    const std::string msg = e.what();
    CHECK_MESSAGE(msg.starts_with(path + ": "), msg);
    CHECK_MESSAGE(msg.find('\n') == std::string::npos, msg);
    return msg;
  }
  FAIL("reading " << path << " did not throw");
  return "";
}

// Reads a file holding one entry `entry_json` named "x" and `data_bytes` of data.
std::string entry_error(const TempDir& tmp, const std::string& entry_json, size_t data_bytes) {
  const std::string path = tmp.file("entry.safetensors");
  write_bytes(path, raw_file("{\"x\":" + entry_json + "}", data_bytes));
  return read_error(path);
}

bool contains(const std::string& s, const std::string& part) {
  return s.find(part) != std::string::npos;
}

}  // namespace

TEST_CASE("safetensors: round trip keeps names, order, shapes, values and metadata") {
  TempDir tmp;
  const std::string path = tmp.file("model.safetensors");
  Tensor a = Tensor::from_vector({2, 3}, {1.5f, -2.0f, 3.25f, 0.0f, -0.0f, 1e-30f});
  Tensor b = Tensor::from_vector({}, {42.0f});
  Tensor c = Tensor::from_vector({1, 2, 1, 2}, {7, 8, 9, 10});
  Tensor empty = Tensor::empty({0, 5});
  write_safetensors(path, {{"z.last_name_first", a}, {"b", b}, {"empty", empty}, {"a.c", c}},
                    {{"kind", "decoder"}, {"note", "quotes \" and spaces"}});

  SafetensorsContents r = read_safetensors(path);
  CHECK(r.metadata ==
        std::map<std::string, std::string>{{"kind", "decoder"}, {"note", "quotes \" and spaces"}});
  CHECK(r.int_tensors.empty());
  REQUIRE(r.tensors.size() == 4);
  const char* names[] = {"z.last_name_first", "b", "empty", "a.c"};
  const Tensor* given[] = {&a, &b, &empty, &c};
  for (int i = 0; i < 4; ++i) {
    CAPTURE(i);
    CHECK(r.tensors[i].first == names[i]);
    CHECK(r.tensors[i].second.shape() == given[i]->shape());
    CHECK(std::memcmp(r.tensors[i].second.data(), given[i]->data(),
                      given[i]->numel() * sizeof(float)) == 0);
  }
  REQUIRE(r.find("a.c") != nullptr);
  CHECK(r.find("a.c")->to_vector() == c.to_vector());
  CHECK(r.find("missing") == nullptr);
}

TEST_CASE("safetensors: writer pads the header with spaces to a multiple of 8 bytes") {
  TempDir tmp;
  for (const std::string name : {"a", "ab", "abc", "abcd", "abcde", "abcdef", "abcdefg", "h"}) {
    const std::string path = tmp.file(name + ".safetensors");
    write_safetensors(path, {{name, Tensor::ones({3})}});
    std::ifstream in(path, std::ios::binary);
    std::string bytes((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
    uint64_t n = 0;
    for (int i = 7; i >= 0; --i) n = (n << 8) | static_cast<unsigned char>(bytes[i]);
    CAPTURE(name);
    CHECK(n % 8 == 0);
    CHECK(bytes.size() == 8 + n + 12);
    const std::string header = bytes.substr(8, n);
    CHECK(header.starts_with("{\"" + name + "\":{\"dtype\":\"F32\",\"shape\":[3],"));
    const size_t close = header.rfind('}');
    CHECK(header.find_first_not_of(' ', close + 1) == std::string::npos);
  }
}

TEST_CASE("safetensors: reads I32 tensors and sorts F32 tensors by data offset") {
  TempDir tmp;
  const std::string path = tmp.file("ids.safetensors");
  // Listed out of offset order, as other writers may do; "__metadata__" last.
  const std::string header =
      R"({"w":{"dtype":"F32","shape":[2],"data_offsets":[24,32]},)"
      R"("ids":{"dtype":"I32","shape":[2,2],"data_offsets":[8,24]},)"
      R"("v":{"dtype":"F32","shape":[2],"data_offsets":[0,8]},"__metadata__":{"k":"v"}})";
  std::string data(32, '\0');
  const float v[2] = {0.5f, -1.0f}, w[2] = {3.0f, 4.0f};
  const int32_t ids[4] = {3, -1, 0, 2147483647};
  std::memcpy(data.data(), v, 8);
  std::memcpy(data.data() + 8, ids, 16);
  std::memcpy(data.data() + 24, w, 8);
  write_bytes(path, u64_le(header.size()) + header + data);

  SafetensorsContents r = read_safetensors(path);
  REQUIRE(r.tensors.size() == 2);
  CHECK(r.tensors[0].first == "v");
  CHECK(r.tensors[0].second.to_vector() == std::vector<float>{0.5f, -1.0f});
  CHECK(r.tensors[1].first == "w");
  CHECK(r.tensors[1].second.to_vector() == std::vector<float>{3.0f, 4.0f});
  REQUIRE(r.int_tensors.count("ids") == 1);
  CHECK(r.int_tensors.at("ids").shape == Shape{2, 2});
  CHECK(r.int_tensors.at("ids").values == std::vector<int32_t>{3, -1, 0, 2147483647});
  CHECK(r.find("ids") == nullptr);
  CHECK(r.metadata.at("k") == "v");
}

TEST_CASE("safetensors: a missing file is an error naming the path") {
  TempDir tmp;
  CHECK(read_error(tmp.file("nope.safetensors")) ==
        tmp.file("nope.safetensors") + ": cannot open: No such file or directory");
  CHECK(read_error(tmp.dir.string()) == tmp.dir.string() + ": a directory, not a regular file");
}

TEST_CASE("safetensors: a file shorter than 8 bytes is rejected") {
  TempDir tmp;
  const std::string path = tmp.file("short.safetensors");
  write_bytes(path, std::string("\x10\0\0", 3));
  CHECK(contains(read_error(path), "file has 3 bytes, too few for the 8-byte header length"));
}

TEST_CASE("safetensors: a header longer than the file is reported as truncated") {
  TempDir tmp;
  const std::string path = tmp.file("cut.safetensors");
  write_bytes(path, u64_le(1000) + "{}");
  CHECK(read_error(path) == path +
                                ": truncated: the header claims 1000 bytes but the file has "
                                "only 2 after the 8-byte length");
  write_bytes(path, u64_le(UINT64_MAX) + "{}");
  CHECK(read_error(path) == path +
                                ": truncated: the header claims 18446744073709551615 bytes "
                                "but the file has only 2 after the 8-byte length");
  write_bytes(path, u64_le(3) + "{}");
  CHECK(contains(read_error(path), "the header claims 3 bytes but the file has only 2"));
}

TEST_CASE("safetensors: a header that is not JSON or not an object is rejected") {
  TempDir tmp;
  const std::string path = tmp.file("json.safetensors");
  write_bytes(path, raw_file("{\"x\": {", 0));
  CHECK(read_error(path) == path +
                                ": header is not valid JSON: parse error at line 1, column 8: "
                                "syntax error while parsing object key - unexpected end of "
                                "input; expected string literal");
  write_bytes(path, raw_file("{\"x\" 1}", 0));
  CHECK(contains(read_error(path), "header is not valid JSON: "));
  write_bytes(path, raw_file("", 0));
  CHECK(read_error(path) == path + ": the header is empty (length 0); expected a JSON object");
  // Found by fuzz/fuzz_safetensors.cpp: nlohmann reports this as out_of_range, not parse_error.
  write_bytes(path, raw_file(R"({"x": {"shape": [-2e7770]}})", 0));
  CHECK(contains(read_error(path), "header is not valid JSON (a number is out of range)"));
  write_bytes(path, raw_file("[1, 2]", 0));
  CHECK(contains(read_error(path), "header is not a JSON object"));
  write_bytes(path, raw_file(R"({"__metadata__": {"a": 1}})", 0));
  CHECK(contains(read_error(path), "__metadata__ 'a' is 1, not a string"));
}

TEST_CASE("safetensors: malformed entries name the tensor and the missing field") {
  TempDir tmp;
  CHECK(contains(entry_error(tmp, "3", 0), "header entry 'x' is not an object"));
  CHECK(contains(entry_error(tmp, R"({"shape":[1],"data_offsets":[0,4]})", 4),
                 "header entry 'x' has no 'dtype'"));
  CHECK(contains(entry_error(tmp, R"({"dtype":"F32","data_offsets":[0,4]})", 4),
                 "header entry 'x' has no 'shape'"));
  CHECK(contains(entry_error(tmp, R"({"dtype":"F32","shape":[1]})", 4),
                 "header entry 'x' has no 'data_offsets'"));
  CHECK(contains(entry_error(tmp, R"({"dtype":"F32","shape":[-1],"data_offsets":[0,4]})", 4),
                 "tensor 'x' has shape [-1]; expected a list of non-negative integers"));
  CHECK(contains(entry_error(tmp, R"({"dtype":"F32","shape":[1],"data_offsets":[4,0]})", 4),
                 "tensor 'x' has data_offsets [4,0]"));
}

TEST_CASE("safetensors: unsupported dtypes are rejected naming the tensor and dtype") {
  TempDir tmp;
  CHECK(contains(entry_error(tmp, R"({"dtype":"F16","shape":[2],"data_offsets":[0,4]})", 4),
                 "tensor 'x' has dtype \"F16\"; qkv reads only F32 and I32"));
  CHECK(contains(entry_error(tmp, R"({"dtype":7,"shape":[2],"data_offsets":[0,4]})", 4),
                 "tensor 'x' has dtype 7"));
}

TEST_CASE("safetensors: a byte range that does not match the shape is rejected") {
  TempDir tmp;
  CHECK(contains(entry_error(tmp, R"({"dtype":"F32","shape":[2,3],"data_offsets":[0,20]})", 20),
                 "tensor 'x' has shape [2,3] (24 bytes as F32) but data_offsets [0, 20] span 20"));
  CHECK(contains(
      entry_error(tmp, R"({"dtype":"I32","shape":[4294967296,4294967296],"data_offsets":[0,0]})",
                  0),
      "tensor 'x' has shape [4294967296,4294967296] (too many bytes as I32)"));
}

TEST_CASE("safetensors: offsets past the data section are reported as truncated") {
  TempDir tmp;
  CHECK(contains(entry_error(tmp, R"({"dtype":"F32","shape":[4],"data_offsets":[4,20]})", 12),
                 "tensor 'x' needs bytes [4, 20) of the data section, which has only 12; the "
                 "file is truncated"));
}

TEST_CASE("safetensors: overlapping byte ranges are rejected naming both tensors") {
  TempDir tmp;
  const std::string path = tmp.file("overlap.safetensors");
  write_bytes(path, raw_file(R"({"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]},)"
                             R"("b":{"dtype":"I32","shape":[2],"data_offsets":[4,12]}})",
                             12));
  CHECK(contains(read_error(path), "tensor 'b' at bytes [4, 12) overlaps tensor 'a' at [0, 8)"));
  // An empty tensor occupies no bytes, so it overlaps nothing.
  write_bytes(path, raw_file(R"({"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]},)"
                             R"("b":{"dtype":"F32","shape":[0],"data_offsets":[4,4]}})",
                             8));
  CHECK(read_safetensors(path).tensors.size() == 2);
}

TEST_CASE("safetensors: tensors of rank above 4 are rejected") {
  TempDir tmp;
  CHECK(contains(entry_error(tmp, R"({"dtype":"F32","shape":[1,1,1,1,1],"data_offsets":[0,4]})", 4),
                 "tensor 'x' has rank 5; qkv supports at most 4"));
}

TEST_CASE("safetensors: writing to an impossible path names the path") {
  TempDir tmp;
  const std::string path = tmp.file("no-such-dir/model.safetensors");
  try {
    write_safetensors(path, {{"a", Tensor::ones({1})}});
    FAIL("write did not throw");
  } catch (const Error& e) {
    CHECK(std::string(e.what()).starts_with(path + ": cannot open for writing"));
  }
  CHECK_THROWS_AS(write_safetensors(tmp.file("dup.safetensors"),
                                    {{"a", Tensor::ones({1})}, {"a", Tensor::ones({1})}}),
                  Error);
}
