"""prefect.yaml: a run started with the deployments' defaults takes its worker's profile, never a fixed one."""

from __future__ import annotations

import importlib
import inspect
from pathlib import Path

import yaml

PREFECT_YAML = Path(__file__).resolve().parents[2] / "prefect.yaml"


def test_every_deployed_profile_default_is_the_workers():
    """`default` in prefect.yaml and in the flow's run specification: `get_profile(None)` is the worker's
    $CRYPTORL_PROFILE (tests/test_config.py), so the GPU server trains gpu and a laptop's `make ui` smoke."""
    deployments = yaml.safe_load(PREFECT_YAML.read_text())["deployments"]
    with_spec = [d for d in deployments if "spec" in (d.get("parameters") or {})]
    assert {d["name"] for d in with_spec} >= {"wfo-segment", "full-wfo", "study", "retrain-latest"}
    for deployment in with_spec:
        assert deployment["parameters"]["spec"]["profile"] == "default", deployment["name"]  # `make ui` once ran gpu
        path, name = deployment["entrypoint"].split(":")
        flow = getattr(importlib.import_module(path.removesuffix(".py").replace("/", ".")), name)
        assert inspect.signature(flow.fn).parameters["spec"].default.profile == "default", deployment["name"]
