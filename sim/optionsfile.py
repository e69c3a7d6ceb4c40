"""Options as text: the JSON options file, the ``--faults`` syntax, and the repro line.

Owns the one-to-one mapping between ``SimOptions`` and its JSON document (every field, so the
file alone reproduces a run, whatever the defaults become), the strict loader (an unknown or
mistyped field is refused naming it), the compact fault syntax of the command line, and
``repro_command``: the one command that reproduces a run exactly.

Options file (every key optional except ``seed``; missing keys take the defaults)::

    {"seed": 7, "daemons": 5, "loss": 0.1, "suspect_timeout_ms": 500, ...,
     "faults": [{"at_ms": 700, "what": "partition", "args": [0, 0, 0, 1, 1]},
                {"at_ms": 1500, "what": "heal", "args": []}]}
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Mapping
from dataclasses import fields
from pathlib import Path
from typing import Any

from sim.faultplan import FAULT_ARGS, FaultPlan, daemon_names, side_labels
from sim.options import OptionsError, SimOptions, random_options

# JSON type of each option (the annotations are strings: ``from __future__ import annotations``).
FIELD_TYPES: dict[str, str] = {f.name: str(f.type) for f in fields(SimOptions)}


# ------------------------------------------------------------------------------------ JSON


def options_to_json(opt: SimOptions) -> dict[str, Any]:
    """Every field of ``opt``, faults as objects, in field order."""
    out: dict[str, Any] = {}
    for name in FIELD_TYPES:
        value = getattr(opt, name)
        if name == "faults":
            value = [{"at_ms": p.at_ms, "what": p.what, "args": list(p.args)} for p in value]
        out[name] = value
    return out


def options_from_json(obj: object, where: str = "options") -> SimOptions:
    """The options of a JSON document; ``OptionsError`` names the first bad field."""
    values = parse_fields(obj, tuple(FIELD_TYPES), where)
    if "seed" not in values:
        raise OptionsError("seed", f"{where}: seed missing (the seed of every random stream)")
    try:
        return SimOptions(**values)
    except OptionsError as exc:
        raise OptionsError(exc.field, f"{where}: {exc}") from None


def parse_fields(obj: object, allowed: tuple[str, ...], where: str) -> dict[str, Any]:
    """Check the keys of ``obj`` (a subset of ``allowed`` option names) and their JSON types."""
    if not isinstance(obj, Mapping):
        raise OptionsError("options", f"{where}: must be a JSON object, got {obj!r}")
    values: dict[str, Any] = {}
    for key, value in obj.items():
        if key not in allowed:
            known = ", ".join(allowed)
            raise OptionsError(str(key), f"{where}: unknown option {key!r} (known: {known})")
        values[key] = _typed(key, value, where)
    return values


def _typed(key: str, value: object, where: str) -> Any:
    kind = FIELD_TYPES[key]
    if kind == "int" and (isinstance(value, int) and not isinstance(value, bool)):
        return value
    if kind == "float" and isinstance(value, int | float) and not isinstance(value, bool):
        return float(value)
    if kind == "bool" and isinstance(value, bool):
        return value
    if key == "faults" and isinstance(value, list):
        return tuple(_fault(i, f, where) for i, f in enumerate(value))
    wanted = {"int": "an integer", "float": "a number", "bool": "true or false"}
    expected = wanted.get(kind, "a list of fault objects")
    raise OptionsError(key, f"{where}: {key} must be {expected}, got {value!r}")


def _fault(i: int, obj: object, where: str) -> FaultPlan:
    at = f"{where}: faults[{i}]"
    if not isinstance(obj, Mapping):
        raise OptionsError("faults", f"{at} must be an object {{at_ms, what, args}}, got {obj!r}")
    unknown = set(obj) - {"at_ms", "what", "args"}
    if unknown:
        raise OptionsError("faults", f"{at}: unknown key {sorted(unknown)[0]!r}")
    at_ms, what, args = obj.get("at_ms"), obj.get("what"), obj.get("args", [])
    if not isinstance(at_ms, int) or isinstance(at_ms, bool):
        raise OptionsError("faults", f"{at}.at_ms must be an integer, got {at_ms!r}")
    if not isinstance(what, str):
        raise OptionsError("faults", f"{at}.what must be a fault kind, got {what!r}")
    if not isinstance(args, list) or not all(
        isinstance(a, str | int | float) and not isinstance(a, bool) for a in args
    ):
        raise OptionsError("faults", f"{at}.args must be a list of strings and numbers")
    return FaultPlan(at_ms=at_ms, what=what, args=tuple(args))


def load_options(path: Path) -> SimOptions:
    try:
        obj = json.loads(path.read_text())
    except OSError as exc:
        raise OptionsError("options", f"cannot read {path}: {exc.strerror}") from None
    except json.JSONDecodeError as exc:
        raise OptionsError(
            "options", f"{path}: invalid JSON ({exc.msg}, line {exc.lineno})"
        ) from None
    return options_from_json(obj, str(path))


def dump_options(opt: SimOptions) -> str:
    return json.dumps(options_to_json(opt), indent=1) + "\n"


def save_options(opt: SimOptions, path: Path) -> None:
    path.write_text(dump_options(opt))


# ----------------------------------------------------------------------------- repro line


def is_plain_seed(opt: SimOptions) -> bool:
    """True when ``python -m sim --seed N`` alone makes this run."""
    return opt == random_options(opt.seed)


def default_options_path(opt: SimOptions) -> Path:
    """``sim-options-<seed>-<digest>.json`` in the current directory: one name per options."""
    digest = hashlib.sha256(dump_options(opt).encode()).hexdigest()[:8]
    return Path(f"sim-options-{opt.seed}-{digest}.json")


def repro_command(opt: SimOptions, path: Path | None) -> str:
    """The command that makes this run again: the seed, or the options file at ``path``."""
    if path is None:
        if not is_plain_seed(opt):
            raise ValueError("options that are not a seed's need their options file")
        return f"python -m sim --seed {opt.seed}"
    return f"python -m sim --options {path}"


# --------------------------------------------------------------------------- fault syntax

FAULT_SYNTAX = (
    "AT_MS:KIND[:ARG...] entries separated by ';' or spaces, or 'none'. Kinds: "
    "partition:d1,d2/d3 (sides; every daemon once) or partition:0,0,1 (a label per daemon), "
    "asymmetric:FROM:TO, heal, crash:D:DOWN_MS, leave:D:DOWN_MS, pause:D:MS, hold:D:MS, "
    "loss:RATE:MS; shapes: isolate:D, majority:D,D,D, ring[:D,D,D,D] (a ring order), "
    "bridge:D, cut:D-D[,D-D...]; timed: flap:D:PERIOD_MS:DURATION_MS, "
    "flaplink:A:B:PERIOD_MS:DURATION_MS, slow:A:B:EXTRA_MS:DURATION_MS, "
    "lossy:A:B:RATE:DURATION_MS, swizzle:STEP_MS:D,D,..., clock:D:JUMP_MS:RATE; "
    "core:DURATION_MS:D,D,... (a continuing-fault core phase, L4)"
)


def parse_faults(text: str, daemons: int) -> tuple[FaultPlan, ...]:
    """Faults in the command-line syntax (``FAULT_SYNTAX``), in time order."""
    entries = [e for e in re.split(r"[;\s]+", text.strip()) if e]
    if entries == ["none"]:
        return ()
    plans = [_parse_fault(entry, daemons) for entry in entries]
    return tuple(sorted(plans, key=lambda p: (p.at_ms, p.what)))


def _parse_fault(entry: str, daemons: int) -> FaultPlan:
    at_text, _, rest = entry.partition(":")
    what, _, arg_text = rest.partition(":")
    if not re.fullmatch(r"\d+", at_text) or what not in FAULT_ARGS:
        raise OptionsError("faults", f"{entry!r} is not AT_MS:KIND[:ARG...] ({FAULT_SYNTAX})")
    texts = arg_text.split(":") if arg_text else []
    kinds = FAULT_ARGS[what]
    tail = kinds[-1] if kinds and kinds[-1][-1] in "*?" else ""
    fixed = kinds[:-1] if tail else kinds
    if what == "partition":
        if len(texts) != 1:
            raise OptionsError("faults", f"{entry!r}: a partition takes one argument")
        args: tuple[str | int | float, ...] = _partition_labels(entry, texts[0], daemons)
    elif tail:
        if len(texts) < len(fixed) + (tail != "names?"):
            raise OptionsError("faults", f"{entry!r}: {what} takes {':'.join(kinds)}")
        head = tuple(_arg(entry, kind, t) for kind, t in zip(fixed, texts, strict=False))
        args = head + _names(entry, tail, texts[len(fixed) :])
    else:
        if len(texts) != len(kinds):
            raise OptionsError("faults", f"{entry!r}: {what} takes {':'.join(kinds) or 'nothing'}")
        args = tuple(_arg(entry, kind, t) for kind, t in zip(kinds, texts, strict=True))
    return FaultPlan(at_ms=int(at_text), what=what, args=args)


def _names(entry: str, tail: str, texts: list[str]) -> tuple[str, ...]:
    """A list of daemon names (``d1,d2`` or ``d1:d2``); for links, ``d1-d3,d2-d4`` or names
    taken in pairs."""
    items = [x for t in texts for x in t.split(",") if x]
    if tail == "pairs*" and any("-" in x for x in items):
        pairs = [x.split("-") for x in items]
        if any(len(pair) != 2 for pair in pairs):
            raise OptionsError("faults", f"{entry!r}: links are written A-B, got {texts!r}")
        return tuple(d for pair in pairs for d in pair)
    return tuple(items)


def _partition_labels(entry: str, text: str, daemons: int) -> tuple[int, ...]:
    if re.fullmatch(r"\d+(,\d+)*", text):
        return tuple(int(x) for x in text.split(","))
    sides = [side.split(",") if side else [] for side in text.split("/")]
    try:
        return side_labels(sides, daemon_names(daemons))
    except ValueError as exc:
        raise OptionsError("faults", f"{entry!r}: {exc}") from None


def _arg(entry: str, kind: str, text: str) -> str | int | float:
    try:
        if kind in ("ms", "nat"):
            return int(text)
        if kind in ("rate", "factor"):
            return float(text)
    except ValueError:
        raise OptionsError("faults", f"{entry!r}: {text!r} is not a {kind} value") from None
    return text
