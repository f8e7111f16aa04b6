"""The operator console's own admin pages: the audit log, and organizations with their
balances checked against the ledger, a drill-down to their entries, and the audited
credit/debit form."""

from typing import cast

from django.contrib import admin, messages
from django.contrib.auth.models import User
from django.http import HttpRequest, HttpResponse, HttpResponseRedirect
from django.shortcuts import get_object_or_404
from django.template.response import TemplateResponse
from django.urls import path, reverse
from django.utils.html import format_html

from ecolink.accounts.models import Membership, Organization
from ecolink.billing.admin import ReadOnlyAdmin
from ecolink.billing.money import dollars
from ecolink.finetune.outcomes import ActionRefused
from ecolink.ops.forms import AdjustmentForm
from ecolink.ops.models import AuditLog
from ecolink.ops.selectors import organizations_with_ledger_sum
from ecolink.ops.services import balance_adjust


@admin.register(AuditLog)
class AuditLogAdmin(ReadOnlyAdmin):
    """Append-only: rows come from `ops.services`, nobody edits or deletes them."""

    list_display = ["created_at", "operator_name", "action", "target", "organization", "reason"]
    list_filter = ["action", "created_at"]
    search_fields = ["operator_name", "reason", "target_id", "organization__name"]
    date_hierarchy = "created_at"
    list_select_related = ["organization"]

    @admin.display(description="target")
    def target(self, obj: AuditLog) -> str:
        return f"{obj.target_type} #{obj.target_id}"


class MembershipInline(admin.TabularInline):
    model = Membership
    extra = 0
    autocomplete_fields = ["user"]


class BalanceCheckFilter(admin.SimpleListFilter):
    title = "balance check"
    parameter_name = "balance"

    def lookups(self, request, model_admin):
        return [("mismatch", "Cached balance ≠ ledger sum"), ("ok", "Consistent")]

    def queryset(self, request, queryset):
        if self.value() == "mismatch":
            return queryset.filter(balance_mismatch=True)
        if self.value() == "ok":
            return queryset.filter(balance_mismatch=False)
        return queryset


@admin.register(Organization)
class OrganizationAdmin(admin.ModelAdmin):
    list_display = ["name", "slug", "balance", "ledger_sum_display", "balance_check", "personal"]
    list_filter = [BalanceCheckFilter, "personal"]
    search_fields = ["name", "slug"]
    # The cached balance moves only with a ledger entry.
    readonly_fields = [
        "balance",
        "ledger_sum_display",
        "balance_check",
        "ledger_link",
        "created_at",
    ]
    fields = ["name", "slug", "personal", *readonly_fields]
    inlines = [MembershipInline]

    def get_queryset(self, request):
        # The ledger sum of every listed org in the same query as the list itself.
        return organizations_with_ledger_sum()

    def has_delete_permission(self, request, obj=None):
        return False  # ledger entries point at it, and money history is kept

    @admin.display(description="cached balance", ordering="balance_micros")
    def balance(self, obj: Organization) -> str:
        return dollars(obj.balance_micros)

    @admin.display(description="ledger sum", ordering="ledger_sum")
    def ledger_sum_display(self, obj: Organization) -> str:
        return dollars(obj.ledger_sum)  # type: ignore[attr-defined]  # annotated by the queryset

    @admin.display(description="balance check")
    def balance_check(self, obj: Organization) -> str:
        # ledger_sum and balance_mismatch are annotated by organizations_with_ledger_sum.
        if obj.balance_mismatch:  # type: ignore[attr-defined]
            diff = obj.balance_micros - obj.ledger_sum  # type: ignore[attr-defined]
            return format_html(
                '<strong class="balance-mismatch" style="color:#ba2121">MISMATCH '
                "(cached − ledger = {} µ$)</strong>",
                f"{diff:+,}",
            )
        return "ok"

    @admin.display(description="ledger")
    def ledger_link(self, obj: Organization) -> str:
        url = reverse("admin:billing_ledgerentry_changelist")
        return format_html('<a href="{}?organization__id__exact={}">All entries</a>', url, obj.pk)

    # --- Credit or debit.

    def get_urls(self):
        return [
            path(
                "<int:object_id>/adjust/",
                self.admin_site.admin_view(self.adjust_view),
                name="accounts_organization_adjust",
            ),
            *super().get_urls(),
        ]

    def adjust_view(self, request: HttpRequest, object_id: int) -> HttpResponse:
        if not request.user.has_perm("ops.adjust_balance"):
            return HttpResponse("You may not adjust balances.", status=403)
        org = get_object_or_404(organizations_with_ledger_sum(), pk=object_id)
        form = AdjustmentForm(request.POST or None)
        if request.method == "POST" and form.is_valid():
            try:
                entry = balance_adjust(
                    operator=cast(User, request.user),  # admin_view: staff only
                    organization_id=org.pk,
                    amount_micros=form.amount_micros,
                    reason=form.cleaned_data["reason"],
                )
            except ActionRefused as refused:
                form.add_error(None, str(refused))
            else:
                self.message_user(
                    request,
                    f"{dollars(entry.amount_micros)} posted to {org.name} as {entry.key}.",
                    messages.SUCCESS,
                )
                return HttpResponseRedirect(
                    reverse("admin:accounts_organization_change", args=[org.pk])
                )
        context = {
            **self.admin_site.each_context(request),
            "opts": self.model._meta,
            "title": f"Credit or debit {org.name}",
            "org": org,
            "form": form,
        }
        return TemplateResponse(request, "admin/accounts/organization/adjust.html", context)


@admin.register(Membership)
class MembershipAdmin(admin.ModelAdmin):
    list_display = ["user", "organization", "role", "created_at"]
    list_filter = ["role"]
    search_fields = ["user__username", "organization__name"]
    list_select_related = ["user", "organization"]
