#!/bin/bash
# install_test.sh - `cmake --install` the build tree into a fresh prefix, then build an outside
# program against it twice (pkg-config, and a CMake project using find_package(dsm) and
# dsm::dsm) and run each as a one-rank job (no dsmrun: libdsm starts its own dsmd) and with the
# installed dsmrun -n 2. Nothing from the build tree may be used by the installed copies.
#
#   install_test.sh BUILD_DIR [SANITIZE]
#
# SANITIZE is the build's DSM_SANITIZE (e.g. address,undefined): the outside program must then
# be built with the same -fsanitize flags to load the instrumented libdsm.
set -euo pipefail

build=$(cd "$1" && pwd)
sanitize=${2:-}
work=$(mktemp -d /tmp/dsm-install-test-XXXXXX)
prefix=$work/prefix
limit=60

cleanup() {
    local left
    left=$(pgrep -a -f "$work" || true)
    if [ -n "$left" ]; then
        echo "install_test: processes left behind:" >&2
        echo "$left" >&2
        # shellcheck disable=SC2046
        kill -KILL $(pgrep -f "$work") 2>/dev/null || true
    fi
    rm -rf "$work"
    [ -z "$left" ]
}
trap 'cleanup || exit 1' EXIT

fail() {
    echo "install_test: FAIL: $*" >&2
    exit 1
}

step() {
    echo "== $*"
}

# Only the installed copies: no build tree on PATH, no DSM_DSMD pointing anywhere.
unset DSM_DSMD DSM_SOCKET DSM_RANK DSM_NRANKS DSM_NODE LD_LIBRARY_PATH PKG_CONFIG_PATH
export TMPDIR=$work   # dsmrun's socket directory, and so the marker for pgrep
export PATH=$prefix/bin:/usr/local/bin:/usr/bin:/bin

step "cmake --install $build --prefix $prefix"
timeout $limit cmake --install "$build" --prefix "$prefix" >"$work/install.log" ||
    { cat "$work/install.log" >&2; fail "cmake --install failed"; }

for f in libexec/dsm/dsmd bin/dsmrun bin/dsm-compare bin/bench-models bin/bench-trace bin/dsm-report; do
    [ -x "$prefix/$f" ] || fail "$f not installed (or not executable)"
done
[ ! -e "$prefix/bin/dsmd" ] || fail "dsmd installed in bin/ (an internal program: libexec/dsm/)"
for m in man1/dsmrun.1 man1/dsm-compare.1 man1/dsm-report.1 man3/libdsm.3; do
    grep -q '^\.TH ' "$prefix/share/man/$m" 2>/dev/null || fail "man page share/man/$m not installed"
    if command -v groff >/dev/null; then
        warn=$(groff -man -ww -z "$prefix/share/man/$m" 2>&1)
        [ -z "$warn" ] || fail "groff finds fault with $m: $warn"
    fi
done
[ -f "$prefix/include/dsm/dsm.h" ] || fail "include/dsm/dsm.h not installed"
pc=$(find "$prefix" -name dsm.pc -path '*/pkgconfig/*')
[ -n "$pc" ] || fail "dsm.pc not installed"
libdir=$(dirname "$(dirname "$pc")")
ls "$libdir"/libdsm.so* >/dev/null 2>&1 || fail "libdsm.so not installed in $libdir"
[ -f "$libdir/cmake/dsm/dsmConfig.cmake" ] || fail "cmake/dsm/dsmConfig.cmake not installed"
[ -f "$libdir/cmake/dsm/dsmConfigVersion.cmake" ] || fail "dsmConfigVersion.cmake not installed"
if find "$prefix/include" -name '*.h' ! -path '*/dsm/dsm.h' ! -path '*/dsm/dsm_version.h' | grep -q .; then
    fail "headers other than dsm/dsm.h and dsm/dsm_version.h installed: $(find "$prefix/include" -name '*.h')"
fi

mkdir -p "$work/src"
cat >"$work/src/app.c" <<'EOF'
/* app.c - an outside program using only the installed <dsm/dsm.h>. */
#include <dsm/dsm.h>
#include <stdio.h>
#include <string.h>

#if !DSM_VERSION_AT_LEAST(0, 1, 0)
#error "the installed headers say they are older than 0.1.0"
#endif

int main(int argc, char **argv)
{
    if (strcmp(dsm_version(), DSM_VERSION_STRING) != 0) {
        fprintf(stderr, "app: library %s, headers %s\n", dsm_version(), DSM_VERSION_STRING);
        return 1;
    }
    int err = dsm_init(&argc, &argv);
    if (err) {
        fprintf(stderr, "app: dsm_init: %s\n", dsm_strerror(err));
        return 1;
    }
    int r = dsm_rank(), n = dsm_nranks();
    unsigned char *page = dsm_coalloc(dsm_page_size());
    if (!page)
        return 1;
    page[r] = (unsigned char)(r + 1);
    if (dsm_barrier())
        return 1;
    for (int i = 0; i < n; i++)
        if (page[i] != (unsigned char)(i + 1)) {
            fprintf(stderr, "app: rank %d sees byte %d = %d\n", r, i, page[i]);
            return 1;
        }
    printf("app: rank %d of %d ok (%s)\n", r, n, dsm_consistency());
    fflush(stdout);
    return dsm_finalize() ? 1 : 0;
}
EOF

cflags=()
if [ -n "$sanitize" ]; then
    cflags=(-fsanitize="$sanitize" -fno-omit-frame-pointer)
fi

step "pkg-config build"
export PKG_CONFIG_PATH=$libdir/pkgconfig
ver=$(pkg-config --modversion dsm) || fail "pkg-config does not find dsm via PKG_CONFIG_PATH"
echo "dsm $ver: $(pkg-config --cflags --libs dsm)"
# shellcheck disable=SC2046
cc "${cflags[@]}" -o "$work/app_pc" "$work/src/app.c" $(pkg-config --cflags --libs dsm) ||
    fail "cc app.c \$(pkg-config --cflags --libs dsm) failed"

step "CMake find_package(dsm) build"
cat >"$work/src/CMakeLists.txt" <<EOF
cmake_minimum_required(VERSION 3.18)
project(outside_app C)
find_package(dsm $ver REQUIRED)
add_executable(app_cmake app.c)
target_link_libraries(app_cmake PRIVATE dsm::dsm)
if(NOT EXISTS "\${DSM_DSMRUN}")
  message(FATAL_ERROR "DSM_DSMRUN (\${DSM_DSMRUN}) does not exist")
endif()
EOF
timeout $limit cmake -S "$work/src" -B "$work/cbuild" -DCMAKE_PREFIX_PATH="$prefix" \
    -DCMAKE_C_FLAGS="${cflags[*]}" >"$work/cmake.log" 2>&1 ||
    { cat "$work/cmake.log" >&2; fail "configuring the find_package(dsm) project failed"; }
timeout $limit cmake --build "$work/cbuild" >>"$work/cmake.log" 2>&1 ||
    { cat "$work/cmake.log" >&2; fail "building the find_package(dsm) project failed"; }
cp "$work/cbuild/app_cmake" "$work/app_cmake"

for app in app_pc app_cmake; do
    exe=$work/$app
    step "$app links the installed libdsm"
    lib=$(ldd "$exe" | awk '/libdsm\.so/ { print $3 }')
    case "$lib" in
        "$prefix"/*) echo "$lib" ;;
        *) fail "$app resolves libdsm to '$lib', not under $prefix" ;;
    esac

    step "$app as a one-rank job (no dsmrun)"
    out=$(cd "$work" && timeout $limit "$exe" 2>&1) || fail "$app standalone failed: $out"
    echo "$out"
    grep -qx "app: rank 0 of 1 ok (sequential)" <<<"$out" || fail "$app standalone: wrong output"

    step "$app with the installed dsmrun -n 2"
    out=$(cd "$work" && timeout $limit "$prefix/bin/dsmrun" -v -n 2 --timeout 50 -- "$exe" 2>&1) ||
        fail "dsmrun -n 2 $app failed: $out"
    echo "$out"
    grep -q "^dsmrun: starting $prefix/libexec/dsm/dsmd " <<<"$out" ||
        fail "the installed dsmrun did not start the installed dsmd"
    for r in 0 1; do
        grep -qx "app: rank $r of 2 ok (sequential)" <<<"$out" || fail "$app: rank $r's line missing"
    done
done

step "PASS"
