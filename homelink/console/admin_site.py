"""The operators' admin: Django's admin behind the console's second factor.

Operators sign in where everyone does (the site's ``/login/``, with its limits), then give a code
from their authenticator app on the console's second-factor pages, which send them back. Until
the session has given a code no admin page renders: :meth:`OperatorAdminSite.admin_view` sends
an operator to verify (or to set up their first authenticator), and ``has_permission`` is
django-otp's ``OTPAdminSite`` rule (active, ``is_staff`` and verified), so every view the admin
wraps refuses too.

Authenticators' secrets are never shown: whatever admin a plugin registers for a django-otp
device is replaced by :class:`SecretFreeDeviceAdmin` (no key, no QR code, no configuration
page), which lists devices and deletes a lost one.

This is the default admin site (``homelink.console.admin_config.OperatorAdminConfig`` in
``INSTALLED_APPS``), so every app's ``@admin.register`` lands here.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from functools import update_wrapper
from typing import Any

from django.contrib import admin
from django.contrib.auth.views import redirect_to_login
from django.db.models import Model, QuerySet
from django.db.models.base import ModelBase
from django.http import HttpRequest, HttpResponse
from django.urls import reverse
from django_otp.admin import OTPAdminSite
from django_otp.models import Device

from homelink.staff import otp

#: Field names a changelist may never be filtered on: a filter is an oracle (``?key__startswith=a``
#: answers whether a secret starts with "a"), so a secret that is never shown could still be read
#: out one character at a time.
SECRET_FIELDS = frozenset({"key", "password", "token", "secret", "session_key", "session_data"})


def _is_secret(part: str) -> bool:
    return part in SECRET_FIELDS or part.endswith(("_hash", "_key", "_secret", "_token"))


class NoSecretLookups:
    """Mixed into every ModelAdmin of the operators' site: URL filters that touch a secret (a
    device's key, a password hash, a token's hash) are refused, whatever the model."""

    def lookup_allowed(self, lookup: str, value: str, request: HttpRequest | None = None) -> bool:
        if any(_is_secret(part) for part in lookup.split("__")):
            return False
        return bool(super().lookup_allowed(lookup, value, request))  # type: ignore[misc]


class SecretFreeDeviceAdmin(admin.ModelAdmin[Device]):
    """Operators see who has an authenticator and delete a lost one; nothing here shows or sets
    a secret. No add (an operator must not choose someone's key) and no change (the change form
    is where django-otp shows the key): the pages are read-only apart from delete."""

    #: Only fields that say nothing of the secret; the ones a device model lacks are dropped.
    SAFE_FIELDS = ("user", "name", "confirmed", "created_at", "last_used_at")

    list_select_related = ("user",)
    search_fields = ("user__email", "user__username")
    list_filter = ("confirmed",)

    def _present(self) -> list[str]:
        names = {f.name for f in self.model._meta.get_fields()}
        return [f for f in self.SAFE_FIELDS if f in names]

    def get_list_display(self, request: HttpRequest) -> list[str]:  # type: ignore[override]
        return self._present()

    def get_fields(self, request: HttpRequest, obj: Any = None) -> list[str]:  # type: ignore[override]
        return self._present()

    def get_readonly_fields(self, request: HttpRequest, obj: Any = None) -> list[str]:
        return self._present()

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def delete_model(self, request: HttpRequest, obj: Device) -> None:
        otp.device_delete_by_operator(device=obj, operator=request.user)

    def delete_queryset(self, request: HttpRequest, queryset: QuerySet[Device]) -> None:
        # One at a time: each deletion is audited in the owner's schools.
        for device in queryset:
            self.delete_model(request, device)


class OperatorAdminSite(OTPAdminSite):
    """Django's admin for site operators, serving only sessions verified by a second factor."""

    site_header = "homelink operators"
    site_title = "homelink operators"

    def __init__(self, name: str = "admin") -> None:
        # OTPAdminSite's own default name is "otpadmin"; the admin's URLs stay "admin:…".
        super().__init__(name)

    def has_permission(self, request: HttpRequest) -> bool:
        # OTPAdminSite's rule, failing closed (no exception) without django-otp's middleware.
        user = request.user
        return bool(user.is_active and user.is_staff) and otp.session_verified(request)

    def admin_view(
        self, view: Callable[..., HttpResponse], cacheable: bool = False
    ) -> Callable[..., HttpResponse]:
        guarded = super().admin_view(view, cacheable)

        def inner(request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponse:
            # Straight to the second factor, not through the sign-in page the operator has
            # already passed; anyone else meets the admin's own check (to /login/).
            detour = otp.admin_redirect(request)
            if detour is not None:
                return detour
            return guarded(request, *args, **kwargs)

        return update_wrapper(inner, guarded)

    def login(self, request: HttpRequest, extra_context: Any = None) -> HttpResponse:
        """Never Django's own password form (which would skip the site's login limits): the
        second factor for an operator already signed in, else the site's sign-in page.
        (``homelink/urls.py`` sends ``/admin/login/`` to the site's page before this is reached;
        this keeps the admin safe if that line goes.)"""
        target = request.GET.get("next") or reverse("admin:index", current_app=self.name)
        detour = otp.admin_redirect(request, target)
        if detour is not None:
            return detour
        return redirect_to_login(target)

    def register(
        self,
        model_or_iterable: ModelBase | Iterable[ModelBase],
        admin_class: type[admin.ModelAdmin[Any]] | None = None,
        **options: Any,
    ) -> None:
        """Register as usual, except that a django-otp device always gets
        :class:`SecretFreeDeviceAdmin`, whatever its plugin asked for (django-otp's own admins
        show the key and a QR code of it)."""
        models: Iterable[ModelBase] = (
            [model_or_iterable] if isinstance(model_or_iterable, ModelBase) else model_or_iterable
        )
        for model in models:
            chosen = admin_class or admin.ModelAdmin
            if _is_device(model) and not issubclass(chosen, SecretFreeDeviceAdmin):
                chosen = SecretFreeDeviceAdmin
            if not issubclass(chosen, NoSecretLookups):
                chosen = type(chosen.__name__, (NoSecretLookups, chosen), {})
            super().register(model, chosen, **options)


def _is_device(model: ModelBase) -> bool:
    return isinstance(model, type) and issubclass(model, Model) and issubclass(model, Device)
