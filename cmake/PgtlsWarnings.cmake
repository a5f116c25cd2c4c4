# Our own targets build with warnings as errors; third-party headers are SYSTEM includes.
function(pgtls_warnings target)
  target_compile_options(${target} PRIVATE -Wall -Wextra -Wconversion -Wshadow -Werror)
endfunction()
