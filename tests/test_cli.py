"""The ``sepnet`` command line: strict parsing, help, version, one-line errors."""

from __future__ import annotations

import logging
import subprocess
import sys
import warnings

import pytest

from sepnet_core import __version__, cli
from sepnet_core.errors import SepNetError


def test_version(capsys):
    with pytest.raises(SystemExit) as exc:
        cli.main(["--version"])
    assert exc.value.code == 0
    assert __version__ in capsys.readouterr().out


def test_no_command_is_an_error(capsys):
    with pytest.raises(SystemExit) as exc:
        cli.main([])
    assert exc.value.code == 2


def test_unknown_command_is_an_error(capsys):
    with pytest.raises(SystemExit) as exc:
        cli.main(["segment-everything"])
    assert exc.value.code == 2
    assert "invalid choice" in capsys.readouterr().err


def test_console_script_runs_in_a_fresh_process():
    result = subprocess.run(
        [sys.executable, "-m", "sepnet_core.cli", "--help"], capture_output=True, text=True, check=False
    )
    assert result.returncode == 0
    assert "usage: sepnet" in result.stdout


def test_import_has_no_logging_side_effects():
    code = "import logging, sepnet_core, sepnet_core.organs; print(len(logging.getLogger().handlers))"
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert result.stdout.strip() == "0"


def test_console_routes_info_to_stdout_and_warnings_to_stderr_in_one_line(capsys):
    root = logging.getLogger()
    handlers, level = list(root.handlers), root.level
    with cli._console("demo", verbose=False):
        logging.getLogger("sepnet_core.demo").info("progress %d", 3)
        logging.getLogger("sepnet_core.demo").debug("hidden")
        logging.getLogger("sepnet_core.demo").warning("no validation\ncases")
        warnings.warn("/data/ct.nii.gz: looks\nnormalised", UserWarning, stacklevel=1)
        warnings.warn("old API", DeprecationWarning, stacklevel=1)  # for developers: not shown
    out, err = capsys.readouterr()
    assert "progress 3" in out and "hidden" not in out and "warning" not in out
    assert err.splitlines() == ["sepnet demo: warning: no validation cases",
                                "sepnet demo: warning: /data/ct.nii.gz: looks normalised"]
    assert root.handlers == handlers and root.level == level  # nothing left configured


@pytest.mark.parametrize(
    ("exc", "expected"),
    [
        (NotADirectoryError(20, "Not a directory", "/out/file/run"), "/out/file/run: Not a directory"),
        (PermissionError(13, "Permission denied", "/a", None, "/b"), "/a -> /b: Permission denied"),
        (FileNotFoundError("/x.nii.gz: input does not exist"), "/x.nii.gz: input does not exist"),
        (SepNetError("first\nsecond"), "first second"),
    ],
)
def test_error_message_is_one_line_naming_the_file(exc, expected):
    assert cli.error_message(exc) == expected
