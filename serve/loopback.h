// Whether a name or a Host header names this machine only. A DNS-rebinding page makes a browser
// send its own name as the Host; only an exact loopback name passes: `localhost`, an IPv4
// literal in 127.0.0.0/8 or the IPv6 literal ::1, with an optional port. A test on the text's
// start would let `127.0.0.1.evil.com` through.
#pragma once

#include <string_view>

namespace qkv::serve {

// An address or name without a port: "localhost", "127.0.0.1", "127.3.2.1", "::1".
bool is_loopback(std::string_view name);

// A Host header's value: a loopback name, "[::1]" in brackets, each with an optional ":port".
bool is_loopback_host_header(std::string_view host);

}  // namespace qkv::serve
