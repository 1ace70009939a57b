# check_layers.cmake: the include rule of docs/architecture.md. Arrows point
# down: a file may include headers of its own wing or of a wing below it,
# never above. Run by the build (target check_layers, before the core
# compiles) and by ctest (test_layering, which also plants a violation to
# prove this script catches it).
#
#   cmake -DTB_ROOT=<source dir> -P cmake/check_layers.cmake
#
# Every quoted include of a file under core/ or include/tunebench/ must be
#   - "wing/path.h" (relative to core/, or "tunebench/x.h" for the public ABI), or
#   - a bare "name.h" of a header in the file's own folder;
# "../x.h" and bare names of other folders are refused, so every arrow is
# visible in the include line itself.

# The wings, lowest first: the one list the rule, the docs and the test share.
set(TB_WINGS tunebench base data engine host store run exec study analysis cmd)

if(NOT TB_ROOT)
  message(FATAL_ERROR "check_layers: pass -DTB_ROOT=<source dir>")
endif()

function(tb_wing_level wing out)
  list(FIND TB_WINGS "${wing}" level)
  set(${out} ${level} PARENT_SCOPE)
endfunction()

file(GLOB_RECURSE core_files RELATIVE ${TB_ROOT}
     ${TB_ROOT}/core/*.c ${TB_ROOT}/core/*.h ${TB_ROOT}/core/*.cu
     ${TB_ROOT}/include/tunebench/*.h)

set(violations "")
set(checked 0)
foreach(rel ${core_files})
  # the file's wing: core/<wing>/..., or the public ABI
  if(rel MATCHES "^include/tunebench/")
    set(wing tunebench)
  elseif(rel MATCHES "^core/([^/]+)/")
    set(wing ${CMAKE_MATCH_1})
  else()
    string(APPEND violations "  ${rel}: a file directly in core/; put it in a wing (${TB_WINGS})\n")
    continue()
  endif()
  tb_wing_level(${wing} level)
  if(level EQUAL -1)
    string(APPEND violations "  ${rel}: core/${wing}/ is not a wing; the wings are: ${TB_WINGS}\n")
    continue()
  endif()
  get_filename_component(dir ${TB_ROOT}/${rel} DIRECTORY)
  file(STRINGS ${TB_ROOT}/${rel} lines REGEX "^[ \t]*#[ \t]*include[ \t]*\"")
  foreach(line ${lines})
    string(REGEX REPLACE "^[ \t]*#[ \t]*include[ \t]*\"([^\"]+)\".*" "\\1" inc "${line}")
    math(EXPR checked "${checked} + 1")
    if(inc MATCHES "^\\.")
      string(APPEND violations "  ${rel}: #include \"${inc}\": name the wing instead (\"wing/file.h\")\n")
    elseif(inc MATCHES "^([^/]+)/")
      set(target ${CMAKE_MATCH_1})
      tb_wing_level(${target} target_level)
      if(wing STREQUAL "tunebench")
        # the public ABI includes its own folder's files by bare name only
        string(APPEND violations "  ${rel}: #include \"${inc}\": the public headers include nothing of the core\n")
      elseif(target_level EQUAL -1)
        if(NOT EXISTS ${dir}/${inc})
          string(APPEND violations "  ${rel}: #include \"${inc}\": \"${target}\" is not a wing (${TB_WINGS})\n")
        endif()
      elseif(target_level GREATER level)
        string(APPEND violations
               "  ${rel}: #include \"${inc}\" points up: ${wing} (level ${level}) may not include ${target} (level ${target_level})\n")
      elseif(target STREQUAL "tunebench")
        if(NOT EXISTS ${TB_ROOT}/include/${inc})
          string(APPEND violations "  ${rel}: #include \"${inc}\": no such public header\n")
        endif()
      elseif(NOT EXISTS ${TB_ROOT}/core/${inc})
        string(APPEND violations "  ${rel}: #include \"${inc}\": no such file under core/\n")
      endif()
    elseif(NOT EXISTS ${dir}/${inc})
      string(APPEND violations
             "  ${rel}: #include \"${inc}\": a bare name must be in the same folder; name the wing (\"wing/${inc}\")\n")
    endif()
  endforeach()
endforeach()

if(violations)
  message(FATAL_ERROR "tunebench include rule (docs/architecture.md): arrows point down the wings ${TB_WINGS}\n${violations}")
endif()
list(LENGTH core_files n_files)
message(STATUS "check_layers: ${n_files} files, ${checked} includes, all pointing down")
