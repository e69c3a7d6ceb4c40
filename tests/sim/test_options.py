"""Run options: seeds keep their runs, every option is settable (flags, options file), bad input
is refused naming the flag or field, and the printed repro line makes the very same run."""

from __future__ import annotations

import dataclasses
import hashlib
import json
from pathlib import Path

import pytest

from groupcomm.core.config import CoreConfig
from sim.__main__ import main
from sim.faultplan import fault_problem
from sim.options import (
    PROTOCOL_FIELDS,
    SIM_SUSPECT_TIMEOUT_MS,
    FaultPlan,
    OptionsError,
    SimOptions,
    random_options,
    with_changes,
)
from sim.optionsfile import (
    is_plain_seed,
    options_from_json,
    options_to_json,
    parse_faults,
    repro_command,
)

# The fields random_options had before options became settable, and a digest of their values
# for CI's seeds 0-199 and reported seed 7310022: a seed must keep meaning the same run.
OLD_FIELDS = (
    *("seed", "daemons", "clients_per_daemon", "groups", "latency_min_ms", "latency_max_ms"),
    *("latency_tail", "loss", "duplication", "safety_ms", "settle_ms", "rate_per_client"),
    *("faults", "churn", "codec"),
)
SEEDS_DIGEST = "16be4f6a4989e9cfe3a83bcad08860d6b5bfca84efb799fcc289e73ca8ba51f6"
SMALL = ["--daemons", "3", "--safety-ms", "1000", "--settle-ms", "1400", "--quiet-ms", "700"]


def test_seeds_keep_their_options() -> None:
    digest = hashlib.sha256()
    for seed in [*range(200), 7310022]:
        opt = random_options(seed)
        digest.update(repr(tuple(getattr(opt, f) for f in OLD_FIELDS)).encode())
        defaults = SimOptions(seed=seed)
        new_fields = [f.name for f in dataclasses.fields(SimOptions) if f.name not in OLD_FIELDS]
        assert all(getattr(opt, f) == getattr(defaults, f) for f in new_fields)
    assert digest.hexdigest() == SEEDS_DIGEST


def test_protocol_defaults_are_the_cores_but_the_suspect_timeout() -> None:
    core = CoreConfig(name="d1", incarnation=0, peers=("d1",))
    opt = SimOptions(seed=1)
    for name in PROTOCOL_FIELDS:
        expected = SIM_SUSPECT_TIMEOUT_MS if name == "suspect_timeout_ms" else getattr(core, name)
        assert getattr(opt, name) == expected, name


def test_options_json_round_trip() -> None:
    for seed in range(40):
        opt = dataclasses.replace(random_options(seed), suspect_timeout_ms=300, loss=0.125)
        text = json.dumps(options_to_json(opt))
        assert options_from_json(json.loads(text)) == opt


def test_fault_syntax() -> None:
    plans = parse_faults("1500:heal 700:partition:d1,d2/d3;800:crash:d2:300 900:loss:0.2:50", 3)
    assert plans == (
        FaultPlan(at_ms=700, what="partition", args=(0, 0, 1)),
        FaultPlan(at_ms=800, what="crash", args=("d2", 300)),
        FaultPlan(at_ms=900, what="loss", args=(0.2, 50)),
        FaultPlan(at_ms=1500, what="heal"),
    )
    assert parse_faults("700:partition:0,1,1", 3)[0].args == (0, 1, 1)
    assert parse_faults("none", 3) == ()
    with pytest.raises(OptionsError, match="d2 is on two sides"):
        parse_faults("700:partition:d1,d2/d2,d3", 3)
    with pytest.raises(OptionsError, match="d3 on no side"):
        parse_faults("700:partition:d1/d2", 3)


def test_invalid_options_name_the_field() -> None:
    with pytest.raises(OptionsError) as err:
        SimOptions(seed=1, heartbeat_ms=300)
    assert err.value.field == "suspect_timeout_ms"
    with pytest.raises(OptionsError, match="latency_min_ms") as err:
        SimOptions(seed=1, latency_min_ms=5, latency_max_ms=2)
    with pytest.raises(OptionsError, match="d4") as err:
        SimOptions(seed=1, faults=(FaultPlan(at_ms=10, what="crash", args=("d4", 100)),))
    assert err.value.field == "faults"
    late = FaultPlan(at_ms=5000, what="heal")
    assert "safety phase" in fault_problem(late, 3, 3000)


def test_changing_the_daemon_count_redraws_the_seeds_faults() -> None:
    base = random_options(7)
    five = with_changes(base, {"daemons": base.daemons + 2}, redraw=True)
    assert five.daemons == base.daemons + 2
    assert five == with_changes(base, {"daemons": base.daemons + 2}, redraw=True)
    assert random_options(7) == base
    scripted = dataclasses.replace(
        base, faults=(FaultPlan(at_ms=10, what="partition", args=(0,) * base.daemons),)
    )
    with pytest.raises(OptionsError, match="give the faults"):
        with_changes(scripted, {"daemons": base.daemons + 1}, redraw=False)


def test_plain_seed_repro_is_the_seed() -> None:
    opt = random_options(3)
    assert is_plain_seed(opt)
    assert repro_command(opt, None) == "python -m sim --seed 3"
    assert not is_plain_seed(dataclasses.replace(opt, suspect_timeout_ms=400))


def _repro_args(out: str) -> list[str]:
    line = next(x for x in out.splitlines() if "reproduce:" in x)
    command = line.split("reproduce:", 1)[1].split()
    assert command[:3] == ["python", "-m", "sim"]
    return command[3:]


def test_a_run_from_flags_and_its_repro_make_the_same_trace(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.chdir(tmp_path)
    flags = [
        *("--seed", "4", *SMALL, "--loss", "0.02", "--latency-ms", "1-6"),
        *("--suspect-timeout-ms", "200", "--rate", "30", "--no-churn"),
        *("--faults", "300:partition:d1,d2/d3 800:heal"),
    ]
    assert main([*flags, "--trace", "a.jsonl"]) == 0
    repro = _repro_args(capsys.readouterr().out)
    assert repro[0] == "--options" and Path(repro[1]).exists()
    saved = json.loads(Path(repro[1]).read_text())
    assert saved["suspect_timeout_ms"] == 200 and saved["churn"] is False
    assert main([*repro, "--trace", "b.jsonl"]) == 0
    assert _repro_args(capsys.readouterr().out) == repro
    first = (tmp_path / "a.jsonl").read_bytes()
    assert first == (tmp_path / "b.jsonl").read_bytes()
    assert b'"what":"partition"' in first


def test_bad_flags_are_refused_naming_the_flag(capsys: pytest.CaptureFixture[str]) -> None:
    for args, flag in (
        (["--loss", "1.5"], "--loss"),
        (["--daemons", "0"], "--daemons"),
        (["--latency-ms", "9-2"], "--latency-ms"),
        (["--quiet-ms", "9000"], "--quiet-ms"),
        (["--faults", "700:partition:d1,d2/d2,d3", "--daemons", "3"], "--faults"),
    ):
        with pytest.raises(SystemExit) as exit_:
            main(["--seed", "1", *args])
        assert exit_.value.code == 2
        assert f"argument {flag}:" in capsys.readouterr().err


@pytest.mark.parametrize(
    ("content", "named"),
    [
        ({"seed": 1, "suspect_timeout": 300}, "unknown option 'suspect_timeout'"),
        ({"seed": 1, "loss": "0.1"}, "loss must be a number"),
        ({"seed": 1, "daemons": 2.5}, "daemons must be an integer"),
        ({"seed": 1, "faults": [{"at_ms": 9, "what": "heal", "when": 1}]}, "unknown key 'when'"),
        ({"daemons": 3}, "seed missing"),
    ],
)
def test_a_bad_options_file_is_refused(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], content: object, named: str
) -> None:
    path = tmp_path / "opts.json"
    path.write_text(json.dumps(content))
    with pytest.raises(SystemExit) as exit_:
        main(["--options", str(path)])
    assert exit_.value.code == 2
    err = capsys.readouterr().err
    assert "argument --options:" in err and named in err
