import shutil

import pytest

from cryptorl import hashing
from cryptorl.config import RegimeConfig
from cryptorl.hashing import canonical_json, code_version, fingerprint
from cryptorl.stages import audit, hmm, mae, split, tqc


def test_fingerprint_depends_on_content_not_identity():
    assert fingerprint(RegimeConfig(), "abc") == fingerprint(RegimeConfig(), "abc")
    assert fingerprint(RegimeConfig(n_states=3), "abc") != fingerprint(RegimeConfig(), "abc")
    assert canonical_json({"b": 1, "a": (1, 2)}) == '{"a":[1,2],"b":1}'


@pytest.fixture
def package_copy(tmp_path):
    """A copy of the `cryptorl` sources, for `code_version` to read instead of the installed package."""
    root = tmp_path / "cryptorl"
    shutil.copytree(hashing.PACKAGE_ROOT, root, ignore=shutil.ignore_patterns("__pycache__"))
    yield root
    code_version.cache_clear()  # the real package's versions again for later tests


def stage_code_versions() -> dict[str, str]:
    code_version.cache_clear()
    return {stage.__name__: code_version(*stage.CODE_MODULES) for stage in (split, hmm, mae, tqc, audit)}


@pytest.mark.parametrize("edited, recomputed", [
    ("regime.py", {"cryptorl.stages.hmm"}),
    ("features/technical.py", {"cryptorl.stages.split"}),
    ("training/callbacks/checkpoints.py", {"cryptorl.stages.tqc"}),  # nested two packages deep
    ("envs/batch_env.py", {"cryptorl.stages.tqc", "cryptorl.stages.audit"}),
    ("cli.py", set()),
])
def test_editing_a_module_changes_the_code_version_of_exactly_the_stages_that_run_it(package_copy, monkeypatch,
                                                                                     edited, recomputed):
    real = stage_code_versions()
    monkeypatch.setattr(hashing, "PACKAGE_ROOT", package_copy)
    assert stage_code_versions() == real  # content, not location: the copy has the same versions
    with (package_copy / edited).open("a") as source:
        source.write("\n# an edit\n")
    after = stage_code_versions()
    assert {name for name in after if after[name] != real[name]} == recomputed
    assert len(after["cryptorl.stages.split"]) == 64
