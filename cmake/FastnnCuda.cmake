# The optional CUDA backend: a static library of kernels (csrc/cuda/*.cu) and the pybind11
# extension fastnn._cuda that links it: the shared bindings (csrc/bindings/*.cpp, compiled with
# FASTNN_BIND_CUDA) plus the CuPy policy and the GPU-only entry points (csrc/bindings/cuda/).
#
# FASTNN_CUDA=AUTO (default) builds it only where it can run: CMake finds a CUDA compiler AND a
# GPU is visible (`nvidia-smi -L` lists one), and then only for that GPU's architecture (CMake's
# `native`, CMake >= 3.24), so a source install on a machine with nvcc but no GPU does not spend
# minutes compiling a backend it cannot use. An explicit CMAKE_CUDA_ARCHITECTURES / CUDAARCHS
# asks for the backend, GPU or not. ON builds it wherever nvcc is (failing the configure without
# one), by default for the full architecture list below: what GPU wheels and CI use. OFF never
# builds it. The environment variable of the same name, when set, wins over the cache (so
# `FASTNN_CUDA=OFF pip install .` works even in a reused build directory); `-DFASTNN_CUDA=...` /
# `pip install . -Ccmake.define.FASTNN_CUDA=...` set it otherwise.
#
# CMAKE_CUDA_ARCHITECTURES (or the CUDAARCHS environment variable) picks the GPUs to compile for;
# unset, AUTO compiles for the visible GPU and ON for a wheel-worthy list: SASS for every
# architecture from Turing (sm_75) to the newest the compiler knows, plus PTX of the newest, which
# the driver JIT-compiles for GPUs newer than the toolkit. The CUDA runtime is linked statically
# (CUDA::cudart_static), so the extension needs a driver but no toolkit on the user's machine.

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

# Whether the user chose the architectures must be known before enable_language(CUDA), which
# caches the compiler's default when CMAKE_CUDA_ARCHITECTURES is unset. A value equal to the
# default this file stored on an earlier configure of the same build directory is ours.
set(_fastnn_user_archs OFF)
if(DEFINED ENV{CUDAARCHS})
  set(_fastnn_user_archs ON)
elseif(DEFINED CMAKE_CUDA_ARCHITECTURES AND
       NOT "${CMAKE_CUDA_ARCHITECTURES}" STREQUAL "${FASTNN_CUDA_DEFAULT_ARCHS}")
  set(_fastnn_user_archs ON)
endif()

# AUTO's question "can the CUDA backend run here?": a GPU listed by the driver and not hidden by
# CUDA_VISIBLE_DEVICES. Sets _fastnn_gpu_seen and _fastnn_gpu_why (the reason, for the message).
function(_fastnn_find_gpu)
  set(_fastnn_gpu_seen OFF PARENT_SCOPE)
  if(DEFINED ENV{CUDA_VISIBLE_DEVICES} AND "$ENV{CUDA_VISIBLE_DEVICES}" MATCHES "^(|-1|none|NoDevFiles)$")
    set(_fastnn_gpu_why "CUDA_VISIBLE_DEVICES='$ENV{CUDA_VISIBLE_DEVICES}' hides every GPU" PARENT_SCOPE)
    return()
  endif()
  find_program(_fastnn_nvidia_smi nvidia-smi)
  if(NOT _fastnn_nvidia_smi)
    set(_fastnn_gpu_why "nvidia-smi, the NVIDIA driver's tool, is not on PATH" PARENT_SCOPE)
    return()
  endif()
  execute_process(COMMAND "${_fastnn_nvidia_smi}" -L RESULT_VARIABLE rc OUTPUT_VARIABLE listed
                  ERROR_QUIET TIMEOUT 30)
  if(NOT rc EQUAL 0 OR NOT listed MATCHES "GPU [0-9]")
    set(_fastnn_gpu_why "`nvidia-smi -L` lists no GPU" PARENT_SCOPE)
    return()
  endif()
  set(_fastnn_gpu_seen ON PARENT_SCOPE)
endfunction()

set(FASTNN_CUDA_ENABLED OFF)
set(_fastnn_native OFF)
if(NOT _fastnn_cuda_mode STREQUAL "OFF")
  include(CheckLanguage)
  check_language(CUDA)
  if(CMAKE_CUDA_COMPILER AND (_fastnn_cuda_mode STREQUAL "ON" OR _fastnn_user_archs))
    set(FASTNN_CUDA_ENABLED ON)
  elseif(CMAKE_CUDA_COMPILER)
    _fastnn_find_gpu()
    if(_fastnn_gpu_seen)
      set(FASTNN_CUDA_ENABLED ON)
      set(_fastnn_native ON)
    else()
      message(STATUS "fastnn: a CUDA compiler was found but no GPU is visible (${_fastnn_gpu_why}); "
                     "building the CPU backend only (FASTNN_CUDA=ON builds the CUDA backend anyway)")
    endif()
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

if(_fastnn_native AND CMAKE_VERSION VERSION_LESS 3.24)
  message(STATUS "fastnn: CMake ${CMAKE_VERSION} has no CUDA architecture `native` (3.24+); "
                 "compiling for the full list instead")
  set(_fastnn_native OFF)
endif()
if(_fastnn_native)
  # Before enable_language(CUDA), which resolves `native` to the visible GPUs' architectures.
  set(CMAKE_CUDA_ARCHITECTURES native CACHE STRING "GPU architectures to build for" FORCE)
  set(FASTNN_CUDA_DEFAULT_ARCHS native CACHE INTERNAL "fastnn's default CUDA architectures")
endif()

enable_language(CUDA)
find_package(CUDAToolkit REQUIRED)

if(_fastnn_user_archs)
  set(FASTNN_CUDA_ARCHS "${CMAKE_CUDA_ARCHITECTURES}")
elseif(_fastnn_native)
  # What `native` resolved to (e.g. 90-real), named in fastnn.cuda.info(). CMake puts a sentence
  # there when its own probe found no device although nvidia-smi did (a driver/runtime mismatch):
  # then no CUDA backend, rather than a build that fails on a bogus architecture.
  set(FASTNN_CUDA_ARCHS "${CMAKE_CUDA_ARCHITECTURES_NATIVE}")
  if(NOT FASTNN_CUDA_ARCHS MATCHES "^[0-9]")
    message(STATUS "fastnn: nvidia-smi lists a GPU but CMake's CUDA probe found none "
                   "(${FASTNN_CUDA_ARCHS}); building the CPU backend only (FASTNN_CUDA=ON or "
                   "CMAKE_CUDA_ARCHITECTURES=<arch> builds the CUDA backend anyway)")
    set(FASTNN_CUDA_ENABLED OFF)
    return()
  endif()
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
