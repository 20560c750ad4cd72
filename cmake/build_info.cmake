# What `qkv --version` says about the build (src/build_info.cpp): the git revision, taken at
# every build (the header is rewritten only when it changes), the compiler, the CPU flags and MPI.
set(QKV_REVISION_HEADER ${CMAKE_CURRENT_BINARY_DIR}/generated/qkv_git_revision.h)
add_custom_target(qkv_git_revision
                  COMMAND ${CMAKE_COMMAND} -DSOURCE_DIR=${PROJECT_SOURCE_DIR}
                          -DOUT=${QKV_REVISION_HEADER} -P ${PROJECT_SOURCE_DIR}/cmake/git_revision.cmake
                  BYPRODUCTS ${QKV_REVISION_HEADER}
                  COMMENT "Reading the git revision")
add_dependencies(qkv_lib qkv_git_revision)
target_include_directories(qkv_lib PRIVATE ${CMAKE_CURRENT_BINARY_DIR}/generated)

if(QKV_NATIVE)
  set(QKV_CPU_FLAGS "-march=native")
else()
  set(QKV_CPU_FLAGS "generic x86-64")
endif()
if(MPI_C_FOUND)
  # Which MPI: its launcher says, e.g. "mpirun (Open MPI) 4.1.4"; FindMPI knows only the standard.
  execute_process(COMMAND ${MPIEXEC_EXECUTABLE} --version OUTPUT_VARIABLE launcher ERROR_QUIET)
  string(REGEX REPLACE "\n.*" "" QKV_MPI_LIBRARY "${launcher}")
  if(NOT QKV_MPI_LIBRARY)
    set(QKV_MPI_LIBRARY "MPI ${MPI_C_VERSION}")
  endif()
else()
  set(QKV_MPI_LIBRARY "")
endif()
set_source_files_properties(src/build_info.cpp PROPERTIES COMPILE_DEFINITIONS
  "QKV_COMPILER=\"${CMAKE_CXX_COMPILER_ID} ${CMAKE_CXX_COMPILER_VERSION}\";QKV_CPU_FLAGS=\"${QKV_CPU_FLAGS}\";QKV_MPI_LIBRARY=\"${QKV_MPI_LIBRARY}\"")
