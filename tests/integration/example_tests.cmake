# For the example projects (examples/*/CMakeLists.txt): an integration test
# binary on preforkd's own harness (tests/integration/harness.*: real binary,
# temporary config, free loopback ports, process-group cleanup), started against
# the example's executable.
#   add_example_tests(NAME SOURCE BINARY_TARGET)
enable_testing()
find_package(GTest REQUIRED)
include(GoogleTest)
find_package(Threads REQUIRED)

function(add_example_tests name source binary)
  set(h ${PREFORKD_SOURCE_DIR}/tests/integration)
  add_executable(${name} ${source} ${h}/harness.cpp ${h}/load_client.cpp ${h}/metrics_scrape.cpp ${h}/wrk.cpp)
  target_include_directories(${name} PRIVATE ${PREFORKD_SOURCE_DIR})
  target_compile_definitions(${name} PRIVATE PREFORKD_BINARY="$<TARGET_FILE:${binary}>"
    PREFORKD_SOURCE_DIR="${PREFORKD_SOURCE_DIR}")
  target_compile_options(${name} PRIVATE -Wno-missing-field-initializers)
  target_link_libraries(${name} PRIVATE GTest::gtest GTest::gtest_main Threads::Threads)
  add_dependencies(${name} ${binary})
  gtest_discover_tests(${name} PROPERTIES TIMEOUT 120 RUN_SERIAL TRUE DISCOVERY_TIMEOUT 30)
endfunction()
