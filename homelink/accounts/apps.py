from django.apps import AppConfig


class AccountsConfig(AppConfig):
    name = "homelink.accounts"
    label = "accounts"
