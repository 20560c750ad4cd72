// What a request did wrong, with the HTTP status that says so. The server answers it as
// {"error": "<message>"}; a plain qkv::Error from the library (a character outside the
// vocabulary, a bad option) is bad input too, and answers 400.
#pragma once

#include <fmt/format.h>

#include <string>

#include "qkv/error.h"

namespace qkv::serve {

struct HttpError : Error {
  int status;
  HttpError(int status, const std::string& message) : Error(message), status(status) {}
};

template <class... Args>
[[noreturn]] void fail(int status, fmt::format_string<Args...> format, Args&&... args) {
  throw HttpError(status, fmt::format(format, std::forward<Args>(args)...));
}

}  // namespace qkv::serve
