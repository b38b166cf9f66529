# Parse-time helpers: configuration, session discovery, per-session settings and targets.
# Nothing here opens a frame: discovery reads names only.

import re
from pathlib import Path

from snakemake.exceptions import WorkflowError
from snakemake.logging import logger

from spacepixels import config as spconfig
from spacepixels import demo, sessions
from spacepixels.settings import SKY_STACK_SETTINGS

SCHEMAS = spconfig.load_schema_registry(Path(workflow.basedir) / "workflow" / "schemas")


def config_source():
    """The configuration files in use, for error messages."""
    files = [str(f) for f in getattr(workflow, "configfiles", [])] or ["config"]
    return " + ".join(files) + " (with --config)" * bool(
        workflow.config_settings.config
    )


def _fail(message):
    """Stop parsing with one clear line (no Python traceback for a user's mistake)."""
    raise WorkflowError(message)


try:
    spconfig.validate(config, "config.schema.yaml", SCHEMAS, source=config_source())
    demo.ensure_demo_tree(config["input_root"], Path(workflow.basedir))
    sessions.check_results_root(config["input_root"], config["results_root"])
    DISCOVERY = sessions.discover_sessions(config["input_root"], config["min_frames"])
except (spconfig.ConfigError, sessions.DiscoveryError) as exc:
    _fail(str(exc))

SESSIONS = DISCOVERY.sessions
RESULTS = config["results_root"].rstrip("/")
for _folder, _why in DISCOVERY.skipped:
    logger.warning(f"spacepixels: not a session: {_folder}: {_why}")


wildcard_constraints:
    session="|".join(re.escape(s) for s in SESSIONS),
    chunk=r"\d\d\d+",


_OVERRIDES = {}


def session_overrides(session_id):
    """The session's validated override file, read once per run."""
    if session_id not in _OVERRIDES:
        try:
            _OVERRIDES[session_id] = spconfig.load_session_overrides(
                config["session_config_dir"], session_id, SCHEMAS
            )
        except spconfig.ConfigError as exc:
            _fail(str(exc))
    return _OVERRIDES[session_id]


def stage_settings(stage):
    """Input function for params: one stage's merged section for the job's session."""

    def settings(wildcards):
        return spconfig.merge_stage(config, session_overrides(wildcards.session), stage)

    return settings


def stack_settings(wildcards):
    """The sky section's settings that the stacks depend on (a change of the others
    reruns model_sky only, without reading the frames again)."""
    section = stage_settings("sky")(wildcards)
    return {key: section[key] for key in SKY_STACK_SETTINGS if key in section}


_FRAME_FILES = {}


def frame_files(session_id):
    """The session's frame paths as strings, built once per run (parse time stays fast
    for thousands of frames: input functions are called for every job)."""
    if session_id not in _FRAME_FILES:
        _FRAME_FILES[session_id] = [str(p) for p in SESSIONS[session_id].frame_paths]
    return _FRAME_FILES[session_id]


def session_frames(wildcards):
    """The session's frame files, as the check's inputs (so a new or touched frame reruns
    it). The later stages that read frames find them through check/frames.ecsv, which
    is rewritten whenever a frame changes: listing thousands of frames as their inputs
    too would only slow planning (Snakemake stats every listed file for every job)."""
    return frame_files(wildcards.session)


def session_folder(wildcards):
    return str(SESSIONS[wildcards.session].folder)


def other_files(wildcards):
    return list(SESSIONS[wildcards.session].other_files)


_CHUNK_COUNTS = {}


_TWO_CHUNKS_FROM = 16
"""A session of this many frames or more is extracted in two chunks at least, side by side."""


def chunk_count(session_id):
    """How many extraction chunks a session has, and frames per chunk (frames in name
    order): at most frames_per_job each, as even as can be, and two at least from
    _TWO_CHUNKS_FROM frames, so that a short session does not wait on one core."""
    if session_id not in _CHUNK_COUNTS:
        section = spconfig.merge_stage(config, session_overrides(session_id), "extract")
        per_job = section.get("frames_per_job") or 25
        n = len(SESSIONS[session_id].frames)
        count = max(1, -(-n // per_job))
        if n >= _TWO_CHUNKS_FROM and per_job > 1:
            count = max(count, 2)
        _CHUNK_COUNTS[session_id] = (count, max(1, -(-n // count)))
    return _CHUNK_COUNTS[session_id]


def chunk_frames(wildcards):
    """The frames of one extraction chunk."""
    count, per_job = chunk_count(wildcards.session)
    start = int(wildcards.chunk) * per_job
    return frame_files(wildcards.session)[start : start + per_job]


def session_chunks(wildcards):
    """Every extraction catalogue of a session."""
    count, _ = chunk_count(wildcards.session)
    base = f"{RESULTS}/{wildcards.session}/extract"
    return [f"{base}/chunk_{k:03d}.ecsv" for k in range(count)]


def shared_threads(preferred):
    """Threads for a stage that shares a session's frames out over processes or threads
    (check, tune, the stacks): ``preferred``, but no more than the run's cores per session.
    Each such job also spends part of its time on one core (starting Python, writing), so
    when several sessions wait, single-threaded jobs side by side keep the cores busier
    than jobs that each hold them all: 4 sessions of 20 frames of 2048 x 2048 on 2 cores
    took 31 s instead of 45 s. Without a known number of cores (a dry run, a cluster
    without --cores), ``preferred``."""
    try:
        cores = int(workflow.cores)
    except (WorkflowError, TypeError, ValueError):
        return preferred
    return max(1, min(preferred, cores // max(1, len(SESSIONS))))


def end_pending_timers():
    """Cancel the timers Snakemake leaves running once the run is over.

    Its job-rate limiter (``--max-jobs-per-timespan``, 100 per 1 s by default) arms a
    one-second ``threading.Timer`` on each scheduling round to look again; the last one
    outlives the run, and Python waits for it before exiting. Called from ``onsuccess``
    and ``onerror``, when no job is left to schedule: every run that did work ends up to a
    second sooner (0.6 to 1 s measured here, Snakemake 9.27)."""
    import threading

    for thread in threading.enumerate():
        if isinstance(thread, threading.Timer):
            thread.cancel()


def stage_resource(stage, key):
    """A stage's declared resource (mem_mb grows with each retry)."""
    value = config["resources"][stage][key]
    if key == "mem_mb":
        return lambda wildcards, attempt: value * attempt
    return value


def session_targets(session_id):
    base = f"{RESULTS}/{session_id}"
    return [
        f"{base}/check/frames.ecsv",
        f"{base}/check/summary.json",
        f"{base}/convert/stretch.json",
        f"{base}/candidates.ecsv",
        f"{base}/detections.ecsv",
        f"{base}/report.html",
    ]


def all_targets():
    """Every session's outputs and the index of all sessions."""
    paths = [path for session_id in SESSIONS for path in session_targets(session_id)]
    return paths + [f"{RESULTS}/index.html"]


for _session_id in SESSIONS:
    session_overrides(_session_id)
