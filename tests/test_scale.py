"""A changed override for one session reruns only that session, on a tree of several sessions.

This is the small-tree check behind ``benchmarks/scale.py`` and uses its procedure: the real
workflow runs on one session, its results and Snakemake records are copied to the other
sessions (identical frames), and the real workflow then has nothing left to do but the index
over all sessions. That last point is asserted first, so a copy that did not stand exactly
for a real run would fail here rather than flatter the benchmark.
"""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))
import scale  # noqa: E402

pytestmark = [pytest.mark.workflow, pytest.mark.slow]

N_SESSIONS = 4
N_FRAMES = 10


@pytest.fixture(scope="module")
def finished_tree(tmp_path_factory: pytest.TempPathFactory):
    base = tmp_path_factory.mktemp("scale")
    nights, results, work = base / "nights", base / "results", base / "work"
    ids = scale.make_tree(nights, N_SESSIONS, N_FRAMES)
    scale.make_workdir(work)
    alone = base / "alone"
    (alone / ids[0]).parent.mkdir(parents=True)
    (alone / ids[0]).symlink_to(nights / ids[0])
    scale.snakemake(work, alone, results, "--quiet")
    scale._rename_inputs(work, results, alone, nights)
    for other in ids[1:]:
        assert scale.clone_session(work, nights, results, ids[0], other) > 10
    _, _, output = scale.snakemake(work, nights, results)
    assert scale.jobs_run(output) == ["index (-)"], output[-3000:]
    return work, nights, results, ids


def test_nothing_to_do_once_every_session_is_done(finished_tree) -> None:
    work, nights, results, _ = finished_tree
    _, _, output = scale.snakemake(work, nights, results, "--dry-run")
    assert "Nothing to be done" in output, scale.jobs_run(output)


def _planned_with_override(finished_tree, session: str, text: str) -> list[str]:
    """The jobs a dry run plans while ``session`` has the override file ``text``."""
    work, nights, results, _ = finished_tree
    override = work / "config" / "sessions" / f"{session}.yaml"
    override.parent.mkdir(parents=True, exist_ok=True)
    override.write_text(text)
    try:
        _, _, output = scale.snakemake(work, nights, results, "--dry-run")
    finally:
        override.unlink()
    return scale.jobs_run(output)


def test_a_changed_override_reruns_only_that_session(finished_tree) -> None:
    changed = finished_tree[3][2]
    planned = _planned_with_override(finished_tree, changed, "link:\n  max_gap_frames: 3\n")
    rules = {job.split(" ")[0] for job in planned}
    # link and everything after it, for that session; nothing before link, nothing elsewhere.
    assert {"link", "measure", "report"} <= rules, planned
    before = {"check", "convert", "tune", "stack_frames", "model_sky", "extract", "solve"}
    assert not rules & before, planned
    others = [job for job in planned if f"({changed})" not in job and job != "index (-)"]
    assert not others, f"jobs of other sessions would rerun: {others}"


def test_a_changed_sky_mask_setting_remakes_the_maps_not_the_stacks(finished_tree) -> None:
    """The stacks read every frame; a setting of the maps made from them (the mask's
    threshold) must not read the frames again."""
    changed = finished_tree[3][1]
    planned = _planned_with_override(finished_tree, changed, "sky:\n  mask_sigma: 2.5\n")
    rules = {job.split(" ")[0] for job in planned}
    assert {"model_sky", "extract", "link"} <= rules, rules
    assert not rules & {"check", "convert", "tune", "stack_frames", "solve"}, rules


def _planned_threads(output: str) -> dict[str, set[int]]:
    """Threads per rule in a dry run's job blocks (Snakemake prints them when above 1)."""
    threads: dict[str, set[int]] = {}
    for block in output.split("\nrule ")[1:]:
        name = block.split(":", 1)[0].strip()
        lines = block.split("\n\n", 1)[0].splitlines()
        given = [int(line.split(":")[1]) for line in lines if line.strip().startswith("threads:")]
        threads.setdefault(name, set()).add(given[0] if given else 1)
    return threads


def test_frame_sharing_stages_take_the_cores_a_session_can_have(finished_tree) -> None:
    """Four sessions on two cores: check, tune and the stacks run single-threaded side by
    side; on eight cores, two threads each."""
    work, nights, results, _ = finished_tree
    for cores, expected in (("2", {1}), ("8", {2})):
        _, _, output = scale.snakemake(
            work, nights, results, "--dry-run", "--cores", cores, "--forcerun", "check"
        )
        threads = _planned_threads(output)
        for rule in ("check", "tune", "stack_frames"):
            assert threads.get(rule) == expected, (cores, rule, threads)
