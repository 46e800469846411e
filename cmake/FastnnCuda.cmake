# The optional CUDA backend: a static library of kernels (csrc/cuda/*.cu) and the pybind11
# extension fastnn._cuda that links it: the shared bindings (csrc/bindings/*.cpp, compiled with
# FASTNN_BIND_CUDA) plus the CuPy policy and the GPU-only entry points (csrc/bindings/cuda/).
#
# FASTNN_CUDA=AUTO (default) builds it when CMake finds a CUDA compiler, ON fails the configure
# without one, OFF never builds it. The environment variable of the same name, when set, wins
# over the cache (so `FASTNN_CUDA=OFF pip install .` works even in a reused build directory);
# `-DFASTNN_CUDA=...` / `pip install . -Ccmake.define.FASTNN_CUDA=...` set it otherwise.
#
# CMAKE_CUDA_ARCHITECTURES (or the CUDAARCHS environment variable) picks the GPUs to compile for;
# unset, fastnn builds a wheel-worthy list: SASS for every architecture from Turing (sm_75) to the
# newest the compiler knows, plus PTX of the newest, which the driver JIT-compiles for GPUs newer
# than the toolkit. The CUDA runtime is linked statically (CUDA::cudart_static), so the extension
# needs a driver but no toolkit on the user's machine.

set(_fastnn_cuda_default AUTO)
if(DEFINED ENV{FASTNN_CUDA} AND NOT "$ENV{FASTNN_CUDA}" STREQUAL "")
  set(FASTNN_CUDA "$ENV{FASTNN_CUDA}" CACHE STRING "Build the CUDA backend: AUTO, ON or OFF" FORCE)
else()
  set(FASTNN_CUDA ${_fastnn_cuda_default} CACHE STRING "Build the CUDA backend: AUTO, ON or OFF")
endif()
set_property(CACHE FASTNN_CUDA PROPERTY STRINGS AUTO ON OFF)
string(TOUPPER "${FASTNN_CUDA}" _fastnn_cuda_mode)
if(_fastnn_cuda_mode MATCHES "^(1|TRUE|YES|Y)$")
  set(_fastnn_cuda_mode ON)
elseif(_fastnn_cuda_mode MATCHES "^(0|FALSE|NO|N)$")
  set(_fastnn_cuda_mode OFF)
endif()
if(NOT _fastnn_cuda_mode MATCHES "^(AUTO|ON|OFF)$")
  message(FATAL_ERROR "fastnn: FASTNN_CUDA must be AUTO, ON or OFF; got '${FASTNN_CUDA}'")
endif()

set(FASTNN_CUDA_ENABLED OFF)
if(NOT _fastnn_cuda_mode STREQUAL "OFF")
  include(CheckLanguage)
  check_language(CUDA)
  if(CMAKE_CUDA_COMPILER)
    set(FASTNN_CUDA_ENABLED ON)
  elseif(_fastnn_cuda_mode STREQUAL "ON")
    message(FATAL_ERROR
      "fastnn: FASTNN_CUDA=ON but no CUDA compiler was found. Put nvcc on PATH, or set CUDACXX "
      "or -DCMAKE_CUDA_COMPILER=/path/to/nvcc (or build the CPU-only package with FASTNN_CUDA=OFF).")
  else()
    message(STATUS "fastnn: no CUDA compiler found; building the CPU backend only")
  endif()
endif()

if(NOT FASTNN_CUDA_ENABLED)
  if(_fastnn_cuda_mode STREQUAL "OFF")
    message(STATUS "fastnn: FASTNN_CUDA=OFF; building the CPU backend only")
  endif()
  return()
endif()

# Whether the user chose the architectures must be known before enable_language(CUDA), which
# caches the compiler's default when CMAKE_CUDA_ARCHITECTURES is unset. A value equal to the
# default list this file stored on an earlier configure of the same build directory is ours.
set(_fastnn_user_archs OFF)
if(DEFINED ENV{CUDAARCHS})
  set(_fastnn_user_archs ON)
elseif(DEFINED CMAKE_CUDA_ARCHITECTURES AND
       NOT "${CMAKE_CUDA_ARCHITECTURES}" STREQUAL "${FASTNN_CUDA_DEFAULT_ARCHS}")
  set(_fastnn_user_archs ON)
endif()

enable_language(CUDA)
find_package(CUDAToolkit REQUIRED)

if(_fastnn_user_archs)
  set(FASTNN_CUDA_ARCHS "${CMAKE_CUDA_ARCHITECTURES}")
else()
  if(CMAKE_CUDA_COMPILER_VERSION VERSION_GREATER_EQUAL 12.8)
    set(FASTNN_CUDA_ARCHS 75-real 80-real 86-real 89-real 90-real 100-real 120)
  elseif(CMAKE_CUDA_COMPILER_VERSION VERSION_GREATER_EQUAL 11.8)
    set(FASTNN_CUDA_ARCHS 75-real 80-real 86-real 89-real 90)
  else()
    set(FASTNN_CUDA_ARCHS 75-real 80-real 86)
  endif()
  set(CMAKE_CUDA_ARCHITECTURES "${FASTNN_CUDA_ARCHS}" CACHE STRING "GPU architectures to build for" FORCE)
  set(FASTNN_CUDA_DEFAULT_ARCHS "${FASTNN_CUDA_ARCHS}" CACHE INTERNAL "fastnn's default CUDA architectures")
endif()
message(STATUS "fastnn: building the CUDA backend with nvcc ${CMAKE_CUDA_COMPILER_VERSION} "
               "for architectures ${FASTNN_CUDA_ARCHS}")

file(GLOB FASTNN_CUDA_SOURCES CONFIGURE_DEPENDS ${CMAKE_CURRENT_SOURCE_DIR}/csrc/cuda/*.cu)
add_library(fastnn_cuda_core STATIC ${FASTNN_CUDA_SOURCES})
set_target_properties(fastnn_cuda_core PROPERTIES
  CUDA_ARCHITECTURES "${FASTNN_CUDA_ARCHS}"
  CUDA_STANDARD 17
  CUDA_STANDARD_REQUIRED ON
  CUDA_RUNTIME_LIBRARY Static
  POSITION_INDEPENDENT_CODE ON)
target_include_directories(fastnn_cuda_core PUBLIC ${CMAKE_CURRENT_SOURCE_DIR}/csrc)
target_link_libraries(fastnn_cuda_core PUBLIC CUDA::cudart_static)
# No fast-math: the kernels must match the CPU ones (exp, erf, sqrt, division rounded as IEEE).
target_compile_options(fastnn_cuda_core PRIVATE
  $<$<COMPILE_LANGUAGE:CUDA>:-O3 -Xcompiler=-Wall -Xptxas=-warn-spills>)

file(GLOB FASTNN_CUDA_BINDING_SOURCES CONFIGURE_DEPENDS
     ${CMAKE_CURRENT_SOURCE_DIR}/csrc/bindings/*.cpp
     ${CMAKE_CURRENT_SOURCE_DIR}/csrc/bindings/cuda/*.cpp)
pybind11_add_module(_cuda MODULE ${FASTNN_CUDA_BINDING_SOURCES})
target_link_libraries(_cuda PRIVATE fastnn_cuda_core CUDA::cudart_static)
target_compile_options(_cuda PRIVATE -O2 -Wall)
string(REPLACE ";" " " _fastnn_archs_text "${FASTNN_CUDA_ARCHS}")
target_compile_definitions(_cuda PRIVATE
  FASTNN_BIND_CUDA=1
  FASTNN_CUDA_ARCHS="${_fastnn_archs_text}"
  FASTNN_NVCC_VERSION="${CMAKE_CUDA_COMPILER_VERSION}")
if(CMAKE_SYSTEM_NAME STREQUAL "Linux")
  # Keep the static CUDA runtime's symbols private, so they never interpose with (or get
  # interposed by) a shared libcudart that CuPy or PyTorch loaded into the same process.
  target_link_options(_cuda PRIVATE "LINKER:--exclude-libs,ALL")
endif()
install(TARGETS _cuda DESTINATION fastnn)
