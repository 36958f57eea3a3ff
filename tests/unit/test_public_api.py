"""The public surface of ``genkeep`` is deliberate; changing it must change this test."""

from __future__ import annotations

import genkeep


def test_public_api_is_pinned() -> None:
    assert sorted(genkeep.__all__) == [
        "GeneratorProfile",
        "GenkeepError",
        "Settings",
        "__version__",
        "load_settings",
    ]
    for name in genkeep.__all__:
        assert hasattr(genkeep, name)
