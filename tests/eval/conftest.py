"""Fixtures of the eval tests."""

from __future__ import annotations

import pytest
import torch


@pytest.fixture(autouse=True)
def _one_thread():
    """One intra-op thread: on a shared, busy machine OpenMP kernels on tiny tensors (e.g. CSR
    sparse.mm) wait milliseconds per call for a second core."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)
