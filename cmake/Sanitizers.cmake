# PGTLS_SANITIZE: '' (none), 'address;undefined' or 'thread'. MemorySanitizer is not offered:
# it needs every library instrumented, and Debian's are not.
set(_pgtls_allowed_sanitizers "address;undefined;thread")
foreach(s IN LISTS PGTLS_SANITIZE)
  if(NOT s IN_LIST _pgtls_allowed_sanitizers)
    message(FATAL_ERROR "PGTLS_SANITIZE: unknown sanitizer '${s}' (allowed: ${_pgtls_allowed_sanitizers})")
  endif()
endforeach()
if(PGTLS_SANITIZE)
  list(JOIN PGTLS_SANITIZE "," _pgtls_san)
  add_compile_options(-fsanitize=${_pgtls_san} -fno-omit-frame-pointer -fno-sanitize-recover=all)
  add_link_options(-fsanitize=${_pgtls_san})
endif()

# PGTLS_FUZZ (tests/fuzz/): every target gets libFuzzer's coverage instrumentation; the fuzz
# executables add -fsanitize=fuzzer themselves. clang only.
if(PGTLS_FUZZ)
  if(NOT CMAKE_CXX_COMPILER_ID MATCHES "Clang")
    message(FATAL_ERROR "PGTLS_FUZZ needs clang (CC=clang CXX=clang++)")
  endif()
  add_compile_options(-fsanitize=fuzzer-no-link)
  add_link_options(-fsanitize=fuzzer-no-link)
endif()
