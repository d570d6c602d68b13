#!/usr/bin/env bash
# Create (or refresh) the project virtualenv used by `make demo` / `make test`.
#
#   bash dev/setup_venv.sh [VENV_DIR]      (default: .venv)
#
# Installs the verified stack: torch 2.14.1 / torchvision 0.29.1, Detectron2 (from the
# `sal-detectron2==0.7.2` wheel, ONLY when `import detectron2` fails in the venv, so an
# official install is never replaced), fvcore, iopath, pycocotools, opencv-python, omegaconf,
# this package in editable mode, and the test-time extras (pytest, scikit-image and the
# official `yolox==0.3.0` used as a parity reference).
# A second run with unchanged inputs returns in about a second (stamp file).
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
venv="${1:-${VENV:-$here/.venv}}"
python="${PYTHON:-python3}"

stamp="$venv/.yolox_d2_setup_stamp"
want_stamp="$(cat "$here/dev/setup_venv.sh" "$here/setup.py" | sha256sum | cut -d' ' -f1)"
if [[ -f "$stamp" && "$(cat "$stamp")" == "$want_stamp" ]] && "$venv/bin/python" -c "import detectron2, yolox_d2" 2>/dev/null; then
  echo "[setup] $venv is up to date"
  exit 0
fi

if [[ ! -x "$venv/bin/python" ]]; then
  echo "[setup] creating virtualenv $venv"
  "$python" -m venv "$venv"
fi
pip=("$venv/bin/python" -m pip --disable-pip-version-check)
"${pip[@]}" install -q --upgrade "pip>=23" "setuptools<81" wheel

echo "[setup] installing torch / torchvision and the Detectron2 runtime dependencies"
"${pip[@]}" install -q \
  "torch==2.14.1" "torchvision==0.29.1" \
  "numpy<2" "opencv-python<4.12" "setuptools<81" \
  fvcore iopath pycocotools omegaconf "hydra-core>=1.1" \
  Pillow matplotlib termcolor yacs tabulate cloudpickle tqdm tensorboard black packaging

if "$venv/bin/python" -c "import detectron2" 2>/dev/null; then
  echo "[setup] detectron2 already importable: leaving it alone"
else
  echo "[setup] installing Detectron2 from sal-detectron2==0.7.2"
  dl="$(mktemp -d)"
  trap 'rm -rf "$dl"' EXIT
  "${pip[@]}" download -q --no-deps --only-binary=:all: --python-version 3.10 -d "$dl" "sal-detectron2==0.7.2"
  src="$(ls "$dl"/sal_detectron2-0.7.2-*.whl)"
  mv "$src" "$dl/sal_detectron2-0.7.2-py3-none-any.whl"
  # --no-deps: its requirements were installed above, with the numpy<2 pin it also needs.
  "${pip[@]}" install -q --no-deps "$dl/sal_detectron2-0.7.2-py3-none-any.whl"
fi

echo "[setup] installing yolox_d2 (editable) and the test extras"
"${pip[@]}" install -q --no-build-isolation -e "$here[dev]"
# The official YOLOX is a test-time parity reference only. Its setup.py imports torch, so it
# is installed without build isolation and without its (heavy, pinned) dependency list.
if ! "$venv/bin/python" -c "import yolox" 2>/dev/null; then
  "${pip[@]}" install -q --no-deps --no-build-isolation "yolox==0.3.0"
fi
# The post-2023 official SimOTA rule (pixeltable-yolox is also a top-level `yolox`, so it lives
# outside site-packages and the tests run it in a subprocess).
if [[ ! -d "$venv/reference/pixeltable_yolox/yolox" ]]; then
  "${pip[@]}" install -q --no-deps --target "$venv/reference/pixeltable_yolox" "pixeltable-yolox==0.4.3"
fi
# Real detection data for the bundled tree dataset (its code and heavy dependencies are not used).
if ! "$venv/bin/python" -c "import importlib.util as u, sys; sys.exit(u.find_spec('deepforest') is None)"; then
  "${pip[@]}" install -q --no-deps "deepforest==2.1.0"
fi

"$venv/bin/python" -c "import detectron2, torch, yolox_d2; print('[setup] ok: torch', torch.__version__, '| detectron2', detectron2.__version__)"
echo "$want_stamp" > "$stamp"
