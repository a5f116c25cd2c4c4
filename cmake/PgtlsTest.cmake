# Test helpers shared by every tests/*/CMakeLists.txt.
#
# ../shared (the spec, the reference corpus and the reference tools) sits beside the project in
# its own repository. A test that needs it is still registered when it is missing, and is then
# reported by ctest as "Not Run (Disabled)" with the reason: a counted, visible skip, never a
# silent absence. `.ci/run` refuses to run without it.
set(PGTLS_SHARED_DIR "${PROJECT_SOURCE_DIR}/../shared" CACHE PATH
    "The shared/ folder beside the project (spec, reference corpus and tools)")
if(IS_DIRECTORY "${PGTLS_SHARED_DIR}/corpus" AND IS_DIRECTORY "${PGTLS_SHARED_DIR}/tools")
  set(PGTLS_HAVE_SHARED ON)
else()
  set(PGTLS_HAVE_SHARED OFF)
  message(WARNING "pgtlsmon: ${PGTLS_SHARED_DIR} (corpus, tools) not found: the tests that "
                  "compare with it are registered as disabled (ctest lists them as not run). "
                  "Set -DPGTLS_SHARED_DIR=... to run them.")
endif()

# pgtls_needs_shared(TEST...): these tests read ../shared; disable them when it is missing.
function(pgtls_needs_shared)
  if(NOT PGTLS_HAVE_SHARED)
    set_tests_properties(${ARGN} PROPERTIES DISABLED TRUE)
  endif()
endfunction()

# pgtls_shared_placeholder(NAME LABELS): a test generated per file of ../shared (one per corpus
# capture) does not exist without it; register NAME in their place so the absence is counted.
function(pgtls_shared_placeholder name labels)
  if(NOT PGTLS_HAVE_SHARED)
    add_test(NAME ${name} COMMAND ${CMAKE_COMMAND} -E echo "needs ${PGTLS_SHARED_DIR}")
    set_tests_properties(${name} PROPERTIES DISABLED TRUE LABELS "${labels}")
  endif()
endfunction()
