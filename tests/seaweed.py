"""Pytest fixtures for a real SeaweedFS S3 server started by the suite (once per session).

Import them into ``conftest.py``::

    from seaweed import s3_root, s3_server  # noqa: F401

``s3_server`` also points the AWS_* environment of the test process at the server for the whole
session, so ``open_storage("s3://...")`` in a test talks to it, and a developer's real AWS
endpoint or credentials can never be used by the suite. Set FRAMEFLEET_SEAWEED_LOG=1 to see the
server log tail at the end even when every test passed.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator

import pytest
from helpers import missing_tool

from framefleet.core.storage.s3 import clear_client_cache
from framefleet.services.seaweed import INSTALL_HINT, SeaweedServer, find_weed

TEST_BUCKET = "framefleet-tests"
"""Bucket that `s3_root` carves per-test prefixes from."""

# Variables that would override or add to what SeaweedServer.env() sets.
_AWS_OVERRIDES = ("AWS_ENDPOINT_URL_S3", "AWS_PROFILE", "AWS_SESSION_TOKEN", "AWS_REGION")


@pytest.fixture(scope="session")
def s3_server(
    tmp_path_factory: pytest.TempPathFactory, request: pytest.FixtureRequest
) -> Iterator[SeaweedServer]:
    """A SeaweedFS S3 server on free loopback ports, with the process's AWS_* env aimed at it.

    Skips when ``weed`` is missing, except in CI (CI set), where it fails: a skip there would
    hide a broken setup.
    """
    if find_weed() is None:
        missing_tool(f"SeaweedFS `weed` not found; {INSTALL_HINT}")
    server = SeaweedServer(tmp_path_factory.mktemp("seaweed")).start()
    server.create_bucket(TEST_BUCKET)
    with pytest.MonkeyPatch.context() as env:
        for name in _AWS_OVERRIDES:
            env.delenv(name, raising=False)
        for name, value in server.env().items():
            env.setenv(name, value)
        clear_client_cache()  # a client built earlier would still use the old environment
        try:
            yield server
        finally:
            server.stop()
            clear_client_cache()
    if request.session.testsfailed or os.environ.get("FRAMEFLEET_SEAWEED_LOG"):
        _show(request, f"SeaweedFS log tail ({server.log_path})", server.log_tail(60))


@pytest.fixture
def s3_root(s3_server: SeaweedServer, request: pytest.FixtureRequest) -> str:
    """A fresh, empty ``s3://framefleet-tests/<test>-<random>/`` root for one test."""
    return unique_root(request.node.name)


def unique_root(test_name: str) -> str:
    """Return a new ``s3://framefleet-tests/<test_name>-<random>/`` URI; nothing is created."""
    name = "".join(c if c.isalnum() else "-" for c in test_name)[:40]
    return f"s3://{TEST_BUCKET}/{name}-{uuid.uuid4().hex[:8]}/"


def _show(request: pytest.FixtureRequest, title: str, text: str) -> None:
    """Print past pytest's output capture, which would otherwise swallow session teardown."""
    capture = request.config.pluginmanager.getplugin("capturemanager")
    if capture is None:
        print(f"\n--- {title} ---\n{text}")
        return
    with capture.global_and_fixture_disabled():
        print(f"\n--- {title} ---\n{text}")
