// libFuzzer target: read_safetensors must either return or throw qkv::Error on any bytes; a
// crash, a sanitizer report or any other exception is a bug. read_safetensors takes a path, so
// each input goes through a per-process temporary file (in /dev/shm when available).
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <string>

#include "qkv/error.h"
#include "qkv/io/safetensors.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  namespace fs = std::filesystem;
  static const std::string path =
      ((fs::is_directory("/dev/shm") ? fs::path("/dev/shm") : fs::temp_directory_path()) /
       ("qkv-fuzz-safetensors-" + std::to_string(getpid())))
          .string();
  std::ofstream(path, std::ios::binary | std::ios::trunc)
      .write(reinterpret_cast<const char*>(data), static_cast<std::streamsize>(size));
  try {
    qkv::io::read_safetensors(path);
  } catch (const qkv::Error&) {
  }
  return 0;
}
