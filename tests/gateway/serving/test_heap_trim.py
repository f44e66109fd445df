"""The heap trimmer the TLS workers call: glibc's malloc_trim where the C library has it."""

from __future__ import annotations

import sys

import pytest

from gateway.serving.heap_trim import heap_trimmer


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="malloc_trim is glibc's")
def test_the_trimmer_runs_where_glibc_provides_malloc_trim() -> None:
    trim = heap_trimmer()
    assert trim is not None
    trim()


def test_elsewhere_there_is_no_trimmer(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(sys, "platform", "darwin")
    assert heap_trimmer() is None
