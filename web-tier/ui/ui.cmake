# kpay-web's UI in the build tree (docs/ui.md): <build>/ui holds index.html,
# docs.html and assets/ (the UI's modules and css, and in assets/vendor the
# npm libraries it uses: uPlot's ESM build and css, swagger-ui-dist's bundle
# and css). kpay-web serves that directory (--ui-dir; by default <dir of
# the binary>/../ui, which is <build>/ui for <build>/bin/kpay-web). The npm
# packages are installed by scripts/ui-deps.sh into <build>/ui-npm (npm ci
# of the committed lock file), which the browser and contract tests use too.
option(KPAY_UI "Install the UI's npm packages and lay out <build>/ui" ON)
set(KPAY_UI_SRC ${CMAKE_CURRENT_LIST_DIR})
set(KPAY_UI_DIR ${CMAKE_BINARY_DIR}/ui)
set(KPAY_UI_NPM ${CMAKE_BINARY_DIR}/ui-npm)
set(KPAY_UI_NODE_MODULES ${KPAY_UI_NPM}/node_modules)

if(KPAY_UI)
  find_program(KPAY_NPM npm)
  find_program(KPAY_NODE NAMES node nodejs)
  if(NOT KPAY_NPM OR NOT KPAY_NODE)
    message(WARNING "node/npm not found: the UI's libraries are not installed "
                    "(./kpay deps installs nodejs and npm); kpay-web's UI and "
                    "the browser tests need them")
  else()
    add_custom_command(
      OUTPUT ${KPAY_UI_NPM}/.installed
      COMMAND ${CMAKE_SOURCE_DIR}/scripts/ui-deps.sh ${KPAY_UI_NPM}
      DEPENDS ${KPAY_UI_SRC}/package.json ${KPAY_UI_SRC}/package-lock.json
              ${CMAKE_SOURCE_DIR}/scripts/ui-deps.sh
      COMMENT "npm ci: the UI's packages into ${KPAY_UI_NPM}")
    set(vendor
      swagger-ui-dist/swagger-ui-bundle.js swagger-ui-dist/swagger-ui.css
      swagger-ui-dist/LICENSE:swagger-ui-LICENSE.txt
      uplot/dist/uPlot.esm.js uplot/dist/uPlot.min.css uplot/LICENSE:uPlot-LICENSE.txt)
    set(vendor_out "")
    foreach(v ${vendor})
      string(REPLACE ":" ";" parts "${v}")
      list(GET parts 0 from)
      list(LENGTH parts n)
      if(n GREATER 1)
        list(GET parts 1 to)
      else()
        get_filename_component(to ${from} NAME)
      endif()
      add_custom_command(
        OUTPUT ${KPAY_UI_DIR}/assets/vendor/${to}
        COMMAND ${CMAKE_COMMAND} -E copy ${KPAY_UI_NODE_MODULES}/${from}
                ${KPAY_UI_DIR}/assets/vendor/${to}
        DEPENDS ${KPAY_UI_NPM}/.installed)
      list(APPEND vendor_out ${KPAY_UI_DIR}/assets/vendor/${to})
    endforeach()
  endif()

  file(GLOB KPAY_UI_FILES CONFIGURE_DEPENDS RELATIVE ${KPAY_UI_SRC}
       ${KPAY_UI_SRC}/*.html ${KPAY_UI_SRC}/assets/*)
  set(ui_out "")
  foreach(f ${KPAY_UI_FILES})
    add_custom_command(
      OUTPUT ${KPAY_UI_DIR}/${f}
      COMMAND ${CMAKE_COMMAND} -E copy ${KPAY_UI_SRC}/${f} ${KPAY_UI_DIR}/${f}
      DEPENDS ${KPAY_UI_SRC}/${f})
    list(APPEND ui_out ${KPAY_UI_DIR}/${f})
  endforeach()
  add_custom_target(kpay_ui ALL DEPENDS ${ui_out} ${vendor_out})
endif()
if(TARGET kpay_ui AND TARGET kpay-web)
  add_dependencies(kpay-web kpay_ui)
endif()
# static.c's pure path checks (static_path.c, unit.static).
if(TARGET kpay-web-logic)
  target_sources(kpay-web-logic PRIVATE ${CMAKE_SOURCE_DIR}/web-tier/static_path.c)
endif()
