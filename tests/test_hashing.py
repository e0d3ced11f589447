from cryptorl.config import RegimeConfig
from cryptorl.hashing import canonical_json, code_version, fingerprint


def test_fingerprint_depends_on_content_not_identity():
    assert fingerprint(RegimeConfig(), "abc") == fingerprint(RegimeConfig(), "abc")
    assert fingerprint(RegimeConfig(n_states=3), "abc") != fingerprint(RegimeConfig(), "abc")
    assert canonical_json({"b": 1, "a": (1, 2)}) == '{"a":[1,2],"b":1}'


def test_code_version_is_per_module():
    assert code_version("regime.py") != code_version("wfo.py")
    assert code_version("features") == code_version("features")
    assert len(code_version("features", "wfo.py")) == 64
