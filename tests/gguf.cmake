# GGUF interop: llama.cpp (npm node-llama-cpp 3.21.1, CPU prebuilt, installed by `npm ci --omit=optional`
# in bench/llamacpp) loads our GGUF of every fixture model. f16: its greedy ids from the reference prompt
# ids equal the reference greedy ids and KL(reference || llama.cpp) < 1e-4 at every prompt position;
# q8_0 / q4_0: mean KL < 5e-3 / 0.15; texts tokenize to edgellm's ids (bench/llamacpp/check_gguf.mjs).
# SKIPPED (exit 77) where node or the npm package is absent.
foreach(q f16 q8_0 q4_0)
  add_test(NAME gguf_llamacpp_${q}
    COMMAND sh -c "command -v node >/dev/null 2>&1 || { echo 'SKIP: node not found'; exit 77; }; exec node \"$0\" --edgellm \"$1\" --fixtures fixtures/models --tmp \"$2\" --quant \"$3\" --threads 1"
            ${CMAKE_SOURCE_DIR}/bench/llamacpp/check_gguf.mjs $<TARGET_FILE:edgellm_cli> ${CMAKE_BINARY_DIR}/tmp/gguf_llamacpp ${q}
    WORKING_DIRECTORY ${CMAKE_CURRENT_SOURCE_DIR})
  set_tests_properties(gguf_llamacpp_${q} PROPERTIES TIMEOUT 600 SKIP_RETURN_CODE 77)
endforeach()
