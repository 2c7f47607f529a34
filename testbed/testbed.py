"""Entry point of testbed/testbed (up|down|status|env): see lib/controlplane/__init__.py.

Puts testbed/lib on sys.path (the import root of `controlplane` and `testkit`) and makes sure
`cryptography` is there: when it is missing, re-executes itself with the repository's
.venv/bin/python.
"""

from __future__ import annotations

import importlib.util
import os
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent

if importlib.util.find_spec("cryptography") is None:  # pragma: no cover - depends on the interpreter
    venv_python = HERE.parent / ".venv" / "bin" / "python"
    if venv_python.exists() and Path(sys.executable).resolve() != venv_python.resolve():
        os.execv(str(venv_python), [str(venv_python), __file__, *sys.argv[1:]])  # noqa: S606
    sys.exit("testbed: needs the Python package 'cryptography' (run scripts/bootstrap to make .venv)")

sys.path.insert(0, str(HERE / "lib"))

from controlplane.cli import main  # after the sys.path entry above

if __name__ == "__main__":
    sys.exit(main())
