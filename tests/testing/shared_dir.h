// tests/testing/shared_dir.h: for GTest cases that read ../shared (the reference corpus).
//
// PGTLS_SHARED_DIR is set by tests/CMakeLists.txt (cmake/PgtlsTest.cmake). Without it the case
// is skipped with the reason, and CTest (one test per case) counts it as skipped.
#pragma once

#include <filesystem>

#include "gtest/gtest.h"

#define PGTLS_SKIP_WITHOUT_SHARED()                                                        \
  do {                                                                                     \
    if (!std::filesystem::is_directory(PGTLS_SHARED_DIR "/corpus")) {                      \
      GTEST_SKIP() << "needs the shared corpus, not found at " PGTLS_SHARED_DIR "/corpus"; \
    }                                                                                      \
  } while (0)
