"""`attest serve` as users run it: a real process, API keys made with `attest serve keys`, the openai SDKs of
Python and Node as clients; the token and the signing key appear in no response and no line of the log."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import openai
import pytest
import requests

from attest.accounts import dev_account
from attest.errors import ServeError
from attest.localnet import HOST
from tests.support.ports import free_port
from tests.test_ask import KB_DOCS, QUESTION, ok, run

ROOT = Path(__file__).resolve().parents[1]
ATTEST = [sys.executable, "-m", "attest"]
CLIENT_JS = ROOT / "tests" / "js" / "serve_client.mjs"


@pytest.fixture
def kb(attest_home: str) -> str:
    ok("kb", "add", str(KB_DOCS))
    return attest_home


def test_keys_are_shown_once_and_kept_hashed(attest_home: str) -> None:
    made = run("serve", "keys", "create", "my app")
    token = made.stdout.strip().splitlines()[-1]  # after the notice (stderr, mixed in by the runner)
    assert made.exit_code == 0 and token.startswith("sk-attest-") and len(token) > 50
    listed = ok("serve", "keys", "list")
    assert "my app" in listed and "active" in listed and token not in listed and token[:14] in listed
    stored = (Path(attest_home) / "serve.sqlite").read_bytes()
    assert token.encode() not in stored and token[14:30].encode() not in stored
    assert "revoked at" in ok("serve", "keys", "revoke", "1")
    assert "active" not in ok("serve", "keys", "list")
    with pytest.raises(ServeError, match="no API key #7"):
        run("serve", "keys", "revoke", "7")


def test_a_public_bind_without_keys_is_refused_in_one_line(attest_home: str) -> None:
    refused = subprocess.run([*ATTEST, "serve", "--host", "0.0.0.0", "--port", str(free_port())],
                             capture_output=True, text=True, timeout=60, env=dict(os.environ))  # fmt: skip
    assert refused.returncode == 1 and refused.stdout == ""
    (line,) = refused.stderr.strip().splitlines()
    assert "refusing to serve on 0.0.0.0 without API keys" in line and "attest serve keys create" in line


@pytest.mark.skipif(shutil.which("node") is None, reason="the Node client test needs node")
def test_python_and_node_clients_and_no_secret_in_responses_or_log(kb: str, tmp_path: Path) -> None:
    token = ok("serve", "keys", "create", "clients").strip().splitlines()[-1]
    port = free_port()
    url = f"http://{HOST}:{port}"
    log = tmp_path / "serve.log"
    with log.open("wb") as out:
        proc = subprocess.Popen([*ATTEST, "serve", "--port", str(port)], stdin=subprocess.DEVNULL, stdout=out,
                                stderr=subprocess.STDOUT, env=dict(os.environ))  # fmt: skip
        try:
            deadline = time.monotonic() + 60
            while True:
                assert proc.poll() is None, log.read_text()
                try:
                    if requests.get(url + "/healthz", timeout=1).status_code == 200:
                        break
                except requests.ConnectionError:
                    pass
                assert time.monotonic() < deadline, log.read_text()
                time.sleep(0.1)
            bodies: list[str] = []
            client = openai.OpenAI(base_url=url + "/v1", api_key=token, max_retries=0)
            raw = client.chat.completions.with_raw_response.create(
                model="extractive", messages=[{"role": "user", "content": QUESTION}]
            )
            bodies.append(raw.text)
            with pytest.raises(openai.AuthenticationError) as refused:
                openai.OpenAI(base_url=url + "/v1", api_key=token + "x", max_retries=0).models.list()
            bodies.append(str(refused.value.body))
            env = {**os.environ, "ATTEST_URL": url, "ATTEST_KEY": token, "QUESTION": QUESTION}
            node = subprocess.run(["node", str(CLIENT_JS)], capture_output=True, text=True, timeout=120, env=env)
            assert node.returncode == 0, node.stderr
            bodies.append(node.stdout)
            from_node = json.loads(node.stdout)
            bodies.append(requests.get(url + "/metrics", headers={"authorization": f"Bearer {token}"}).text)
        finally:
            proc.terminate()
            proc.wait(timeout=30)
    assert "trim" in from_node["answer"].lower() and from_node["streamed"] == from_node["answer"]
    assert from_node["record_header"] == from_node["attestation"]["record_cid"]
    assert from_node["stream_attestation"]["record_cid"] != from_node["attestation"]["record_cid"]  # two records
    ok("verify", from_node["attestation"]["record_cid"])
    text = log.read_text()
    assert 'POST /v1/chat/completions HTTP/1.1" 200' in text  # the access log is there, and holds no secret
    signing_key = dev_account(1).key.hex().removeprefix("0x")
    for secret in (token, token.removeprefix("sk-attest-"), signing_key):
        assert secret not in text and all(secret not in body for body in bodies)
