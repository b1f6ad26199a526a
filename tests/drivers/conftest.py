"""Fixtures of the driver tests: byte-level command coverage recorded per test module.

Every test module of a driver declares ``DRIVER = "<entry-point name>"``. While the
module runs, every write a :class:`ScriptedTransport` accepted (it matched the expected
bytes) is recorded for that module only; ``byte_coverage()`` returns the names of the
driver's commands whose template no accepted write matched. Nothing is shared between
modules and no test fills a list for another.
"""

from __future__ import annotations

import pytest
from protocol_helpers import uncovered

from cyclerflow.acquire.instrument import load_driver
from cyclerflow.drivers.transports import ScriptedTransport


@pytest.fixture(scope="module", autouse=True)
def _accepted_writes(request):
    """The writes ScriptedTransports accepted during this test module."""
    accepted: list[str] = []
    original = ScriptedTransport.write

    def recording_write(self, command: str) -> None:
        original(self, command)  # raises when the bytes differ from the expected ones
        accepted.append(command)

    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(ScriptedTransport, "write", recording_write)
        yield accepted


@pytest.fixture
def byte_coverage(request, _accepted_writes):
    """``() -> list[str]``: commands of the module's ``DRIVER`` no accepted write covered."""
    driver = getattr(request.module, "DRIVER", None)
    if driver is None:
        pytest.fail(f"{request.module.__name__} declares no DRIVER")
    commands = load_driver(driver).COMMANDS

    def missing() -> list[str]:
        return uncovered(commands, _accepted_writes)

    return missing
