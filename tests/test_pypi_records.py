"""WheelRecord: canonical names, lock round trip, completion at fetch time."""

from __future__ import annotations

import pytest

from oci_conda.pypi.records import WheelRecord


def test_round_trip_and_completion() -> None:
    r = WheelRecord(name="Markup_Safe", version="3.0.2", filename="markupsafe-3.0.2-py3-none-any.whl",
                    url="https://files.example/m.whl", requires_python=">=3.9", requested=True)
    assert r.name == "markup-safe" and r.size is None
    done = r.completed("a" * 64, 1234)
    assert (done.sha256, done.size, done.requested) == ("a" * 64, 1234, True)
    assert WheelRecord.from_dict(done.to_dict()) == done
    with pytest.raises(ValueError, match="unknown wheel record field"):
        WheelRecord.from_dict({**done.to_dict(), "md5": "x"})
