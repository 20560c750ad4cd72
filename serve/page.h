// The page `qkv serve` answers at /: serve/page.html, compiled in (serve/embed_page.cmake).
#pragma once

#include <string_view>

namespace qkv::serve {

std::string_view page_html();

}  // namespace qkv::serve
