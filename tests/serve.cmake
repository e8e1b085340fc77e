# test_serve (tests/unit/test_serve.c) drives `edgellm serve`, which exists only where libmicrohttpd was
# found (MHD_FOUND, top-level CMakeLists.txt); elsewhere the test exits 77 and ctest reports it skipped.
if(MHD_FOUND)
  target_compile_definitions(test_serve PRIVATE EDGELLM_HAVE_SERVE)
endif()
set_tests_properties(test_serve PROPERTIES SKIP_RETURN_CODE 77 TIMEOUT 300)
