"""Types that reach the user: the wheel ships ``py.typed``; ``mypy --strict`` and pyright
both accept a user's jobs module (``tests/typing/user_jobs.py``) and both report exactly the
misuses marked ``# E`` in ``tests/typing/user_jobs_errors.py`` (a wrong payload type for a
handler's ``enqueue``, a wrong TypedDict, a wrong return type)."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
CLEAN = "tests/typing/user_jobs.py"
ERRORS = "tests/typing/user_jobs_errors.py"

pytestmark = pytest.mark.django_db(databases=[])


def marked() -> set[int]:
    return {n for n, line in enumerate((ROOT / ERRORS).read_text().splitlines(), 1)
            if re.search(r"  # E$", line)}


def test_mypy_strict_accepts_the_user_module_and_reports_each_misuse() -> None:
    pytest.importorskip("mypy")
    proc = subprocess.run(
        [sys.executable, "-m", "mypy", "--strict", "--follow-imports=silent",
         "--show-error-codes", "--no-error-summary", "--hide-error-context", CLEAN, ERRORS],
        cwd=ROOT, capture_output=True, text=True, timeout=600)
    found: dict[str, set[int]] = {CLEAN: set(), ERRORS: set()}
    for line in proc.stdout.splitlines():
        head, sep, _ = line.partition(": error: ")
        if sep:
            path, number = head.split(":")[:2]
            found.setdefault(path, set()).add(int(number))
    assert found == {CLEAN: set(), ERRORS: marked()}, proc.stdout + proc.stderr


def test_pyright_accepts_the_user_module_and_reports_each_misuse() -> None:
    pyright = shutil.which("pyright", path=str(Path(sys.executable).parent))
    if pyright is None:
        pytest.skip("pyright is not installed (the [dev] extra installs pyright[nodejs])")
    proc = subprocess.run([pyright, "--outputjson", "--pythonpath", sys.executable, CLEAN,
                           ERRORS], cwd=ROOT, capture_output=True, text=True, timeout=600)
    report = json.loads(proc.stdout)
    found: dict[str, set[int]] = {CLEAN: set(), ERRORS: set()}
    for d in report["generalDiagnostics"]:
        if d["severity"] == "error":
            path = str(Path(d["file"]).relative_to(ROOT))
            found.setdefault(path, set()).add(d["range"]["start"]["line"] + 1)
    assert found == {CLEAN: set(), ERRORS: marked()}, proc.stdout[-3000:]


def test_the_wheel_ships_py_typed(tmp_path: Path) -> None:
    proc = subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "-q", "-w",
                           str(tmp_path), str(ROOT)], capture_output=True, text=True,
                          timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    (wheel,) = tmp_path.glob("django_edgejobs-*.whl")
    names = set(zipfile.ZipFile(wheel).namelist())
    assert "django_edgejobs/py.typed" in names
    assert "django_edgejobs/static/django_edgejobs/edgejobs-status.js" in names
