// Errors that bad input can cause (a wrong shape, a corrupt file, a bad config value).
// Bugs are not Errors: those are asserts. The qkv command prints an Error as one line.
#pragma once

#include <stdexcept>

#include <fmt/format.h>

namespace qkv {

struct Error : std::runtime_error {
  using std::runtime_error::runtime_error;
};

}  // namespace qkv

// Throws qkv::Error with a fmt-formatted message when cond is false.
#define QKV_CHECK(cond, ...)                                                  \
  do {                                                                        \
    if (!(cond)) [[unlikely]] throw ::qkv::Error(::fmt::format(__VA_ARGS__)); \
  } while (0)
