"""The trusted side of ``submit``: run an untrusted agent in a separate, least-privileged process.

The runner keeps the vector env, the simulator, the reward-noise keys, the regret and the record;
:class:`SandboxedAgent` stands in for the agent in :func:`hbgym.leaderboards.play.play` and talks to
``python -m hbgym.leaderboards.agent_host`` over two pipes (:mod:`hbgym.leaderboards.protocol`). The
child

* starts in an empty temporary directory with a minimal environment (``PATH``, ``HOME`` = that
  directory, ``LANG``, one thread), ``RLIMIT_AS`` (``--memory``), ``RLIMIT_FSIZE`` and a wall-time
  limit for the whole cell (``--timeout``);
* when the runner is root: runs in its own PID and network namespaces (``unshare --pid --net --fork
  --kill-child``), so every process it starts — also with a new session — dies with the cell and
  nothing it starts reaches the network (not even the runner's localhost), and drops to uid/gid
  ``nobody`` (65534) before it imports the submitted code (a copy of a file agent in its temporary
  directory; modules the agent file imports are preloaded first). As ``nobody`` it can write neither
  the results directory nor anything else of the runner's; ``RLIMIT_NPROC`` caps the processes and
  threads of ``nobody`` (a fork bomb fails with ``BlockingIOError``). Where this is impossible (not root, no
  ``unshare``) the record's ``sandbox`` field says what was not applied, and the process group is killed;
* sees only the :class:`~hbgym.leaderboards.play.PublicEnv` view, its observations and its own rewards.

Its stdout and stderr are read by threads into bounded buffers (the tail ends up in the reason);
everything it sends is checked frame by frame and never unpickled.
"""

from __future__ import annotations

import ast
import contextlib
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from hbgym.leaderboards import protocol
from hbgym.leaderboards.play import PublicEnv
from hbgym.leaderboards.specs import module_location, source_files, spec_kind

__all__ = ["Limits", "SandboxedAgent", "OutputTail", "isolation"]

NOBODY = 65534
TAIL_BYTES = 4096


@dataclass(frozen=True)
class Limits:
    """Limits of one sandboxed cell: wall time (s) for the whole cell, address space (GiB) and file size
    (MiB) per process, and ``max_processes``: ``RLIMIT_NPROC`` of the dropped uid (processes and threads
    of every sandboxed cell running as ``nobody`` together; a fork bomb stops there). Applied only with
    the privilege drop: without it the limit would count all of the runner user's processes."""

    timeout: float = 600.0
    memory_gib: float = 8.0
    file_mib: float = 64.0
    max_processes: int = 256


def isolation() -> dict[str, bool]:
    """What this machine allows: ``pid_namespace`` and ``no_network`` (root + util-linux ``unshare``:
    own PID and network namespaces) and ``drop_privileges`` (root)."""
    root = hasattr(os, "geteuid") and os.geteuid() == 0
    unshare = root and shutil.which("unshare") is not None
    return {"pid_namespace": unshare, "no_network": unshare, "drop_privileges": root}


class OutputTail:
    """Reads a pipe to its end in a thread, keeping only the last ``TAIL_BYTES`` (and the byte count)."""

    def __init__(self, stream: Any) -> None:
        self.total = 0
        self._tail = b""
        self._stream = stream
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while True:
            chunk = self._stream.read1(1 << 16)
            if not chunk:
                return
            self.total += len(chunk)
            self._tail = (self._tail + chunk)[-TAIL_BYTES:]

    def text(self, timeout: float = 2.0) -> str:
        """The tail as text (after waiting up to ``timeout`` s for the pipe to close)."""
        self._thread.join(timeout)
        return self._tail.decode("utf-8", errors="replace").strip()


def _preload(spec: str) -> list[str]:
    """Modules to import before dropping privileges: numpy, hbgym, and what the agent file imports."""
    names = ["numpy", "gymnasium", "hbgym", "hbgym.leaderboards.specs", "encodings.idna"]
    kind = spec_kind(spec)
    if kind in ("zoo", "sb3"):
        names += ["torch", "hbgym.agents"]
    if kind == "sb3":  # the algorithms are imported lazily by rl.load_sb3_agent
        names += ["hbgym.leaderboards.rl", "stable_baselines3", "sb3_contrib"]
    if kind == "file":
        try:
            tree = ast.parse(Path(spec.rpartition(":")[0]).read_bytes())
        except (OSError, SyntaxError, ValueError):
            return names  # the agent's own import reports the problem
        for node in ast.walk(tree):
            if isinstance(node, ast.Import):
                names += [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
                names.append(node.module)
    return list(dict.fromkeys(names))


def _sb3_warmup(spec: str) -> list[tuple[str, str]]:
    """``[(algo, packaged baseline zip)]`` for an SB3 spec whose algorithm has a packaged baseline: the
    child loads that trusted model (sha256-checked) and predicts once before dropping privileges, so
    every module SB3 imports lazily on load and predict is imported while it is still readable (the
    submitted zip, which may hold pickles, is only ever loaded after the drop)."""
    if spec_kind(spec) != "sb3":
        return []
    from hbgym.leaderboards.rl import ALGOS, baseline_path

    algo = spec.split(":", 2)[1]
    return [(algo, str(baseline_path(algo)))] if algo in ALGOS and baseline_path(algo).is_file() else []


def _limit(memory: int, fsize: int) -> None:  # in the child between fork and exec
    import resource

    resource.setrlimit(resource.RLIMIT_AS, (memory, memory))
    resource.setrlimit(resource.RLIMIT_FSIZE, (fsize, fsize))


class SandboxedAgent:
    """The agent of one cell, running in a child process; acts on ``(B, L)`` like a batched agent.

    ``views``: the batched (``True``) and single-slot (``False``) :class:`PublicEnv`; the child picks
    the one its agent's kind needs (a batched factory, or one instance per slot).

    Use as a context manager: ``__enter__`` starts the child, ``__exit__`` kills it and everything it
    started. :attr:`applied` says which isolation measures were applied.
    """

    def __init__(self, spec: str, views: dict[bool, PublicEnv], num_envs: int, seed: int, limits: Limits,
                 device: str = "cpu", dtype: str | None = None) -> None:
        self.spec, self.views, self.num_envs, self.seed, self.limits = spec, views, num_envs, seed, limits
        self.device, self.dtype = device, dtype
        self.deadline = time.monotonic() + limits.timeout
        self.applied = isolation()
        self._pending: tuple[np.ndarray | None, np.ndarray | None] = (None, None)
        self.max_bytes = 1 << 20

    # ------------------------------------------------------------------ process

    def __enter__(self) -> SandboxedAgent:
        self._tmp = tempfile.mkdtemp(prefix="hbgym-agent-")
        try:
            self._start()
        except BaseException:
            self.close()  # __exit__ does not run when __enter__ raises
            raise
        return self

    def _start(self) -> None:
        spec = self.spec
        agent_dir = Path(self._tmp) / "agent"  # the child reads its own copy (it may not reach the original)
        agent_dir.mkdir()
        if spec_kind(spec) == "file":
            where, _, attr = spec.rpartition(":")
            copy = agent_dir / Path(where).name
            shutil.copyfile(where, copy)
            spec = f"{copy}:{attr}"
        elif spec_kind(spec) == "sb3":  # the model zip (and its sha256 sidecar), as hashed
            (model,) = source_files(spec)
            shutil.copyfile(model, agent_dir / model.name)
            if model.with_suffix(".json").is_file():
                shutil.copyfile(model.with_suffix(".json"), agent_dir / model.with_suffix(".json").name)
            spec = f"sb3:{spec.split(':', 2)[1]}:{agent_dir / model.name}"
        elif spec_kind(spec) == "module":  # the top-level package's source tree, as hashed
            location = module_location(spec)
            if location.is_dir():
                shutil.copytree(location, agent_dir / location.name,
                                ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
            else:
                shutil.copyfile(location, agent_dir / location.name)
        uid = NOBODY if self.applied["drop_privileges"] else None
        if uid is not None:
            for path in (self._tmp, *(str(p) for p in Path(self._tmp).rglob("*"))):
                os.chown(path, uid, uid)
        p2c_r, p2c_w = os.pipe()
        c2p_r, c2p_w = os.pipe()
        root = str(Path(__file__).resolve().parents[1])
        env = {"PATH": "/usr/local/bin:/usr/bin:/bin", "HOME": self._tmp, "LANG": "C.UTF-8",
               "PYTHONPATH": root, "PYTHONDONTWRITEBYTECODE": "1", "OMP_NUM_THREADS": "1",
               "MKL_NUM_THREADS": "1", "OPENBLAS_NUM_THREADS": "1"}
        cmd = [sys.executable, "-m", "hbgym.leaderboards.agent_host", str(p2c_r), str(c2p_w)]
        if self.applied["pid_namespace"]:
            cmd = ["unshare", "--pid", "--net", "--fork", "--kill-child", *cmd]
        mem = int(self.limits.memory_gib * 2**30)
        fsize = int(self.limits.file_mib * 2**20)
        try:
            self.proc = subprocess.Popen(
                cmd, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                cwd=self._tmp, env=env, pass_fds=(p2c_r, c2p_w), start_new_session=True,
                preexec_fn=lambda: _limit(mem, fsize),
            )
        finally:
            os.close(p2c_r)
            os.close(c2p_w)
        self._w, self._r = p2c_w, c2p_r
        self.stdout, self.stderr = OutputTail(self.proc.stdout), OutputTail(self.proc.stderr)
        init = {"spec": spec, "views": self.views, "num_envs": self.num_envs, "seed": self.seed,
                "device": self.device, "dtype": self.dtype, "preload": _preload(self.spec),
                "warm_sb3": _sb3_warmup(self.spec),
                "uid": uid, "gid": uid, "max_processes": int(self.limits.max_processes),
                # importable only after the drop: nothing of the agent's is imported with privileges
                "path": [str(agent_dir)] if spec_kind(spec) == "module" else []}
        self._send(init)
        self._expect("ready")

    def __exit__(self, *exc: Any) -> None:
        self.close()

    def close(self) -> None:
        """Kill the child's process group (with it its PID namespace); close pipes; remove the temp dir."""
        proc = getattr(self, "proc", None)
        if proc is not None:
            with contextlib.suppress(protocol.ProtocolError):
                protocol.write_message(self._w, None, time.monotonic() + 0.2)  # "done": exit on your own
            with contextlib.suppress(subprocess.TimeoutExpired):
                proc.wait(timeout=0.5)
            self.exit_status = proc.poll()
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
            self.stdout.text(timeout=2.0)
            self.stderr.text(timeout=2.0)
            for fd in (self._w, self._r):
                with contextlib.suppress(OSError):
                    os.close(fd)
            self.proc = None
        if getattr(self, "_tmp", None):
            shutil.rmtree(self._tmp, ignore_errors=True)
            self._tmp = None

    def describe(self) -> dict[str, Any]:
        """The isolation applied, stored with the record."""
        return {**self.applied, "memory_gib": self.limits.memory_gib, "timeout_s": self.limits.timeout}

    def failure_reason(self, err: BaseException) -> str:
        """One line: what went wrong, the exit status and the tails of the child's stderr/stdout."""
        code = getattr(self, "exit_status", None)
        status = f" (agent process exited with code {code})" if code is not None else ""
        tails = [f"{name} ({t.total} bytes, last {min(t.total, 400)}): ...{t.text(timeout=1.0)[-400:]}"
                 for name, t in (("stderr", getattr(self, "stderr", None)),
                                 ("stdout", getattr(self, "stdout", None)))
                 if t is not None and t.total]
        if isinstance(err, protocol.AgentTimeout):
            what = f"timeout: no answer within the wall-time limit of {self.limits.timeout:g} s"
        elif isinstance(err, AgentError):
            first, _, trace = str(err).partition("\n")
            where = [line.strip() for line in trace.strip().splitlines() if line.strip().startswith("File ")]
            what = first[:500] + (f" (raised at {where[-1][:200]})" if where else "")
        else:
            what = f"{type(err).__name__}: {err}"[:500]
        if "MemoryError" in what or any("MemoryError" in t for t in tails):
            what = f"memory limit of {self.limits.memory_gib:g} GiB exceeded? {what}"
        return " | ".join([what + status, *(t.replace("\n", " / ") for t in tails)])

    # ------------------------------------------------------------------ messages

    def _send(self, message: Any) -> None:
        protocol.write_message(self._w, message, self.deadline)

    def _expect(self, kind: str) -> np.ndarray | None:
        got, payload = protocol.read_frame(self._r, self.deadline, self.max_bytes)
        if got == "error":
            raise AgentError(str(payload))
        if got != kind:
            raise protocol.ProtocolError(f"expected a {kind} frame, got {got}")
        return payload  # type: ignore[return-value]

    # ------------------------------------------------------------------ the agent protocol

    def reset(self, seed: int | None = None) -> None:
        """The child reset its agent(s) with the cell's seed when it was built."""
        if seed != self.seed:
            raise ValueError(f"the sandboxed agent was built for seed {self.seed}, not {seed}")

    def act(self, obs: dict[str, np.ndarray]) -> np.ndarray:
        action, rewards = self._pending
        expected = int(np.asarray(obs["task"]).size)
        self.max_bytes = max(64, 8 * expected)  # int64 / float64 actions at most
        self._send((action, rewards, {k: np.asarray(v) for k, v in obs.items()}))
        return self._expect("actions")  # type: ignore[return-value]

    def update(self, obs: dict[str, np.ndarray], action: np.ndarray, reward: np.ndarray) -> None:
        """Sent with the next :meth:`act` (one round trip per round)."""
        self._pending = (np.asarray(action), np.asarray(reward))


class AgentError(RuntimeError):
    """The agent raised in its process (the message carries its own text)."""
