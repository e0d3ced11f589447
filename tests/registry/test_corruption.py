"""A registry that survives corruption and relocation, and a store that does not exist is said so.

Each case works on a copy of a store holding champion v1 (segment 1 seed 0, promoted through `promote`) and
its decision; every command ends in one line (exit 2 when it cannot answer), never a traceback.
"""

from __future__ import annotations

import json
import re
import shutil
from pathlib import Path

import pytest

from cryptorl.champion import registry
from cli.main import main
from cryptorl.champion.promotion import promote
from cryptorl.storage import ArtifactStore

DATASET = "btcusdt-1h"
HISTORICAL = ["--max-staleness", "inf"]
BROKEN = {"truncated": lambda text: text[: len(text) // 2], "empty": lambda _: "", "a list": lambda _: "[]",
          "an empty object": lambda _: "{}"}


@pytest.fixture(scope="module")
def original(trained, tmp_path_factory) -> tuple[Path, str]:
    root = tmp_path_factory.mktemp("corruption") / "store"
    challenger = trained.challengers(f"file://{root}")[1, 0]
    assert promote(ArtifactStore(f"file://{root}"), [challenger]).accepted
    return root, challenger.data.uri


@pytest.fixture
def copy(original, tmp_path) -> Path:
    """A copy of the store, as `cp -a store backup` makes it."""
    return Path(shutil.copytree(original[0], tmp_path / "backup", symlinks=True))


def run(capsys, *args: str) -> tuple[int, str, str]:
    code = main(list(args))
    out, err = capsys.readouterr()
    assert "Traceback" not in out + err
    return code, out, err


def only_record(store: Path, kind: str) -> Path:
    [path] = (store / "registry" / DATASET / kind).iterdir()
    return path


def test_a_copied_store_still_serves_its_champion(original, copy, capsys):
    root, data = original
    outputs = [run(capsys, "signal", "--data", data, "--storage", f"file://{store}", "--json", *HISTORICAL)
               for store in (root, copy)]
    assert [code for code, _, _ in outputs] == [0, 0]
    signals = [json.loads(out) for _, out, _ in outputs]
    for signal in signals:  # the clock moved between the two calls
        del signal["bar_age_hours"], signal["champion_age_hours"]
    assert signals[0] == signals[1]  # the same answer from the copy
    code, out, _ = run(capsys, "champion", "--storage", f"file://{copy}")
    assert code == 0 and f"tqc_model: file://{copy}/segments/1/tqc/" in out  # the copy's own artifacts


@pytest.mark.parametrize("damage", list(BROKEN))
def test_a_broken_version_record_is_named_in_one_line(original, copy, capsys, damage):
    version = only_record(copy, "versions")
    version.write_text(BROKEN[damage](version.read_text()))
    code, out, err = run(capsys, "signal", "--data", original[1], "--storage", f"file://{copy}", *HISTORICAL)
    assert code == 2 and out == "" and err.count("\n") == 1 and f"registry record file://{version}" in err
    assert "restore it from a backup of the store, or delete it" in err
    code, out, _ = run(capsys, "champion", "--storage", f"file://{copy}")
    assert code == 0 and "history (0 promotions)" in out
    assert f"unreadable records (1), left out above:\n  registry record file://{version} is " in out


@pytest.mark.parametrize("damage", list(BROKEN))
def test_a_broken_decision_is_listed_and_the_champion_still_serves(original, copy, capsys, damage):
    decision = only_record(copy, "decisions")
    decision.write_text(BROKEN[damage](decision.read_text()))
    code, out, _ = run(capsys, "champion", "--storage", f"file://{copy}")
    assert code == 0 and out.startswith(f"champion of 'btcusdt-1h' in file://{copy}: btcusdt-1h v1 ")
    assert "recent decisions (0):" in out and f"  registry record file://{decision} is " in out
    assert run(capsys, "signal", "--data", original[1], "--storage", f"file://{copy}", *HISTORICAL)[0] == 0


@pytest.mark.parametrize("damage", list(BROKEN))
def test_a_broken_retirement_still_retires_and_says_why_it_is_unread(original, copy, capsys, damage):
    store = ArtifactStore(f"file://{copy}")
    champion = registry.require_champion(store, DATASET)
    assert registry.retire(store, champion, champion.promoted_at, "d1", "below the floor")
    retirement = only_record(copy, "retired")
    retirement.write_text(BROKEN[damage](retirement.read_text()))
    code, out, err = run(capsys, "signal", "--data", original[1], "--storage", f"file://{copy}", *HISTORICAL)
    assert code == 2 and err.count("\n") == 1 and "was retired (unknown): its retirement record" in err
    code, out, _ = run(capsys, "champion", "--storage", f"file://{copy}")
    assert code == 0 and out.startswith("no live champion of 'btcusdt-1h'")


@pytest.mark.parametrize("storage, message", [
    ("file:///nonexistent/x", r"artifact store file:///nonexistent/x does not exist \(nothing at /nonexistent/x\); "
                              r"check --storage"),
    ("", r"the artifact store URL is empty; use file://PATH"),
])
@pytest.mark.parametrize("command", ["champion", "signal"])
def test_a_missing_or_empty_store_is_said_so(original, capsys, command, storage, message):
    extra = ["--data", original[1], *HISTORICAL] if command == "signal" else []
    code, out, err = run(capsys, command, "--storage", storage, *extra)
    assert code == 2 and out == "" and err.count("\n") == 1
    assert re.search(message, err), err


def test_champion_shows_at_least_one_decision(original, capsys):
    with pytest.raises(SystemExit):
        main(["champion", "--storage", f"file://{original[0]}", "--decisions", "0"])
    assert "'0' is not a whole number >= 1" in capsys.readouterr().err
