"""No network by default: only the online solver connects, only when chosen, and its key
never reaches a log, a report, the saved configuration or any output.

- Statically: of the package, the scripts and the rules, only ``solve.py`` imports a
  module that can open a connection, and only its nova.astrometry.net client calls it.
- The full demo run succeeds with every outgoing connection blocked (a network namespace
  without a network where ``unshare`` allows one, and the socket guard of
  ``tests/netguard`` in snakemake and every job), with a recognisable online key in the
  environment: no process tried to connect, and the key is in no file the run wrote.
- In the test process, under the same guard: ``solve.method: nova`` is the one choice that
  tries to connect; every other method never does.
- The nova client against a mocked HTTP layer whose answers echo the key: the key is in
  no log record and no part of the solution.
"""

from __future__ import annotations

import ast
import io
import json
import shutil
import subprocess
import urllib.error
import urllib.parse
from pathlib import Path
from typing import Any

import badinput_corpus as corpus
import pytest
from conftest import guarded_env

from spacepixels import solve, synth

ROOT = corpus.ROOT
FAKE_KEY = "spx-fake-nova-key-3f9c1e7a"
"""A recognisable online key, set in the environment of the runs."""

NETWORK_MODULES = frozenset(
    {
        "socket",
        "ssl",
        "urllib.request",
        "http.client",
        "requests",
        "httpx",
        "aiohttp",
        "urllib3",
        "ftplib",
        "smtplib",
        "websocket",
        "websockets",
        "xmlrpc.client",
    }
)
"""Modules through which Python code opens connections."""


def _imports(path: Path) -> set[str]:
    tree = ast.parse(path.read_text(encoding="utf-8"))
    names: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module:
            names.add(node.module)
            names.update(f"{node.module}.{alias.name}" for alias in node.names)
    return names


def test_only_the_online_solver_imports_a_network_module() -> None:
    sources = [
        *sorted((ROOT / "src" / "spacepixels").glob("*.py")),
        *sorted((ROOT / "scripts").glob("*.py")),
    ]
    users = {
        str(path.relative_to(ROOT)): sorted(_imports(path) & NETWORK_MODULES)
        for path in sources
        if _imports(path) & NETWORK_MODULES
    }
    assert users == {"src/spacepixels/solve.py": ["urllib.request"]}
    for rules in sorted((ROOT / "workflow").rglob("*.smk")) + [ROOT / "Snakefile"]:
        text = rules.read_text(encoding="utf-8")
        assert "urllib" not in text and "requests" not in text and "socket" not in text, rules
    # Inside solve.py, only the nova client opens anything.
    tree = ast.parse((ROOT / "src" / "spacepixels" / "solve.py").read_text(encoding="utf-8"))
    callers = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.ClassDef | ast.FunctionDef):
            for inner in ast.walk(node):
                if isinstance(inner, ast.Attribute) and inner.attr == "urlopen":
                    callers.add(node.name)
    assert callers <= {"_Nova", "_open"} and callers, callers


# --------------------------------------------------------------------------- the demo


def _network_namespace() -> list[str]:
    """``unshare --net --`` when this machine lets the test make a namespace without
    network, else nothing (the socket guard alone then blocks the Python processes)."""
    if shutil.which("unshare") is None:
        return []
    probe = subprocess.run(
        ["unshare", "--net", "--", "true"], capture_output=True, text=True, timeout=30
    )
    return ["unshare", "--net", "--"] if probe.returncode == 0 else []


def _files_holding(folder: Path, secret: str) -> list[str]:
    found = []
    for path in folder.rglob("*"):
        if path.is_file() and not path.is_symlink() and secret.encode() in path.read_bytes():
            found.append(str(path))
    return found


@pytest.mark.workflow
@pytest.mark.slow
def test_the_demo_runs_with_the_network_blocked(tmp_path: Path, robustness_summary) -> None:
    work = corpus.make_workdir(tmp_path, solve_method="auto")  # the shipped configuration
    assert "  method: auto" in (work / "config" / "config.yaml").read_text()
    results = tmp_path / "results"
    log = tmp_path / "attempts.log"
    wrapper = _network_namespace()
    command = wrapper + corpus.snakemake_command(ROOT / "demo" / "nights", results)
    done = subprocess.run(
        command,
        cwd=work,
        capture_output=True,
        text=True,
        timeout=1200,
        env=guarded_env(log, ASTROMETRY_NET_API_KEY=FAKE_KEY),
    )
    output = done.stdout + done.stderr
    assert done.returncode == 0, output[-3000:]
    sessions = sorted(p.parent.relative_to(results) for p in results.glob("*/*/candidates.ecsv"))
    assert len(sessions) >= 3, sessions
    attempts = log.read_text() if log.exists() else ""
    assert attempts == "", f"something tried to connect:\n{attempts}"
    # The key is in the environment of every job, and in no file and no line they wrote.
    assert FAKE_KEY not in output
    assert _files_holding(results, FAKE_KEY) == []
    assert _files_holding(work / ".snakemake", FAKE_KEY) == []
    assert _files_holding(work / "config", FAKE_KEY) == []
    robustness_summary(
        f"no network: demo run of {len(sessions)} sessions passed with "
        + ("a network namespace and " if wrapper else "")
        + "the socket guard; 0 connection attempts; online key found in 0 files"
    )


# --------------------------------------------------------------------------- the solver


@pytest.fixture(scope="module")
def bare_frame(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A frame without WCS, so that a solver is asked."""
    root = tmp_path_factory.mktemp("bare")
    truth = synth.make_session(
        root, "n/M31", seed=11, n_frames=1, shape=(256, 256), cloudy=0, wcs=False
    )
    return root / "n" / "M31" / truth["frames"][0]["file"]


@pytest.mark.parametrize("method", ["auto", "header", "astrometry_net", "astap", "none"])
def test_no_method_but_nova_tries_to_connect(
    bare_frame: Path,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    no_network: Path,
    method: str,
) -> None:
    monkeypatch.setenv("ASTROMETRY_NET_API_KEY", FAKE_KEY)
    settings = solve.SolveSettings(method=method, timeout_s=20)
    _, info = solve.solve_session(bare_frame, settings, tmp_path)
    assert not no_network.exists(), no_network.read_text()
    assert FAKE_KEY not in json.dumps(info)


def test_nova_is_the_code_that_connects(
    bare_frame: Path,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    no_network: Path,
    caplog: pytest.LogCaptureFixture,
) -> None:
    monkeypatch.setenv("ASTROMETRY_NET_API_KEY", FAKE_KEY)
    caplog.set_level("DEBUG")
    _, info = solve.solve_session(bare_frame, solve.SolveSettings(method="nova"), tmp_path)
    assert info["status"] == "failed" and "cannot reach the server" in info["message"]
    attempts = no_network.read_text()
    assert "nova.astrometry.net" in attempts
    assert FAKE_KEY not in json.dumps(info) and FAKE_KEY not in caplog.text


class _FakeNova:
    """urlopen's stand-in: answers as nova.astrometry.net would, echoing what it was sent."""

    def __init__(self, login_answer: dict[str, Any] | Exception) -> None:
        self.login_answer = login_answer
        self.requests: list[tuple[str, dict[str, Any]]] = []

    def __call__(self, request: Any, timeout: float = 0) -> io.BytesIO:  # noqa: ARG002
        url = request if isinstance(request, str) else request.full_url
        body = {}
        if not isinstance(request, str) and request.data:
            form = urllib.parse.parse_qs(request.data.decode())
            body = json.loads(form["request-json"][0])
        self.requests.append((url, body))
        if url.endswith("/login"):
            if isinstance(self.login_answer, Exception):
                raise self.login_answer
            return io.BytesIO(json.dumps(self.login_answer).encode())
        if url.endswith("/upload"):
            return io.BytesIO(json.dumps({"status": "success", "subid": 3}).encode())
        if "/submissions/" in url:
            return io.BytesIO(json.dumps({"jobs": [9]}).encode())
        if "/jobs/" in url:
            return io.BytesIO(json.dumps({"status": "failure"}).encode())
        raise urllib.error.HTTPError(url, 404, "not found", None, None)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    "login_answer",
    [
        {"status": "success", "session": "s1"},
        {"status": "error", "errormessage": f"bad apikey: {FAKE_KEY}"},
        urllib.error.URLError(f"proxy refused https://x/?apikey={FAKE_KEY}"),
    ],
    ids=["no-solution", "error-echoes-key", "transport-error-holds-key"],
)
def test_nova_never_logs_the_key(
    bare_frame: Path,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
    login_answer: dict[str, Any] | Exception,
) -> None:
    fake = _FakeNova(login_answer)
    monkeypatch.setattr("urllib.request.urlopen", fake)
    monkeypatch.setenv("ASTROMETRY_NET_API_KEY", FAKE_KEY)
    caplog.set_level("DEBUG")
    settings = solve.SolveSettings(method="nova", nova_poll_s=0.01)
    header, info = solve.solve_session(bare_frame, settings, tmp_path)
    assert header is None and info["status"] == "failed", info["message"]
    assert fake.requests[0][1] == {"apikey": FAKE_KEY}  # the key went where it belongs
    assert all(url.startswith("https://nova.astrometry.net/") for url, _ in fake.requests)
    solve.write_solution(header, info, tmp_path / "wcs.fits", tmp_path / "solve.json")
    for text in (caplog.text, json.dumps(info), (tmp_path / "solve.json").read_text()):
        assert FAKE_KEY not in text
    assert "***" in info["message"] or FAKE_KEY not in str(login_answer)
