from __future__ import annotations

import pytest

from gateway.tls.forwarded import forwarded_identity, last_element

REPORTING = "spiffe://gateway.test/service/reporting"


def test_the_last_element_is_the_one_the_nearest_proxy_appended() -> None:
    header = (
        "By=spiffe://gateway.test/service/outer;URI=spiffe://gateway.test/service/forged,"
        f"By=spiffe://gateway.test/service/envoy;Hash=abc123;URI={REPORTING};DNS=reporting.local"
    )
    assert last_element(header) == {
        "by": ["spiffe://gateway.test/service/envoy"],
        "hash": ["abc123"],
        "uri": [REPORTING],
        "dns": ["reporting.local"],
    }
    assert forwarded_identity(header) == forwarded_identity(f"URI={REPORTING}")
    assert forwarded_identity(header) is not None


def test_quoted_values_may_hold_separators() -> None:
    header = f'Subject="CN=reporting,O=Example; Inc";URI={REPORTING};Cert="-----BEGIN%20CERT"'
    element = last_element(header)
    assert element["subject"] == ["CN=reporting,O=Example; Inc"]
    assert element["uri"] == [REPORTING]
    escaped = last_element(r'Subject="CN=a \"quoted\" name";URI=' + REPORTING)
    assert escaped["subject"] == ['CN=a "quoted" name']


@pytest.mark.parametrize(
    "header",
    [
        "",
        "By=spiffe://gateway.test/service/envoy;Hash=abc",  # The client had no certificate.
        f"URI={REPORTING};URI=spiffe://gateway.test/service/billing",  # Two URIs: ambiguous.
        "URI=https://reporting.example",  # Not a SPIFFE ID.
        f"URI={REPORTING},Hash=abc",  # The last element names nobody.
    ],
)
def test_no_single_spiffe_uri_in_the_last_element_is_no_identity(header: str) -> None:
    assert forwarded_identity(header) is None
