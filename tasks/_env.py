"""Prefect defaults measured on these machines (see DESIGN.md), applied unless the user set them."""

import os

# The ephemeral server takes 14-21 s to start on 2 cores, above Prefect's default 20 s timeout.
os.environ.setdefault("PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS", "120")
# Telemetry cannot reach the internet from the GPU server or CI and only logs errors there.
os.environ.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")
