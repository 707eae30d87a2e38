import pytest

from credmq_harness import Credmq


@pytest.fixture(scope="module")
def broker():
    """One credmq per test module, on ephemeral loopback ports with a fresh data dir."""
    with Credmq() as running:
        yield running
