"""A real headless browser for page tests: Debian's Chromium driven by playwright.

Playwright's own browser download cannot work offline, so it launches /usr/bin/chromium
(installed by scripts/bootstrap). Screenshots go to ``$TEST_ARTIFACTS_DIR`` (default
``test-artifacts/`` in the checkout) and their paths are printed.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest
from fleet import REPO
from helpers import missing_tool

CHROMIUM = "/usr/bin/chromium"

CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",  # we run as root
    "--disable-gpu",
    # Without these Chromium keeps calling Google's hosts, which this network refuses.
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]


def artifacts_dir() -> Path:
    """Where tests leave screenshots for people to look at."""
    path = Path(os.environ.get("TEST_ARTIFACTS_DIR") or REPO / "test-artifacts")
    path.mkdir(parents=True, exist_ok=True)
    return path


@pytest.fixture(scope="session")
def browser() -> Iterator[object]:
    """One headless Chromium for the session."""
    if not Path(CHROMIUM).exists() and shutil.which("chromium") is None:
        missing_tool(f"{CHROMIUM} not found; install it: apt-get install -y chromium")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        chromium = playwright.chromium.launch(
            executable_path=shutil.which("chromium") or CHROMIUM, args=CHROMIUM_ARGS
        )
        yield chromium
        chromium.close()


@pytest.fixture
def page(browser) -> Iterator[object]:  # type: ignore[no-untyped-def]
    """A fresh page, 1280×900, in its own context."""
    context = browser.new_context(viewport={"width": 1280, "height": 900})
    page = context.new_page()
    yield page
    context.close()


def screenshot(page, name: str, full_page: bool = True) -> Path:  # type: ignore[no-untyped-def]
    """Save a PNG of ``page`` as ``name``.png in the artifacts folder and print its path."""
    path = artifacts_dir() / f"{name}.png"
    page.screenshot(path=str(path), full_page=full_page)
    print(f"screenshot: {path}")
    return path
