"""The "Enter the code from your letter" page, and why guessing codes through it is hopeless."""

from __future__ import annotations

import datetime as dt
import secrets

import pytest
from django.db.models import Sum
from django.test import Client
from django.urls import reverse
from django.utils import timezone

from homelink.accounts.tests.conftest import logged_in, make_parent, without_csrf
from homelink.mis.tests.factories import contact, pupil, run_import
from homelink.privacy.models import NoticeReceipt
from homelink.ratelimit.models import Bucket
from homelink.ratelimit.policies import CODE_PER_ACCOUNT, CODE_PER_IP
from homelink.register.models import Adult, Link, Member, PendingLink, Source
from homelink.registration.linking import CodeNotAccepted
from homelink.registration.models import SecurityCode
from homelink.registration.redeem import redeem_code
from homelink.registration.services import code_revoke, codes_issue
from homelink.registration.tests.factories import letter
from homelink.schools.models import School

pytestmark = pytest.mark.django_db

NOT_ACCEPTED = CodeNotAccepted.message
SPRAYER = "203.0.113.9"


def post_code(client: Client, code: str):
    return client.post(reverse("link_code"), {"code": code, "relationship": "mother"})


def test_a_parent_links_with_the_code_from_the_letter(roll: School) -> None:
    client = logged_in(make_parent(), REMOTE_ADDR="192.0.2.1")
    page = client.get(reverse("link_code")).content.decode()
    assert "Enter the code from your letter" in page
    assert '<label for="id_code">' in page

    response = post_code(client, letter(roll).lower().replace("-", " "))
    # Having just given the school their details, the parent is shown its privacy notice, and
    # that they were shown it is recorded.
    assert response["Location"] == reverse("privacy_notice", kwargs={"urn": roll.urn})
    notice = client.get(response["Location"]).content.decode()
    assert "How Example Academy uses your details" in notice
    assert "Continue to your account" in notice
    assert "You are now linked to Sam." in notice
    assert NoticeReceipt.objects.filter(adult__account__isnull=False, how="shown").count() == 1
    account = client.get("/account/").content.decode()
    assert "Sam Smith" in account and "Example Academy" in account and "Year 7" in account
    # The MIS had Pat with the same (now confirmed) email: Pat is that adult, and owns the link.
    pat = Adult.objects.get()
    assert (pat.source, pat.registered) == (Source.IMPORT, True)
    assert Link.objects.get(adult=pat).source == Source.WEB

    # A second child, with its own letter; and the first letter again is harmless.
    assert post_code(client, letter(roll, "A100000000002"))["Location"] != "/account/"
    assert "You are now linked to Alex." in client.get("/account/").content.decode()
    post_code(client, letter(roll))
    assert "You were already linked to Sam." in client.get("/account/").content.decode()
    assert Link.objects.filter(adult=pat).count() == 2


def test_linking_waits_for_a_confirmed_email(roll: School) -> None:
    client = logged_in(make_parent(confirmed=False))
    page = client.get(reverse("link_code")).content.decode()
    assert "First, confirm your email address" in page
    post_code(client, letter(roll))
    assert not Link.objects.filter(source=Source.WEB).exists()


def test_a_waiting_link_is_explained_and_shown_as_waiting(school: School) -> None:
    run_import(
        school,
        [pupil("A100000000001", "Sam", "Smith", contact(1, "Lee", "Smith", court_order=True))],
    )
    client = logged_in(make_parent())
    post_code(client, letter(school))
    account = client.get("/account/").content.decode()
    assert "The school will check this link before it is made." in account
    assert "Waiting for the school to check" in account
    assert PendingLink.objects.filter(status="waiting").count() == 1


def test_unknown_wrong_malformed_expired_revoked_and_locked_codes_get_one_answer(
    roll: School,
) -> None:
    sam = Member.objects.get(mis_id="A100000000001")
    live = letter(roll)
    [(_, expired)] = codes_issue(
        school=roll, members=[sam], actor="test", now=timezone.now() - dt.timedelta(days=365)
    )
    revoked = letter(roll)
    newest = SecurityCode.objects.filter(revoked_at__isnull=True).order_by("-pk").first()
    assert newest is not None
    code_revoke(code=newest, actor="test")
    wrong = live[:-1] + ("A" if live[-1] != "A" else "B")
    unknown = "-".join(secrets.token_hex(2).upper() for _ in range(4))

    answers = {}
    for n, (name, code) in enumerate(
        [
            ("unknown", unknown),
            ("wrong", wrong),
            ("malformed", "hello"),
            ("expired", expired),
            ("revoked", revoked),
        ]
    ):
        client = logged_in(make_parent(f"p{n}@example.org"), REMOTE_ADDR="192.0.2.50")
        answers[name] = post_code(client, code)
    locked_client = logged_in(make_parent("locked@example.org"), REMOTE_ADDR="192.0.2.51")
    for _ in range(CODE_PER_ACCOUNT.limit):
        post_code(locked_client, unknown)
    answers["locked"] = post_code(locked_client, live)  # the real code, after five misses

    pages = {name: without_csrf(r.content.decode()) for name, r in answers.items()}
    assert {r.status_code for r in answers.values()} == {200}
    assert len(set(pages.values())) == 1, [n for n in pages if pages[n] != pages["unknown"]]
    page = pages["unknown"]
    assert NOT_ACCEPTED in page.replace("&#x27;", "'")
    assert 'aria-describedby="id_code_helptext id_code_error"' in page
    assert 'href="#id_code"' in page  # in the error summary
    assert "value=" not in page.split('id="id_code"')[1].split(">")[0]  # the guess is not echoed
    assert not Link.objects.filter(source=Source.WEB).exists()


@pytest.mark.slow
# Each attempt commits on its own, as each request would: inside one test transaction,
# PostgreSQL keeps every version of the hot bucket row and each upsert walks them all.
@pytest.mark.django_db(transaction=True)
def test_a_spray_of_ten_thousand_codes_from_one_address_is_stopped_early(roll: School) -> None:
    """10,000 wrong codes from one address, spread over many accounts (one account locks after
    five misses, so a sprayer would use many). After the per-IP limit, even the real code from
    that address is refused with the same answer, while another address links with it."""
    sprayers = [make_parent(f"sprayer{n}@example.org") for n in range(40)]
    real = letter(roll)
    # Sprayed a little in the past, so the site-wide budget's one-minute window (which slows
    # everyone, never refuses) is over when the parents below arrive; the per-IP lock-out lasts
    # an hour and still holds.
    then = timezone.now() - dt.timedelta(minutes=2)
    answers = set()
    for n in range(10_000):
        code = "-".join(secrets.token_hex(2).upper() for _ in range(4))
        with pytest.raises(CodeNotAccepted) as refused:
            redeem_code(
                user=sprayers[n % len(sprayers)],
                raw_code=code,
                ip=SPRAYER,
                now=then,
                sleep=lambda _seconds: None,
            )
        answers.add(refused.value.message)
    assert answers == {NOT_ACCEPTED}

    # Only the first CODE_PER_IP.limit attempts got past the address check to the accounts'
    # buckets (and so to the code lookup): hit_all stops at the first refusal.
    past_ip = Bucket.objects.filter(scope=CODE_PER_ACCOUNT.scope).aggregate(n=Sum("count"))["n"]
    assert past_ip == CODE_PER_IP.limit

    # The real code from the spraying address: refused, with the same answer, by the service...
    newcomer = make_parent("newcomer@example.org")
    with pytest.raises(CodeNotAccepted) as caught:
        redeem_code(user=newcomer, raw_code=real, ip=SPRAYER)
    assert caught.value.message == NOT_ACCEPTED
    # ...and by the page, which answers exactly as it does for a wrong code.
    page_real = post_code(logged_in(newcomer, REMOTE_ADDR=SPRAYER), real)
    page_wrong = post_code(logged_in(newcomer, REMOTE_ADDR=SPRAYER), "AAAA-BBBB-CCCC-DDDD")
    assert without_csrf(page_real.content.decode()) == without_csrf(page_wrong.content.decode())
    assert not Link.objects.filter(source=Source.WEB).exists()

    # The parent at home, on another address, links with the same code.
    pat = make_parent()
    assert post_code(logged_in(pat, REMOTE_ADDR="198.51.100.7"), real).status_code == 302
    assert Link.objects.filter(source=Source.WEB, adult__account=pat).count() == 1
