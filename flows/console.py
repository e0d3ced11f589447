"""The console of flows the CLI runs: a `CryptoRLError` raised in a task is one line, not two tracebacks.

Prefect logs a failing task three times (the task's traceback, the flow's traceback, the final states that
quote the message) through its run loggers, whose records reach the console through the root logger's
console handler and the run's logs (the UI, the API) through the API handler that sits on the run loggers
themselves. A filter on the console handler alone drops what repeats a `CryptoRLError`: the CLI prints it
once as `cryptorl: error: ...`, and the run's logs keep every line, tracebacks included. Any other
exception keeps its tracebacks on the console too (a bug should look like one).
"""

from __future__ import annotations

import logging

from prefect.logging.handlers import PrefectConsoleHandler

from cryptorl.errors import CryptoRLError

RUN_LOGGERS = ("prefect.flow_runs", "prefect.task_runs")


class RepeatedCryptoRLErrorFilter(logging.Filter):
    """Drops run-logger records that carry a CryptoRLError, and those that quote one already dropped."""

    def __init__(self) -> None:
        super().__init__()
        self.messages: list[str] = []  # the CryptoRLErrors seen so far (a task's, then its flow's state line)

    def filter(self, record: logging.LogRecord) -> bool:
        if not record.name.startswith(RUN_LOGGERS):
            return True
        error = record.exc_info[1] if record.exc_info else None
        if isinstance(error, CryptoRLError):
            self.messages.append(str(error))
            return False
        text = record.getMessage()
        return not any(message and message in text for message in self.messages)


def one_line_errors_on_console() -> None:
    """Install the filter on the console handlers Prefect configured when it was imported (idempotent)."""
    for handler in logging.getLogger().handlers:
        if isinstance(handler, PrefectConsoleHandler) and not any(
            isinstance(existing, RepeatedCryptoRLErrorFilter) for existing in handler.filters
        ):
            handler.addFilter(RepeatedCryptoRLErrorFilter())
