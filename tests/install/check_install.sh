#!/bin/sh
# Installs the build into a temporary prefix and uses it as another project would
# (tests/cmake/install.cmake runs this as the test install_out_of_tree):
#   1. the installed files: libdsc.so with its versioned SONAME, libdsc.a, include/dsc/,
#      bin/dsc, the CMake package and dsc.pc;
#   2. examples/train_gpt.c built out of tree through find_package(dsc) (dsc::dsc and
#      dsc::dsc_static), and run;
#   3. the same file built with `cc $(pkg-config --cflags --libs dsc)`, and run;
#   4. dsc added to a parent project with add_subdirectory, beside parent targets named like
#      dsc's examples, benches and tests: the configuration must not collide.
# usage: check_install.sh BUILD_DIR SOURCE_DIR LIBDIR SONAME WORK_DIR C_COMPILER
set -eu
build=$1 src=$2 libdir=$3 soname=$4 work=$5 cc=$6
rm -rf "$work"
mkdir -p "$work"
prefix=$work/prefix
step() { echo "== $*"; }

step "cmake --install $build --prefix $prefix"
cmake --install "$build" --prefix "$prefix" > "$work/install.log"
for f in "$libdir/libdsc.so" "$libdir/$soname" "$libdir/libdsc.a" include/dsc/dsc.h bin/dsc \
         "$libdir/cmake/dsc/dsc-config.cmake" "$libdir/cmake/dsc/dsc-config-version.cmake" \
         "$libdir/pkgconfig/dsc.pc"; do
  [ -e "$prefix/$f" ] || { echo "FAIL: $f is not installed"; exit 1; }
done
got=$(readelf -d "$prefix/$libdir/libdsc.so" | sed -n 's/.*(SONAME).*\[\(.*\)\]/\1/p')
[ "$got" = "$soname" ] || { echo "FAIL: SONAME of libdsc.so is '$got', expected '$soname'"; exit 1; }
echo "SONAME $got"
"$prefix/bin/dsc" --help | head -n 1

step "find_package(dsc) out of tree"
mkdir -p "$work/fp"
cp "$src/examples/train_gpt.c" "$work/fp/"
cat > "$work/fp/CMakeLists.txt" <<'CM'
cmake_minimum_required(VERSION 3.18)
project(uses_dsc C)
find_package(dsc 0.1 REQUIRED)
add_executable(train_gpt train_gpt.c)
target_link_libraries(train_gpt PRIVATE dsc::dsc)
add_executable(train_gpt_static train_gpt.c)
target_link_libraries(train_gpt_static PRIVATE dsc::dsc_static)
CM
CC=$cc cmake -S "$work/fp" -B "$work/fp/build" -DCMAKE_PREFIX_PATH="$prefix" > "$work/fp.log" 2>&1 ||
  { cat "$work/fp.log"; echo "FAIL: configuring against find_package(dsc)"; exit 1; }
cmake --build "$work/fp/build" > "$work/fp-build.log" 2>&1 ||
  { cat "$work/fp-build.log"; echo "FAIL: building against find_package(dsc)"; exit 1; }
ldd "$work/fp/build/train_gpt" | grep -q "$soname => $prefix/" ||
  { ldd "$work/fp/build/train_gpt"; echo "FAIL: train_gpt does not load $soname from the prefix"; exit 1; }
"$work/fp/build/train_gpt" | sed 's/^/find_package dsc::dsc: /'
"$work/fp/build/train_gpt_static" | sed 's/^/find_package dsc::dsc_static: /'

step "pkg-config out of tree"
flags=$(PKG_CONFIG_PATH="$prefix/$libdir/pkgconfig" pkg-config --cflags --libs dsc)
echo "pkg-config --cflags --libs dsc: $flags"
# shellcheck disable=SC2086 # the flags are a list of words
"$cc" -o "$work/train_gpt_pc" "$src/examples/train_gpt.c" $flags
LD_LIBRARY_PATH="$prefix/$libdir" "$work/train_gpt_pc" | sed 's/^/pkg-config: /'

step "add_subdirectory beside a parent's train_gpt, seed_example, test_config, bench targets"
mkdir -p "$work/parent"
for t in train_gpt seed_example shard_loader test_config bench_gemm; do echo "int main(void) { return 0; }" > "$work/parent/$t.c"; done
cat > "$work/parent/CMakeLists.txt" <<CM
cmake_minimum_required(VERSION 3.18)
project(parent C)
foreach(t train_gpt seed_example shard_loader test_config bench_gemm)
  add_executable(\${t} \${t}.c)
endforeach()
set(DSC_BUILD_EXAMPLES ON CACHE BOOL "")
add_subdirectory("$src" dsc)
add_executable(uses_dsc train_gpt.c)
target_link_libraries(uses_dsc PRIVATE dsc::dsc)
CM
CC=$cc cmake -S "$work/parent" -B "$work/parent/build" > "$work/parent.log" 2>&1 ||
  { cat "$work/parent.log"; echo "FAIL: add_subdirectory(dsc) in a parent project"; exit 1; }
echo "parent project configured"
rm -rf "$work"
echo INSTALL-OK
