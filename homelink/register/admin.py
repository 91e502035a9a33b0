from django.contrib import admin

from homelink.register.models import Adult, Link, Member


class LinkInline(admin.TabularInline):
    model = Link
    fk_name = "student"
    extra = 0
    raw_id_fields = ("adult",)
    fields = (
        "adult",
        "source",
        "priority",
        "prime",
        "prime_set_by",
        "relationship",
        "parental_responsibility",
    )
    readonly_fields = ("source", "prime_set_by")


@admin.register(Member)
class MemberAdmin(admin.ModelAdmin):
    list_display = (
        "surname",
        "forename",
        "mis_id",
        "kind",
        "role",
        "year",
        "reg_group",
        "status",
        "school",
    )
    list_filter = ("school", "kind", "role", "status", "registered", "opted_out")
    search_fields = ("surname", "forename", "mis_id")
    list_select_related = ("school",)
    inlines = [LinkInline]
    readonly_fields = ("created_at", "updated_at", "left_at")


@admin.register(Adult)
class AdultAdmin(admin.ModelAdmin):
    list_display = ("surname", "forename", "source", "registered", "opted_out", "held", "school")
    list_filter = ("school", "source", "registered", "opted_out", "held", "court_order")
    search_fields = ("surname", "forename", "email")
    list_select_related = ("school",)
    readonly_fields = ("name_key", "created_at", "updated_at")
