"""The UI in a real browser: Playwright (PyPI) driving Debian's Chromium, never a downloaded one."""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path

import pytest

from .conftest import Quiet, World

CHROMIUM = Path("/usr/bin/chromium")
if not CHROMIUM.exists():
    pytest.skip("Debian's chromium is not installed (/usr/bin/chromium): `make system-deps`",
                allow_module_level=True)
sync_api = pytest.importorskip("playwright.sync_api", reason="playwright is not installed")

TIMEOUT_MS = 60_000


@pytest.fixture(scope="module")
def browser() -> Iterator[object]:
    with sync_api.sync_playwright() as p:
        b = p.chromium.launch(executable_path=str(CHROMIUM), args=["--no-sandbox"])
        yield b
        b.close()


@pytest.fixture
def page(browser, world: World):  # type: ignore[no-untyped-def]
    context = browser.new_context(base_url=world.url)
    context.grant_permissions(["clipboard-read", "clipboard-write"], origin=world.url)
    context.set_default_timeout(TIMEOUT_MS)
    pg = context.new_page()
    yield pg
    context.close()


def _sign_in(page, user: str, password: str) -> None:  # type: ignore[no-untyped-def]
    page.goto("/ui/login")
    page.get_by_label("User name").fill(user)
    page.get_by_label("Password").fill(password)
    page.get_by_role("button", name="Sign in").click()
    page.wait_for_url(re.compile(r"/ui/$"))


def test_browse_to_an_image_and_copy_its_pull_command(page, world: World, shots: Path) -> None:  # type: ignore[no-untyped-def]
    _sign_in(page, *world.admin)
    page.get_by_role("link", name=world.public_repo).click()
    page.wait_for_url(re.compile(r"/ui/repository"))
    page.screenshot(path=str(shots / "ui-tags.png"), full_page=True)
    row = page.locator('tr[data-tag="latest"]')
    row.get_by_role("button", name="Copy the docker command").click()
    host = world.url.removeprefix("http://")
    expected = f"docker pull {host}/{world.public_repo}:latest"
    sync_api.expect(row.get_by_role("button", name="Copy the docker command")).to_have_text(
        "Copied")
    assert page.evaluate("navigator.clipboard.readText()") == expected
    row.get_by_role("link", name="latest").click()
    page.wait_for_url(re.compile(r"/ui/manifest"))
    assert page.locator("#platforms").inner_text() == "linux/amd64, linux/arm64"
    referrers = page.locator("#referrers")
    sync_api.expect(referrers).to_contain_text("signature")
    sync_api.expect(referrers).to_contain_text(world.referrer.digest.split(":")[1][:12])
    page.screenshot(path=str(shots / "ui-index.png"), full_page=True)
    page.locator("#entries").get_by_role("link").first.click()
    page.wait_for_url(re.compile(r"/ui/manifest"))
    layers = page.locator("#layers tbody tr")
    assert layers.count() == 2
    sync_api.expect(page.locator("#layers")).to_contain_text("tar+gzip")
    page.screenshot(path=str(shots / "ui-image.png"), full_page=True)


def test_live_search_narrows_the_list(page, world: World) -> None:  # type: ignore[no-untyped-def]
    page.goto("/ui/")
    sync_api.expect(page.locator("#repositories")).to_contain_text(world.public_repo)
    page.get_by_label("Search repositories").fill("no-such-repository-anywhere")
    sync_api.expect(page.locator("#results")).to_contain_text("No repositories match")


def test_admin_creates_a_robot_and_finds_it_in_the_audit_log(page, world: World,  # type: ignore[no-untyped-def]
                                                            shots: Path) -> None:
    _sign_in(page, *world.admin)
    page.goto("/ui/admin/robots")
    name = "browserbot"
    page.get_by_label("Name", exact=True).fill(name)
    page.get_by_label("Namespace").select_option(world.public_repo.split("/")[0])
    page.get_by_role("button", name="Create robot").click()
    secret = page.locator("#robot-secret").inner_text()
    assert len(secret) >= 32
    assert page.locator("#robot-name").inner_text() == f"robot${name}"
    page.screenshot(path=str(shots / "ui-robot.png"), full_page=True)
    page.goto("/ui/admin/robots")  # shown once: never again
    assert page.locator("#robot-secret").count() == 0
    assert secret not in page.content()
    sync_api.expect(page.locator("#robots")).to_contain_text(f"robot${name}")
    page.goto("/ui/admin/audit")
    page.get_by_label("Action").fill("robot.create")
    page.get_by_role("button", name="Filter").click()
    page.wait_for_url(re.compile(r"action=robot.create"))
    sync_api.expect(page.locator("#audit")).to_contain_text(name)
    page.screenshot(path=str(shots / "ui-audit.png"), full_page=True)


def test_an_outsider_sees_no_private_name_in_any_page(page, world: World) -> None:  # type: ignore[no-untyped-def]
    _sign_in(page, *world.outsider)
    for path in ("/ui/", f"/ui/repository?name={world.private_repo}",
                 f"/ui/manifest?name={world.private_repo}&ref=v1", "/ui/admin",
                 "/ui/admin/robots"):
        page.goto(path)
        assert world.private_ns not in page.content(), path


def test_robots_cannot_sign_in_in_the_browser(page, world: World) -> None:  # type: ignore[no-untyped-def]
    page.goto("/ui/login")
    page.get_by_label("User name").fill(world.robot[0])
    page.get_by_label("Password").fill(world.robot[1])
    page.get_by_role("button", name="Sign in").click()
    sync_api.expect(page.locator("#login-error")).to_contain_text("robot accounts cannot")
    assert page.get_by_text("Signed in as").count() == 0


def test_keyboard_users_can_skip_to_the_content(page, world: World) -> None:  # type: ignore[no-untyped-def]
    page.goto("/ui/")
    page.keyboard.press("Tab")
    assert page.evaluate("document.activeElement.textContent") == "Skip to content"


def test_sign_in_with_sso_in_the_browser(browser, quiet: Quiet, shots: Path) -> None:  # type: ignore[no-untyped-def]
    quiet.provider.next = {"preferred_username": quiet.dev[0]}
    context = browser.new_context(base_url=quiet.url)
    context.set_default_timeout(TIMEOUT_MS)
    try:
        page = context.new_page()
        page.goto("/ui/login")
        page.get_by_role("link", name="Sign in with SSO").click()
        page.wait_for_url(re.compile(r"/ui/$"))
        sync_api.expect(page.get_by_text("Signed in as")).to_contain_text(quiet.dev[0])
        page.screenshot(path=str(shots / "ui-sso.png"), full_page=True)
    finally:
        quiet.provider.next = {}
        context.close()
