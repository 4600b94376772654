# Finds plume's dependencies as imported targets: the OS packages first
# (Debian: libasio-dev nlohmann-json3-dev libssl-dev zlib1g-dev), FetchContent
# only as a fallback on machines that have network access.
include(FetchContent)
include(GNUInstallDirs)

find_package(Threads REQUIRED)
find_package(OpenSSL 3 REQUIRED)
find_package(ZLIB REQUIRED)
if(PLUME_IO_URING)
  find_package(LibUring REQUIRED)
endif()

find_package(Asio 1.22 QUIET)
if(NOT Asio_FOUND)
  message(STATUS "plume: standalone Asio not found, fetching it")
  FetchContent_Declare(plume_asio
    GIT_REPOSITORY https://github.com/chriskohlhoff/asio.git
    GIT_TAG asio-1-28-0 GIT_SHALLOW TRUE)
  FetchContent_MakeAvailable(plume_asio)
  set(Asio_INCLUDE_DIR "${plume_asio_SOURCE_DIR}/asio/include" CACHE PATH "" FORCE)
  find_package(Asio 1.22 REQUIRED)
endif()

find_package(nlohmann_json 3.11 QUIET)
if(NOT nlohmann_json_FOUND)
  message(STATUS "plume: nlohmann_json not found, fetching it")
  FetchContent_Declare(nlohmann_json
    URL https://github.com/nlohmann/json/releases/download/v3.11.3/json.tar.xz)
  FetchContent_MakeAvailable(nlohmann_json)
endif()
