# GGUF interop: llama.cpp (npm node-llama-cpp 3.21.1, CPU prebuilt, installed by `npm ci --omit=optional`
# in bench/llamacpp) loads our f16 GGUF of every fixture model and its greedy ids from the reference prompt
# ids must equal the reference greedy ids. SKIPPED (exit 77) where node or the npm package is absent.
add_test(NAME gguf_llamacpp
  COMMAND sh -c "command -v node >/dev/null 2>&1 || { echo 'SKIP: node not found'; exit 77; }; exec node \"$0\" --edgellm \"$1\" --fixtures fixtures/models --tmp \"$2\" --threads 1"
          ${CMAKE_SOURCE_DIR}/bench/llamacpp/check_gguf.mjs $<TARGET_FILE:edgellm_cli> ${CMAKE_BINARY_DIR}/tmp/gguf_llamacpp
  WORKING_DIRECTORY ${CMAKE_CURRENT_SOURCE_DIR})
set_tests_properties(gguf_llamacpp PROPERTIES TIMEOUT 900 SKIP_RETURN_CODE 77)
