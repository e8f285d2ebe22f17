# Which librdkafka kpay links (docs/development.md, "librdkafka").
#
# KPAY_RDKAFKA=auto (the default): the system's librdkafka when it is at
# least KPAY_RDKAFKA_MIN_VERSION, else the newest librdkafka-<version> that
# `./kpay deps` built under the kpay cache ($KPAY_CACHE, else
# $XDG_CACHE_HOME/kpay, else ~/.cache/kpay). KPAY_RDKAFKA=system: the
# system's, whatever its version (to compare). Any other value: the prefix
# of a librdkafka installation. A librdkafka outside the system's library
# directories is linked with an rpath, so the binaries find it without
# LD_LIBRARY_PATH. Defines the imported target PkgConfig::RDKAFKA and
# KPAY_RDKAFKA_USED (version and where it comes from).

set(KPAY_RDKAFKA "auto" CACHE STRING
    "librdkafka: auto, system, or an installation prefix")
set(KPAY_RDKAFKA_MIN_VERSION 2.10.0)

# The system library, through the ordinary pkg-config search path.
pkg_check_modules(KPAY_SYS_RDKAFKA QUIET rdkafka)

set(_rdk_pc "")
if(KPAY_RDKAFKA STREQUAL "system")
  if(NOT KPAY_SYS_RDKAFKA_FOUND)
    message(FATAL_ERROR "KPAY_RDKAFKA=system: pkg-config finds no rdkafka "
                        "(install librdkafka-dev)")
  endif()
elseif(KPAY_RDKAFKA STREQUAL "auto")
  if(NOT KPAY_SYS_RDKAFKA_FOUND OR KPAY_SYS_RDKAFKA_VERSION VERSION_LESS
                                   KPAY_RDKAFKA_MIN_VERSION)
    if(DEFINED ENV{KPAY_CACHE} AND NOT "$ENV{KPAY_CACHE}" STREQUAL "")
      set(_rdk_cache "$ENV{KPAY_CACHE}")
    elseif(DEFINED ENV{XDG_CACHE_HOME} AND NOT "$ENV{XDG_CACHE_HOME}" STREQUAL "")
      set(_rdk_cache "$ENV{XDG_CACHE_HOME}/kpay")
    else()
      set(_rdk_cache "$ENV{HOME}/.cache/kpay")
    endif()
    # Each prefix appears only once complete (./kpay renames it into place).
    # librdkafka-<version>-kpay<rev> carries kpay's patches of revision
    # <rev> (deps/librdkafka/): the highest version wins, then the highest
    # revision (an unpatched librdkafka-<version> counts as revision 0).
    file(GLOB _rdk_pcs "${_rdk_cache}/librdkafka-*/lib/pkgconfig/rdkafka.pc")
    set(_rdk_best "")
    set(_rdk_best_rev -1)
    foreach(_pc IN LISTS _rdk_pcs)
      string(REGEX MATCH
             "librdkafka-([0-9][0-9.]*)(-kpay([0-9]+))?/lib/pkgconfig/rdkafka.pc$"
             _m "${_pc}")
      set(_v "${CMAKE_MATCH_1}")
      set(_r "${CMAKE_MATCH_3}")
      if(NOT _r)
        set(_r 0)
      endif()
      if(_v AND _v VERSION_GREATER_EQUAL KPAY_RDKAFKA_MIN_VERSION AND
         (NOT _rdk_best OR _v VERSION_GREATER _rdk_best OR
          (_v VERSION_EQUAL _rdk_best AND _r GREATER _rdk_best_rev)))
        set(_rdk_best "${_v}")
        set(_rdk_best_rev "${_r}")
        set(_rdk_pc "${_pc}")
      endif()
    endforeach()
    if(NOT _rdk_pc)
      message(FATAL_ERROR
        "librdkafka: the system's is ${KPAY_SYS_RDKAFKA_VERSION}, older than "
        "${KPAY_RDKAFKA_MIN_VERSION}, and ${_rdk_cache} holds no "
        "librdkafka-<version> build: run ./kpay deps (it builds one from "
        "Debian's source package), or configure with -DKPAY_RDKAFKA=system "
        "to use the old one anyway")
    endif()
  endif()
else()
  set(_rdk_pc "${KPAY_RDKAFKA}/lib/pkgconfig/rdkafka.pc")
  if(NOT EXISTS "${_rdk_pc}")
    message(FATAL_ERROR "KPAY_RDKAFKA=${KPAY_RDKAFKA}: no ${_rdk_pc}")
  endif()
endif()

if(_rdk_pc)
  # pkg-config takes the path of a .pc file as a module name: the module
  # (and so the cached check) changes whenever the prefix does.
  pkg_check_modules(RDKAFKA REQUIRED IMPORTED_TARGET "${_rdk_pc}")
  get_filename_component(_rdk_prefix "${_rdk_pc}/../../.." ABSOLUTE)
  set(KPAY_RDKAFKA_USED "${RDKAFKA_VERSION} from ${_rdk_prefix}")
  # The binaries find the library where it is, in the build tree and
  # installed alike.
  list(APPEND CMAKE_BUILD_RPATH ${RDKAFKA_LIBRARY_DIRS})
  list(APPEND CMAKE_INSTALL_RPATH ${RDKAFKA_LIBRARY_DIRS})
  if(KPAY_SYS_RDKAFKA_FOUND)
    string(APPEND KPAY_RDKAFKA_USED
           " (the system's ${KPAY_SYS_RDKAFKA_VERSION} is older than "
           "${KPAY_RDKAFKA_MIN_VERSION})")
  endif()
else()
  pkg_check_modules(RDKAFKA REQUIRED IMPORTED_TARGET rdkafka)
  set(KPAY_RDKAFKA_USED "${RDKAFKA_VERSION} from the system")
  if(RDKAFKA_VERSION VERSION_LESS KPAY_RDKAFKA_MIN_VERSION)
    string(APPEND KPAY_RDKAFKA_USED
           " (older than ${KPAY_RDKAFKA_MIN_VERSION}: KPAY_RDKAFKA=system)")
  endif()
endif()
set(KPAY_RDKAFKA_USED "${KPAY_RDKAFKA_USED}" CACHE INTERNAL
    "the librdkafka this build links")
message(STATUS "librdkafka: ${KPAY_RDKAFKA_USED}")
