"""Signals for staff alerting: connect a receiver that emails or pages whoever is on call.

``budget_exceeded`` is sent once per window, after commit, when a global budget is first
exceeded, with keyword arguments ``scope`` (str), ``count`` (int, attempts so far in the window)
and ``per_minute`` (int, the budget). It never carries an identity.
"""

from __future__ import annotations

from django.dispatch import Signal

budget_exceeded = Signal()
