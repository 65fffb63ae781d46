"""Integration fixtures: the dunning driver bound to the running app and the broker."""

from __future__ import annotations

import pytest
from dunning_driver import Dunning


@pytest.fixture
def dunning(client, admin_headers, bus) -> Dunning:
    return Dunning(client, admin_headers, bus)
