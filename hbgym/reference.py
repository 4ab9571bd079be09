"""The README's reference tables for agent authors, generated (never typed by hand).

Two blocks, each between HTML comment markers in ``README.md``:

* ``models``: the public model attributes (``env.unwrapped.model``), read from the ``Attributes:``
  sections of the model dataclasses' docstrings in :mod:`hbgym.models` — the attributes every model
  has (:class:`~hbgym.models.BanditModel`), then each family's own;
* ``observations``: the observation spaces and sizes of every registered id with its default
  arguments (builds each env, so the real-data envs need their data or offline copies).

``python -m hbgym.reference`` prints both; ``python -m hbgym.reference --write README.md`` replaces
the blocks in place. A test checks the README is current.
"""

from __future__ import annotations

import argparse
import dataclasses
import inspect
import re
from pathlib import Path

from hbgym import models

__all__ = ["BLOCKS", "model_attributes", "models_table", "observations_table", "update"]

#: model class -> the ids whose ``env.unwrapped.model`` it is
FAMILIES: dict[type, tuple[str, ...]] = {
    models.HierGaussianModel: ("HierGaussian-v0", "HierGaussianMAB-v0", "MovieLensMulti-v0", "MNISTMulti-v0"),
    models.MixedEffectModel: ("MixedEffect-v0", "MixedEffectLogistic-v0", "MovieLensEffects-v0"),
    models.MultiBanditModel: ("MultiBandit-v0", "MultiBanditDataPoor-v0", "MultiBanditSparse-v0",
                              "MultiBanditUniform-v0"),
    models.PartialContextModel: ("PartialContext-v0",),
}


def model_attributes(cls: type) -> dict[str, str]:
    """``name -> description`` from the ``Attributes:`` section of ``cls``'s own docstring."""
    doc = inspect.cleandoc(cls.__doc__ or "")
    if "Attributes:" not in doc:
        return {}
    section = doc.split("Attributes:", 1)[1]
    out: dict[str, str] = {}
    name = None
    for line in section.splitlines():
        if not line.strip():
            continue
        if not line.startswith(" "):
            break  # the section ended
        match = re.match(r"^ {4}([A-Za-z_][\w, ]*):\s*(.*)$", line)
        if match:
            name = match.group(1)
            out[name] = match.group(2).strip()
        elif name is not None:
            out[name] += " " + line.strip()
    return out


def _cell(text: str) -> str:
    """Docstring markup (reST) as Markdown table text."""
    text = re.sub(r":\w+:`~?([\w.]+)`", lambda m: f"`{m.group(1).split('.')[-1]}`", text)
    return text.replace("``", "`").replace("|", "\\|")


def models_table() -> str:
    """Markdown: the common attributes, then each family model's own attributes."""
    base = model_attributes(models.BanditModel)
    fields = [f.name for f in dataclasses.fields(models.BanditModel)]
    if sorted(base) != sorted(fields):
        raise ValueError(f"BanditModel's docstring documents {sorted(base)}, its fields are {sorted(fields)}")
    lines = ["Every model (`hbgym.models.BanditModel`):", "", "| attribute | meaning |", "|---|---|"]
    lines += [f"| `{name}` | {_cell(base[name])} |" for name in fields]
    for cls, ids in FAMILIES.items():
        own = model_attributes(cls)
        declared = {f.name for f in dataclasses.fields(cls)} - set(fields)
        documented = {n.strip() for key in own for n in key.split(",")}
        missing = sorted(declared - documented)
        if missing:
            raise ValueError(f"{cls.__name__} does not document {missing} in its docstring")
        note = inspect.cleandoc(cls.__doc__ or "").split("Attributes:", 1)[0].strip().split("\n\n")
        summary = _cell(" ".join(" ".join(part.split()) for part in note[1:]))
        lines += ["", f"`{cls.__name__}` ({', '.join(f'`{i}`' for i in ids)}): {summary}", "",
                  "| attribute | meaning |", "|---|---|"]
        lines += [f"| `{name}` | {_cell(text)} |" for name, text in own.items()]
    return "\n".join(lines)


def observations_table() -> str:
    """Markdown: per registered id (default arguments) the sizes and the observation space."""
    import gymnasium as gym

    import hbgym

    lines = ["| id | m | K | L | d | n (per task) | rounds | observation |", "|---" * 8 + "|"]
    for env_id in hbgym.ENV_IDS:
        env = gym.make(env_id)
        m = env.unwrapped.model
        space = ", ".join(
            f"`{key}` {tuple(sub.shape)} {sub.dtype}" for key, sub in env.observation_space.spaces.items()
        )
        lines.append(f"| `{env_id}` | {m.num_tasks} | {m.num_actions} | {m.tasks_per_round} | {m.dim} | "
                     f"{m.horizon} | {m.num_rounds} | {space} |")
        env.close()
    return "\n".join(lines)


BLOCKS = {"models": models_table, "observations": observations_table}


def update(text: str, names: tuple[str, ...] = tuple(BLOCKS)) -> str:
    """``text`` with each named block (between ``<!-- reference:NAME -->`` and
    ``<!-- /reference:NAME -->``) replaced by its generated table."""
    for name in names:
        begin, end = f"<!-- reference:{name} -->", f"<!-- /reference:{name} -->"
        if text.count(begin) != 1 or text.count(end) != 1:
            raise ValueError(f"expected one {begin} ... {end} block")
        head, rest = text.split(begin)
        _, tail = rest.split(end)
        text = f"{head}{begin}\n{BLOCKS[name]()}\n{end}{tail}"
    return text


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m hbgym.reference", description=__doc__.split("\n")[0])
    parser.add_argument("--write", type=Path, default=None, help="update the blocks in this file (README.md)")
    parser.add_argument("--only", choices=list(BLOCKS), action="append", help="only these blocks")
    args = parser.parse_args(argv)
    names = tuple(args.only or BLOCKS)
    if args.write is None:
        for name in names:
            print(BLOCKS[name]() + "\n")
    else:
        args.write.write_text(update(args.write.read_text(), names))


if __name__ == "__main__":
    main()
