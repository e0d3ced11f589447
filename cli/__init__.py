"""The `cryptorl` command line: the layer above the library (`cryptorl/`) and the orchestration (`flows/`).

It parses and checks a run's inputs into a `RunSpec` (cryptorl/run_spec.py) before any Prefect server
starts, then calls a flow or a library function.
"""
