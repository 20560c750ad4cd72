# cmake -DQKV=... -DHELP2MAN=... -DOUT=... -P man_page.cmake: qkv(1) from the command's own help.
# help2man reads `qkv --help` and `qkv --version`; each command's --help (and each of its own
# commands', as `qkv data prepare`) follows as a section of its own.
function(subcommands out)  # the commands `qkv ARGN --help` lists
  execute_process(COMMAND ${QKV} ${ARGN} --help OUTPUT_VARIABLE help RESULT_VARIABLE failed)
  if(failed)
    message(FATAL_ERROR "qkv ${ARGN} --help failed")
  endif()
  string(REGEX REPLACE ".*\nSubcommands:\n" "" listed "${help}")
  set(names "")
  if(NOT listed STREQUAL help)
    string(REGEX MATCHALL "\n?  [a-z][a-z-]*  " found "${listed}")
    foreach(name IN LISTS found)
      string(STRIP "${name}" name)
      list(APPEND names ${name})
    endforeach()
  endif()
  set(${out} ${names} PARENT_SCOPE)
endfunction()

function(append_section text_var)  # one command's help, as preformatted roff
  set(path ${ARGN})
  list(JOIN path " " words)
  execute_process(COMMAND ${QKV} ${path} --help OUTPUT_VARIABLE help)
  string(REPLACE "\\" "\\e" help "${help}")
  string(REGEX REPLACE "(^|\n)([.'])" "\\1\\\\&\\2" help "${help}")
  set(${text_var} "${${text_var}}.SS \"qkv ${words}\"\n.nf\n${help}.fi\n" PARENT_SCOPE)
endfunction()

set(text "[COMMANDS]\nEach command's options, as `qkv COMMAND --help` prints them.\n")
subcommands(commands)
foreach(command IN LISTS commands)
  append_section(text ${command})
  subcommands(nested ${command})
  foreach(sub IN LISTS nested)
    append_section(text ${command} ${sub})
  endforeach()
endforeach()
string(APPEND text "[SEE ALSO]\nThe configuration keys, the data, checkpoint and serve formats: "
                   "the files in PREFIX/share/doc/qkv (docs/ in the source), and the example "
                   "configs in PREFIX/share/qkv/configs (PREFIX is /usr for the .deb).\n")
get_filename_component(dir ${OUT} DIRECTORY)
file(WRITE ${dir}/qkv_man_commands.h2m "${text}")
execute_process(COMMAND ${HELP2MAN} --no-info --section=1 --source=qkv
                        "--name=train small transformers on character-level text, on CPUs"
                        --include=${dir}/qkv_man_commands.h2m --output=${OUT} ${QKV}
                RESULT_VARIABLE failed)
if(failed)
  message(FATAL_ERROR "help2man failed on ${QKV}")
endif()
