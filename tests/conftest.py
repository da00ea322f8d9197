"""The fixtures every test folder shares (the fakes and builders are in tests/fakes.py)."""

from __future__ import annotations

import logging
import os
from collections.abc import Iterator
from typing import Any

import pytest

from opwatch.logs import LOGGER_NAME
from opwatch.settings import Settings
from tests.fakes import EventLog, FakeLedger, Harness, make_harness, make_settings
from tests.log_contract import LogContract, printed_violations


@pytest.fixture(autouse=True)
def _restore_environ() -> Iterator[None]:
    saved = dict(os.environ)
    yield
    os.environ.clear()
    os.environ.update(saved)


@pytest.fixture(autouse=True)
def _log_contract() -> Iterator[None]:
    """Every line opwatch logs in a test keeps the log contract (tests/log_contract.py), at
    every level: a test fails on a line that breaks it."""
    logger = logging.getLogger(LOGGER_NAME)
    contract, level = LogContract(), logger.level
    logger.addHandler(contract)
    logger.setLevel(logging.DEBUG)
    yield
    logger.removeHandler(contract)
    logger.setLevel(level)
    if contract.broken:
        pytest.fail("a log line breaks schemas/log-entry.json:\n" + "\n".join(contract.broken))


@pytest.fixture
def settings() -> Settings:
    return make_settings()


@pytest.fixture
def harness(settings: Settings) -> Harness:
    return make_harness(settings)


@pytest.fixture
def store() -> FakeLedger:
    """The ledger of a module whose ``harness`` writes one (``make_harness(settings, store)``)."""
    return FakeLedger()


# --- the local stack, for end-to-end tests ------------------------------------------------------


@pytest.fixture(scope="session")
def local_stack() -> Iterator[Any]:
    """The whole pipeline on free loopback ports, started once for the session."""
    from opwatch_local.stack import LocalStack
    from opwatch_local.stack_config import Ports, StackConfig

    config = StackConfig(
        ports=Ports.free(),
        function_env={"ALLOWED_APIS": "cloudaicompanion.googleapis.com,spanner.googleapis.com"},
    )
    environ = {k: v for k, v in os.environ.items() if k != "OPERATIONS_API_ENDPOINT"}
    with LocalStack(config, environ=environ) as stack:
        yield stack
        # What the functions printed, as processes, keeps the log contract too.
        broken = [
            f"{proc.name}: {problem}"
            for proc in stack.processes
            if proc.name in ("watch", "check", "audit")
            for problem in printed_violations(proc.log_path.read_text(errors="replace"))
        ]
        assert not broken, "the functions printed lines that break schemas/log-entry.json:\n" + (
            "\n".join(broken)
        )


@pytest.fixture(scope="session")
def inbox(local_stack: Any) -> Any:
    """Every notification of the session's stack, kept by watch id across tests."""
    from opwatch_local.inbox import Inbox

    return Inbox(local_stack.client.pull_notifications)


@pytest.fixture
def event_log() -> Iterator[EventLog]:
    logger = logging.getLogger(LOGGER_NAME)
    handler, level = EventLog(), logger.level
    logger.addHandler(handler)
    logger.setLevel(logging.DEBUG)
    yield handler
    logger.removeHandler(handler)
    logger.setLevel(level)
