#!/usr/bin/env bash
# llama.cpp as a measured peer of the LLM benchmark, never part of `make install`:
#   scripts/llama_cpp.sh   build llama-cpp-python once from its source (PyPI has no CPU wheel:
#                          about 10 minutes on 2 cores), keep the wheel and the sources in a
#                          cache, install it into .venv, and write models/llm_chat/gguf/ (the
#                          same base model as the other backends as Q8_0 and F16 GGUF files,
#                          converted by llama.cpp's own script).
# A second run installs from the cache in seconds. `make llama-cpp` calls it.
set -euo pipefail
cd "$(dirname "$0")/.."
version=${LLAMA_CPP_VERSION:-0.3.36}
cache=${LLAMA_CPP_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/ml-monorepo/llama-cpp-$version}
python=${PYTHON:-.venv/bin/python}
base=models/llm_chat/base
out=models/llm_chat/gguf
mkdir -p "$cache"

sdist="$cache/llama_cpp_python-$version.tar.gz"
if [[ ! -f $sdist ]]; then
  "$python" -m pip download --quiet --no-deps --no-binary :all: "llama-cpp-python==$version" -d "$cache"
fi
if ! compgen -G "$cache/llama_cpp_python-$version-*.whl" >/dev/null; then
  echo "building llama-cpp-python $version from source (cached in $cache)"
  start=$SECONDS
  # GGML_NATIVE: this machine's instruction set, as the wheel never leaves it (the cache is local).
  CMAKE_ARGS="-DGGML_NATIVE=ON -DLLAMA_BUILD_TESTS=OFF -DLLAMA_BUILD_EXAMPLES=OFF" \
    CMAKE_BUILD_PARALLEL_LEVEL=$(nproc) \
    "$python" -m pip wheel --no-deps "$sdist" -w "$cache" 2>&1 \
    | grep -E "^(Building|Created|Successfully|ERROR|error)" || true
  compgen -G "$cache/llama_cpp_python-$version-*.whl" >/dev/null || { echo "build failed"; exit 1; }
  echo "built in $((SECONDS - start)) s"
fi
# sentencepiece: llama.cpp's converter imports it at load, whatever the tokenizer
"$python" -m pip install --quiet "$cache"/llama_cpp_python-"$version"-*.whl "sentencepiece==0.2.1"

# llama.cpp's converter (in the sdist) writes GGUF from the same safetensors folder.
src="$cache/src"
if [[ ! -d $src ]]; then
  mkdir -p "$src"
  tar -xzf "$sdist" -C "$src" --strip-components=3 --wildcards "*/vendor/llama.cpp/convert_hf_to_gguf.py" \
    "*/vendor/llama.cpp/gguf-py" "*/vendor/llama.cpp/conversion" 2>/dev/null \
    || tar -xzf "$sdist" -C "$src" --strip-components=3 --wildcards \
      "*/vendor/llama.cpp/convert_hf_to_gguf.py" "*/vendor/llama.cpp/gguf-py"
fi
mkdir -p "$out"
# The converter reads SentencePiece steps in the base's tokenizer.json as a SentencePiece vocab
# (whose tokenizer aborts on the first byte): convert from a copy without them (byte_level.py).
clean=$(mktemp -d)
trap 'rm -rf "$clean"' EXIT
"$python" -m llm_chat.byte_level "$base" "$clean/base" >/dev/null
for type in q8_0 f16; do
  file="$out/model-$type.gguf"
  [[ -f $file ]] || PYTHONPATH="$src/gguf-py" "$python" "$src/convert_hf_to_gguf.py" "$clean/base" \
    --outtype "$type" --outfile "$file" >"$cache/convert-$type.log" 2>&1 \
    || { tail -20 "$cache/convert-$type.log"; exit 1; }
done
echo "llama.cpp ready: $("$python" -c 'import llama_cpp; print(llama_cpp.__version__)'); models in $out"
ls -la "$out"
