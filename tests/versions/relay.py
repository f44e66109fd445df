"""A test-only version that calls another gateway through ``gateway.client``, as a peer
service does: what the tracing tests follow from one gateway process into another.

Where to call, and with which certificate, comes from the child process's environment
(``RELAY_PEER_URL``, ``RELAY_CERTIFICATES``: a folder with ca.pem, relay.pem, relay-key.pem).
"""

from __future__ import annotations

import logging
import os
from pathlib import Path

from fastapi import FastAPI

from gateway.client import ClientCertificate, async_client

PEER_URL_VARIABLE = "RELAY_PEER_URL"
CERTIFICATES_VARIABLE = "RELAY_CERTIFICATES"
RELAY_SERVICE = "relay"
PEER_PATH = "/v3/whoami"
logger = logging.getLogger("tests.relay")


def create_app() -> FastAPI:
    app = FastAPI(title="Relay API", version="4.0.0")

    @app.get("/relay/{hop}", operation_id="relay")
    async def relay(hop: str) -> dict[str, object]:
        folder = Path(os.environ[CERTIFICATES_VARIABLE])
        certificate = ClientCertificate(
            folder / "ca.pem", folder / f"{RELAY_SERVICE}.pem", folder / f"{RELAY_SERVICE}-key.pem"
        )
        async with async_client(certificate, base_url=os.environ[PEER_URL_VARIABLE]) as client:
            response = await client.get(PEER_PATH)
        logger.info("relayed hop %s to the peer: %s", hop, response.status_code)
        return {"hop": hop, "peer_status": response.status_code, "peer": response.json()}

    return app
