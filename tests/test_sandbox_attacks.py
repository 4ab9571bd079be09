"""Hostile agents through `submit`: each attack is a test named after it (issue 12).

The results directory lives in a 0755 directory (reachable, not writable, by the sandboxed agent), and
the hostile agents know its path (written into their source): the defence must not rely on secrecy.
Each hostile agent then plays uniformly at random, so its cells complete (``ok``) — proof that the
attack code ran — unless the attack itself fails the cell.
"""

from __future__ import annotations

import json
import os
import resource
import shutil
import stat
import struct
import tempfile
import time
from pathlib import Path

import gymnasium as gym
import numpy as np
import pytest
from hbgym.leaderboards import cli, protocol
from hbgym.leaderboards.report import build_report
from hbgym.leaderboards.runner import log_steps, plan, run_cell
from hbgym.leaderboards.sandbox import isolation
from hbgym.leaderboards.store import ResultStore
from hbgym.leaderboards.suites import SUITES, Setting, Suite

import hbgym  # noqa: F401

EXAMPLE = Path(__file__).resolve().parent.parent / "examples" / "my_agent.py"
ISOLATED = all(isolation().values())
needs_root = pytest.mark.skipif(not ISOLATED,
                                reason="needs root and util-linux unshare (PID namespace, uid drop)")

ATTACK = Suite(
    name="attack",
    version=1,
    kind="online",
    num_seeds=4,
    chunk=4,
    log_points=4,
    agents=("HierTS",),
    settings=(Setting("HierGaussian-v0", {"num_tasks": 2, "num_actions": 4, "tasks_per_round": 2}, 40,
                      ("HG",)),),
)

HOSTILE = r'''
import gc
import os
import subprocess
import sys
import time

import numpy as np

RESULTS = {results!r}
MARKERS = {markers!r}


class Uniform:
    def __init__(self, env):
        self.k = env.unwrapped.model.num_actions

    def reset(self, seed=None):
        self.rng = np.random.default_rng(seed)

    def act(self, obs):
        return self.rng.integers(0, self.k, size=obs["task"].shape)

    def update(self, obs, action, reward):
        pass


def cheater(env):  # the sampled truth, as an oracle would read it
    best = np.argmax(env.unwrapped.instance.theta, axis=-1)
    raise AssertionError(f"read the instance: {{best}}")


def gc_cheater(env):  # walk every object for a simulator or an env holding the truth
    from hbgym.envs.core import BanditSimulator, MultiTaskBanditEnv, MultiTaskBanditVectorEnv

    kinds = (BanditSimulator, MultiTaskBanditEnv, MultiTaskBanditVectorEnv)
    found = [o for o in gc.get_objects() if isinstance(o, kinds)]
    if not found:
        raise RuntimeError("no simulator in reach")
    return Uniform(env)


def forger(env):  # patch the runner and write its own record
    import hbgym.leaderboards.play as play
    import hbgym.leaderboards.runner as runner

    runner.play = play.play = lambda *a, **k: np.zeros((4, 40))
    runner.run_cell = lambda cell, *a, **k: {{"cell": {{"id": cell.id}}, "status": "ok", "rows": []}}
    forged = {{"cell": {{"id": "forged"}}, "status": "ok",
              "rows": [{{"agent": "forger", "final_regret": 0.0}}]}}
    for path in (os.path.join(RESULTS, "cells", "forged.json"), os.path.join(RESULTS, "manifest.json")):
        try:
            with open(path, "w") as fh:
                fh.write(repr(forged))
        except OSError:
            pass
    return Uniform(env)


def patcher(env):  # the simulator's step (and the envs') report zero regret
    from hbgym.envs import core

    for cls in (core.EpisodeBatch, core.MultiTaskBanditEnv, core.MultiTaskBanditVectorEnv):
        step = cls.step

        def zero(self, *args, _step=step, **kwargs):
            out = _step(self, *args, **kwargs)
            out[-1]["regret"] = np.zeros_like(out[-1]["regret"])
            return out

        cls.step = zero
    return Uniform(env)


def deleter(env):  # delete every cell and the manifest, add a file
    for root, dirs, files in os.walk(RESULTS):
        for name in files:
            try:
                os.unlink(os.path.join(root, name))
            except OSError:
                pass
    try:
        with open(os.path.join(RESULTS, "cells", "added.json"), "w") as fh:
            fh.write("{{}}")
    except OSError:
        pass
    return Uniform(env)


def late_orphan(env):  # a child in its own session writes after the cell ended
    script = (f"echo started > {{MARKERS}}/started; sleep 3; echo late > {{MARKERS}}/late; "
              f"echo '{{{{}}}}' > {{RESULTS}}/cells/late.json")
    subprocess.Popen(["/bin/sh", "-c", script], start_new_session=True)
    time.sleep(0.5)
    return Uniform(env)


def stderr_flood(env):
    block = b"x" * (1 << 20)
    for _ in range(200):
        os.write(2, block)
    os.write(2, b"\nFLOOD-END\n")
    raise RuntimeError("flooded")


def stdout_flood(env):
    block = b"y" * (1 << 20)
    for _ in range(100):
        os.write(1, block)
    return Uniform(env)


class _Raw(Uniform):
    frame = b""

    def act(self, obs):
        os.write(int(sys.argv[-1]), self.frame)
        time.sleep(30)


def _frame(dtype_code, nbytes):  # header: magic, kind=actions, dtype, ndim=2, shape (2, 2), nbytes
    shape = (2).to_bytes(4, "little") * 2 + bytes(8)
    return b"HBGF" + bytes([2, dtype_code, 2, 0]) + shape + nbytes.to_bytes(8, "little")


class _BadSize(_Raw):
    frame = _frame(0, 24)  # int64 (2, 2) needs 32 bytes


class _BadDtype(_Raw):
    frame = _frame(99, 32)


def wrong_frame_size(env):
    return _BadSize(env)


def wrong_frame_dtype(env):
    return _BadDtype(env)


class _Closer(Uniform):
    def act(self, obs):
        os.close(int(sys.argv[-1]))
        return super().act(obs)


def closed_pipe(env):
    return _Closer(env)


class _Sleeper(Uniform):
    def act(self, obs):
        time.sleep(600)


def sleeper(env):
    return _Sleeper(env)


def networker(env):  # phone home: the runner's localhost
    import socket

    port = int(open(os.path.join(MARKERS, "port")).read())
    try:
        socket.create_connection(("127.0.0.1", port), timeout=2).close()
    except OSError as err:
        raise RuntimeError(f"no network: {{err}}")
    return Uniform(env)


def fork_bomb(env):  # bounded here (a real one would not stop): children sleep until the cell ends
    forked = 0
    try:
        for _ in range(400):
            if os.fork() == 0:
                time.sleep(60)
                os._exit(0)
            forked += 1
    except OSError as err:
        raise RuntimeError(f"fork bomb stopped after {{forked}} forks: {{type(err).__name__}}")
    raise RuntimeError(f"fork bomb not stopped: {{forked}} forks")


def honest_uniform(env):
    return Uniform(env)
'''


def _submit(out: Path, *specs: str, extra: tuple[str, ...] = ()) -> int:
    args = [a for s in specs for a in ("--agent", s)]
    return cli.main(["submit", *args, "--suite", "attack", "--out", str(out), "--quiet", "--no-compare",
                     "--timeout", "20", *extra])


def _cells(out: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in sorted((out / "cells").glob("*.json"))}


@pytest.fixture(scope="module")
def board():
    """A board with HierTS (trusted run) and an honest agent; then the hostile agents are submitted."""
    with pytest.MonkeyPatch.context() as mp:
        mp.setitem(SUITES, "attack", ATTACK)
        base = Path(tempfile.mkdtemp(prefix="hbgym-attack-"))
        os.chmod(base, 0o755)  # reachable by the sandboxed agent, not writable
        markers = Path(tempfile.mkdtemp(prefix="hbgym-markers-"))
        os.chmod(markers, 0o777)  # the orphan may write here: proves it ran, and when
        out = base / "results"
        agents = base / "hostile.py"
        agents.write_text(HOSTILE.format(results=str(out), markers=str(markers)))
        os.chmod(agents, 0o644)
        assert cli.main(["run", "--agent", "HierTS", "--suite", "attack", "--out", str(out), "--quiet",
                         "--jobs", "1"]) == 0
        assert _submit(out, f"{EXAMPLE}:make_agent") == 0
        before = _cells(out)
        hostile = ["cheater", "gc_cheater", "forger", "patcher", "deleter", "late_orphan"]
        code = _submit(out, *(f"{agents}:{h}" for h in hostile), extra=("--jobs", "2"))
        records = {r["cell"]["agent_name"]: r for r in ResultStore(out).records()}
        yield {"out": out, "before": before, "code": code, "records": records, "markers": markers,
               "agents": agents}
        shutil.rmtree(base, ignore_errors=True)
        shutil.rmtree(markers, ignore_errors=True)


def _ranks(out: Path) -> dict[str, dict]:
    _, ranks = build_report(out, plots=False)
    return {e["agent"]: e for e in ranks}


@needs_root
def test_cheater_cannot_read_the_instance(board):
    rec = board["records"]["hostile.cheater"]
    assert rec["status"] == "failed" and "AttributeError" in rec["reason"] and "instance" in rec["reason"]
    assert rec["sandbox"]["drop_privileges"] and rec["sandbox"]["pid_namespace"]
    ranks = _ranks(board["out"])
    assert not ranks["hostile.cheater"]["ranked"]  # a fully failed agent gets no rank
    assert ranks["hostile.cheater"]["failed"] == len(ATTACK.chunks)  # cells, not seed rows


@needs_root
def test_cheater_walking_gc_finds_no_simulator(board):
    rec = board["records"]["hostile.gc_cheater"]
    assert rec["status"] == "failed" and "no simulator in reach" in rec["reason"]


@needs_root
def test_forger_and_patcher_score_like_uniform_never_above_honest(board):
    recs, ranks = board["records"], _ranks(board["out"])
    assert recs["hostile.forger"]["status"] == "ok" and recs["hostile.patcher"]["status"] == "ok"
    assert "forged.json" not in _cells(board["out"])
    hier = ranks["HierTS"]["iqm"]
    assert hier > 0.5
    for name in ("hostile.forger", "hostile.patcher"):
        assert ranks[name]["iqm"] < hier and abs(ranks[name]["iqm"]) < 0.5
        regrets = [r["final_regret"] for r in recs[name]["rows"]]
        assert min(regrets) > 0  # the regret was computed here, not by the patched child


@needs_root
def test_deleter_changes_no_byte_of_earlier_cells(board):
    out = board["out"]
    assert board["records"]["hostile.deleter"]["status"] == "ok"
    after = _cells(out)
    for name, data in board["before"].items():
        assert after[name] == data
    assert "added.json" not in after
    ResultStore(out).verify(ATTACK.hash)


@needs_root
def test_late_orphan_dies_with_its_cell(board):
    markers, out = board["markers"], board["out"]
    assert board["records"]["hostile.late_orphan"]["status"] == "ok"
    assert (markers / "started").exists()  # the orphan ran ...
    time.sleep(4)
    assert not (markers / "late").exists()  # ... and died with the cell
    assert "late.json" not in _cells(out)
    ResultStore(out).verify(ATTACK.hash)


@needs_root
def test_results_dir_never_writable_by_the_child(board):
    mode = stat.S_IMODE(os.stat(board["out"] / "cells").st_mode)
    assert not mode & stat.S_IWOTH
    rec = board["records"]["hostile.deleter"]
    assert rec["sandbox"]["drop_privileges"] and rec["sandbox"]["pid_namespace"]


def test_provenance_in_records_and_report(board):
    rows = ResultStore(board["out"]).rows()
    modes = {r["agent"]: r["mode"] for r in rows}
    assert modes["HierTS"] == "trusted" and modes["my_agent.make_agent"] == "sandboxed"
    assert all(len(r["agent_code_hash"]) == 64 for r in rows)


def _attack(tmp_path: Path, monkeypatch, name: str, *extra: str,
            markers: Path | None = None) -> tuple[int, dict]:
    monkeypatch.setitem(SUITES, "attack", ATTACK)
    agents = tmp_path / "hostile.py"
    agents.write_text(HOSTILE.format(results=str(tmp_path / "res"), markers=str(markers or tmp_path)))
    os.chmod(tmp_path, 0o755)
    os.chmod(agents, 0o644)
    code = _submit(tmp_path / "res", f"{agents}:{name}", extra=("--jobs", "1", *extra))
    records = ResultStore(tmp_path / "res").records()
    rec = next(r for r in records if r["cell"]["agent_name"] == f"hostile.{name}")
    return code, rec


def test_stderr_flood_is_bounded_and_keeps_the_tail(tmp_path, monkeypatch):
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss  # KiB
    code, rec = _attack(tmp_path, monkeypatch, "stderr_flood")
    assert code == 1 and rec["status"] == "failed"
    reason = rec["reason"]
    assert "flooded" in reason and "FLOOD-END" in reason and "stderr (209715211 bytes" in reason
    grew = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - peak
    assert grew < 100 * 1024  # 200 MB went through; the parent kept a bounded tail


@needs_root
def test_shadowing_package_is_never_imported_with_privileges(tmp_path, monkeypatch):
    """A module agent whose package shadows a module the child imports before dropping privileges
    (``gymnasium``) must not run as root: the agent's copy becomes importable only after the drop."""
    monkeypatch.setitem(SUITES, "attack", ATTACK)
    markers = Path(tempfile.mkdtemp(prefix="hbgym-markers-"))
    os.chmod(markers, 0o777)
    pkg = tmp_path / "src" / "gymnasium"
    pkg.mkdir(parents=True)
    (pkg / "__init__.py").write_text(
        f"import os\nopen(os.path.join({str(markers)!r}, 'uid-%d' % os.getuid()), 'w').close()\n")
    (pkg / "evil.py").write_text("def make_agent(env):\n    raise RuntimeError('never a real agent')\n")
    os.chmod(tmp_path, 0o755)
    monkeypatch.syspath_prepend(str(tmp_path / "src"))  # the submitter's directory, as `submit` sees it
    assert _submit(tmp_path / "res", "gymnasium.evil:make_agent", extra=("--jobs", "1")) == 1
    assert not (markers / "uid-0").exists(), "the shadowing package ran with root privileges"
    shutil.rmtree(markers, ignore_errors=True)


@needs_root
def test_networker_reaches_nothing(tmp_path, monkeypatch):
    import socket

    markers = Path(tempfile.mkdtemp(prefix="hbgym-markers-"))
    os.chmod(markers, 0o755)  # readable by the agent: it learns the port
    with socket.socket() as server:
        server.bind(("127.0.0.1", 0))
        server.listen()
        (markers / "port").write_text(str(server.getsockname()[1]))
        os.chmod(markers / "port", 0o644)
        code, rec = _attack(tmp_path, monkeypatch, "networker", markers=markers)
    shutil.rmtree(markers, ignore_errors=True)
    assert code == 1 and "no network" in rec["reason"] and rec["sandbox"]["no_network"]


@needs_root
def test_fork_bomb_is_capped_and_dies_with_its_cell(tmp_path, monkeypatch):
    import re

    from hbgym.leaderboards.sandbox import Limits

    code, rec = _attack(tmp_path, monkeypatch, "fork_bomb")
    assert code == 1 and rec["status"] == "failed", rec.get("reason")
    found = re.search(r"fork bomb stopped after (\d+) forks: BlockingIOError", rec["reason"])
    assert found and int(found.group(1)) < Limits().max_processes, rec["reason"]
    time.sleep(0.5)  # the PID namespace took every sleeping child with it
    sleepers = [p for p in Path("/proc").iterdir() if p.name.isdigit() and _uid_of(p) == 65534]
    assert not sleepers, f"processes of nobody outlived the cell: {[p.name for p in sleepers]}"


def _uid_of(proc: Path) -> int | None:
    try:
        for line in (proc / "status").read_text().splitlines():
            if line.startswith("Uid:"):
                return int(line.split()[1])
    except OSError:
        return None
    return None


def test_stdout_flood_does_not_stop_the_cell(tmp_path, monkeypatch):
    code, rec = _attack(tmp_path, monkeypatch, "stdout_flood")
    assert code == 0 and rec["status"] == "ok"


@pytest.mark.parametrize("name, match", [("wrong_frame_size", "do not hold"),
                                         ("wrong_frame_dtype", "dtype code 99"),
                                         ("closed_pipe", "closed the pipe")])
def test_malformed_frames_and_closed_pipe_fail_the_cell(tmp_path, monkeypatch, name, match):
    code, rec = _attack(tmp_path, monkeypatch, name)
    assert code == 1 and rec["status"] == "failed" and match in rec["reason"]


def test_sleeper_until_timeout(tmp_path, monkeypatch):
    start = time.monotonic()
    code, rec = _attack(tmp_path, monkeypatch, "sleeper", "--timeout", "3")
    assert code == 1 and "timeout" in rec["reason"] and time.monotonic() - start < 30


def test_protocol_rejects_bad_frames():
    good = protocol.encode_frame(protocol.ACTIONS, np.array([[1, 2]], dtype=np.int64))
    cases = [(b"XXXX" + good[4:], "bad magic"), (good[:4] + bytes([9]) + good[5:], "unknown kind"),
             (good[:-3], "closed the pipe"), (good, "exceeds the limit")]
    for data, match in cases:
        r, w = os.pipe()
        os.write(w, data)
        os.close(w)
        with pytest.raises(protocol.ProtocolError, match=match):
            protocol.read_frame(r, time.monotonic() + 5, max_bytes=8 if match == "exceeds the limit" else 64)
        os.close(r)
    r, w = os.pipe()
    os.write(w, good)
    kind, arr = protocol.read_frame(r, time.monotonic() + 5, 64)
    assert kind == "actions" and arr.tolist() == [[1, 2]] and arr.dtype == np.int64
    with pytest.raises(protocol.AgentTimeout):
        protocol.read_frame(r, time.monotonic() + 0.2, 64)
    os.close(r)
    os.close(w)
    assert struct.calcsize("<4sBBBx4IQ") == 32


def test_editing_an_agent_reruns_its_cells_and_name_keeps_variants_apart(tmp_path, monkeypatch):
    monkeypatch.setitem(SUITES, "attack", ATTACK)
    agent = tmp_path / "mine.py"
    agent.write_text(EXAMPLE.read_text())
    out = tmp_path / "res"
    assert _submit(out, f"{agent}:make_agent") == 0
    first = set(_cells(out))
    agent.write_text(EXAMPLE.read_text().replace("2 * np.log", "0.5 * np.log"))  # an edited agent
    assert _submit(out, f"{agent}:make_agent") == 0
    new = set(_cells(out)) - first
    assert len(new) == len(ATTACK.chunks)  # its cells ran again, nothing was reused
    ranks = _ranks(out)
    assert len([a for a in ranks if a.startswith("mine.make_agent@")]) == 2  # both versions, apart
    assert _submit(out, f"{agent}:make_agent", f"{EXAMPLE}:make_agent",
                   extra=("--name", "tuned", "--name", "original")) == 0
    ranks = _ranks(out)
    assert "tuned" in ranks and "original" in ranks


def test_submit_never_reuses_trusted_cells_and_report_marks_trusted(tmp_path, monkeypatch):
    monkeypatch.setitem(SUITES, "attack", ATTACK)
    out = tmp_path / "res"
    assert cli.main(["run", "--agent", f"{EXAMPLE}:make_agent", "--suite", "attack", "--out", str(out),
                     "--quiet", "--jobs", "1", "--no-compare"]) == 0
    trusted = set(_cells(out))
    assert _submit(out, f"{EXAMPLE}:make_agent") == 0
    assert len(set(_cells(out)) - trusted) == len(ATTACK.chunks)
    text = (out / "LEADERBOARD.md").read_text()
    assert "my_agent.make_agent (trusted)" in text and "| my_agent.make_agent |" in text


def test_where_do_i_rank_within_the_zoo(tmp_path, monkeypatch, capsys):
    monkeypatch.setitem(SUITES, "attack", ATTACK)
    zoo = tmp_path / "zoo"
    assert cli.main(["run", "--agent", "HierTS", "--suite", "attack", "--out", str(zoo), "--quiet",
                     "--jobs", "1"]) == 0
    capsys.readouterr()
    out = tmp_path / "mine"
    assert cli.main(["submit", "--agent", f"{EXAMPLE}:make_agent", "--suite", "attack", "--out", str(out),
                     "--quiet", "--compare", str(zoo), "--jobs", "1"]) == 0
    printed = capsys.readouterr().out
    within = printed.split("within the zoo")[1]
    assert "HierTS" in within and "my_agent.make_agent" in within and "<--" in within


def test_a_run_holding_the_whole_zoo_is_its_own_ranking(tmp_path, monkeypatch, capsys):
    """`run --agent all` with a third-party agent among the zoo (e.g. the packaged SB3 baselines of
    `standard`) prints one table: no second run of the zoo into the cache."""
    monkeypatch.setitem(SUITES, "attack", ATTACK)
    monkeypatch.setenv("HBGYM_CACHE_DIR", str(tmp_path / "cache"))
    assert cli.main(["run", "--agent", "all", "--agent", f"{EXAMPLE}:make_agent", "--suite", "attack",
                     "--out", str(tmp_path / "all"), "--quiet", "--jobs", "1"]) == 0
    printed = capsys.readouterr().out
    assert "within the zoo" not in printed and "HierTS" in printed and "my_agent.make_agent" in printed
    assert not (tmp_path / "cache").exists()


def test_third_party_on_the_vector_env_equals_the_per_seed_loop():
    """Rows of a per-env agent run on the vector env (one instance per slot) == one single env per seed."""
    from hbgym.leaderboards.specs import resolve

    make_agent = resolve(f"{EXAMPLE}:make_agent").target
    cells, _ = plan(ATTACK, [f"{EXAMPLE}:make_agent"], with_references=False)
    record = run_cell(cells[0], catch=False)
    setting = ATTACK.settings[0]
    for row in record["rows"]:
        env = gym.make(setting.env_id, **setting.env_kwargs)
        agent = make_agent(env)
        obs, _ = env.reset(seed=row["seed"])
        agent.reset(seed=row["seed"])
        regret = []
        for _ in range(env.unwrapped.model.num_rounds):
            action = agent.act(obs)
            nxt, _, _, _, info = env.step(action)
            agent.update(obs, action, info["rewards"])
            obs = nxt
            regret.append(float(np.sum(info["regret"])))
        cum = np.cumsum(regret)
        steps = log_steps(len(cum), ATTACK.log_points)
        assert row["final_regret"] == pytest.approx(cum[-1], rel=1e-12, abs=1e-12)
        assert row["cum_regret"] == pytest.approx(cum[steps - 1].tolist(), rel=1e-12, abs=1e-12)
        env.close()


def test_sandboxed_rows_equal_trusted_rows(tmp_path):
    cells, _ = plan(ATTACK, [f"{EXAMPLE}:make_agent"], with_references=False)
    boxed, _ = plan(ATTACK, [f"{EXAMPLE}:make_agent"], with_references=False, mode="sandboxed")
    a, b = run_cell(cells[0], catch=False), run_cell(boxed[0], catch=False)
    assert [r["final_regret"] for r in a["rows"]] == [r["final_regret"] for r in b["rows"]]
    assert json.dumps(b["sandbox"]) and b["rows"][0]["mode"] == "sandboxed"


def test_failed_cells_score_zero_in_every_aggregate():
    """Failing on purpose never pays: an agent that fails its weak setting ranks below playing it."""
    from hbgym.leaderboards.report import ranking
    from hbgym.leaderboards.scoring import score_rows

    settings = [{"key": k, "tags": [k], "oracle": "optimal", "uniform": "Uniform"} for k in ("a", "b")]

    def row(agent, key, seed, regret, status="ok"):
        extra = {"final_regret": regret} if status == "ok" else {"reason": "raised on purpose"}
        return {"agent": agent, "setting": key, "seed": seed, "status": status, "cell": f"{agent}-{key}",
                **extra}

    rows = [row("Uniform", k, s, 10.0) for k in "ab" for s in range(4)]
    rows += [row("Honest", "a", s, 1.0) for s in range(4)] + [row("Honest", "b", s, 9.0) for s in range(4)]
    rows += [row("Quitter", "a", s, 1.0) for s in range(4)]
    rows += [row("Quitter", "b", s, None, "failed") for s in range(4)]
    rows += [row("Broken", k, s, None, "failed") for k in "ab" for s in range(4)]
    table = score_rows(rows, settings)
    np.testing.assert_allclose(table.scores["Quitter"][:, 1], 0.0)
    ranks = {e["agent"]: e for e in ranking(table, ["a", "b"])}
    assert ranks["Quitter"]["iqm"] < ranks["Honest"]["iqm"]  # 0 on b is worse than Honest's 0.1
    assert ranks["Quitter"]["families"]["b"] == 0.0 and ranks["Quitter"]["failed"] == 1
    broken = ranks["Broken"]
    assert not broken["ranked"] and np.isnan(broken["iqm"]) and broken["failed"] == 2
