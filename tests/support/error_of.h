// The message of the qkv::Error a call throws, or "" when it throws none.
#pragma once

#include <functional>
#include <string>

#include "qkv/error.h"

namespace qkv::testing {

inline std::string error_of(const std::function<void()>& f) {
  try {
    f();
  } catch (const Error& e) {
    return e.what();
  }
  return "";
}

}  // namespace qkv::testing
