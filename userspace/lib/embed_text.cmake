# cmake -DIN=file -DOUT=header -DNAME=kIdentifier -P embed_text.cmake:
# writes IN's text into OUT as a std::string_view constant NAME.
file(READ ${IN} content)
file(WRITE ${OUT} "// Generated from ${IN}; do not edit.\n#pragma once\n#include <string_view>\ninline constexpr std::string_view ${NAME} = R\"cvmembed(${content})cvmembed\";\n")
