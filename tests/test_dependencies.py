"""What the package needs at run time: MONAI only for benchmarks (the ``bench`` extra), imported lazily."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent


def test_no_sepnet_core_module_imports_monai():
    code = ("import importlib, pkgutil, sys, sepnet_core\n"
            "names = [m.name for m in pkgutil.walk_packages(sepnet_core.__path__, 'sepnet_core.')\n"
            "         if not m.name.endswith('__main__')]  # a __main__ runs its command\n"
            "for name in names:\n"
            "    importlib.import_module(name)\n"
            "print(len(names), 'monai' in sys.modules)\n")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300,
                            cwd=REPO)
    assert result.returncode == 0, result.stderr
    count, monai = result.stdout.split()
    assert int(count) > 30 and monai == "False"


def test_pyproject_keeps_monai_out_of_the_runtime_dependencies():
    tomllib = pytest.importorskip("tomllib")
    project = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]
    assert not any(d.lower().startswith("monai") for d in project["dependencies"])
    assert any(d.startswith("monai") for d in project["optional-dependencies"]["bench"])


def test_a_benchmark_without_its_extra_stops_with_one_line(capsys, monkeypatch):
    monkeypatch.syspath_prepend(str(REPO / "benchmarks"))
    from _common import require

    require("json", "bench_x.py")  # present: nothing happens
    with pytest.raises(SystemExit) as caught:
        require("surely_not_installed_xyz", "bench_x.py")
    assert caught.value.code == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1
    assert err.startswith("bench_x.py: error: needs surely_not_installed_xyz") and "'.[bench]'" in err
