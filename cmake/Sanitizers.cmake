# THREADFLEET_SANITIZE=ON builds everything with ASan + UBSan (the `asan` preset).
option(THREADFLEET_SANITIZE "Build with AddressSanitizer and UndefinedBehaviorSanitizer" OFF)
if(THREADFLEET_SANITIZE)
  add_compile_options(-fsanitize=address,undefined -fno-omit-frame-pointer -fno-sanitize-recover=undefined)
  add_link_options(-fsanitize=address,undefined)
endif()

# THREADFLEET_FUZZ=ON (clang only, the `fuzz` preset) instruments every
# library for libFuzzer's coverage; fuzzer executables add libFuzzer's main
# through threadfleet_fuzzer(target), or threadfleet_fuzz_test(target ...),
# which also runs them under ctest.
option(THREADFLEET_FUZZ "Build libFuzzer fuzzers (needs clang)" OFF)
# How long each fuzzer's ctest run lasts: short in CI (tests/run), longer on
# demand, e.g. -DTHREADFLEET_FUZZ_SECONDS=3600.
set(THREADFLEET_FUZZ_SECONDS 20 CACHE STRING "Seconds each fuzzer runs under ctest")
math(EXPR THREADFLEET_FUZZ_TIMEOUT "${THREADFLEET_FUZZ_SECONDS} + 120")
if(THREADFLEET_FUZZ)
  if(NOT CMAKE_C_COMPILER_ID MATCHES "Clang" OR NOT CMAKE_CXX_COMPILER_ID MATCHES "Clang")
    message(FATAL_ERROR "THREADFLEET_FUZZ needs clang and clang++ (use the `fuzz` preset)")
  endif()
  add_compile_options(-fsanitize=fuzzer-no-link)
endif()

function(threadfleet_fuzzer target)
  target_compile_options(${target} PRIVATE -fsanitize=fuzzer)
  target_link_options(${target} PRIVATE -fsanitize=fuzzer)
endfunction()

# threadfleet_fuzz_test(target corpus_dir [LABELS label...]): makes `target`
# a fuzzer (threadfleet_fuzzer) and registers the ctest test `target`, labelled
# `fuzz` and LABELS (`ctest -L fuzz` runs every fuzzer). It fuzzes for
# THREADFLEET_FUZZ_SECONDS from the committed seeds in `corpus_dir` (only read)
# plus the inputs it found before, kept in the build tree (<target>-corpus).
function(threadfleet_fuzz_test target corpus_dir)
  cmake_parse_arguments(PARSE_ARGV 2 FUZZ "" "" "LABELS")
  threadfleet_fuzzer(${target})
  set(found ${CMAKE_CURRENT_BINARY_DIR}/${target}-corpus)
  file(MAKE_DIRECTORY ${found})
  add_test(NAME ${target}
    COMMAND ${target} -max_total_time=${THREADFLEET_FUZZ_SECONDS} -rss_limit_mb=2048 -timeout=10
      ${found} ${corpus_dir})
  set(labels fuzz ${FUZZ_LABELS})
  set_tests_properties(${target} PROPERTIES TIMEOUT ${THREADFLEET_FUZZ_TIMEOUT} LABELS "${labels}")
endfunction()
