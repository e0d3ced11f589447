"""CryptoRL: walk-forward training and auditing of RL crypto traders (pure library, no Prefect)."""

__version__ = "0.1.0"
