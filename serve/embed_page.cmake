# Writes OUT, a C++ file defining qkv::serve::page_html() as the text of IN (serve/page.html),
# so the binary serves its page without reading any file at run time.
file(READ "${IN}" page)
string(FIND "${page}" ")qkvpage\"" clash)
if(NOT clash EQUAL -1)
  message(FATAL_ERROR "${IN} holds ')qkvpage\"', which ends the raw string it is embedded in")
endif()
file(WRITE "${OUT}" "// Generated from serve/page.html by serve/embed_page.cmake; edit the page, not this.
#include \"page.h\"

namespace qkv::serve {

std::string_view page_html() {
  static constexpr std::string_view kPage = R\"qkvpage(${page})qkvpage\";
  return kPage;
}

}  // namespace qkv::serve
")
