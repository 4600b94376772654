# FindLibUring: liburing (Debian: liburing-dev), for Asio's io_uring backend.
#
# Provides the imported target LibUring::LibUring and sets LibUring_FOUND and
# LibUring_VERSION (from liburing/io_uring_version.h when present).
find_path(LibUring_INCLUDE_DIR NAMES liburing.h)
find_library(LibUring_LIBRARY NAMES uring)

if(LibUring_INCLUDE_DIR AND EXISTS "${LibUring_INCLUDE_DIR}/liburing/io_uring_version.h")
  file(STRINGS "${LibUring_INCLUDE_DIR}/liburing/io_uring_version.h" _uring_lines
       REGEX "^#define IO_URING_VERSION_(MAJOR|MINOR)")
  string(REGEX REPLACE ".*MAJOR ([0-9]+).*" "\\1" _uring_major "${_uring_lines}")
  string(REGEX REPLACE ".*MINOR ([0-9]+).*" "\\1" _uring_minor "${_uring_lines}")
  set(LibUring_VERSION "${_uring_major}.${_uring_minor}")
endif()

include(FindPackageHandleStandardArgs)
find_package_handle_standard_args(LibUring
  REQUIRED_VARS LibUring_LIBRARY LibUring_INCLUDE_DIR
  VERSION_VAR LibUring_VERSION)

if(LibUring_FOUND AND NOT TARGET LibUring::LibUring)
  add_library(LibUring::LibUring UNKNOWN IMPORTED)
  set_target_properties(LibUring::LibUring PROPERTIES
    IMPORTED_LOCATION "${LibUring_LIBRARY}"
    INTERFACE_INCLUDE_DIRECTORIES "${LibUring_INCLUDE_DIR}")
endif()
mark_as_advanced(LibUring_INCLUDE_DIR LibUring_LIBRARY)
