"""How a refused handshake is described in the log: the reason and the peer's address."""

from __future__ import annotations

import ssl

from gateway.serving.tls_handshake import describe_peer, describe_refusal


def test_openssl_reasons_read_as_words() -> None:
    error = ssl.SSLError(1, "[SSL: PEER_DID_NOT_RETURN_A_CERTIFICATE] peer did not return a certificate")
    error.reason = "PEER_DID_NOT_RETURN_A_CERTIFICATE"
    assert describe_refusal(error) == "peer did not return a certificate"


def test_the_loop_s_own_failures_are_explained() -> None:
    timeout = ConnectionAbortedError(
        "SSL handshake is taking longer than 10.0 seconds: aborting the connection"
    )
    assert describe_refusal(timeout) == "no TLS handshake within the header timeout (a plain HTTP client?)"
    assert describe_refusal(ConnectionResetError()) == "the peer closed the connection during the handshake"
    assert describe_refusal(BrokenPipeError(32, "Broken pipe")) == "BrokenPipeError: [Errno 32] Broken pipe"


def test_peers_are_written_as_addresses() -> None:
    assert describe_peer(("127.0.0.1", 40724)) == "127.0.0.1:40724"
    assert describe_peer(("::1", 40724, 0, 0)) == "[::1]:40724"
    assert describe_peer("") == "unknown peer"  # A Unix socket's peer has no address.
