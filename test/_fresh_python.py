"""What a fresh interpreter imports: for tests that keep a heavy optional package out of a code path."""
import ast
import subprocess
import sys


def packages_imported(code: str, packages) -> list:
    """Run `code` in a new interpreter; the sorted names of the modules of `packages` it imported."""
    report = f"\nimport sys\nprint(sorted(m for m in sys.modules if m.split('.')[0] in {tuple(packages)!r}))\n"
    done = subprocess.run([sys.executable, "-c", code + report], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr[-2000:]
    return ast.literal_eval(done.stdout.strip().splitlines()[-1])
