#!/usr/bin/env bash
# build_llama_server.sh CACHE_DIR: build llama.cpp's llama-server, llama-quantize and llama-perplexity once, from the llama.cpp source
# vendored in the llama-cpp-python sdist (PyPI), and cache the static binaries in CACHE_DIR/llama.cpp-VERSION/bin.
# Later runs reuse them. About 10 minutes on 2 cores; run at low priority so it does not starve other work.
set -euo pipefail
cache=${1:?usage: build_llama_server.sh CACHE_DIR}
version=${LLAMA_CPP_PYTHON_VERSION:-0.3.36}
bin="$cache/llama.cpp-$version/bin"
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
  -DLLAMA_BUILD_TESTS=OFF >&2
nice -n 10 cmake --build "$work/build" --target llama-server llama-quantize llama-perplexity -j"${JOBS:-2}" >&2
mkdir -p "$bin"
cp "$work/build/bin/llama-server" "$work/build/bin/llama-quantize" "$work/build/bin/llama-perplexity" "$bin/"
echo "llama-cpp-python $version, built $(date -u +%FT%TZ) in $(( $(date +%s) - start )) s" > "$bin/BUILD_INFO"
echo ">> llama.cpp: built in $(( $(date +%s) - start )) s, cached in $bin" >&2
echo "$bin"
