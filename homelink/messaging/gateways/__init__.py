"""SMS gateways, one module each; ``sms_gateway()`` is the configured one."""

from __future__ import annotations

from django.conf import settings
from django.utils.module_loading import import_string

from homelink.messaging.gateways.base import GatewayError, SmsGateway

__all__ = ["GatewayError", "SmsGateway", "sms_gateway", "sms_gateway_class"]


def sms_gateway_class() -> type[SmsGateway]:
    gateway_class: type[SmsGateway] = import_string(settings.HOMELINK_SMS_GATEWAY)
    return gateway_class


def sms_gateway() -> SmsGateway:
    return sms_gateway_class()()
