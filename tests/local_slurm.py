"""A one-node Slurm cluster on localhost, for the cluster test (and by hand).

It uses Debian's ``slurm-wlm`` and ``munge`` as they are installed, runs as root, and keeps
all its state in one temporary folder: a fresh MUNGE key and its ``munged`` on a private
socket, a ``slurm.conf`` naming that socket, and ``slurmctld`` and ``slurmd`` in the
foreground on free ports. Each daemon is started here and stopped here by its own PID.

Choices forced by Slurm 22.05 with ``snakemake-executor-plugin-slurm`` 2.8:

- no accounting database, so ``sacct`` cannot report jobs: job states come from ``squeue``,
  which forgets a finished job after ``MinJobAge`` seconds (set to 300 here; the plugin wants
  at least 120);
- the plugin's job step clears ``SLURM_CONF`` before it calls ``srun``, so the configuration
  is also written to ``/etc/slurm/slurm.conf`` (any file already there is put back on stop);
- no cgroups in a container: process tracking by ``/proc`` and no task plugin.

Use as a context manager (``with LocalSlurm(folder) as cluster: ...``) or from a shell::

    python tests/local_slurm.py start /tmp/slurm    # prints export SLURM_CONF=...
    python tests/local_slurm.py stop /tmp/slurm
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path
from types import TracebackType

logger = logging.getLogger(__name__)

SYSTEM_CONF = Path("/etc/slurm/slurm.conf")
"""Where ``srun`` inside a job looks once ``SLURM_CONF`` has been cleared."""

MARK = "# written by spacepixels tests/local_slurm.py"
"""First line of every configuration this module writes, so it only removes its own."""

DAEMONS = ("munged", "slurmctld", "slurmd")
"""The programs a one-node cluster needs, in start order."""

NODE = "spnode"
"""The node's name in ``slurm.conf`` (its address is 127.0.0.1)."""

MIN_JOB_AGE_S = 300
"""Seconds a finished job stays visible to ``squeue`` (the plugin needs >= 120)."""


class SlurmUnavailable(RuntimeError):
    """The cluster cannot be started here (not root, or programs missing)."""


def why_unavailable() -> str | None:
    """Why a local cluster cannot start on this machine, or None when it can."""
    if os.geteuid() != 0:
        return "the local Slurm cluster needs root (slurmd runs jobs as their user)"
    missing = [p for p in (*DAEMONS, "sbatch", "squeue", "srun") if not _which(p)]
    if missing:
        return f"Slurm/MUNGE programs not installed: {', '.join(missing)} (apt slurm-wlm munge)"
    return None


def _which(program: str) -> str | None:
    return shutil.which(program, path=os.environ.get("PATH", "") + ":/usr/sbin:/sbin")


def _free_ports(count: int) -> list[int]:
    sockets = []
    try:
        for _ in range(count):
            sock = socket.socket()
            sock.bind(("127.0.0.1", 0))
            sockets.append(sock)
        return [s.getsockname()[1] for s in sockets]
    finally:
        for sock in sockets:
            sock.close()


def slurm_conf(state: Path, cpus: int, memory_mb: int, ports: tuple[int, int]) -> str:
    """The ``slurm.conf`` of a one-node cluster whose state lives in ``state``.

    Parameters
    ----------
    state : Path
        Folder for spool, state, logs, PID files and the MUNGE socket.
    cpus, memory_mb : int
        What the node offers to jobs.
    ports : tuple of int
        ``slurmctld`` and ``slurmd`` ports.

    Returns
    -------
    str
        The configuration text.
    """
    return f"""{MARK}
ClusterName=spacepixels
SlurmctldHost=localhost(127.0.0.1)
SlurmctldPort={ports[0]}
SlurmdPort={ports[1]}
SlurmUser=root
SlurmdUser=root
AuthType=auth/munge
CredType=cred/munge
AuthInfo=socket={state}/socket/munge.socket
StateSaveLocation={state}/ctld
SlurmdSpoolDir={state}/slurmd
SlurmctldPidFile={state}/slurmctld.pid
SlurmdPidFile={state}/slurmd.pid
SlurmctldLogFile={state}/slurmctld.log
SlurmdLogFile={state}/slurmd.log
SlurmdParameters=config_overrides
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
JobAcctGatherType=jobacct_gather/none
AccountingStorageType=accounting_storage/none
JobCompType=jobcomp/none
MpiDefault=none
SwitchType=switch/none
SchedulerType=sched/backfill
SelectType=select/cons_tres
SelectTypeParameters=CR_CPU_Memory
ReturnToService=2
MinJobAge={MIN_JOB_AGE_S}
KillWait=5
InactiveLimit=0
SlurmctldTimeout=30
SlurmdTimeout=30
NodeName={NODE} NodeHostname=localhost NodeAddr=127.0.0.1 CPUs={cpus} RealMemory={memory_mb}
PartitionName=main Nodes={NODE} Default=YES MaxTime=INFINITE State=UP
"""


class LocalSlurm:
    """Start (and later stop) munged, slurmctld and slurmd with state under ``state``.

    Parameters
    ----------
    state : Path
        An empty or absent folder; it holds everything the cluster writes.
    cpus : int
        CPUs the node offers (default: this machine's).
    memory_mb : int
        Memory the node offers (default: half the machine's, at least 4000 MB).
    """

    def __init__(self, state: Path, cpus: int | None = None, memory_mb: int | None = None):
        self.state = Path(state).resolve()
        self.cpus = cpus or os.cpu_count() or 1
        self.memory_mb = memory_mb or max(4000, _total_memory_mb() // 2)
        self.conf = self.state / "slurm.conf"
        self.processes: dict[str, subprocess.Popen] = {}
        self._backup: Path | None = None

    @property
    def env(self) -> dict[str, str]:
        """Environment for client commands (sbatch, squeue, snakemake)."""
        return {**os.environ, "SLURM_CONF": str(self.conf)}

    def start(self, timeout_s: float = 60.0) -> LocalSlurm:
        """Write the key and configuration, start the daemons, wait for an idle node."""
        reason = why_unavailable()
        if reason:
            raise SlurmUnavailable(reason)
        # munged wants its socket's folder (and every folder above it) open to everyone
        # for execute; the key, seed and logs stay private.
        self.state.mkdir(parents=True, exist_ok=True)
        self.state.chmod(0o755)
        for sub, mode in (("munge", 0o700), ("socket", 0o755), ("ctld", 0o700), ("slurmd", 0o755)):
            (self.state / sub).mkdir(exist_ok=True)
            (self.state / sub).chmod(mode)
        key = self.state / "munge" / "munge.key"
        key.write_bytes(os.urandom(1024))
        key.chmod(0o600)
        self.conf.write_text(
            slurm_conf(self.state, self.cpus, self.memory_mb, tuple(_free_ports(2)))
        )
        self._install_system_conf()
        try:
            munge = self.state / "munge"
            self._spawn(
                "munged",
                "--foreground",
                f"--socket={self.state}/socket/munge.socket",
                f"--key-file={key}",
                f"--pid-file={munge}/munged.pid",
                f"--log-file={munge}/munged.log",
                f"--seed-file={munge}/munged.seed",
            )
            socket_path = self.state / "socket" / "munge.socket"
            self._wait(socket_path.exists, "munged's socket", timeout_s)
            self._spawn("slurmctld", "-D", "-f", str(self.conf))
            self._wait(self._controller_answers, "slurmctld", timeout_s)
            self._spawn("slurmd", "-D", "-f", str(self.conf), "-N", NODE)
            self._wait(self._node_idle, f"node {NODE} to become idle", timeout_s)
        except BaseException:
            self.stop()
            raise
        logger.info("local Slurm up: SLURM_CONF=%s", self.conf)
        (self.state / "pids.json").write_text(
            json.dumps({name: p.pid for name, p in self.processes.items()})
        )
        return self

    def stop(self) -> None:
        """Stop the daemons by PID (last started first) and put /etc/slurm back."""
        for name in reversed(list(self.processes)):
            _stop_pid(self.processes[name].pid, name)
            try:
                self.processes[name].wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.processes[name].kill()
                self.processes[name].wait()
        self.processes.clear()
        self._restore_system_conf()

    def __enter__(self) -> LocalSlurm:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    def log_tail(self, lines: int = 30) -> str:
        """The end of each daemon's log, for a failing test's message."""
        parts = []
        for name in ("slurmctld.log", "slurmd.log", "munge/munged.log", "slurmd.out"):
            path = self.state / name
            if path.exists():
                text = path.read_text(errors="replace").splitlines()[-lines:]
                parts.append(f"--- {name}\n" + "\n".join(text))
        return "\n".join(parts)

    def _spawn(self, program: str, *args: str) -> None:
        out = open(self.state / f"{program}.out", "wb")  # noqa: SIM115 - kept by the child
        self.processes[program] = subprocess.Popen(
            [_which(program) or program, *args],
            stdout=out,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            env=self.env,
            start_new_session=True,
        )
        out.close()

    def _wait(self, ready, what: str, timeout_s: float) -> None:
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            for name, process in self.processes.items():
                if process.poll() is not None:
                    raise RuntimeError(
                        f"{name} exited with {process.returncode} while waiting for {what}\n"
                        + self.log_tail()
                    )
            if ready():
                return
            time.sleep(0.5)
        raise RuntimeError(
            f"timed out after {timeout_s:.0f} s waiting for {what}\n{self.log_tail()}"
        )

    def _run(self, *command: str) -> subprocess.CompletedProcess:
        return subprocess.run(command, env=self.env, capture_output=True, text=True, timeout=20)

    def _controller_answers(self) -> bool:
        return self._run("scontrol", "ping").returncode == 0

    def _node_idle(self) -> bool:
        state = self._run("sinfo", "-h", "-n", NODE, "-o", "%t").stdout.strip()
        return state.startswith("idle")

    def _install_system_conf(self) -> None:
        SYSTEM_CONF.parent.mkdir(parents=True, exist_ok=True)
        if SYSTEM_CONF.exists() and not SYSTEM_CONF.read_text().startswith(MARK):
            self._backup = self.state / "slurm.conf.system"
            shutil.copy2(SYSTEM_CONF, self._backup)
        SYSTEM_CONF.write_text(self.conf.read_text())

    def _restore_system_conf(self) -> None:
        if self._backup is not None and self._backup.exists():
            shutil.copy2(self._backup, SYSTEM_CONF)
            self._backup = None
        elif SYSTEM_CONF.exists() and SYSTEM_CONF.read_text() == _read(self.conf):
            SYSTEM_CONF.unlink()


def _read(path: Path) -> str | None:
    return path.read_text() if path.exists() else None


def _stop_pid(pid: int, name: str) -> None:
    try:
        os.kill(pid, signal.SIGTERM)
    except ProcessLookupError:
        return
    logger.info("stopped %s (PID %d)", name, pid)


def _total_memory_mb() -> int:
    for line in Path("/proc/meminfo").read_text().splitlines():
        if line.startswith("MemTotal:"):
            return int(line.split()[1]) // 1024
    return 8000


def _main(argv: list[str]) -> int:
    if len(argv) != 2 or argv[0] not in ("start", "stop"):
        print(__doc__, file=sys.stderr)
        return 2
    action, state = argv[0], Path(argv[1]).resolve()
    if action == "start":
        cluster = LocalSlurm(state).start()
        # Leave the daemons running for the shell; `stop` finds them by their PIDs.
        cluster.processes.clear()
        print(f"export SLURM_CONF={cluster.conf}")
        return 0
    pids = json.loads((state / "pids.json").read_text())
    for name in reversed(list(pids)):
        _stop_pid(pids[name], name)
    conf = state / "slurm.conf"
    backup = state / "slurm.conf.system"
    if backup.exists():
        shutil.copy2(backup, SYSTEM_CONF)
    elif SYSTEM_CONF.exists() and SYSTEM_CONF.read_text() == _read(conf):
        SYSTEM_CONF.unlink()
    return 0


if __name__ == "__main__":
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    sys.exit(_main(sys.argv[1:]))
