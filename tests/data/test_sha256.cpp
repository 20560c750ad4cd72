#include <doctest/doctest.h>

#include <filesystem>
#include <fstream>
#include <string>

#include "support/temp_dir.h"
#include "qkv/data/sha256.h"
#include "qkv/error.h"

using namespace qkv::data;

// Test vectors from FIPS 180-4's examples (NIST CSRC "SHA256.pdf") and the NESSIE/NIST set.
TEST_CASE("sha256: matches the standard test vectors") {
  CHECK(sha256_hex("abc") == "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
  CHECK(sha256_hex("") == "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855");
  CHECK(sha256_hex("abcdbcdecdefdefgefghfghighijhijkijkljklmklmnlmnomnopnopq") ==
        "248d6a61d20638b8e5c026930c3e6039a33ce45964ff2167f6ecedd419db06c1");
  CHECK(sha256_hex(std::string(1000000, 'a')) ==
        "cdc76e5c9914fb9281a1c7e284d73e67f1809a48a497200e046d39ccc7112cd0");
}

TEST_CASE("sha256: feeding bytes in pieces gives the same digest as in one go") {
  std::string text;
  for (int i = 0; i < 300; ++i) text += char('a' + i % 26);
  // Piece sizes straddle the 64-byte block and the 56-byte padding boundary.
  for (size_t piece : {1, 7, 55, 56, 63, 64, 65, 129}) {
    Sha256 sha;
    for (size_t i = 0; i < text.size(); i += piece)
      sha.update(std::string_view(text).substr(i, piece));
    CHECK(to_hex(sha.digest()) == sha256_hex(text));
  }
}

TEST_CASE("sha256: a file hashes like its contents, and a missing file names its path") {
  qkv::testing::TempDir dir("sha256");
  const std::string path = dir.write("abc.txt", "abc");
  CHECK(sha256_file_hex(path) == sha256_hex("abc"));
  const std::string missing = (dir.path() / "missing.txt").string();
  CHECK_THROWS_WITH_AS(sha256_file_hex(missing), doctest::Contains(missing.c_str()), qkv::Error);
}
