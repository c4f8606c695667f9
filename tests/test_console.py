"""The web console at /ui/, driven in a real headless browser: Debian's chromium through Playwright.

Screenshots of each page go to tests/artifacts/ (git-ignored). Every request the page makes must
stay on the server's origin, and the page must log no error.
"""

from __future__ import annotations

import os
import shutil
import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.conftest import MODEL
from tests.fake_upstream import FakeUpstream, ThreadServer, Turn, calls, text
from tests.procs import wait_status

playwright_api = pytest.importorskip("playwright.sync_api")
expect = playwright_api.expect

CHROMIUM = os.environ.get("REJOINDER_CHROMIUM", "/usr/bin/chromium")
ARTIFACTS = Path(__file__).resolve().parent / "artifacts"
ALICE, BOB = "sk-alice-0123456789abcdef", "sk-bob-0123456789abcdef"


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    if not shutil.which(CHROMIUM):
        if os.environ.get("CI") or os.environ.get("REJOINDER_REQUIRE_BROWSER"):
            pytest.fail(f"{CHROMIUM} is missing: apt-get install chromium (.ci/run does)")
        pytest.skip(f"{CHROMIUM} is missing: apt-get install chromium")
    ARTIFACTS.mkdir(exist_ok=True)
    with playwright_api.sync_playwright() as p:
        launched = p.chromium.launch(executable_path=CHROMIUM, headless=True, args=[
            "--headless", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
            "--disable-background-networking", "--disable-component-update", "--no-first-run"])
        yield launched
        launched.close()


class Console:
    """A page on the console that records every request it makes and every error it logs."""

    def __init__(self, browser: Any, base: str):
        self.base = base
        self.context = browser.new_context(viewport={"width": 1280, "height": 860})
        self.page = self.context.new_page()
        self.requests: list[str] = []
        self.errors: list[str] = []
        self.page.on("request", lambda r: self.requests.append(r.url))
        self.page.on("pageerror", lambda e: self.errors.append(str(e)))
        # Chromium logs each HTTP error answer ("Failed to load resource": the 401 a key prompt
        # follows, a 404 the page reports) as a console error; anything else is the page's fault.
        self.page.on("console", lambda m: m.type == "error" and not m.text.startswith("Failed to load resource")
                     and self.errors.append(m.text))

    def go(self, fragment: str = "") -> Any:
        self.page.goto(f"{self.base}/ui/{fragment}")
        return self.page

    def shot(self, name: str) -> None:
        self.page.screenshot(path=str(ARTIFACTS / f"{name}.png"), full_page=True)

    def close(self) -> None:
        self.context.close()
        foreign = [u for u in self.requests if not u.startswith(self.base + "/")]
        assert not foreign, foreign  # every asset and call on the same origin
        assert not self.errors, self.errors


def post(server: ThreadServer, key: str | None = None, **body: Any) -> dict[str, Any]:
    headers = {"Authorization": f"Bearer {key}"} if key else {}
    r = httpx.post(server.url + "/v1/responses", json={"model": MODEL, **body}, headers=headers, timeout=30)
    assert r.status_code == 200, r.text
    return r.json()


@pytest.fixture
def seeded(server: ThreadServer, upstream: FakeUpstream, mcp_server: str) -> dict[str, Any]:
    mcp = {"type": "mcp", "server_label": "lab", "server_url": mcp_server, "require_approval": "never"}
    upstream.queue(text("Hi <img src=x onerror=alert(1)> there"), calls(("get_user_id", {"username": "bob"})),
                   text("bob is user_67890"), text("a background answer"), text("first turn"))
    plain = post(server, input="hello <b>world</b>", metadata={"team": "red"})
    tools = post(server, input="who is bob?", tools=[mcp], metadata={"team": "blue"})
    background = post(server, input="in the background", background=True)
    client = httpx.Client(base_url=server.url, timeout=30)
    conv = client.post("/v1/conversations", json={"metadata": {"project": "apollo"}}).json()
    client.post("/v1/conversations", json={"metadata": {"project": "zeus"}})
    on_conv = post(server, input="a turn in the conversation", conversation=conv["id"])
    import openai

    wait_status(openai.OpenAI(base_url=server.url + "/v1", api_key="x"), background["id"], ("completed",))
    return {"plain": plain, "tools": tools, "background": background, "conv": conv, "on_conv": on_conv}


def test_responses_and_conversations(browser: Any, server: ThreadServer, seeded: dict[str, Any]) -> None:
    ui = Console(browser, server.url)
    page = ui.go()
    rows = page.locator("#responses-table tbody tr")
    expect(rows).to_have_count(4)
    expect(page.locator("#responses-table")).to_contain_text("bob is user_67890")
    ui.shot("responses")

    page.fill("input[name=q]", "team=red")
    page.click(".search button")
    expect(rows).to_have_count(1)
    expect(rows.first).to_have_attribute("data-id", seeded["plain"]["id"])

    page.fill("input[name=q]", seeded["tools"]["id"])
    page.click(".search button")
    expect(rows).to_have_count(1)
    page.click(f"a[href='#/responses/{seeded['tools']['id']}']")
    expect(page.locator("#tools .item.mcp_call")).to_contain_text("lab.get_user_id")
    expect(page.locator("#tools .item.mcp_call")).to_contain_text("user_67890")
    expect(page.locator("#tools .item.mcp_list_tools")).to_contain_text("get_user_id")
    expect(page.locator("#input")).to_contain_text("who is bob?")
    expect(page.locator("#usage")).to_contain_text("20")  # two model calls, 10 input tokens each
    expect(page.locator("#timeline")).to_contain_text("kept for background responses only")
    ui.shot("response-tools")

    # Stored text is shown as text: the model's "<img ...>" and the user's "<b>" are not markup.
    ui.go(f"#/responses/{seeded['plain']['id']}")
    expect(page.locator("#output .item.message")).to_contain_text("Hi <img src=x onerror=alert(1)> there")
    expect(page.locator("#input")).to_contain_text("hello <b>world</b>")
    assert page.locator("#output img, #input b").count() == 0

    # A background response's events, replayed from the store.
    ui.go(f"#/responses/{seeded['background']['id']}")
    timeline = page.locator("#timeline table")
    expect(timeline).to_contain_text("response.queued")
    expect(timeline).to_contain_text("response.output_text.delta")
    expect(timeline).to_contain_text("response.completed")
    ui.shot("response-background")

    ui.go("#/conversations")
    conv_rows = page.locator("#conversations-table tbody tr")
    expect(conv_rows).to_have_count(2)
    page.fill("input[name=q]", "project=apollo")
    page.click(".search button")
    expect(conv_rows).to_have_count(1)
    page.click(f"a[href='#/conversations/{seeded['conv']['id']}']")
    items = page.locator("#items .item.message")
    expect(items).to_have_count(2)
    expect(items.nth(0)).to_contain_text("a turn in the conversation")
    expect(items.nth(1)).to_contain_text("first turn")
    ui.shot("conversation")
    ui.close()


def test_playground_streams(browser: Any, server: ThreadServer, upstream: FakeUpstream) -> None:
    gate = threading.Event()
    upstream.queue(Turn(text="streamed word by word from the model", delay=0.05, gate=gate),
                   text("second answer"))
    ui = Console(browser, server.url)
    page = ui.go("#/playground")
    expect(page.locator("#pg-model")).to_have_value(MODEL)
    page.fill("#pg-instructions", "Be brief.")
    page.fill("#pg-input", "Say something")
    page.click("#pg-send")
    # The stream is open before the model answers: the page shows it waiting, then the words arrive.
    expect(page.locator("#pg-status")).to_contain_text("Streaming")
    expect(page.locator("#pg-send")).to_be_disabled()
    gate.set()
    expect(page.locator("#pg-output")).to_have_text("streamed word by word from the model")
    expect(page.locator("#pg-status")).to_contain_text("completed")
    ui.shot("playground")
    first_id = page.locator("#pg-status a").inner_text()
    assert upstream.requests[-1]["messages"][0] == {"role": "system", "content": "Be brief."}
    # The next turn continues from the first answer (previous_response_id), filled in by the page.
    expect(page.locator("#pg-previous")).to_have_value(first_id)
    page.fill("#pg-input", "And then?")
    page.click("#pg-send")
    expect(page.locator("#pg-output")).to_have_text("second answer")
    assert "streamed word by word from the model" in str(upstream.requests[-1]["messages"])
    ui.close()


def test_asks_for_a_key_and_shows_only_its_objects(browser: Any, make_server: Callable[..., ThreadServer],
                                                   upstream: FakeUpstream) -> None:
    server = make_server(api_keys={ALICE: "alice", BOB: "bob"})
    mine = post(server, ALICE, input="alice's question", metadata={"owner": "alice"})
    theirs = post(server, BOB, input="bob's question", metadata={"owner": "bob"})
    ui = Console(browser, server.url)
    page = ui.go()
    key = page.locator("#key-input")
    expect(key).to_be_visible()
    expect(key).to_have_attribute("type", "password")
    ui.shot("key-prompt")
    key.fill("sk-wrong-0123456789abcdef")
    page.click("#key-form button")
    expect(page.locator("#key-error")).to_contain_text("refused")
    key.fill(ALICE)
    page.click("#key-form button")
    rows = page.locator("#responses-table tbody tr")
    expect(rows).to_have_count(1)
    expect(rows.first).to_have_attribute("data-id", mine["id"])
    page.fill("input[name=q]", theirs["id"])  # another principal's id is "not found", as on the API
    page.click(".search button")
    expect(page.locator(".empty")).to_contain_text(f"No response with id {theirs['id']}")
    ui.go(f"#/responses/{theirs['id']}")
    expect(page.locator("#view .error")).to_contain_text(f"Response with id '{theirs['id']}' not found")
    page.click("#forget-key")
    expect(page.locator("#key-input")).to_be_visible()
    ui.close()
