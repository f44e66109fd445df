"""The text the catalog stores: no control characters, so that every store keeps what it is given.

PostgreSQL cannot store U+0000 in text at all (SQLite can), and the other C0 controls and
DEL have no place in a name or a tag, where they only hide or garble what a reader sees. A
name, a tag or a ``?tag=`` refuses every one of them; a description, which may run over
several lines, keeps tab, line feed and carriage return. Each rule is a ``pattern`` in the
OpenAPI document, so generated clients and fuzzers know it; the validator checks that very
pattern, with an error that says what is wrong. Lone surrogates (``"\\ud800"``, which JSON
allows and UTF-8 cannot encode) are refused too.
"""

from __future__ import annotations

import re
from typing import Annotated

from pydantic import AfterValidator, Field
from pydantic_core import PydanticCustomError

# ECMA-262, Python and Rust regular expressions all read these \uXXXX escapes.
SINGLE_LINE_PATTERN = r"^[^\u0000-\u001F\u007F]*$"
MULTI_LINE_PATTERN = r"^[^\u0000-\u0008\u000B\u000C\u000E-\u001F\u007F]*$"


def _refusing_controls(pattern: str, allowed: str) -> AfterValidator:
    compiled = re.compile(pattern)

    def check(text: str) -> str:
        if not compiled.match(text):
            raise PydanticCustomError(
                "control_character",
                "control characters (U+0000 to U+001F, U+007F){allowed} are not allowed",
                {"allowed": allowed},
            )
        try:
            text.encode()
        except UnicodeEncodeError:
            # pydantic's own check is skipped once a validator follows the string's.
            raise PydanticCustomError("string_unicode", "a lone surrogate is not text") from None
        return text

    return AfterValidator(check)


SingleLineText = Annotated[
    str,
    Field(json_schema_extra={"pattern": SINGLE_LINE_PATTERN}),
    _refusing_controls(SINGLE_LINE_PATTERN, ""),
]
MultiLineText = Annotated[
    str,
    Field(json_schema_extra={"pattern": MULTI_LINE_PATTERN}),
    _refusing_controls(MULTI_LINE_PATTERN, " other than tab, line feed and carriage return"),
]
