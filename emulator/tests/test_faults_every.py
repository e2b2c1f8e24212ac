"""``Fault.every`` spreads a fault over a run of requests."""

from __future__ import annotations

import httpx

from ai21_emulator import Emulator, Fault


def test_every_hits_one_request_in_n() -> None:
    with Emulator() as emulator, httpx.Client() as client:
        emulator.inject(Fault(status=503, count=3, every=4))
        body = {"model": "jamba-mini", "messages": [{"role": "user", "content": "hi"}]}
        headers = {"Authorization": f"Bearer {emulator.api_key}"}
        statuses = [
            client.post(
                f"{emulator.base_url}/chat/completions", json=body, headers=headers
            ).status_code
            for _ in range(14)
        ]
    assert statuses == [503, 200, 200, 200, 503, 200, 200, 200, 503, 200, 200, 200, 200, 200]
