// The safetensors format (https://github.com/huggingface/safetensors): an 8-byte little-endian
// header length, a JSON header {name: {dtype, shape, data_offsets}, "__metadata__": {str: str}},
// then raw little-endian data. qkv writes F32 tensors and reads F32 and I32 ones.
#pragma once

#include <cstdint>
#include <map>
#include <string>
#include <vector>

#include "qkv/tensor.h"

namespace qkv::io {

struct IntTensor {
  Shape shape;
  std::vector<int32_t> values;
};

struct SafetensorsContents {
  std::map<std::string, std::string> metadata;
  NamedTensors tensors;                                 // F32, sorted by data offset
  std::map<std::string, IntTensor> int_tensors;         // I32
  const Tensor* find(const std::string& name) const;    // an F32 tensor, or null
};

// Reads and validates the whole file: header length against the file size, JSON syntax, dtype,
// shape against byte range, offsets in range and not overlapping. Throws qkv::Error
// "<path>: <problem>" for anything wrong; never returns garbage.
SafetensorsContents read_safetensors(const std::string& path);

// Writes F32 tensors (in the given order) and metadata. Throws qkv::Error naming the path when
// the file cannot be written. Does not fsync (the checkpoint writer does).
void write_safetensors(const std::string& path, const NamedTensors& tensors,
                       const std::map<std::string, std::string>& metadata = {});

}  // namespace qkv::io
