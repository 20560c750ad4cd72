#include "loopback.h"

#include <arpa/inet.h>

#include <algorithm>
#include <cctype>
#include <string>

namespace qkv::serve {
namespace {

// A port: 1 to 5 digits, at most 65535.
bool is_port(std::string_view s) {
  if (s.empty() || s.size() > 5 ||
      !std::all_of(s.begin(), s.end(), [](char c) { return c >= '0' && c <= '9'; }))
    return false;
  return std::stoi(std::string(s)) <= 65535;
}

bool is_ipv6_loopback(std::string_view s) {
  in6_addr a{};
  return inet_pton(AF_INET6, std::string(s).c_str(), &a) == 1 && IN6_IS_ADDR_LOOPBACK(&a);
}

}  // namespace

bool is_loopback(std::string_view name) {
  std::string lower(name);
  std::transform(lower.begin(), lower.end(), lower.begin(),
                 [](unsigned char c) { return char(std::tolower(c)); });
  if (lower == "localhost") return true;
  // inet_pton takes exactly four decimal parts: no "127.1", no octal, no trailing name.
  in_addr v4{};
  if (inet_pton(AF_INET, lower.c_str(), &v4) == 1) return (ntohl(v4.s_addr) >> 24) == 127;
  return is_ipv6_loopback(lower);
}

bool is_loopback_host_header(std::string_view host) {
  if (host.starts_with('[')) {
    const size_t close = host.find(']');
    if (close == std::string_view::npos) return false;
    const std::string_view rest = host.substr(close + 1);
    return is_ipv6_loopback(host.substr(1, close - 1)) &&
           (rest.empty() || (rest.starts_with(':') && is_port(rest.substr(1))));
  }
  const size_t colon = host.find(':');
  if (colon != std::string_view::npos && !is_port(host.substr(colon + 1))) return false;
  // Without brackets, only names and IPv4 literals: a bare "::1" fails the port test above.
  const std::string_view name = host.substr(0, colon);
  return !name.empty() && is_loopback(name);
}

}  // namespace qkv::serve
