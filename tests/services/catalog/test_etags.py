from __future__ import annotations

import pytest

from services.catalog.etags import Condition, EntityTag, MalformedConditionError, item_tag, parse_condition
from services.catalog.tables import MAX_REVISION


def test_an_items_tag_is_strong_and_quoted() -> None:
    assert str(item_tag(42, 3)) == '"42-3"'
    assert str(EntityTag("42-3", weak=True)) == 'W/"42-3"'


@pytest.mark.parametrize(
    ("header", "expected"),
    [
        ("*", Condition(any_tag=True)),
        (" * ", Condition(any_tag=True)),
        ('"7-1"', Condition(False, (EntityTag("7-1"),))),
        (
            '"7-1", W/"7-2",, "x,y"',
            Condition(False, (EntityTag("7-1"), EntityTag("7-2", True), EntityTag("x,y"))),
        ),
        ('""', Condition(False, (EntityTag(""),))),
    ],
)
def test_conditions_parse(header: str, expected: Condition) -> None:
    assert parse_condition(header) == expected


@pytest.mark.parametrize("header", ["", "7-1", '"7-1" "7-2"', '"7-1', 'w/"7-1"', '"7-1"; x', '*, "7-1"'])
def test_malformed_conditions_are_refused(header: str) -> None:
    with pytest.raises(MalformedConditionError):
        parse_condition(header)


def test_if_match_compares_strongly_and_only_this_items_tags() -> None:
    condition = parse_condition(f'"7-1", W/"7-2", "8-3", "7-x", "7-{MAX_REVISION + 1}", "7-4"')

    assert condition.revisions_of(7) == frozenset({1, 4})
    assert condition.revisions_of(8) == frozenset({3})
    assert condition.revisions_of(9) == frozenset()
    assert parse_condition("*").revisions_of(7) is None


def test_if_none_match_compares_weakly() -> None:
    condition = parse_condition('W/"7-2"')

    assert condition.matches_weakly(item_tag(7, 2))
    assert not condition.matches_weakly(item_tag(7, 3))
    assert parse_condition("*").matches_weakly(item_tag(7, 3))
