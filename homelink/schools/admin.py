from django.contrib import admin

from homelink.schools.models import School


@admin.register(School)
class SchoolAdmin(admin.ModelAdmin):
    list_display = ("name", "urn", "la_code", "estab", "phone_region", "import_lower_priority")
    search_fields = ("name", "urn")
    # The office phone is the school's to set (console Settings), where it is checked.
    readonly_fields = ("created_at", "oneroster_org_id", "office_phone")
