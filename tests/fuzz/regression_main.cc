// The regression runner linked with each fuzz target's LLVMFuzzerTestOneInput in every build
// (gcc or clang, sanitized or not): feeds it every file of the directories (or files) named on
// the command line, so past crashes and the seed corpus run as ordinary CTests.
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <vector>

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size);

int main(int argc, char** argv) {
  namespace fs = std::filesystem;
  size_t inputs = 0;
  for (int i = 1; i < argc; ++i) {
    std::vector<fs::path> files;
    std::error_code ec;
    if (fs::is_directory(argv[i], ec)) {
      for (const auto& e : fs::recursive_directory_iterator(argv[i]))
        if (e.is_regular_file()) files.push_back(e.path());
    } else if (fs::is_regular_file(argv[i], ec)) {
      files.emplace_back(argv[i]);
    }  // a missing directory (no regressions yet) is fine
    for (const auto& f : files) {
      std::ifstream in(f, std::ios::binary);
      std::vector<uint8_t> bytes((std::istreambuf_iterator<char>(in)),
                                 std::istreambuf_iterator<char>());
      // A heap copy of exactly the input's size, so ASan sees reads past its end.
      auto* buf = new uint8_t[bytes.empty() ? 1 : bytes.size()];
      std::copy(bytes.begin(), bytes.end(), buf);
      LLVMFuzzerTestOneInput(buf, bytes.size());
      delete[] buf;
      ++inputs;
    }
  }
  std::printf("%zu inputs ran\n", inputs);
  return 0;
}
