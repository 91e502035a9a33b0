from django.contrib import admin

from homelink.mis.models import ImportRun


@admin.register(ImportRun)
class ImportRunAdmin(admin.ModelAdmin):
    list_display = ("started_at", "school", "file_name", "format", "status", "started_via")
    list_filter = ("status", "format", "school")
    list_select_related = ("school",)
    # The history of what happened: operators read it, nobody edits it.
    readonly_fields = [f.name for f in ImportRun._meta.fields]

    def has_add_permission(self, request: object) -> bool:
        return False
