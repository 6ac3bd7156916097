#!/usr/bin/env bash
# The package as a user installs it: build the sdist and the wheel (the wheel from the sdist),
# check their metadata, install the wheel alone (no extra) into a fresh virtual environment, and
# there run the core tests, the reuse example, and the named error of a missing extra.
#
#   DEV_PYTHON  the development environment's python, with build and twine (default .venv/bin/python)
#   PYTHON      the interpreter that creates the fresh environment (default python3)
set -euo pipefail
cd "$(dirname "$0")/.."
REPO=$PWD
DEV_PYTHON=${DEV_PYTHON:-.venv/bin/python}
PYTHON=${PYTHON:-python3}
WORK=$(mktemp -d "${TMPDIR:-/tmp}/ichprog-wheel.XXXXXX")
trap 'rm -rf "$WORK"' EXIT
t0=$(date +%s)
step() { echo "== [$(( $(date +%s) - t0 )) s] $*"; }

step "build the sdist and the wheel"
"$DEV_PYTHON" -m build --outdir "$WORK/dist" . > "$WORK/build.log" 2>&1 \
    || { cat "$WORK/build.log"; exit 1; }
ls "$WORK/dist"
step "check their metadata"
"$DEV_PYTHON" -m twine check --strict "$WORK"/dist/*

step "a fresh environment with the wheel alone"
"$PYTHON" -m venv "$WORK/venv"
VPY=$WORK/venv/bin/python
"$VPY" -m pip install --quiet "$WORK"/dist/*.whl
"$VPY" -m pip install --quiet "pytest>=7" "hypothesis>=6"   # to run the tests, nothing else
cd "$WORK"   # away from the repository: only the installed wheel can be imported
"$VPY" - "$REPO" <<'PY'
import importlib.metadata as md
import re
import sys
from pathlib import Path

import ichprog

repo = Path(sys.argv[1])
installed = {d.metadata["Name"].lower() for d in md.distributions()}
heavy = {"torch", "monai", "nibabel", "safetensors", "captum", "openpyxl", "shap", "numba",
         "llvmlite", "xgboost", "xgboost-cpu", "matplotlib", "pydicom", "ray"}
assert not installed & heavy, f"the core install pulled in {sorted(installed & heavy)}"
assert {"numpy", "scipy", "pandas", "scikit-learn"} <= installed, sorted(installed)
assert repo not in Path(ichprog.__file__).parents, ichprog.__file__
source = (repo / "src/ichprog/_version.py").read_text()
assert ichprog.__version__ == re.search(r'"(.+)"', source).group(1), ichprog.__version__
extras = set(md.metadata("ichprog").get_all("Provides-Extra"))
assert {"image", "tabular", "report", "dicom", "ray", "all"} <= extras, extras
print(f"ichprog {ichprog.__version__} from {ichprog.__file__}; {len(installed)} distributions")
PY

step "the core tests (pytest -m core)"
# only the modules marked core: the others import torch, MONAI or SHAP when collected
mapfile -t CORE_TESTS < <(grep -l '^pytestmark = pytest.mark.core' "$REPO"/tests/test_*.py)
"$VPY" -m pytest -q -p no:cacheprovider -m core --rootdir "$REPO" -c "$REPO/pyproject.toml" \
    "${CORE_TESTS[@]}"

for example in reuse_metrics encode_gcs_age; do   # the examples that need only the core
    step "examples/$example.py"
    ICHPROG_EXAMPLE_SMALL=1 ICHPROG_EXAMPLE_OUT="$WORK/$example" \
        "$VPY" "$REPO/examples/$example.py" > "$WORK/$example.log"
    tail -n 2 "$WORK/$example.log"
done

step "a missing extra is named"
"$VPY" - <<'PY'
try:
    import ichprog.data  # noqa: F401
except ImportError as exc:
    expected = "ichprog.data needs the 'image' extra: pip install 'ichprog[image]'"
    assert str(exc).startswith(expected), str(exc)
    print(f"import ichprog.data: {type(exc).__name__}: {exc}")
else:
    raise AssertionError("ichprog.data imported without the image extra")
PY
set +e
"$WORK/venv/bin/ichprog" demo --quick --out "$WORK/demo" 2> "$WORK/cli.err"
code=$?
set -e
cat "$WORK/cli.err"
[ "$code" -eq 2 ] || { echo "ichprog demo exited $code, expected 2"; exit 1; }
grep -q "pip install 'ichprog\[image,tabular,report\]'" "$WORK/cli.err"
[ ! -e "$WORK/demo" ] || { echo "ichprog demo started without its extras"; exit 1; }

step "wheel check passed"
