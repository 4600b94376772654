# Installs the Node test dependencies from the committed package-lock.json,
# once: skipped when node_modules is newer than the lock file.
if(EXISTS "${DIR}/node_modules/.package-lock.json"
   AND "${DIR}/node_modules/.package-lock.json" IS_NEWER_THAN "${DIR}/package-lock.json")
  return()
endif()
execute_process(COMMAND ${NPM} ci --no-audit --no-fund WORKING_DIRECTORY ${DIR}
                RESULT_VARIABLE rc)
if(NOT rc EQUAL 0)
  message(FATAL_ERROR "npm ci failed in ${DIR} (${rc})")
endif()
