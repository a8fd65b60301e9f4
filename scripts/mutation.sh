#!/usr/bin/env bash
# Mutation testing (docs/testing.md): cosmic-ray, one module at a time. Opt-in, not part of
# ./test.sh or CI. Sets up .venv (scripts/bootstrap.sh) and .venv-mutation (pinned cosmic-ray),
# then runs scripts/mutation.py with the given module names (none: all).
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
bash "$ROOT/scripts/bootstrap.sh"
VENV="$ROOT/.venv-mutation"  # the project's own venv: ALTMARL_VENV (scripts/bootstrap.sh), default .venv
STAMP="$VENV/.requirements-mutation.sha256"
WANT="$(sha256sum "$ROOT/requirements-mutation.txt" | cut -d' ' -f1)"
if [[ ! -f "$STAMP" || "$(cat "$STAMP")" != "$WANT" ]]; then
    echo "[mutation] installing cosmic-ray into $VENV (requirements-mutation.txt)" >&2
    "${ALTMARL_VENV:-$ROOT/.venv}/bin/python" -m venv "$VENV"
    "$VENV/bin/pip" install --quiet -r "$ROOT/requirements-mutation.txt"
    echo "$WANT" > "$STAMP"
fi
cd "$ROOT"
exec "$VENV/bin/python" "$ROOT/scripts/mutation.py" "$@"
