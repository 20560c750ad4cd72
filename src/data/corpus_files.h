// The files of a prepared corpus and their checksums, shared by its reader (corpus.cpp) and its
// writer (prepare.cpp). docs/data-format.md is the user-facing description.
#pragma once

#include <cstdint>
#include <nlohmann/json.hpp>
#include <string>
#include <string_view>
#include <vector>

namespace qkv::data {

inline constexpr const char* kCorpusHeader = "corpus.json";
inline constexpr const char* kCorpusIds = "ids.bin";
inline constexpr const char* kCorpusPairs = "pairs.bin";  // per example: src, tgt, line (int64)
inline constexpr const char* kCorpusFormat = "qkv-corpus";

// The XXH3-64 checksums of a file's 64 KiB blocks: the contents of "<file>.xxh3".
std::vector<uint64_t> block_checksums(std::string_view bytes);
uint64_t block_checksum(const void* data, size_t n);

// The narrowest id width, in bytes, for a vocabulary of n symbols.
int id_width_for(int64_t n);

// corpus.json's whole text from its header object: {"format", "version", "checksum", "header"},
// the checksum being the SHA-256 of header.dump(), so that any changed byte is noticed.
std::string corpus_json(const nlohmann::json& header);

}  // namespace qkv::data
