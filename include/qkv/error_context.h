// in_context: a qkv::Error from a step said again with where that step's input came from, or
// with what to do about it.
#pragma once

#include <string>
#include <string_view>

#include "qkv/error.h"

namespace qkv {

// f(), with a qkv::Error it throws said again between prefix and suffix ("--set train.lr=x: ",
// "; prepare the corpus again").
template <class F>
auto in_context(std::string_view prefix, F&& f, std::string_view suffix = "") -> decltype(f()) {
  try {
    return f();
  } catch (const Error& e) {
    throw Error(std::string(prefix) + e.what() + std::string(suffix));
  }
}

}  // namespace qkv
