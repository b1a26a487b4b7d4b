"""The offline stack for integration tests: one emulator and one Azurite per test worker.

Each test gets its own table and queues (``names``, ``context`` in tests/conftest.py), so tests sharing
the stack never see each other's runs; the app reaches both through the real azure-identity and HTTPS,
as in Azure.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from offline.stack import OfflineStack
from tests.conftest import own_stack


@pytest.fixture(scope="session")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[OfflineStack]:
    with own_stack(tmp_path_factory.mktemp("stack")) as started:
        yield started
