# CUDA backend tests (owner: cuda): built only with -DEDGELLM_CUDA=ON; they need a GPU to run and
# skip (exit 77) without one. tests/gpu/run.sh builds and runs them on the GPU machine.
if(EDGELLM_CUDA)
  add_executable(test_cuda_ops ${CMAKE_CURRENT_SOURCE_DIR}/gpu/test_cuda_ops.c)
  target_include_directories(test_cuda_ops PRIVATE ${CMAKE_SOURCE_DIR}/src ${CMAKE_CURRENT_SOURCE_DIR})
  target_link_libraries(test_cuda_ops PRIVATE edgellm_static)
  add_test(NAME test_cuda_ops COMMAND test_cuda_ops WORKING_DIRECTORY ${CMAKE_CURRENT_SOURCE_DIR})
  set_tests_properties(test_cuda_ops PROPERTIES TIMEOUT 300 SKIP_RETURN_CODE 77 LABELS gpu)
endif()
if(EDGELLM_CUDA)
  add_executable(test_cuda_e2e ${CMAKE_CURRENT_SOURCE_DIR}/gpu/test_cuda_e2e.c)
  target_include_directories(test_cuda_e2e PRIVATE ${CMAKE_SOURCE_DIR}/src ${CMAKE_CURRENT_SOURCE_DIR})
  target_link_libraries(test_cuda_e2e PRIVATE edgellm_static)
  add_test(NAME test_cuda_e2e COMMAND test_cuda_e2e WORKING_DIRECTORY ${CMAKE_CURRENT_SOURCE_DIR})
  set_tests_properties(test_cuda_e2e PROPERTIES TIMEOUT 600 SKIP_RETURN_CODE 77 LABELS gpu
                       ENVIRONMENT "EDGELLM_TMP=${CMAKE_BINARY_DIR}/tmp")
endif()
