"""The members list and a member's page (the linked-people screen) with its actions: opt-outs,
the prime parent, removing a link, deciding a waiting one. Thin: the school and every record come
from :func:`~homelink.console.permissions.staff_view`, reads from selectors, writes from
services."""

from __future__ import annotations

from django.contrib import messages
from django.core.exceptions import ValidationError
from django.core.paginator import Paginator
from django.http import HttpRequest, HttpResponse, QueryDict
from django.shortcuts import redirect, render
from django.urls import reverse

from homelink.audit.actions import MEMBER_VIEWED
from homelink.audit.services import audit_access
from homelink.console.members.forms import DecisionForm, MemberFilterForm, OptOutForm, PrimeForm
from homelink.console.permissions import StaffRequest, staff_view
from homelink.console.search import PARAMETER, search_recall, search_remember
from homelink.register import selectors, services
from homelink.register.find import why_found
from homelink.register.models import Adult, Link, Member, PendingLink, Source
from homelink.register.services import link_set_prime, person_opt_out
from homelink.staff.models import Role

PAGE_SIZE = 50


#: What the members list keeps in its address: choices from the page, never a name or an id
#: someone typed (those stay in the session: homelink.console.search).
URL_FILTERS = ("year", "reg_group", "kind", "role", "status", "reachable")


@staff_view(methods=("GET", "HEAD", "POST"), post_role=Role.VIEWER)
def members(request: StaffRequest) -> HttpResponse:
    choices = selectors.filter_choices(request.school)
    if request.method == "POST":
        # The search is POSTed so its terms never enter a URL; the list is then a plain GET.
        posted = MemberFilterForm(
            request.POST, years=choices["years"], reg_groups=choices["reg_groups"]
        ).filters()
        query = QueryDict(mutable=True)
        for name in URL_FILTERS:
            value = getattr(posted, name)
            if value and not (name == "status" and value == "current"):
                query[name] = value
        if posted.q:
            query[PARAMETER] = search_remember(request, {"q": posted.q})
        url = reverse("console:members", kwargs={"urn": request.school.urn})
        return redirect(f"{url}?{query.urlencode()}" if query else url)
    data = {name: request.GET[name] for name in URL_FILTERS if name in request.GET}
    data.update(search_recall(request))
    form = MemberFilterForm(data or None, years=choices["years"], reg_groups=choices["reg_groups"])
    filters = form.filters() if form.is_bound else selectors.MemberFilters()
    page = Paginator(selectors.members_search(request.school, filters), PAGE_SIZE).get_page(
        request.GET.get("page")
    )
    rows = list(page.object_list)
    summaries = selectors.link_summaries([m.pk for m in rows if m.kind == Member.Kind.STUDENT])
    # Why each row was found when its own name does not say ("linked: Pat Smith (mother)").
    found_by = why_found(request.school, filters.q, rows) if filters.q.strip() else {}
    query = QueryDict(mutable=True)
    for name in (*URL_FILTERS, PARAMETER):
        if request.GET.get(name):
            query[name] = request.GET[name]
    return render(
        request,
        "console/members.html",
        {
            "school": request.school,
            "membership": request.membership,
            "form": form,
            "page": page,
            "rows": [(m, summaries.get(m.pk), found_by.get(m.pk, [])) for m in rows],
            "query": query.urlencode(),
        },
    )


@staff_view()
def member(request: StaffRequest, member: Member) -> HttpResponse:
    if request.method == "GET":  # a HEAD shows nobody anything
        audit_access(school=request.school, actor=request.user, action=MEMBER_VIEWED, obj=member)
    return render(
        request,
        "console/member.html",
        {
            "school": request.school,
            "membership": request.membership,
            "member": member,
            "links": selectors.member_links(member),
            "pending": selectors.member_pending_links(member),
            "can_change": request.membership.can(Role.ADMINISTRATOR),
            "sources": Source,
        },
    )


def _back(member: Member) -> HttpResponse:
    return redirect("console:member", urn=member.school.urn, member_id=member.pk)


def _refused(request: HttpRequest, error: ValidationError) -> None:
    for message in error.messages:
        messages.error(request, message)


@staff_view(methods=("POST",))
def link_prime(request: StaffRequest, member: Member, link: Link) -> HttpResponse:
    form = PrimeForm(request.POST)
    if not form.is_valid():
        messages.error(request, "Choose prime or not prime.")
        return _back(member)
    prime = form.cleaned_data["prime"]
    link_set_prime(link=link, prime=prime, by=Source.MANUAL, actor=f"user:{request.user.pk}")
    who = f"{link.adult.forename} {link.adult.surname}".strip()
    messages.success(request, f"{who} is {'now' if prime else 'no longer'} a prime parent.")
    return _back(member)


@staff_view(methods=("POST",))
def link_remove(request: StaffRequest, member: Member, link: Link) -> HttpResponse:
    try:
        services.link_remove(link=link, actor=request.user)
    except ValidationError as error:
        _refused(request, error)
    else:
        who = f"{link.adult.forename} {link.adult.surname}".strip()
        messages.success(request, f"{who} is no longer linked to {member.forename}.")
    return _back(member)


def _opt_out(request: StaffRequest, member: Member, person: Adult | Member) -> HttpResponse:
    form = OptOutForm(request.POST)
    if not form.is_valid():
        for errors in form.errors.values():
            for message in errors:
                messages.error(request, str(message))
        return _back(member)
    opted_out = form.cleaned_data["opted_out"]
    # Staff only ever record what the person asked for (product.md): the audit event says so.
    person_opt_out(
        person=person,
        opted_out=opted_out,
        actor=f"user:{request.user.pk}",
        requested_by_person=True,
    )
    who = f"{person.forename} {person.surname}".strip()
    messages.success(
        request,
        f"Recorded: {who} {'opted out' if opted_out else 'opted back in'} at their request.",
    )
    return _back(member)


@staff_view(methods=("POST",))
def adult_opt_out(request: StaffRequest, member: Member, adult: Adult) -> HttpResponse:
    return _opt_out(request, member, adult)


@staff_view(methods=("POST",))
def member_opt_out(request: StaffRequest, member: Member) -> HttpResponse:
    return _opt_out(request, member, member)


@staff_view(methods=("POST",))
def pending_decide(request: StaffRequest, member: Member, pending: PendingLink) -> HttpResponse:
    form = DecisionForm(request.POST)
    if not form.is_valid():
        messages.error(request, "Choose approve or refuse.")
        return _back(member)
    approve = form.cleaned_data["decision"] == "approve"
    try:
        services.pending_link_decide(pending=pending, approve=approve, actor=request.user)
    except ValidationError as error:
        _refused(request, error)
    else:
        who = f"{pending.adult.forename} {pending.adult.surname}".strip()
        messages.success(
            request, f"{who} is now linked." if approve else f"{who}'s link was refused."
        )
    return _back(member)
