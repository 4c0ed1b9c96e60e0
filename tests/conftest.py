"""Shared test fixtures. The real datasets live in ``../shared/data`` beside the repository (read-only);
set ``LLM2REC_SHARED_DATA`` to point elsewhere."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
SHARED_DATA = Path(os.environ.get("LLM2REC_SHARED_DATA", REPO.parent / "shared" / "data"))


@pytest.fixture(scope="session")
def shared_data() -> Path:
    if not SHARED_DATA.is_dir():
        pytest.skip(f"shared data not found at {SHARED_DATA} (set LLM2REC_SHARED_DATA)")
    return SHARED_DATA


@pytest.fixture(autouse=True, scope="session")
def _one_thread():
    # 2-core machines run several things at once; one torch thread keeps tests predictable.
    try:
        import torch

        torch.set_num_threads(1)
    except ImportError:
        pass
