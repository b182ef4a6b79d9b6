"""Security (issue 8): no shell strings, no code from pickles, nothing fetched from the network.

The static checks parse every module of ``sepnet_core`` (ast, not grep, so comments and docstrings do
not count and aliases cannot hide a call). The run-time check blocks Python's sockets and runs the whole
chain phantom -> train -> predict -> evaluate through the CLI. Refusing a checkpoint that would run
code on load is proved in tests/test_checkpoint.py (library) and tests/test_bad_input.py (CLI).
"""

from __future__ import annotations

import ast
import socket
from pathlib import Path

import pytest

from sepnet_core import cli

PACKAGE = Path(__file__).resolve().parents[1] / "sepnet_core"
SHELL_CALLS = {"os.system", "os.popen", "os.execl", "os.execlp", "os.execle", "os.execv", "os.execvp",
               "os.execvpe", "os.spawnl", "os.spawnlp", "os.spawnv", "os.spawnvp", "subprocess.getoutput",
               "subprocess.getstatusoutput", "pty.spawn"}
PROCESS_CALLS = {"subprocess.run", "subprocess.Popen", "subprocess.call", "subprocess.check_call",
                 "subprocess.check_output"}
UNSAFE_LOADERS = {"pickle.load", "pickle.loads", "marshal.load", "marshal.loads", "dill.load", "dill.loads",
                  "joblib.load", "yaml.load", "yaml.unsafe_load", "shelve.open"}
NETWORK_MODULES = {"socket", "urllib.request", "urllib3", "requests", "httpx", "http.client", "ftplib",
                   "smtplib", "aiohttp", "torch.hub", "huggingface_hub", "gdown", "wget"}


def _modules() -> list[Path]:
    files = sorted(PACKAGE.rglob("*.py"))
    assert len(files) > 20  # the walk found the package
    return files


def _dotted(node: ast.AST, aliases: dict[str, str]) -> str:
    """``os.system`` for ``os.system``, ``sp.run`` imported as ``import subprocess as sp``, etc."""
    parts = []
    while isinstance(node, ast.Attribute):
        parts.append(node.attr)
        node = node.value
    if not isinstance(node, ast.Name):
        return ""
    parts.append(aliases.get(node.id, node.id))
    return ".".join(reversed(parts))


def _calls(path: Path):
    """(dotted name, call node) of every call in ``path``, with import aliases resolved."""
    tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    aliases: dict[str, str] = {}
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            aliases.update({a.asname or a.name: a.name for a in node.names})
        elif isinstance(node, ast.ImportFrom) and node.module:
            aliases.update({a.asname or a.name: f"{node.module}.{a.name}" for a in node.names})
    for node in ast.walk(tree):
        if isinstance(node, ast.Call):
            yield _dotted(node.func, aliases), node


def _where(path: Path, node: ast.AST) -> str:
    return f"{path.relative_to(PACKAGE.parent)}:{node.lineno}"


def test_no_shell_and_no_command_strings():
    found = []
    for path in _modules():
        for name, call in _calls(path):
            shell = [k for k in call.keywords if k.arg == "shell"
                     and not (isinstance(k.value, ast.Constant) and k.value.value is False)]
            if shell or name in SHELL_CALLS:
                found.append(f"{_where(path, call)} {name or 'a call'} runs a shell")
            if name in PROCESS_CALLS and call.args and isinstance(call.args[0], (ast.Constant, ast.JoinedStr,
                                                                                   ast.BinOp)):
                found.append(f"{_where(path, call)} {name} with a command string")
    assert not found, "shell command strings: " + "; ".join(found)


def test_no_unsafe_deserialisation():
    found = []
    torch_loads = 0
    for path in _modules():
        for name, call in _calls(path):
            keywords = {k.arg: k.value for k in call.keywords}
            if name in UNSAFE_LOADERS or name in {"eval", "exec"}:
                found.append(f"{_where(path, call)} {name}")
            if name == "torch.load":
                torch_loads += 1
                safe = keywords.get("weights_only")
                if not (isinstance(safe, ast.Constant) and safe.value is True):
                    found.append(f"{_where(path, call)} torch.load without weights_only=True")
            if name in {"numpy.load", "np.load"}:
                allow = keywords.get("allow_pickle")
                if allow is not None and not (isinstance(allow, ast.Constant) and allow.value is False):
                    found.append(f"{_where(path, call)} numpy.load(allow_pickle=...)")
    assert not found, "unsafe loading: " + "; ".join(found)
    assert torch_loads >= 1  # the checkpoint loader was seen (and is weights_only)


def test_no_network_modules_are_imported():
    found = []
    for path in _modules():
        tree = ast.parse(path.read_text(encoding="utf-8"))
        for node in ast.walk(tree):
            names = ([a.name for a in node.names] if isinstance(node, ast.Import) else
                     [node.module or ""] if isinstance(node, ast.ImportFrom) else [])
            for name in names:
                if any(name == m or name.startswith(m + ".") for m in NETWORK_MODULES):
                    found.append(f"{_where(path, node)} imports {name}")
    assert not found, "network access: " + "; ".join(found)


class NetworkUsed(AssertionError):
    pass


@pytest.fixture
def no_network(monkeypatch):
    """Any attempt to resolve a host name or open a connection from Python raises NetworkUsed."""
    def refuse(*args, **kwargs):
        raise NetworkUsed(f"network access attempted: {args!r}")

    for name in ("getaddrinfo", "gethostbyname", "create_connection"):
        monkeypatch.setattr(socket, name, refuse)
    monkeypatch.setattr(socket.socket, "connect", refuse)
    monkeypatch.setattr(socket.socket, "connect_ex", refuse)


def test_the_cli_chain_runs_without_network(no_network, tmp_path, capsys):
    with pytest.raises(NetworkUsed):  # the guard is live
        socket.create_connection(("example.org", 443))
    data, run, pred = tmp_path / "data", tmp_path / "run", tmp_path / "pred"
    steps = [
        ["phantom", str(data), "--cases", "2", "--profile", "smoke", "--split", "train=1,valid=0,test=1",
         "--workers", "1"],
        ["train", "--preset", "smoke", "--data-root", str(data), "--out", str(run), "--set", "epochs=1"],
        ["predict", str(data / "test" / "phantom_001" / "data.nii.gz"), "-m", str(run / "best.pt"),
         "-o", str(pred / "phantom_001"), "--device", "cpu"],
        ["evaluate", str(pred), str(data / "test"), "-o", str(tmp_path / "metrics.csv")],
    ]
    for argv in steps:
        assert cli.main(argv) == 0, capsys.readouterr().err
    assert (tmp_path / "metrics.csv").is_file() and (run / "summary.json").is_file()
