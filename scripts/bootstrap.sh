#!/usr/bin/env bash
# One set-up step for both README commands: a project venv with pinned ROS 2
# Jazzy wheels + numerics, the altmarl_msgs interfaces built with rosidl, and
# this package installed editable. Idempotent: each step leaves a stamp keyed
# on its inputs, so a second run only checks stamps (a few seconds).
#
# Usage: bash scripts/bootstrap.sh        (sourced or run; prints each step)
# Env:   ALTMARL_VENV (default: <repo>/.venv), ALTMARL_PYTHON (default: python3.11 or python3),
#        ALTMARL_FA=1, ALTMARL_TEST=1, ALTMARL_CLUSTER=1, ALTMARL_COVERAGE=1 (the optional pinned sets of step 3b;
#        ./test.sh sets the first three, scripts/coverage.sh all four)
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
VENV="${ALTMARL_VENV:-$ROOT/.venv}"
BUILD="$ROOT/build"
STAMPS="$VENV/.altmarl-stamps"

# Progress goes to stderr: stdout belongs to the command after set-up (`./run.sh --json` stays valid JSON).
step() { printf '\033[1m[setup]\033[0m %s\n' "$*" >&2; }
fail() { printf '\033[1;31m[setup] FAILED:\033[0m %s\n' "$*" >&2; exit 1; }
digest() { { cat "$@" 2>/dev/null || true; } | sha256sum | cut -c1-16; }  # missing files (an unmatched glob) are skipped
fresh() { [ -f "$STAMPS/$1" ] && [ "$(cat "$STAMPS/$1")" = "$2" ]; }
stamp() { mkdir -p "$STAMPS"; echo "$2" > "$STAMPS/$1"; }
# Drop pip's notes about index locations missing on this machine; keep real errors.
quiet_pip() { grep -v "is ignored: it is neither a file nor a directory" || true; }

# 1. Python 3.11 (the ROS 2 Jazzy wheels are built for cp311).
PY="${ALTMARL_PYTHON:-}"
if [ -z "$PY" ]; then
  for cand in python3.11 python3; do
    if command -v "$cand" >/dev/null && "$cand" -c 'import sys; sys.exit(sys.version_info[:2] != (3, 11))'; then PY="$cand"; break; fi
  done
fi
[ -n "$PY" ] || fail "Python 3.11 not found. Install it (Debian 12: apt install python3 python3-venv python3.11-dev) or set ALTMARL_PYTHON."
for tool in cmake make g++; do command -v $tool >/dev/null || fail "'$tool' not found; it builds the ROS messages (Debian: apt install cmake build-essential)."; done

# 2. Virtual environment.
if [ ! -x "$VENV/bin/python" ]; then
  step "creating virtual environment $VENV ($($PY --version))"
  "$PY" -m venv "$VENV" || fail "python -m venv (Debian: apt install python3-venv)"
fi
VPY="$VENV/bin/python"
SITE="$("$VPY" -c 'import sysconfig; print(sysconfig.get_paths()["purelib"])')"

# 3. Pinned dependencies, in two passes. First the numerics the numba warm-up (step 6) imports, at the versions
#    requirements.txt pins, so that the warm-up compiles while pip installs the rest (step 7: the ROS 2
#    wheels, colcon, the optional sets) and the ROS interfaces build (step 8).
REQ_KEY="$(digest "$ROOT/requirements.txt")"
WARM_IMPORTS=(numpy numba PyYAML transforms3d matplotlib tqdm ros-jazzy-ament-index-python)
if ! fresh requirements "$REQ_KEY"; then
  step "installing the numerics first (${WARM_IMPORTS[*]})"
  "$VPY" -m pip install --disable-pip-version-check --no-compile -q -c "$ROOT/requirements.txt" \
    "${WARM_IMPORTS[@]}" 2>&1 | quiet_pip || fail "pip install ${WARM_IMPORTS[*]}"
fi

# 4. This package, editable, plus its ament index entry and share/ (launch, config).
PKG_KEY="$(digest "$ROOT/setup.py" "$ROOT/setup.cfg" "$ROOT/package.xml")"
if ! fresh package "$PKG_KEY"; then
  step "installing altmarl_ros (editable)"
  "$VPY" -m pip install --disable-pip-version-check --no-compile --no-deps -q -e "$ROOT" 2>&1 \
    | quiet_pip || fail "pip install -e ."
  # pip -e skips data_files: register the package and expose launch/ and config/ live from the tree.
  mkdir -p "$VENV/share/ament_index/resource_index/packages"
  touch "$VENV/share/ament_index/resource_index/packages/altmarl_ros"
  rm -rf "$VENV/share/altmarl_ros" && ln -s "$ROOT" "$VENV/share/altmarl_ros"
  stamp package "$PKG_KEY"
fi

# 5. numba caches each kernel beside its source, checked against that file's stamp only: a kernel that
#    inlines or calls njit code from another file keeps the old code when only that file changed. So after
#    any change to the package's sources, every cached kernel goes and is compiled again on first use.
SRC_KEY="$(cd "$ROOT" && find altmarl_ros sim -name '*.py' -not -path '*/__pycache__/*' | sort | xargs cat | sha256sum | cut -c1-16)"
if ! fresh numba-sources "$SRC_KEY"; then
  find "$ROOT/altmarl_ros" "$ROOT/sim" -path '*/__pycache__/*' \( -name '*.nbi' -o -name '*.nbc' \) -delete
  stamp numba-sources "$SRC_KEY"
fi

# 6. Meanwhile (pip, then the interface builds: one core each, mostly), a background process compiles the numba
#    kernels a first demo trains with (altmarl_ros/warm_up.py, ~45 CPU-s on an empty cache), once per checkout
#    and source version, and only when this venv runs this checkout (a venv shared through ALTMARL_VENV may run
#    another). Set-up waits for it at the end.
WARM_KEY="$(echo "$SRC_KEY $ROOT" | sha256sum | cut -c1-16)"
WARM_PID=""
if ! fresh numba-warm "$WARM_KEY" \
    && [ "$("$VPY" -P -c 'import altmarl_ros, os; print(os.path.dirname(os.path.dirname(altmarl_ros.__file__)))' \
           2>/dev/null)" = "$ROOT" ]; then
  step "compiling the numba kernels of a first run, in the background"
  mkdir -p "$BUILD"
  (cd "$BUILD" && . "$ROOT/scripts/process_env.sh" && exec "$VPY" -m altmarl_ros.warm_up) \
    > "$BUILD/warm-up.log" 2>&1 & WARM_PID=$!
  trap '[ -n "$WARM_PID" ] && kill "$WARM_PID" 2>/dev/null || true' EXIT  # set-up stopped: so is the warm-up
fi

# 7. The rest of requirements.txt.
if ! fresh requirements "$REQ_KEY"; then
  step "installing the other pinned dependencies (ROS 2 Jazzy wheels, colcon, ...; ~1 min the first time)"
  "$VPY" -m pip install --disable-pip-version-check --no-compile -q -r "$ROOT/requirements.txt" 2>&1 \
    | quiet_pip || fail "pip install -r requirements.txt"
  # ament_index must find the venv's share/ from any venv python, without `activate`.
  echo "import os, sys; os.environ.setdefault('AMENT_PREFIX_PATH', sys.prefix)" > "$SITE/ament_prefix_path.pth"
  stamp requirements "$REQ_KEY"; rm -f "$STAMPS/altmarl_msgs" "$STAMPS/tf2_msgs" "$STAMPS/nav2_msgs" \
    "$STAMPS/requirements-fa.txt" "$STAMPS/requirements-test.txt" \
    "$STAMPS/requirements-cluster.txt" "$STAMPS/requirements-coverage.txt"
fi

# 7b. Optional pinned sets, each only when its flag is 1: JAX for the continuous-state learners (ALTMARL_FA),
#     the test tooling, ruff (ALTMARL_TEST), dask.distributed for `altmarl sweep --cluster`
#     (ALTMARL_CLUSTER) and coverage.py with pytest-cov (ALTMARL_COVERAGE); ./test.sh sets the first three,
#     scripts/coverage.sh all four, ./run.sh none.
optional_requirements() {  # flag-value file description
  [ "$1" = 1 ] || return 0
  local key; key="$(digest "$ROOT/$2")"
  fresh "$2" "$key" && return 0
  step "installing $3 ($2)"
  "$VPY" -m pip install --disable-pip-version-check --no-compile -q -r "$ROOT/$2" 2>&1 \
    | quiet_pip || fail "pip install -r $2"
  stamp "$2" "$key"
}
optional_requirements "${ALTMARL_FA:-0}" requirements-fa.txt "JAX and optax, ~125 MB the first time"
optional_requirements "${ALTMARL_TEST:-0}" requirements-test.txt "test tooling: ruff"
optional_requirements "${ALTMARL_CLUSTER:-0}" requirements-cluster.txt "dask.distributed for sweep --cluster, ~4 MB the first time"
optional_requirements "${ALTMARL_COVERAGE:-0}" requirements-coverage.txt "coverage tooling: coverage.py, pytest-cov"

# 8. ROS interfaces built with rosidl and plain cmake (no colcon needed): altmarl_msgs (msg/),
#    tf2_msgs/TFMessage (scripts/tf2_msgs/) and nav2_msgs/NavigateToPose (scripts/nav2_msgs/),
#    because tf2_msgs and nav2_msgs have no PyPI wheel. The builds are independent, so those due run at once
#    (cmake's configure steps are mostly one core each).
interface_key() { digest "$1"/*.msg "$1"/msg/*.msg "$1"/action/*.action "$1/CMakeLists.txt" "$1/package.xml"; }
build_interfaces() {  # name source-dir import-check key
  local name="$1" src="$2" check="$3" key="$4"
  step "building ROS interfaces $name ($(ls "$src"/*.msg "$src"/msg/*.msg "$src"/action/*.action 2>/dev/null \
    | wc -l) .msg/.action files)"
  rm -rf "$BUILD/$name"
  LOG="$BUILD/$name.log"; mkdir -p "$BUILD"
  (
    export AMENT_PREFIX_PATH="$VENV" CMAKE_PREFIX_PATH="$VENV" PATH="$VENV/bin:$PATH"
    cmake -S "$src" -B "$BUILD/$name" -DCMAKE_INSTALL_PREFIX="$VENV" \
          -DPython3_EXECUTABLE="$VPY" -DBUILD_TESTING=OFF &&
    cmake --build "$BUILD/$name" -j"$(nproc)" &&
    cmake --install "$BUILD/$name"
  ) > "$LOG" 2>&1 || { tail -30 "$LOG" >&2; fail "message build of $name (full log: $LOG)"; }
  "$VPY" -c "$check" || fail "$name built but does not import"
  stamp "$name" "$key"
}
DUE=()  # name|source-dir|import-check|key of each interface package whose inputs changed
due_interfaces() { local key; key="$(interface_key "$2")"; fresh "$1" "$key" || DUE+=("$1|$2|$3|$key"); }
due_interfaces altmarl_msgs "$ROOT/msg" 'from altmarl_msgs.msg import GlobalCommand'
# Only where no real tf2_msgs is installed (a wheel would bring the complete package).
if [ -f "$STAMPS/tf2_msgs" ] || ! "$VPY" -c 'import tf2_msgs' 2>/dev/null; then
  due_interfaces tf2_msgs "$ROOT/scripts/tf2_msgs" 'from tf2_msgs.msg import TFMessage'
fi
# NavigateToPose (command_type navigate_to_pose) for the tests (ALTMARL_TEST=1) or on request (ALTMARL_NAV2=1):
# the demo does not use it, and a real Nav2 install brings its own nav2_msgs.
if { [ "${ALTMARL_TEST:-0}" = 1 ] || [ "${ALTMARL_NAV2:-0}" = 1 ]; } \
    && { [ -f "$STAMPS/nav2_msgs" ] || ! "$VPY" -c 'import nav2_msgs' 2>/dev/null; }; then
  due_interfaces nav2_msgs "$ROOT/scripts/nav2_msgs" 'from nav2_msgs.action import NavigateToPose'
fi
if [ "${#DUE[@]}" -gt 0 ]; then
  # The message wheels' cmake exports name the wheel builder's include dirs; point them at ours, once, before
  # the builds read them (grep finds nothing once they are fixed: a rebuild after a .msg edit must not stop there).
  PYINC="$("$VPY" -c 'import sysconfig; print(sysconfig.get_paths()["include"])')"
  NPINC="$("$VPY" -c 'import numpy; print(numpy.get_include())')"
  { grep -rl /opt/python/cp311-cp311 "$VENV/share" --include='*.cmake' 2>/dev/null || true; } | xargs -r sed -i \
    -e "s#/opt/python/cp311-cp311/include/python3.11#$PYINC#g" \
    -e "s#/opt/python/cp311-cp311/lib/python3.11/site-packages/numpy/_core/include#$NPINC#g"
  BUILDS=()
  for item in "${DUE[@]}"; do
    IFS='|' read -r name src check key <<< "$item"
    build_interfaces "$name" "$src" "$check" "$key" & BUILDS+=($!)
  done
  for pid in "${BUILDS[@]}"; do wait "$pid" || exit 1; done  # each failed build has said why
fi

if [ -n "$WARM_PID" ]; then
  if wait "$WARM_PID"; then
    stamp numba-warm "$WARM_KEY"
  else  # not a set-up failure: the kernels then compile on first use, as without this step
    step "note: the numba warm-up failed (build/warm-up.log); kernels compile on first use instead"
  fi
  WARM_PID=""; trap - EXIT
fi

step "environment ready: $VENV"
