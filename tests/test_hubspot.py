"""HubSpot v1, v2 (GET included) and v3: HubSpot's published vectors (developers.hubspot.com
v1/v2 request validation) and signatures HubSpot's own SDK makes, through a real server."""

from __future__ import annotations

import time
from pathlib import Path

import httpx
import orjson
import pytest
from hubspot.utils.signature import Signature

from tests.helpers import base_config, consume, thread_server, write_config

pytestmark = pytest.mark.kafka

S = "yyyyyyyy-yyyy-yyyy-yyyy-yyyyyyyyyyyy"  # the secret of HubSpot's published examples
V1_BODY = (b'[{"eventId":1,"subscriptionId":12345,"portalId":62515,"occurredAt":1564113600000,'
           b'"subscriptionType":"contact.creation","attemptNumber":0,"objectId":123,'
           b'"changeSource":"CRM","changeFlag":"NEW","appId":54321}]')
V1_SIG = "232db2615f3d666fe21a8ec971ac7b5402d33b9a925784df3ca654d05f4817de"
V2_GET_SIG = "eee2dddcc73c94d699f5e395f4b9d454a069a6855fbfa152e91e88823087200e"
V2_POST_BODY = b'{"example_field":"example_value"}'
V2_POST_SIG = "9569219f8ba981ffa6f6f16aa0f48637d35d728c7e4d93d0d52efaa512af7900"
URI = "https://www.example.com/webhook_uri"


def test_every_version_verifies_through_the_gateway(
        kafka_bootstrap: str, data_dir: Path, tmp_path: Path, topic_prefix: str) -> None:
    cfg = base_config(kafka_bootstrap, data_dir, f"{topic_prefix}.{{source}}")
    cfg["connectors"] = {"hs": {"type": "hubspot", "config": {"secret": S,
                                                              "public_url": URI}}}
    with thread_server(write_config(tmp_path / "g.yaml", cfg)) as server:
        url = f"{server.url}/webhooks/hs"

        def v(version: str, sig: str) -> dict[str, str]:
            return {"X-HubSpot-Signature": sig, "X-HubSpot-Signature-Version": version,
                    "Content-Type": "application/json"}

        v1 = httpx.post(url, content=V1_BODY, headers=v("v1", V1_SIG))
        v2_get = httpx.get(url, headers=v("v2", V2_GET_SIG))
        v2_post = httpx.post(url, content=V2_POST_BODY, headers=v("v2", V2_POST_SIG))
        assert (v1.status_code, v2_get.status_code, v2_post.status_code) == (202, 202, 202)
        # HubSpot's SDK as the signer: v2 with a query string, v3 with its timestamp
        query_body = b'{"objectId": 7}'
        sdk_v2 = Signature.get_signature(S, query_body.decode(), "v2", URI + "?portalId=62515",
                                         "POST")
        assert httpx.post(url + "?portalId=62515", content=query_body,
                          headers=v("v2", sdk_v2)).status_code == 202
        stamp = str(int(time.time() * 1000))
        v3_body = b'[{"eventId": 2, "subscriptionType": "deal.creation"}]'
        v3 = Signature.get_signature(S, v3_body.decode(), "v3", URI, "POST", stamp)
        assert httpx.post(url, content=v3_body, headers={
            "X-HubSpot-Signature-v3": v3, "X-HubSpot-Request-Timestamp": stamp,
            "Content-Type": "application/json"}).status_code == 202
        # refused: tampered, wrong secret, wrong method for the v2 signature, stale v3
        assert httpx.post(url, content=V1_BODY + b" ", headers=v("v1", V1_SIG)
                          ).status_code == 401
        wrong = Signature.get_signature("other", V1_BODY.decode(), "v1")
        assert httpx.post(url, content=V1_BODY, headers=v("v1", wrong)).status_code == 401
        assert httpx.post(url, content=b"", headers=v("v2", V2_GET_SIG)).status_code == 401
        assert httpx.post(url, content=V1_BODY, headers=v("v9", V1_SIG)).status_code == 401
        old = str(int(time.time() * 1000) - 600_000)
        stale = Signature.get_signature(S, v3_body.decode(), "v3", URI, "POST", old)
        r = httpx.post(url, content=v3_body, headers={
            "X-HubSpot-Signature-v3": stale, "X-HubSpot-Request-Timestamp": old})
        assert r.status_code == 401
        events = [orjson.loads(r.value)
                  for r in consume(kafka_bootstrap, f"{topic_prefix}.hubspot", expect=5)]
    assert sorted(e["type"] for e in events) == [
        "contact.creation", "deal.creation", "hubspot.event", "hubspot.event",  # objects
        "hubspot.request"]  # the GET
    [get] = [e for e in events if e["type"] == "hubspot.request"]
    assert get["payload"] == {}
