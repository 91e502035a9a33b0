"""No 500s on demand: junk posted to every URL of the site, as anyone, answers with a page.

Every pattern of the root URLconf (the console's, the parents', the webhooks', the admin's) is
walked from the resolver, so a page added later is swept without editing this file. Each is
asked for with a junk query string and sent three junk POSTs (every field its form shows filled
with hostile values, an empty body, a junk file), and once more with each whole-number id in its
path far beyond what a database column holds: as an anonymous caller, a parent and a school's
administrator. A server error is a failure whatever else the page does; what a page answers
otherwise (404, 403, 400, a form with errors, a redirect to sign in) is for other tests.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.test import Client
from django.urls import NoReverseMatch, URLPattern, URLResolver, get_resolver, reverse

from homelink.accounts.tests.conftest import make_parent
from homelink.console.tests.test_separation import values_of
from homelink.register.models import Link, Source
from homelink.register.services import link_add

pytestmark = pytest.mark.slow

#: Far beyond a 64-bit column: an id a view passes to the database unchecked overflows there.
HUGE = 10**20
#: What an attacker types into every field: SQL, markup, a NUL, a number too big for any column,
#: a negative, a date that is not one, and a long string.
HOSTILE = [
    "' OR 1=1 --",
    "<script>alert(1)</script>",
    "nul\x00byte",
    str(HUGE),
    "-1",
    "2026-13-45",
    "x" * 5000,
]
JUNK_QUERY = {
    "page": "-1' OR 1",
    "q": "\x00%",
    "year": str(HUGE),
    "template": "zzz",
    "next": "https://evil.example/",
    "delivery": str(HUGE),
    "status": "<b>",
}
FIELD = re.compile(r'name="([^"]+)"')


@dataclass(frozen=True)
class Page:
    name: str  # namespaced, for reverse()
    params: tuple[str, ...]
    ints: tuple[str, ...]  # the parameters taken as whole numbers
    regex: str


def site_pages() -> list[Page]:
    found: list[Page] = []

    def walk(patterns: list[Any], namespace: str, regex: str, params: tuple, ints: tuple) -> None:
        for p in patterns:
            here = regex + p.pattern.regex.pattern.lstrip("^").rstrip("$")
            converters = getattr(p.pattern, "converters", {})
            names = params + tuple(p.pattern.regex.groupindex)
            whole = ints + tuple(k for k, c in converters.items() if c.regex == "[0-9]+")
            if isinstance(p, URLResolver):
                space = ":".join(filter(None, [namespace, p.namespace or ""]))
                walk(p.url_patterns, space, here, names, whole)
            elif isinstance(p, URLPattern) and p.name:
                full = f"{namespace}:{p.name}" if namespace else p.name
                found.append(Page(full, names, whole, here))

    walk(get_resolver().url_patterns, "", "", (), ())
    assert len(found) > 50, "the walk found too few pages: is the resolver right?"
    return found


def fill(page: Page, values: dict[str, Any]) -> dict[str, Any]:
    filled: dict[str, Any] = {}
    for name in page.params:
        if name in values:
            filled[name] = values[name]
        elif name == "app_label":
            # The admin's app list takes only the labels it has models of.
            choice = re.search(r"\(\?P<app_label>([\w|]+)\)", page.regex)
            filled[name] = choice.group(1).split("|")[0] if choice else "register"
        elif name in page.ints:
            filled[name] = 1
        else:
            filled[name] = "junk"
    return filled


def urls_of(page: Page, values: dict[str, Any]) -> Iterator[str]:
    kwargs = fill(page, values)
    try:
        yield reverse(page.name, kwargs=kwargs)
    except NoReverseMatch:
        pytest.fail(f"cannot build a URL for {page.name} from {kwargs}: teach fill() its params")
    for name in page.ints:
        yield reverse(page.name, kwargs={**kwargs, name: HUGE})


def junk_posts(html: str) -> list[dict[str, Any]]:
    fields = sorted({f for f in FIELD.findall(html) if f != "csrfmiddlewaretoken"})
    hostile = {f: HOSTILE[i % len(HOSTILE)] for i, f in enumerate(fields)}
    upload = {f: SimpleUploadedFile("junk.xml", b"\x00\xff<junk", "text/xml") for f in fields}
    return [hostile, {}, upload or {"file": SimpleUploadedFile("junk.csv", b"\xff\xfe\x00")}]


def sweep(client: Client, pages: list[Page], values: dict[str, Any], login: Any) -> list[str]:
    errors: list[str] = []

    def ask(method: str, url: str, data: Any) -> str:
        login()
        try:
            response = getattr(client, method)(url, data)
        except Exception as exc:  # the test client re-raises what the view raised
            errors.append(f"{method.upper()} {url}: {type(exc).__name__}: {exc!s:.200}")
            return ""
        if response.status_code >= 500:
            errors.append(f"{method.upper()} {url}: {response.status_code}")
        content_type = response.get("Content-Type", "")
        if method == "get" and content_type.startswith("text/html"):
            return response.content.decode(errors="replace")
        return ""

    for page in pages:
        for url in urls_of(page, values):
            html = ask("get", url, JUNK_QUERY)
            for data in junk_posts(html):
                ask("post", url, data)
    return errors


@pytest.fixture
def everything(world_a: Any, admin_a: Any) -> dict[str, Any]:
    parent = make_parent("junk.parent@example.org")
    adult = world_a.adult
    adult.account = parent
    adult.save(update_fields=["account"])
    web = link_add(
        student=world_a.student.__class__.objects.get(school=world_a.school, mis_id="A00000000002"),
        adult=adult,
        source=Source.WEB,
        actor="test",
    )
    assert Link.objects.filter(pk=web.pk).exists()
    return {
        **values_of(world_a),
        "link_id": web.pk,
        "esp": "postmark",
        "token": "junk-token",
        "uidb64": "MQ",
        "object_id": "1",
        "content_type_id": 1,
        "url": "junk/",
        "parent": parent,
        "admin": admin_a,
    }


@pytest.mark.parametrize("who", ["anonymous", "parent", "administrator"])
def test_junk_to_every_url_answers_without_a_server_error(everything, who, settings) -> None:
    settings.HOMELINK_SHOW_OUTBOX = True  # sweep the outbox page too
    user = {"anonymous": None, "parent": everything["parent"], "administrator": everything["admin"]}
    client = Client()

    def login() -> None:
        # Again before each request: the sweep posts to the sign-out page too.
        if user[who] is not None:
            client.force_login(user[who])

    errors = sweep(client, site_pages(), everything, login)
    assert not errors, f"{len(errors)} server errors:\n" + "\n".join(errors[:40])
