"""The sandboxed agent process: ``python -m hbgym.leaderboards.agent_host READ_FD WRITE_FD``.

Started by :mod:`hbgym.leaderboards.sandbox` (never by hand). It reads an init message (the agent
spec, the batched and per-slot :class:`~hbgym.leaderboards.play.PublicEnv` views, ``num_envs``,
the seed, the modules to preload, the uid/gid to drop to), imports what the agent needs, drops
privileges, and only then imports the submitted code and builds the agent (one instance per slot
for a per-env factory). Then, per round, it receives ``(action, rewards, obs)`` — the previous
round's checked actions and the rewards of those actions, and this round's observations — calls
``update`` and ``act`` and answers one ACTIONS frame. Any exception is answered with one ERROR
frame (bounded text) and exit code 1.
"""

from __future__ import annotations

import contextlib
import importlib
import os
import sys
import traceback
from typing import Any

import numpy as np
from hbgym.leaderboards import protocol
from hbgym.leaderboards.play import build_slot_agents


def _drop_privileges(uid: int | None, gid: int | None, max_processes: int | None) -> None:
    """Become ``uid``/``gid`` (no supplementary groups) with at most ``max_processes`` processes and
    threads for that uid (``RLIMIT_NPROC``, set while still privileged); no-op when ``uid`` is None."""
    if uid is None:
        return
    if max_processes is not None:
        import resource

        resource.setrlimit(resource.RLIMIT_NPROC, (max_processes, max_processes))
    os.setgroups([])
    os.setgid(gid if gid is not None else uid)
    os.setuid(uid)
    if os.geteuid() != uid or os.getuid() != uid:  # pragma: no cover - the kernel refused
        raise RuntimeError(f"could not drop privileges to uid {uid}")


def _warm_sb3(models: list[tuple[str, str]], device: str) -> None:
    """Load each trusted packaged SB3 model and predict once (see ``sandbox._sb3_warmup``)."""
    from pathlib import Path

    from hbgym.leaderboards import rl

    for algo, path in models:
        rl.verify_checksum(Path(path))  # a packaged baseline: refused without its recorded sha256
        cls, _ = rl._algo_class(algo)
        model = cls.load(path, device=device)
        model.predict(np.zeros(model.observation_space.shape, dtype=np.float32), deterministic=True)


def _build(init: dict[str, Any]) -> Any:
    from hbgym.leaderboards.specs import resolve

    agent = resolve(init["spec"])
    num_envs = init["num_envs"]
    if agent.offline:
        raise ValueError(f"{init['spec']!r} is an offline learner; submit runs online suites only")
    if agent.batched:
        return agent.build(init["views"][True], num_envs, init["device"], init["dtype"], seed=init["seed"])
    return build_slot_agents(agent.target, init["views"][False], num_envs)


def main(read_fd: int, write_fd: int) -> int:
    def send(kind: int, array: np.ndarray | None = None, text: str = "") -> None:
        data = protocol.encode_frame(kind, array, text)
        view = memoryview(data)
        while view:
            view = view[os.write(write_fd, view):]

    sys.path[:] = [p for p in sys.path if p not in ("", os.getcwd())]  # nothing of the agent's is importable
    try:
        init = protocol.read_message(read_fd)
        for name in init.get("preload", ()):
            with contextlib.suppress(ImportError):  # the agent's own import fails with the reason
                importlib.import_module(name)
        _warm_sb3(init.get("warm_sb3", []), init.get("device") or "cpu")
        _drop_privileges(init.get("uid"), init.get("gid"), init.get("max_processes"))
        sys.path[:0] = [str(p) for p in init.get("path", ())]  # a module agent's own copy of its package
        policy = _build(init)
        policy.reset(seed=init["seed"])
        send(protocol.READY)
        prev_obs = None
        while True:
            msg = protocol.read_message(read_fd)
            if msg is None:
                return 0
            action, rewards, obs = msg
            if prev_obs is not None:
                policy.update(prev_obs, action, rewards)
            out = np.asarray(policy.act(obs))
            if out.dtype not in protocol.DTYPES:
                raise TypeError(f"act returned dtype {out.dtype}; actions must be integers")
            send(protocol.ACTIONS, out)
            prev_obs = obs
    except Exception as err:  # noqa: BLE001 - every failure is reported to the parent as text
        tb = traceback.format_exception(type(err), err, err.__traceback__)
        text = f"{type(err).__name__}: {err}\n" + "".join(tb)[-3000:]
        with contextlib.suppress(OSError):
            send(protocol.ERROR, text=text)
        return 1


if __name__ == "__main__":
    if len(sys.argv) != 3:
        sys.exit("usage: python -m hbgym.leaderboards.agent_host READ_FD WRITE_FD (internal; use `submit`)")
    sys.exit(main(int(sys.argv[1]), int(sys.argv[2])))
