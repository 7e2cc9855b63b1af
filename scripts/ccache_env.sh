# Sourced by the build scripts: when ccache is installed, sets `launcher` to the CMake flag that uses
# it and configures it so that several clones or worktrees share one cache (paths relative to the
# checkout) and calls that include the targets' precompiled header are cached too (without the
# sloppiness ccache refuses every one of them as "could not use precompiled header").
launcher=()
if command -v ccache >/dev/null; then
  export CCACHE_BASEDIR="$PWD" CCACHE_NOHASHDIR=true
  export CCACHE_SLOPPINESS=${CCACHE_SLOPPINESS:-pch_defines,time_macros,include_file_mtime,include_file_ctime}
  launcher=(-DCMAKE_CXX_COMPILER_LAUNCHER=ccache)
fi
