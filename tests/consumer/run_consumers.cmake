# Builds and runs a tiny program against plume in the three supported ways:
# add_subdirectory, FetchContent, and find_package after cmake --install.
# Usage: cmake -DPLUME_SOURCE_DIR=... -DWORK_DIR=... -P run_consumers.cmake
cmake_minimum_required(VERSION 3.25)
set(HERE ${CMAKE_CURRENT_LIST_DIR})
file(REMOVE_RECURSE ${WORK_DIR})
file(MAKE_DIRECTORY ${WORK_DIR})
set(compiler_arg)
if(CMAKE_CXX_COMPILER)
  set(compiler_arg -DCMAKE_CXX_COMPILER=${CMAKE_CXX_COMPILER})
endif()

function(run)
  execute_process(COMMAND ${ARGN} RESULT_VARIABLE rc OUTPUT_VARIABLE out ERROR_VARIABLE err)
  if(NOT rc EQUAL 0)
    string(REPLACE ";" " " cmd "${ARGN}")
    message(FATAL_ERROR "failed (${rc}): ${cmd}\n${out}\n${err}")
  endif()
endfunction()

function(consumer name)
  set(build ${WORK_DIR}/${name})
  run(${CMAKE_COMMAND} -S ${HERE}/${name} -B ${build} ${compiler_arg} ${ARGN})
  run(${CMAKE_COMMAND} --build ${build})
  run(${build}/consumer)
  message(STATUS "consumer ${name}: ok")
endfunction()

# 1. add_subdirectory(plume)
consumer(add_subdirectory -DPLUME_SOURCE_DIR=${PLUME_SOURCE_DIR})

# 2. FetchContent from a source archive of the library files
set(archive ${WORK_DIR}/plume-src.tar.gz)
execute_process(COMMAND ${CMAKE_COMMAND} -E tar czf ${archive}
                  CMakeLists.txt cmake include LICENSE README.md
                WORKING_DIRECTORY ${PLUME_SOURCE_DIR} RESULT_VARIABLE rc)
if(NOT rc EQUAL 0)
  message(FATAL_ERROR "could not archive the sources")
endif()
consumer(fetch_content -DPLUME_ARCHIVE=${archive})

# 3. cmake --install, then find_package(plume CONFIG)
set(prefix ${WORK_DIR}/prefix)
run(${CMAKE_COMMAND} -S ${PLUME_SOURCE_DIR} -B ${WORK_DIR}/plume-build ${compiler_arg}
    -DPLUME_BUILD_TESTS=OFF -DPLUME_BUILD_EXAMPLES=OFF -DPLUME_BUILD_BENCHMARKS=OFF
    -DCMAKE_INSTALL_PREFIX=${prefix})
run(${CMAKE_COMMAND} --install ${WORK_DIR}/plume-build)
foreach(f include/plume/transport.hpp lib/cmake/plume/plume-config.cmake
          lib/cmake/plume/plume-targets.cmake lib/cmake/plume/plume-config-version.cmake)
  if(NOT EXISTS ${prefix}/${f})
    message(FATAL_ERROR "cmake --install did not install ${f}")
  endif()
endforeach()
consumer(find_package -DCMAKE_PREFIX_PATH=${prefix})
