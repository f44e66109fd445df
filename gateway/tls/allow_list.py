"""Which service identities may call which ``/internal`` routes: an allow-list that denies by default.

Written as JSON in ``GATEWAY_INTERNAL_ALLOW``, one rule per key::

    {"GET /internal/items/export": ["spiffe://gateway.local/service/reporting"],
     "POST /internal/items/import": ["spiffe://gateway.local/service/billing"],
     "* /internal/items/**": ["spiffe://gateway.local/service/admin"]}

A key is an optional method (``*`` or none: any; ``GET`` admits ``HEAD`` too) and a path
pattern under ``/internal`` in which ``*`` stands for one path segment or part of one and
``**`` for any rest of the path. The values are exact SPIFFE IDs: a pattern over
identities would let a new service in by its name alone. A request passes when some rule
matches its method and path and lists its identity; nothing else passes.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from gateway.tls.certificates import SPIFFE_ID

INTERNAL_PREFIX = "/internal"
ANY_METHOD = "*"
_METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS", ANY_METHOD})
_PATH_PATTERN = re.compile(r"/[A-Za-z0-9._~*{}-]*(/[A-Za-z0-9._~*{}-]*)*")


@dataclass(frozen=True)
class AllowRule:
    method: str
    path: re.Pattern[str]
    identities: frozenset[str]

    def matches(self, method: str, path: str) -> bool:
        method_matches = self.method in (ANY_METHOD, method) or (self.method == "GET" and method == "HEAD")
        return method_matches and self.path.fullmatch(path) is not None


def _path_regex(pattern: str) -> re.Pattern[str]:
    parts = []
    for piece in re.split(r"(\*\*|\*)", pattern):
        if piece == "**":
            parts.append(".*")
        elif piece == "*":
            parts.append("[^/]*")
        else:
            parts.append(re.escape(piece))
    return re.compile("".join(parts))


def parse_rule(key: str, identities: list[str]) -> AllowRule:
    """One rule from its JSON key and list; ``ValueError`` says what is wrong with it."""
    words = key.split()
    if len(words) == 1:
        method, pattern = ANY_METHOD, words[0]
    elif len(words) == 2:
        method, pattern = words[0].upper(), words[1]
    else:
        raise ValueError(f"{key!r}: a rule is '[METHOD] /internal/path'")
    if method not in _METHODS:
        raise ValueError(f"{key!r}: {method} is not an HTTP method")
    if not _PATH_PATTERN.fullmatch(pattern):
        raise ValueError(f"{key!r}: {pattern!r} is not a path pattern")
    if pattern != INTERNAL_PREFIX and not pattern.startswith(INTERNAL_PREFIX + "/"):
        raise ValueError(f"{key!r}: the allow-list covers {INTERNAL_PREFIX} routes only")
    for identity in identities:
        if not SPIFFE_ID.fullmatch(identity):
            raise ValueError(f"{key!r}: {identity!r} is not a SPIFFE ID (spiffe://<trust domain>/<path>)")
    return AllowRule(method, _path_regex(pattern), frozenset(identities))


class AllowList:
    def __init__(self, rules: dict[str, list[str]]) -> None:
        self.rules = [parse_rule(key, identities) for key, identities in rules.items()]

    def permits(self, method: str, path: str, spiffe_id: str) -> bool:
        """Whether ``spiffe_id`` may send ``method`` to ``path`` (the gateway's path, '/internal/...')."""
        return any(spiffe_id in rule.identities and rule.matches(method, path) for rule in self.rules)


def check_allow_list(rules: dict[str, list[str]]) -> dict[str, list[str]]:
    """Settings validator: refuse a rule that could never match, or that names no identity clearly."""
    AllowList(rules)
    return rules
