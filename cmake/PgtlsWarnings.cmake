# Our own targets build with warnings as errors; third-party headers are SYSTEM includes.
function(pgtls_warnings target)
  target_compile_options(${target} PRIVATE -Wall -Wextra -Wconversion -Wshadow -Werror)
  if(PGTLS_FUZZ)
    # clang's warning set is not gcc's, which CI gates on: warn, do not fail the fuzz build.
    target_compile_options(${target} PRIVATE -Wno-error)
  endif()
endfunction()
