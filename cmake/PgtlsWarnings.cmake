# Our own targets build with these warnings; third-party headers are SYSTEM includes.
# -Werror only with PGTLS_WERROR (scripts/test.sh, i.e. CI, turns it on): a user's plain
# `cmake -DCMAKE_BUILD_TYPE=Release` build must not fail on a new compiler's new warning.
option(PGTLS_WERROR "Treat compiler warnings as errors (CI)" OFF)

function(pgtls_warnings target)
  target_compile_options(${target} PRIVATE -Wall -Wextra -Wconversion -Wshadow)
  if(PGTLS_WERROR AND NOT PGTLS_FUZZ)
    # clang's warning set is not gcc's, which CI gates on: the fuzz build warns, never fails.
    target_compile_options(${target} PRIVATE -Werror)
  endif()
endfunction()
