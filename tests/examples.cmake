# examples/ (owner: polish): the example programs run against engines built from the fixture models.
# examples_engines (FIXTURES_SETUP) exports + builds stories260K (simple) and sotu-qwen3 (chat, has a
# chat template) and tiny-qwen3 (no tokenizer: error paths) with the CLI; tests/examples/examples_check.c drives the programs and checks the output.
if(TARGET example_simple AND TARGET example_chat)
  add_executable(examples_check ${CMAKE_CURRENT_SOURCE_DIR}/examples/examples_check.c)
  target_include_directories(examples_check PRIVATE ${CMAKE_SOURCE_DIR}/src ${CMAKE_CURRENT_SOURCE_DIR})
  target_link_libraries(examples_check PRIVATE edgellm_static)
  set(_ex_tmp ${CMAKE_BINARY_DIR}/tmp/examples)
  add_test(NAME examples_engines
    COMMAND sh -c "set -e; rm -rf \"$1\"; mkdir -p \"$1\"; \
\"$0\" export --model fixtures/models/stories260K-hf --output \"$1/st.export\" --dtype fp32; \
\"$0\" build --input \"$1/st.export\" --engine \"$1/st.engine\" --max-input-len 256 --max-kv-cache-capacity 512; \
\"$0\" export --model fixtures/models/sotu-qwen3 --output \"$1/sq.export\" --dtype fp32; \
\"$0\" build --input \"$1/sq.export\" --engine \"$1/sq.engine\" --max-input-len 512 --max-kv-cache-capacity 1024; \
\"$0\" export --model fixtures/models/tiny-qwen3 --output \"$1/tq.export\" --dtype fp32; \
\"$0\" build --input \"$1/tq.export\" --engine \"$1/tq.engine\" --max-input-len 64 --max-kv-cache-capacity 64"
            $<TARGET_FILE:edgellm_cli> ${_ex_tmp}
    WORKING_DIRECTORY ${CMAKE_CURRENT_SOURCE_DIR})
  set_tests_properties(examples_engines PROPERTIES FIXTURES_SETUP examples_engines TIMEOUT 300)
  add_test(NAME example_readme_sync
    COMMAND examples_check readme ${CMAKE_SOURCE_DIR}/README.md ${CMAKE_SOURCE_DIR}/examples/simple/simple.c ${_ex_tmp}/readme
    WORKING_DIRECTORY ${CMAKE_CURRENT_SOURCE_DIR})
  add_test(NAME example_simple
    COMMAND examples_check simple $<TARGET_FILE:example_simple> ${_ex_tmp}/st.engine ${_ex_tmp}/simple
    WORKING_DIRECTORY ${CMAKE_CURRENT_SOURCE_DIR})
  add_test(NAME example_chat
    COMMAND examples_check chat $<TARGET_FILE:example_chat> ${_ex_tmp}/sq.engine ${_ex_tmp}/chat
    WORKING_DIRECTORY ${CMAKE_CURRENT_SOURCE_DIR})
  set_tests_properties(example_simple example_chat PROPERTIES FIXTURES_REQUIRED examples_engines TIMEOUT 300)
  set_tests_properties(example_readme_sync PROPERTIES TIMEOUT 60)
endif()
