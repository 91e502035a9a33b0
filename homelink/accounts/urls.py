"""The parent's pages. Paths and names are what the browser tests and the letters rely on."""

from __future__ import annotations

from django.contrib.auth import views as auth_views
from django.urls import path

from homelink.accounts import views

urlpatterns = [
    path("register/", views.register, name="register"),
    path("login/", views.login, name="login"),
    path("logout/", auth_views.LogoutView.as_view(), name="logout"),
    path("password-reset/", views.PasswordResetView.as_view(), name="password_reset"),
    path(
        "password-reset/sent/",
        auth_views.PasswordResetDoneView.as_view(template_name="accounts/password_reset_done.html"),
        name="password_reset_done",
    ),
    path(
        "password-reset/done/",
        auth_views.PasswordResetCompleteView.as_view(
            template_name="accounts/password_reset_complete.html"
        ),
        name="password_reset_complete",
    ),
    path(
        "password-reset/<uidb64>/<token>/",
        views.PasswordResetConfirmView.as_view(),
        name="password_reset_confirm",
    ),
    path("account/", views.account, name="account"),
    path("account/confirm/<str:token>/", views.confirm_email, name="confirm_email"),
    path("account/resend-confirmation/", views.resend_confirmation, name="resend_confirmation"),
    path("account/link/", views.link_code, name="link_code"),
    path("account/details/", views.details, name="details"),
    path("account/mobile/", views.verify_mobile, name="verify_mobile"),
    path("account/preferences/", views.preferences, name="preferences"),
    path("account/messages/", views.account_messages, name="account_messages"),
    path("account/unlink/<int:link_id>/", views.unlink, name="unlink"),
    path("account/opt-out/", views.opt_out, name="opt_out"),
    path("account/delete/", views.delete_account, name="delete_account"),
    path("privacy/", views.privacy, name="privacy"),
]
