"""`cryptorl audit` end to end (in-process, under the session's ephemeral Prefect)."""

import json

from cli.main import main


def test_audit_of_a_constant_policy_prints_collapsed_and_writes_the_report(prefect_harness, tmp_path, capsys):
    report_path = tmp_path / "out" / "report.json"
    code = main(["audit", "--segment", "0", "--policy", "constant:0.85", "--timesteps", "256",
                 "--storage", f"file://{tmp_path}/store", "--report-json", str(report_path)])
    out = capsys.readouterr().out
    assert code == 0
    assert "verdict (constant:0.85): COLLAPSED" in out
    assert "policy=constant:0.85  w_cost=1" in out and "policy=buy_and_hold" in out
    report = json.loads(report_path.read_text())
    assert report["verdict"] == "collapsed" and report["schema_version"] == 2
