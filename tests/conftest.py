"""Fixtures shared by the test files."""

import pytest
import torch


@pytest.fixture(autouse=True)
def one_torch_thread():
    """Tiny networks: one intra-op thread is much faster on a shared, busy machine."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)
