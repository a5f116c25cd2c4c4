# Writes pgtlsmon.1.gz with help2man from the binary's own --help, plus a SUBCOMMANDS section
# holding `pgtlsmon watch --help` and `pgtlsmon replay --help` verbatim, so the man page can
# never disagree with the flags. Run by package.cmake at build time:
#   cmake -DHELP2MAN=... -DBIN=.../pgtlsmon -DOUT=.../pgtlsmon.1.gz -P manpage.cmake
get_filename_component(dir "${OUT}" DIRECTORY)
set(include "[SUBCOMMANDS]\n")
foreach(sub watch replay)
  execute_process(COMMAND "${BIN}" ${sub} --help OUTPUT_VARIABLE text RESULT_VARIABLE rc)
  if(NOT rc EQUAL 0)
    message(FATAL_ERROR "${BIN} ${sub} --help failed (${rc})")
  endif()
  # roff: a backslash is \e, an option's dash \- (a plain - may print as a hyphen), and a
  # line starting with . or ' would be a request.
  string(REPLACE "\\" "\\e" text "${text}")
  string(REPLACE "-" "\\-" text "${text}")
  string(REGEX REPLACE "(^|\n)([.'])" "\\1\\\\&\\2" text "${text}")
  string(APPEND include ".SS \"pgtlsmon ${sub}\"\n.nf\n${text}.fi\n")
endforeach()
file(WRITE "${dir}/pgtlsmon.h2m" "${include}")
execute_process(
  COMMAND "${HELP2MAN}" --no-info --section=1 --include=${dir}/pgtlsmon.h2m
          "--name=passive TLS monitor for PostgreSQL" --output=${dir}/pgtlsmon.1 "${BIN}"
  RESULT_VARIABLE rc)
if(NOT rc EQUAL 0)
  message(FATAL_ERROR "help2man failed (${rc})")
endif()
execute_process(COMMAND gzip -9nf "${dir}/pgtlsmon.1" RESULT_VARIABLE rc)
if(NOT rc EQUAL 0)
  message(FATAL_ERROR "gzip failed (${rc})")
endif()
