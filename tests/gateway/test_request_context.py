"""Request ids the edge generates: 128 random bits each, never repeated by a forked worker."""

from __future__ import annotations

import os
import re

from gateway.request_context import accept_or_generate_request_id

_GENERATED_ID = re.compile(r"^[0-9a-f]{32}$")


def test_generated_ids_are_32_hex_digits_and_distinct_across_draws() -> None:
    # More ids than one draw from the OS holds, so that a second draw is made too.
    ids = [accept_or_generate_request_id(None) for _ in range(1000)]
    assert all(_GENERATED_ID.match(request_id) for request_id in ids)
    assert len(set(ids)) == len(ids)


def test_a_forked_process_never_hands_out_its_parents_next_ids() -> None:
    accept_or_generate_request_id(None)  # The parent holds random bytes not yet handed out.
    reading, writing = os.pipe()
    child = os.fork()
    if child == 0:  # pragma: no cover - the child reports through the pipe
        os.write(writing, "".join(accept_or_generate_request_id(None) for _ in range(3)).encode())
        os._exit(0)
    os.close(writing)
    with os.fdopen(reading) as pipe:
        childs = pipe.read()
    os.waitpid(child, 0)
    parents = "".join(accept_or_generate_request_id(None) for _ in range(3))
    assert len(childs) == len(parents) == 96
    assert childs != parents
