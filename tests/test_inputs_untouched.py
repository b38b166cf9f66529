"""A full run never changes a user's frames, nor writes anything among them.

The tree holds a healthy session, a session with bad entries beside good frames (a
truncated file, a text file named ``.fits``, a dangling link and a named pipe, which must
never be opened) and a session of nothing but bad frames, whose jobs fail. Every entry of
the tree is fingerprinted before and after the run: its kind, size, mode, modification
time (ns) and, for files, the SHA-256 of its bytes; for links, where they point. The two
fingerprints must be equal, which also says that no file or folder, hidden or not,
appeared inside ``input_root``.
"""

from __future__ import annotations

import hashlib
import os
import stat
import subprocess
from pathlib import Path

import badinput_corpus as corpus
import pytest

pytestmark = [pytest.mark.workflow, pytest.mark.slow]


def fingerprint(root: Path) -> dict[str, tuple]:
    """Every entry below ``root`` (links not followed): kind, size, mode, mtime, content."""
    prints: dict[str, tuple] = {}
    for folder, dirs, files in os.walk(root, followlinks=False):
        for name in sorted(dirs + files):
            path = Path(folder) / name
            info = path.lstat()
            key = str(path.relative_to(root))
            if stat.S_ISLNK(info.st_mode):
                prints[key] = ("link", os.readlink(path), info.st_mtime_ns)
            elif stat.S_ISREG(info.st_mode):
                digest = hashlib.sha256(path.read_bytes()).hexdigest()
                prints[key] = ("file", info.st_size, info.st_mode, info.st_mtime_ns, digest)
            elif stat.S_ISDIR(info.st_mode):
                prints[key] = ("folder", info.st_mode, info.st_mtime_ns)
            else:  # a named pipe: never opened, here either
                prints[key] = ("other", stat.S_IFMT(info.st_mode), info.st_mode, info.st_mtime_ns)
    prints["."] = ("root", root.stat().st_mode, root.stat().st_mtime_ns)
    return prints


def test_a_full_run_leaves_the_inputs_as_they_were(tmp_path: Path) -> None:
    nights = tmp_path / "nights"
    base, _ = corpus.base_frames(tmp_path / "scratch")
    corpus._copy_base(base, nights / corpus.HEALTHY)
    mixed = nights / "2026-03-20" / "mixed"
    corpus._copy_base(base, mixed)
    (mixed / "light_cut.fits").write_bytes(base[1].read_bytes()[:50000])
    (mixed / "notes.fits").write_text("not a frame")
    (mixed / "light_gone.fits").symlink_to("/nonexistent/light_gone.fits")
    os.mkfifo(mixed / "light_pipe.fits")
    (mixed / "log.txt").write_text("seeing 2 arcsec")
    corpus._all_bad(nights / "2026-03-20" / "all_bad", base)
    # Frames as a careful user keeps them: read-only.
    for path in nights.rglob("*"):
        if path.is_file() and not path.is_symlink():
            path.chmod(0o444)
    before = fingerprint(nights)

    work = corpus.make_workdir(tmp_path)
    results = tmp_path / "results"
    done = subprocess.run(
        corpus.snakemake_command(nights, results),
        cwd=work,
        capture_output=True,
        text=True,
        timeout=900,
    )

    assert done.returncode != 0  # the all-bad session fails its own jobs
    assert (results / corpus.HEALTHY / "candidates.ecsv").exists(), done.stderr[-2000:]
    assert (results / "2026-03-20/mixed/candidates.ecsv").exists(), done.stderr[-2000:]
    assert not (results / "2026-03-20/all_bad/candidates.ecsv").exists()
    after = fingerprint(nights)
    assert after.keys() == before.keys(), sorted(set(after) ^ set(before))
    changed = {key for key in before if before[key] != after[key]}
    assert not changed, changed
