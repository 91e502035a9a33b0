from __future__ import annotations

from django.urls import path

from homelink.messaging import views

urlpatterns = [
    path("", views.outbox, name="outbox"),
]
