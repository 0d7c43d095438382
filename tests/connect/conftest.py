from __future__ import annotations

from pathlib import Path

import pytest

from batch_deploy.bundle import BuiltBundle

from .connect_support import built_bundle


@pytest.fixture
def bundle(tmp_path: Path) -> BuiltBundle:
    return built_bundle(tmp_path / "content")
