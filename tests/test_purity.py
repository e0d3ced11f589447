"""`cryptorl` is a pure library: importing all of it must not import Prefect."""

import pkgutil
import subprocess
import sys

import cryptorl


def test_importing_every_cryptorl_module_does_not_import_prefect():
    modules = [m.name for m in pkgutil.walk_packages(cryptorl.__path__, "cryptorl.")]
    code = ("import importlib, sys\n"
            f"for name in {modules!r}: importlib.import_module(name)\n"
            "print(sorted(m for m in sys.modules if m == 'prefect' or m.startswith('prefect.')))")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert len(modules) > 10
    assert result.stdout.strip() == "[]"
