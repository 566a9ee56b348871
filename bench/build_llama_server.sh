#!/usr/bin/env bash
# build_llama_server.sh CACHE_DIR: build llama.cpp's llama-server, llama-quantize and llama-perplexity once, from the llama.cpp source
# vendored in the llama-cpp-python sdist (PyPI), and cache the static binaries in CACHE_DIR/llama.cpp-VERSION/bin.
# Later runs reuse them. About 10 minutes on 2 cores; run at low priority so it does not starve other work.
#
# Not GGML_NATIVE: built with -march=native on an AMX Xeon (family 6 model 207), llama-perplexity died with SIGILL
# right after "llama threadpool init" (AMX code suspected, not proven). Instead every x86 SIMD extension this CPU
# has, up to AVX-512 VNNI/BF16, is named explicitly and AMX is left out; built so, it runs there. llama.cpp still gets
# its best non-AMX kernels. The cache folder is keyed by
# that flag set, so a cache carried to another CPU is rebuilt rather than run with instructions it lacks.
set -euo pipefail
cache=${1:?usage: build_llama_server.sh CACHE_DIR}
version=${LLAMA_CPP_PYTHON_VERSION:-0.3.36}
flags=$(grep -m1 '^flags' /proc/cpuinfo | cut -d: -f2)
has() { [[ " $flags " == *" $1 "* ]] && echo ON || echo OFF; }
isa_args=(-DGGML_NATIVE=OFF -DGGML_AVX="$(has avx)" -DGGML_AVX2="$(has avx2)" -DGGML_BMI2="$(has bmi2)"
  -DGGML_FMA="$(has fma)" -DGGML_F16C="$(has f16c)" -DGGML_AVX_VNNI="$(has avx_vnni)"
  -DGGML_AVX512="$(has avx512f)" -DGGML_AVX512_VBMI="$(has avx512vbmi)" -DGGML_AVX512_VNNI="$(has avx512_vnni)"
  -DGGML_AVX512_BF16="$(has avx512_bf16)" -DGGML_AMX_TILE=OFF -DGGML_AMX_INT8=OFF -DGGML_AMX_BF16=OFF)
isa_key=$(printf '%s' "${isa_args[*]}" | sha256sum | cut -c1-8)
bin="$cache/llama.cpp-$version-$isa_key/bin"
if [ -x "$bin/llama-server" ] && [ -x "$bin/llama-quantize" ] && [ -x "$bin/llama-perplexity" ]; then
  echo "$bin"
  exit 0
fi
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
python=${PYTHON:-python3}
echo ">> llama.cpp: downloading the llama-cpp-python==$version sdist" >&2
"$python" -m pip download --disable-pip-version-check -q --no-deps --no-binary :all: -d "$work" \
  "llama-cpp-python==$version" >&2
tar xzf "$work"/llama_cpp_python-"$version".tar.gz -C "$work"
src="$work/llama_cpp_python-$version/vendor/llama.cpp"
echo ">> llama.cpp: building llama-server, llama-quantize and llama-perplexity (about 10 minutes on 2 cores)" >&2
start=$(date +%s)
nice -n 10 cmake -S "$src" -B "$work/build" -DCMAKE_BUILD_TYPE=Release -DLLAMA_CURL=OFF -DBUILD_SHARED_LIBS=OFF \
  -DLLAMA_BUILD_TESTS=OFF "${isa_args[@]}" >&2
nice -n 10 cmake --build "$work/build" --target llama-server llama-quantize llama-perplexity -j"${JOBS:-2}" >&2
mkdir -p "$bin"
cp "$work/build/bin/llama-server" "$work/build/bin/llama-quantize" "$work/build/bin/llama-perplexity" "$bin/"
echo "llama-cpp-python $version, built $(date -u +%FT%TZ) in $(( $(date +%s) - start )) s; ${isa_args[*]}" > "$bin/BUILD_INFO"
echo ">> llama.cpp: built in $(( $(date +%s) - start )) s, cached in $bin" >&2
echo "$bin"
