# DsmJobTest.cmake - dsm_job_test(): register a ctest that runs a DSM job through dsmrun.
#
#   dsm_job_test(NAME <test> RANKS <n> [RPN <k>] [TIMEOUT <s>] [EXPECT <regex>...]
#                [REJECT <regex>...] [STATUS <code>] [ENV <VAR=value>...] [LABELS <l>...]
#                [MODEL <consistency>] COMMAND <program> [args...])
#
# The test runs `dsmrun -n <n> [--ranks-per-node <k>] --timeout <s> -- <program> args`
# (default timeout 120 s); ctest's TIMEOUT is 30 s longer, so dsmrun's own teardown normally
# ends a stuck job and ctest's is the backstop. With EXPECT (and optionally REJECT/STATUS)
# the run goes through expect.sh, which checks the exit status (default 0), that some
# output line matches each EXPECT regex and that none matches a REJECT regex. A regex must
# not contain ';' (CMake would split it into two); use '.' instead.
# With RANKS 0 the command runs as it is, without dsmrun (a standalone one-rank job).
# MODEL adds `--consistency <m>` to the dsmrun command (with RANKS 0: DSM_CONSISTENCY=<m> in
# the environment) and the label <m>; without it the job runs under dsmrun's default,
# sequential.
set(DSM_EXPECT_SH ${CMAKE_CURRENT_LIST_DIR}/expect.sh)

# The consistency models the per-model tests are registered for (trim it while a protocol
# is being written: -DDSM_MODELS=sequential). A model the daemon lacks makes its tests fail.
set(DSM_MODELS "sequential;release;causal" CACHE STRING
    "Consistency models to register the per-model tests for")

# dsm_model_suffix(<model> <var>): the test-name suffix of a model: none for sequential
# (the names the tests had before there were other models), "_<model>" otherwise.
function(dsm_model_suffix model var)
  if(model STREQUAL "sequential")
    set(${var} "" PARENT_SCOPE)
  else()
    set(${var} "_${model}" PARENT_SCOPE)
  endif()
endfunction()

function(dsm_job_test)
  cmake_parse_arguments(T "" "NAME;RANKS;RPN;TIMEOUT;STATUS;MODEL"
                        "COMMAND;ENV;LABELS;EXPECT;REJECT" ${ARGN})
  if(NOT T_TIMEOUT)
    set(T_TIMEOUT 120)
  endif()
  if(NOT DEFINED T_STATUS)
    set(T_STATUS 0)
  endif()
  set(launch)
  if(T_RANKS GREATER 0)
    set(launch ${DSMRUN} -n ${T_RANKS})
    if(T_RPN)
      list(APPEND launch --ranks-per-node ${T_RPN})
    endif()
    if(T_MODEL)
      list(APPEND launch --consistency ${T_MODEL})
    endif()
    list(APPEND launch --timeout ${T_TIMEOUT} --)
  elseif(T_MODEL)
    list(APPEND T_ENV DSM_CONSISTENCY=${T_MODEL})
  endif()
  if(T_MODEL)
    list(APPEND T_LABELS ${T_MODEL})  # ctest -L release: one model's tests
  endif()
  if(DEFINED T_EXPECT OR DEFINED T_REJECT)
    set(check sh ${DSM_EXPECT_SH} ${T_STATUS})
    foreach(re IN LISTS T_EXPECT)
      list(APPEND check --match ${re})
    endforeach()
    foreach(re IN LISTS T_REJECT)
      list(APPEND check --reject ${re})
    endforeach()
    list(APPEND check --)
  else()
    set(check)
  endif()
  add_test(NAME ${T_NAME} COMMAND ${check} ${launch} ${T_COMMAND})
  math(EXPR ctest_timeout "${T_TIMEOUT} + 30")
  set_tests_properties(${T_NAME} PROPERTIES TIMEOUT ${ctest_timeout})
  if(T_ENV)
    set_tests_properties(${T_NAME} PROPERTIES ENVIRONMENT "${T_ENV}")
  endif()
  if(T_LABELS)
    set_tests_properties(${T_NAME} PROPERTIES LABELS "${T_LABELS}")
  endif()
endfunction()
