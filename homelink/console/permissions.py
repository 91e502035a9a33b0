"""How every console page finds its school and its records: through the signed-in user's
membership, and through helpers that take the school.

Another school's URN and another school's ids answer 404, never 403, so that nobody can learn
from the console whether a school, a student or a link exists elsewhere (style habit 6). A
member of the school whose role is too low gets 403: they know the school already.

A trust's staff hold their trust role at every school of the trust while the school is in it:
worked out here on every request from the trust's schools, never copied into the school's own
staff, so a school taken out of the trust answers 404 to them on their next request. Trust pages
(``/console/trust/<trust_id>/…``) go through :func:`trust_view`, and answer 404 to anyone not
on that trust's staff, a school's own staff included.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any

from django.contrib.auth.views import redirect_to_login
from django.core.exceptions import PermissionDenied
from django.db.models import OuterRef, Subquery
from django.http import Http404, HttpRequest, HttpResponseNotAllowed
from django.http.response import HttpResponseBase

from homelink.messaging.models import Message, Template
from homelink.mis.models import ImportRun
from homelink.register.models import Adult, LikelyDuplicate, Link, Member, PendingLink
from homelink.registration.models import SecurityCode
from homelink.schools.models import School
from homelink.staff.models import ROLE_RANK, Role, StaffInvitation, StaffMembership
from homelink.staff.otp import second_factor_redirect
from homelink.staff.selectors import confirmed_memberships
from homelink.trusts.models import Trust, TrustInvitation, TrustMembership
from homelink.trusts.selectors import (
    confirmed_trust_memberships,
    role_at_least,
    trust_membership,
    trust_membership_at,
)

#: A view answers with a page, a redirect or a streamed download (a CSV).
ViewFunc = Callable[..., HttpResponseBase]


def school_access(user: Any, urn: str) -> tuple[StaffMembership, Trust | None]:
    """The user's membership of the school with this URN, and the school's trust when the user
    is on that trust's staff (else None), or 404 (also when there is no such school: the two
    must look the same).

    Only an account with a confirmed email holds a role: a membership attached to an account
    nobody proved the address of (someone who registered a future colleague's address first)
    grants nothing, however it was made (:mod:`homelink.staff.invitations`).

    A member of the staff of the trust the school is in now holds their trust role here: an
    unsaved :class:`StaffMembership` (``pk`` None) at that role, or their own membership when
    its role is as high. The trust is returned either way, for the console's link to it (the
    unsaved membership says which role is held through it: :func:`held_through_trust`)."""
    if not getattr(user, "is_authenticated", False) or not user.is_active:
        raise Http404("no such school")
    # One query for the school's own staff (their role, and any trust role beside it, read in
    # the same statement): the console's pages count their queries.
    in_trust = confirmed_trust_memberships().filter(
        user_id=user.pk, trust__places__school_id=OuterRef("school_id")
    )
    own = (
        confirmed_memberships()
        .select_related("school")
        .filter(user=user, school__urn=urn)
        .annotate(
            trust_role=Subquery(in_trust.values("role")[:1]),
            trust_pk=Subquery(in_trust.values("trust_id")[:1]),
        )
        .first()
    )
    if own is None:
        through = trust_membership_at(user, urn)
        if through is None:
            raise Http404("no such school")
        school = School.objects.filter(urn=urn).first()
        if school is None:  # deleted this instant
            raise Http404("no such school")
        return StaffMembership(user=user, school=school, role=through.role), through.trust
    trust_role = own.trust_role
    if trust_role is None:
        return own, None
    trust = Trust.objects.get(pk=own.trust_pk)
    if ROLE_RANK[Role(own.role)] >= ROLE_RANK[Role(trust_role)]:
        return own, trust
    return StaffMembership(user=user, school=own.school, role=trust_role), trust


def membership_for(user: Any, urn: str) -> StaffMembership:
    """The user's membership of the school with this URN (their own, or held through the
    school's trust: see :func:`school_access`), or 404."""
    return school_access(user, urn)[0]


def held_through_trust(membership: StaffMembership) -> bool:
    """Whether the role is a trust role held at this school (nothing saved at the school)."""
    return membership.pk is None


def get_member(school: School, pk: int) -> Member:
    try:
        return Member.objects.get(school=school, pk=pk)
    except Member.DoesNotExist:
        raise Http404("no such member") from None


def _one(found: Any, what: str) -> Any:
    if found is None:
        raise Http404(f"no such {what}")
    return found


def get_adult(school: School, pk: int, *, student: Member | None = None) -> Adult:
    """An adult of the school; with ``student``, only one linked to that student."""
    adults = Adult.objects.filter(school=school, pk=pk)
    if student is not None:
        adults = adults.filter(links__student=student)
    adult: Adult = _one(adults.first(), "adult")
    return adult


def get_link(school: School, pk: int, *, student: Member | None = None) -> Link:
    """A link of the school; with ``student``, only one of that student's links."""
    links = Link.objects.select_related("adult", "student").filter(school=school, pk=pk)
    if student is not None:
        links = links.filter(student=student)
    link: Link = _one(links.first(), "link")
    return link


def get_pending_link(school: School, pk: int, *, student: Member | None = None) -> PendingLink:
    pending = PendingLink.objects.select_related("adult", "student").filter(school=school, pk=pk)
    if student is not None:
        pending = pending.filter(student=student)
    found: PendingLink = _one(pending.first(), "waiting link")
    return found


def get_import_run(school: School, pk: int) -> ImportRun:
    run: ImportRun = _one(ImportRun.objects.filter(school=school, pk=pk).first(), "import")
    return run


def get_code(school: School, pk: int, *, member: Member | None = None) -> SecurityCode:
    """A letter's code of the school (never its clear text: only its hash is kept)."""
    codes = SecurityCode.objects.filter(school=school, pk=pk)
    if member is not None:
        codes = codes.filter(member=member)
    code: SecurityCode = _one(codes.first(), "letter")
    return code


def get_duplicate(school: School, pk: int) -> LikelyDuplicate:
    found = LikelyDuplicate.objects.select_related("adult", "other").filter(school=school, pk=pk)
    duplicate: LikelyDuplicate = _one(found.first(), "likely duplicate")
    return duplicate


def get_staff_membership(school: School, pk: int) -> StaffMembership:
    found = StaffMembership.objects.select_related("user").filter(school=school, pk=pk)
    staff: StaffMembership = _one(found.first(), "staff member")
    return staff


def get_invitation(school: School, pk: int) -> StaffInvitation:
    """One of the school's invitations (the token's hash stays out of every page)."""
    found = StaffInvitation.objects.select_related("school").filter(school=school, pk=pk)
    invitation: StaffInvitation = _one(found.first(), "invitation")
    return invitation


def get_message(school: School, pk: int) -> Message:
    found = Message.objects.select_related("created_by", "cancelled_by").filter(
        school=school, pk=pk
    )
    message: Message = _one(found.first(), "message")
    return message


def get_template(school: School, pk: int) -> Template:
    template: Template = _one(Template.objects.filter(school=school, pk=pk).first(), "template")
    return template


class StaffRequest(HttpRequest):
    """What a console view receives: the request with the school it is about."""

    school: School
    membership: StaffMembership
    #: The school's trust when the user is on its staff (the console links to it), else None.
    trust: Trust | None


#: URL parameters every console pattern may use, and how each is resolved for the school.
#: ``staff_view`` refuses to serve a pattern with any other parameter, so a page added later
#: cannot fetch a record by id without going through one of these (the separation test fills
#: exactly these names).
URL_PARAMETERS = (
    "urn",
    "member_id",
    "adult_id",
    "link_id",
    "pending_id",
    "run_id",
    "code_id",
    "duplicate_id",
    "staff_id",
    "invitation_id",
    "message_id",
    "template_id",
)


def staff_view(
    *,
    min_role: str = Role.VIEWER,
    post_role: str = Role.ADMINISTRATOR,
    methods: tuple[str, ...] = ("GET", "HEAD"),
) -> Callable[[ViewFunc], ViewFunc]:
    """Wrap a console view: sign-in, the school from the URL, the records from their ids, the
    role, then the method, in that order, so that another school's ids are 404 whatever the
    method and a viewer's POST is 403 whatever the page.

    ``post_role`` is what any POST needs (administrator; a sender where it is about messages).
    The view receives ``member``, ``adult``, ``link``, ``pending``, ``message``, ``template``
    (…) objects instead of ids, each checked against the school, and the adult, link or pending
    link against the member.
    """

    def decorate(view: ViewFunc) -> ViewFunc:
        @functools.wraps(view)
        def wrapper(request: HttpRequest, **kwargs: Any) -> HttpResponseBase:
            # Every console form carries personal data (names, addresses, numbers, a message
            # to parents): none of it goes into an error report, as sensitive_post_parameters()
            # would arrange view by view.
            request.sensitive_post_parameters = "__ALL__"  # type: ignore[attr-defined]
            if not request.user.is_authenticated:
                return redirect_to_login(request.get_full_path())
            unknown = set(kwargs) - set(URL_PARAMETERS)
            if unknown:
                raise TypeError(
                    f"{view.__name__}: URL parameter(s) {sorted(unknown)} have no school-scoped "
                    "resolver in homelink.console.permissions"
                )
            membership, trust = school_access(request.user, kwargs.pop("urn"))
            if (second := second_factor_redirect(request, membership)) is not None:
                return second
            school = membership.school
            objects: dict[str, Any] = {}
            member = None
            if "member_id" in kwargs:
                member = objects["member"] = get_member(school, kwargs.pop("member_id"))
            if "adult_id" in kwargs:
                objects["adult"] = get_adult(school, kwargs.pop("adult_id"), student=member)
            if "link_id" in kwargs:
                objects["link"] = get_link(school, kwargs.pop("link_id"), student=member)
            if "pending_id" in kwargs:
                objects["pending"] = get_pending_link(
                    school, kwargs.pop("pending_id"), student=member
                )
            if "run_id" in kwargs:
                objects["run"] = get_import_run(school, kwargs.pop("run_id"))
            if "code_id" in kwargs:
                objects["code"] = get_code(school, kwargs.pop("code_id"), member=member)
            if "duplicate_id" in kwargs:
                objects["duplicate"] = get_duplicate(school, kwargs.pop("duplicate_id"))
            if "staff_id" in kwargs:
                objects["staff"] = get_staff_membership(school, kwargs.pop("staff_id"))
            if "invitation_id" in kwargs:
                objects["invitation"] = get_invitation(school, kwargs.pop("invitation_id"))
            if "message_id" in kwargs:
                objects["message"] = get_message(school, kwargs.pop("message_id"))
            if "template_id" in kwargs:
                objects["template"] = get_template(school, kwargs.pop("template_id"))
            needed = post_role if request.method not in ("GET", "HEAD") else min_role
            if not membership.can(needed):
                raise PermissionDenied("your role at this school does not allow this")
            if request.method not in methods:
                return HttpResponseNotAllowed(methods)
            staff_request: StaffRequest = request  # type: ignore[assignment]
            staff_request.school = school
            staff_request.membership = membership
            staff_request.trust = trust
            return view(staff_request, **objects)

        wrapper.console_staff_view = True  # type: ignore[attr-defined]
        # The separation test reads it: a sender's POST is refused except where it is theirs.
        wrapper.console_post_role = post_role  # type: ignore[attr-defined]
        # And a viewer's GET of an administrators' page (the audit trail) is refused.
        wrapper.console_min_role = min_role  # type: ignore[attr-defined]
        return wrapper

    return decorate


# --- Trust pages ---------------------------------------------------------------------------------


def get_trust_membership(trust: Trust, pk: int) -> TrustMembership:
    found = TrustMembership.objects.select_related("user").filter(trust=trust, pk=pk)
    membership: TrustMembership = _one(found.first(), "trust staff member")
    return membership


def get_trust_invitation(trust: Trust, pk: int) -> TrustInvitation:
    found = TrustInvitation.objects.select_related("trust").filter(trust=trust, pk=pk)
    invitation: TrustInvitation = _one(found.first(), "invitation")
    return invitation


def get_trust_school(trust: Trust, urn: str) -> School:
    """A school of the trust now (another school, in another trust or none, is 404)."""
    school: School = _one(
        School.objects.filter(trust_place__trust=trust, urn=urn).first(), "school"
    )
    return school


class TrustRequest(HttpRequest):
    """What a trust page receives: the request with the trust and the user's role in it."""

    trust: Trust
    trust_membership: TrustMembership


#: URL parameters a trust page may use, each resolved within the trust (``trust_view`` refuses
#: any other): the trust itself, one of its staff, one of its invitations, one of its schools.
TRUST_URL_PARAMETERS = ("trust_id", "trust_staff_id", "trust_invitation_id", "urn")


def trust_second_factor_redirect(
    request: HttpRequest, membership: TrustMembership
) -> HttpResponseBase | None:
    """The second factor on a trust page, decided exactly as at a school
    (:func:`second_factor_redirect`): the trust's pages show every school of the trust, so a
    code is required when any of them requires one of its staff."""
    requiring = (
        School.objects.filter(trust_place__trust_id=membership.trust_id, require_second_factor=True)
        .order_by("pk")
        .first()
    )
    # Only the school's setting is read: a stand-in for "none of them requires it".
    school = requiring or School(require_second_factor=False)
    return second_factor_redirect(
        request, StaffMembership(user=membership.user, school=school, role=membership.role)
    )


def trust_view(
    *,
    min_role: str = Role.VIEWER,
    post_role: str = Role.ADMINISTRATOR,
    methods: tuple[str, ...] = ("GET", "HEAD"),
) -> Callable[[ViewFunc], ViewFunc]:
    """Wrap a trust page, as :func:`staff_view` wraps a school's: sign-in, the trust from the
    URL and the user's role in it (404 for anyone not on the trust's staff, so nobody learns
    whether a trust exists), the second factor, the records from their ids (each within the
    trust), the role (403: they know the trust already), then the method.

    The view receives ``request.trust``, ``request.trust_membership``, and ``staff``,
    ``invitation`` or ``school`` objects instead of ``trust_staff_id``, ``trust_invitation_id``
    or ``urn``."""

    def decorate(view: ViewFunc) -> ViewFunc:
        @functools.wraps(view)
        def wrapper(request: HttpRequest, **kwargs: Any) -> HttpResponseBase:
            request.sensitive_post_parameters = "__ALL__"  # type: ignore[attr-defined]
            if not request.user.is_authenticated:
                return redirect_to_login(request.get_full_path())
            unknown = set(kwargs) - set(TRUST_URL_PARAMETERS)
            if unknown or "trust_id" not in kwargs:
                raise TypeError(
                    f"{view.__name__}: URL parameter(s) {sorted(unknown)} have no trust-scoped "
                    "resolver in homelink.console.permissions (and trust_id is needed)"
                )
            trust_id = kwargs.pop("trust_id")
            trust = Trust.objects.filter(pk=trust_id).first()
            membership = trust_membership(request.user, trust) if trust is not None else None
            if trust is None or membership is None:
                raise Http404("no such trust")
            if (second := trust_second_factor_redirect(request, membership)) is not None:
                return second
            objects: dict[str, Any] = {}
            if "trust_staff_id" in kwargs:
                objects["staff"] = get_trust_membership(trust, kwargs.pop("trust_staff_id"))
            if "trust_invitation_id" in kwargs:
                objects["invitation"] = get_trust_invitation(
                    trust, kwargs.pop("trust_invitation_id")
                )
            if "urn" in kwargs:
                objects["school"] = get_trust_school(trust, kwargs.pop("urn"))
            needed = post_role if request.method not in ("GET", "HEAD") else min_role
            if not role_at_least(membership.role, needed):
                raise PermissionDenied("your role in this trust does not allow this")
            if request.method not in methods:
                return HttpResponseNotAllowed(methods)
            trust_request: TrustRequest = request  # type: ignore[assignment]
            trust_request.trust = trust
            trust_request.trust_membership = membership
            return view(trust_request, **objects)

        wrapper.console_trust_view = True  # type: ignore[attr-defined]
        wrapper.console_post_role = post_role  # type: ignore[attr-defined]
        wrapper.console_min_role = min_role  # type: ignore[attr-defined]
        return wrapper

    return decorate
