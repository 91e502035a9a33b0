"""Browser tests: Playwright driving Debian's Chromium against pytest-django's ``live_server``.

Shared by every app's browser tests (parents' pages, the staff console, ...). The fixtures are
registered for the whole suite by ``homelink/conftest.py``; a test asks for ``page`` (or
``phone_page``, or ``new_page`` for a second person) and is marked ``@pytest.mark.browser``::

    @pytest.mark.browser
    def test_signing_up(page: Page) -> None:
        page.goto("/register/")  # relative to the live server
        check_page(page)  # axe-core (serious and critical), styles loaded, no script errors

Chromium is ``/usr/bin/chromium`` (``apt-get install chromium``) or ``$HOMELINK_CHROMIUM``; the
browsers Playwright downloads are not used. Where Chromium or Playwright is missing the tests
skip and say why, except under ``CI``, where that is a failure: CI must not pass by skipping.

Each test gets its own browser context (cookies, storage) in a browser shared by the tests of
one process, so they run under pytest-xdist as they do alone; each xdist worker has its own
live server and test database.
"""

from __future__ import annotations

import io
import os
import re
import weakref
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

if TYPE_CHECKING:
    from playwright.sync_api import (
        Browser,
        BrowserContext,
        ConsoleMessage,
        Locator,
        Page,
        Playwright,
        Response,
    )
    from pytest_django.live_server_helper import LiveServer

__all__ = [
    "CHROMIUM_ARGS",
    "CODE_PATTERN",
    "PHONE",
    "assert_accessible",
    "assert_no_horizontal_scroll",
    "assert_no_page_errors",
    "assert_styles_loaded",
    "browser",
    "browser_unavailable",
    "check_page",
    "chromium_path",
    "codes_from_pdf",
    "expect",
    "focus_order",
    "local_outbox",
    "new_page",
    "outbox_find",
    "page",
    "phone_page",
    "playwright_driver",
    "pytest_runtest_makereport",
]

DEFAULT_CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
    "--disable-quic",
]
#: A phone: an iPhone 12-15 sized viewport, touch, the mobile meta viewport honoured.
PHONE: dict[str, Any] = {
    "viewport": {"width": 390, "height": 844},
    "device_scale_factor": 3,
    "is_mobile": True,
    "has_touch": True,
}
#: How long a locator or navigation waits before failing (milliseconds). Generous for a loaded
#: CI machine, short enough that a missing element fails the test in seconds rather than minutes.
TIMEOUT_MS = int(os.environ.get("HOMELINK_BROWSER_TIMEOUT_MS", "10000"))
#: axe-core impacts that fail a test: serious and critical. $HOMELINK_AXE_IMPACTS (comma-separated,
#: e.g. "minor,moderate,serious,critical") tightens it, to see everything axe has to say.
FAILING_IMPACTS = tuple(
    impact.strip()
    for impact in os.environ.get("HOMELINK_AXE_IMPACTS", "serious,critical").split(",")
    if impact.strip()
)
#: A security code as letters print it: four groups of four from Crockford's base32 alphabet.
CODE_PATTERN = re.compile(r"\b[0-9A-HJKMNP-TV-Z]{4}(?:-[0-9A-HJKMNP-TV-Z]{4}){3}\b")


def ci() -> bool:
    return bool(os.environ.get("CI", "").strip())


def browser_unavailable(reason: str) -> None:
    """Skip (a developer's machine without Chromium), or fail under CI, where a skipped browser
    test would let a broken page through unseen."""
    if ci():
        pytest.fail(f"{reason} (CI is set, so browser tests must run, not skip)", pytrace=False)
    pytest.skip(reason)


def chromium_path() -> str:
    return os.environ.get("HOMELINK_CHROMIUM", "").strip() or DEFAULT_CHROMIUM


# Fixtures ---------------------------------------------------------------------------------------


@pytest.fixture(scope="session")
def playwright_driver() -> Iterator[Playwright]:
    try:
        from playwright.sync_api import sync_playwright
    except ImportError as exc:
        browser_unavailable(
            f"Playwright is not importable ({exc}): pip install -e '.[dev]' installs it"
        )
    # Playwright's sync API leaves an event loop marked running on this thread for as long as it
    # is started, and Django refuses database calls from a thread with a running loop: the test's
    # own ORM calls, and those of every later test in this process. They are all ordinary
    # synchronous code, so say so while Playwright runs.
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("DJANGO_ALLOW_ASYNC_UNSAFE", "true")
        with sync_playwright() as driver:
            yield driver


@pytest.fixture(scope="session")
def browser(playwright_driver: Playwright) -> Iterator[Browser]:
    """Chromium, headless, one per test process (so one per xdist worker)."""
    path = chromium_path()
    if not os.access(path, os.X_OK):
        source = "HOMELINK_CHROMIUM" if os.environ.get("HOMELINK_CHROMIUM") else "the default"
        browser_unavailable(
            f"Chromium not found at {path} ({source}): apt-get install chromium, "
            "or point HOMELINK_CHROMIUM at a Chromium binary"
        )
    try:
        launched = playwright_driver.chromium.launch(
            executable_path=path, headless=True, args=CHROMIUM_ARGS
        )
    except Exception as exc:
        browser_unavailable(f"Chromium at {path} did not start: {exc}")
    yield launched
    launched.close()


@dataclass
class _Watch:
    """What went wrong on a page outside the test's own checks."""

    script_errors: list[str] = field(default_factory=list)
    failed_resources: list[str] = field(default_factory=list)
    #: What the Content-Security-Policy blocked: an inline script or style, another origin.
    policy_violations: list[str] = field(default_factory=list)


_watches: weakref.WeakKeyDictionary[Page, _Watch] = weakref.WeakKeyDictionary()


def _watch(page: Page) -> Page:
    watch = _Watch()
    _watches[page] = watch
    page.on("pageerror", lambda error: watch.script_errors.append(f"{page.url}: {error}"))

    def on_console(message: ConsoleMessage) -> None:
        # Chromium reports each blocked script, style or resource as a console error.
        if message.type == "error" and "Content Security Policy" in message.text:
            watch.policy_violations.append(f"{page.url}: {message.text}")

    page.on("console", on_console)

    def on_response(response: Response) -> None:
        kind = response.request.resource_type
        if (
            response.status >= 400
            and kind in {"stylesheet", "script", "image", "font"}
            and not response.url.endswith("/favicon.ico")
        ):
            watch.failed_resources.append(f"{response.status} {kind} {response.url}")

    page.on("response", on_response)
    return page


@pytest.fixture
def new_page(
    browser: Browser, live_server: LiveServer, request: pytest.FixtureRequest, tmp_path: Path
) -> Iterator[Callable[..., Page]]:
    """Opens pages, each in a context of its own (a different person: own cookies), at the live
    server; ``new_page(**PHONE)`` is a phone. Keyword arguments go to ``browser.new_context``.
    When the test fails, each page's screenshot and HTML are kept (see ``_keep_evidence``)."""
    contexts: list[BrowserContext] = []
    pages: list[Page] = []

    def open_page(**options: Any) -> Page:
        context = browser.new_context(base_url=live_server.url, **options)
        context.set_default_timeout(TIMEOUT_MS)
        context.set_default_navigation_timeout(TIMEOUT_MS * 2)
        contexts.append(context)
        opened = _watch(context.new_page())
        pages.append(opened)
        return opened

    yield open_page
    try:
        _keep_evidence(request, pages, tmp_path)
    finally:
        for context in contexts:
            context.close()


@pytest.fixture
def page(new_page: Callable[..., Page]) -> Page:
    """A desktop-sized page (1280x800) of its own at the live server; relative URLs work."""
    return new_page(viewport={"width": 1280, "height": 800})


@pytest.fixture
def phone_page(new_page: Callable[..., Page]) -> Page:
    """A phone-sized page (390x844, touch) of its own at the live server."""
    return new_page(**PHONE)


@pytest.fixture
def local_outbox(settings: Any) -> None:
    """Email and SMS kept in the local outbox and shown at /outbox/, as in development: the
    test environment otherwise keeps mail in memory (locmem), where no browser can read it."""
    settings.EMAIL_BACKEND = "homelink.messaging.email_backend.OutboxEmailBackend"
    settings.HOMELINK_SMS_GATEWAY = "homelink.messaging.gateways.outbox.OutboxGateway"
    settings.HOMELINK_SHOW_OUTBOX = True


@pytest.hookimpl(wrapper=True, tryfirst=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]) -> Any:
    """Keep each phase's report on the item (for evidence on failure), and under CI turn a
    skipped browser test into a failure whatever skipped it."""
    report = yield
    setattr(item, f"_homelink_report_{report.when}", report)
    if (
        ci()
        and report.skipped
        and item.get_closest_marker("browser") is not None
        and not hasattr(report, "wasxfail")
    ):
        reason = report.longrepr[2] if isinstance(report.longrepr, tuple) else report.longrepr
        report.outcome = "failed"
        report.longrepr = f"browser test skipped under CI, which must run it: {reason}"
    return report


def _keep_evidence(request: pytest.FixtureRequest, pages: list[Page], tmp_path: Path) -> None:
    """After a failed test: a screenshot and the HTML of each page as it was left, in the test's
    temporary folder (or $HOMELINK_BROWSER_ARTIFACTS), named in the report."""
    report = getattr(request.node, "_homelink_report_call", None)
    if report is None or not report.failed:
        return
    folder = os.environ.get("HOMELINK_BROWSER_ARTIFACTS")
    base = Path(folder) if folder else tmp_path
    base.mkdir(parents=True, exist_ok=True)
    stem = re.sub(r"[^\w.-]+", "_", request.node.name)[:100]
    kept = []
    for number, opened in enumerate(pages, start=1):
        if opened.is_closed():
            continue
        shot, html = base / f"{stem}-{number}.png", base / f"{stem}-{number}.html"
        try:
            opened.screenshot(path=str(shot), full_page=True)
            html.write_text(opened.content(), encoding="utf-8")
        except Exception as exc:  # the page may have gone with the failure
            kept.append(f"page {number} at {opened.url}: no evidence kept ({exc})")
        else:
            kept.append(f"page {number} at {opened.url}: {shot}, {html}")
    if kept:
        request.node.add_report_section("teardown", "browser", "\n".join(kept))


def expect(actual: Any, message: str | None = None) -> Any:
    """Playwright's ``expect``, imported when first used, so that a test module importing from
    here is collected (and then skipped, or failed under CI) where Playwright is missing."""
    from playwright.sync_api import expect as playwright_expect

    return playwright_expect(actual, message)


# Checks -----------------------------------------------------------------------------------------


def assert_accessible(page: Page, *, impacts: tuple[str, ...] = FAILING_IMPACTS) -> None:
    """axe-core on the page as it is now; fails on any violation of these impacts, listing each
    rule, its help page and the elements at fault."""
    from axe_playwright_python.sync_playwright import Axe

    results = Axe().run(page)
    found = [v for v in results.response["violations"] if v.get("impact") in impacts]
    if not found:
        return
    lines = [f"axe-core: {len(found)} accessibility violation(s) on {page.url}:"]
    for violation in found:
        lines.append(
            f"- {violation['id']} ({violation['impact']}): {violation['help']} "
            f"[{violation.get('helpUrl', '')}]"
        )
        for node in violation["nodes"][:10]:
            target = " ".join(str(t) for t in node.get("target", []))
            summary = (node.get("failureSummary") or "").replace("\n", " ")
            lines.append(f"    at {target}: {node.get('html', '')[:200]}")
            if summary:
                lines.append(f"       {summary[:400]}")
        if len(violation["nodes"]) > 10:
            lines.append(f"    ... and {len(violation['nodes']) - 10} more")
    raise AssertionError("\n".join(lines))


def assert_no_horizontal_scroll(page: Page) -> None:
    """Nothing wider than the window: a phone user never scrolls sideways to read or to type.

    Measured against the layout viewport (``documentElement.clientWidth``), not
    ``window.innerWidth``: a mobile browser widens ``innerWidth`` to fit content that overflows,
    so that comparison passes exactly the pages it should catch. And the layout viewport must be
    the phone's width: without ``<meta name="viewport" content="width=device-width">`` a phone
    lays the page out 980px wide and shrinks it, which no overflow check would see."""
    measured = page.evaluate(
        """() => {
            const root = document.documentElement;
            const width = root.clientWidth;
            return {
                scroll: root.scrollWidth,
                layout: width,
                culprits: [...document.querySelectorAll('body *')]
                    .filter(e => e.getBoundingClientRect().right > width + 0.5)
                    .slice(0, 5)
                    .map(e => e.tagName.toLowerCase()
                        + (e.id ? '#' + e.id : '')
                        + (e.className && typeof e.className === 'string'
                            ? '.' + e.className.trim().split(/\\s+/).join('.') : '')
                        + ' (right edge ' + Math.round(e.getBoundingClientRect().right) + 'px)'),
            };
        }"""
    )
    viewport = page.viewport_size
    if viewport is not None:
        assert measured["layout"] <= viewport["width"], (
            f"{page.url} is laid out {measured['layout']}px wide on a {viewport['width']}px "
            'screen: it needs <meta name="viewport" content="width=device-width, initial-scale=1">'
        )
    assert measured["scroll"] <= measured["layout"], (
        f"{page.url} scrolls sideways at {measured['layout']}px wide: the page is "
        f"{measured['scroll']}px wide; elements past the edge: "
        f"{', '.join(measured['culprits']) or 'none found'}"
    )


def assert_styles_loaded(page: Page) -> None:
    """Every stylesheet the page links to arrived and parsed (so static files are served)."""
    broken = page.evaluate(
        """() => [...document.querySelectorAll('link[rel~="stylesheet"]')]
            .filter(link => {
                if (!link.sheet) return true;
                try { return link.sheet.cssRules.length === 0; } catch (e) { return false; }
            })
            .map(link => link.href)"""
    )
    assert not broken, f"{page.url}: stylesheets missing or empty: {', '.join(broken)}"


def assert_no_page_errors(page: Page) -> None:
    """No uncaught script error, no failed stylesheet, script, image or font, and nothing the
    Content-Security-Policy blocked, so far."""
    watch = _watches.get(page)
    if watch is None:
        return
    problems = watch.script_errors + watch.failed_resources + watch.policy_violations
    assert not problems, "the browser reported:\n" + "\n".join(problems)


def check_page(page: Page, *, accessible: bool = True) -> None:
    """The checks every one of our pages passes: no script or resource errors, styles loaded,
    axe-core clean (serious and critical), and no sideways scrolling on a phone-sized window."""
    page.wait_for_load_state("load")
    assert_no_page_errors(page)
    assert_styles_loaded(page)
    if accessible:
        assert_accessible(page)
    viewport = page.viewport_size
    if viewport is not None and viewport["width"] <= 480:
        assert_no_horizontal_scroll(page)


def focus_order(page: Page, start: Locator, steps: int) -> list[str]:
    """Where the Tab key goes from ``start``, ``steps`` times: each stop as ``#id`` or, for an
    element without an id, ``tag:accessible text`` (e.g. ``button:Create account``)."""
    start.focus()
    stops = []
    for _ in range(steps):
        page.keyboard.press("Tab")
        stops.append(
            page.evaluate(
                """() => {
                    const el = document.activeElement;
                    if (!el || el === document.body) return '(nothing)';
                    if (el.id) return '#' + el.id;
                    const text = (el.innerText || el.value || el.getAttribute('aria-label') || '');
                    return el.tagName.toLowerCase() + ':' + text.trim().replace(/\\s+/g, ' ');
                }"""
            )
        )
    return stops


# Reading what the system sent -------------------------------------------------------------------


def codes_from_pdf(pdf: bytes | Path) -> list[tuple[str, str]]:
    """(page text, code) for each page of a letters PDF, in page order: the code as a parent
    reads it off the paper, whitespace in the text collapsed."""
    from pypdf import PdfReader

    data = pdf.read_bytes() if isinstance(pdf, Path) else pdf
    found = []
    for number, sheet in enumerate(PdfReader(io.BytesIO(data)).pages, start=1):
        text = " ".join(sheet.extract_text().split())
        codes = CODE_PATTERN.findall(text)
        assert len(codes) == 1, f"page {number} of the letters has {len(codes)} codes: {text!r}"
        found.append((text, codes[0]))
    return found


def outbox_find(page: Page, *, to: str, pattern: str | re.Pattern[str]) -> re.Match[str]:
    """Open /outbox/ and return the match of ``pattern`` in the newest message to ``to``: the
    smallest element on the page holding both the address and a match (so one message, whatever
    the page's markup), the first such (the outbox lists newest first)."""
    regex = pattern if isinstance(pattern, re.Pattern) else re.compile(pattern)
    page.goto("/outbox/")
    check_page(page)
    text = page.evaluate(
        """([to, source, flags]) => {
            const re = new RegExp(source, flags);
            let best = null;
            for (const el of document.body.querySelectorAll('*')) {
                const text = el.innerText || '';
                if (text.includes(to) && re.test(text) && (best === null || best.contains(el)))
                    best = el;
            }
            return best === null ? null : best.innerText;
        }""",
        [to, regex.pattern, "i" if regex.flags & re.IGNORECASE else ""],
    )
    assert text is not None, (
        f"no message to {to} matching {regex.pattern!r} on /outbox/; the page reads:\n"
        + page.locator("body").inner_text()[:3000]
    )
    match = regex.search(text)
    assert match is not None
    return match
