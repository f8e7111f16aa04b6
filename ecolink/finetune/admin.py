"""Jobs in the operator console: searchable, filterable, read-only except through the
audited actions (cancel, pause, resume, mark failed, extend retention)."""

from django.conf import settings
from django.contrib import admin, messages
from django.http import HttpRequest, HttpResponse, HttpResponseRedirect
from django.shortcuts import get_object_or_404
from django.template.response import TemplateResponse
from django.urls import path, reverse
from django.utils.html import format_html

from ecolink.billing.models import BillingSession
from ecolink.billing.money import dollars
from ecolink.finetune.actions import CANCELLABLE, PAUSABLE
from ecolink.finetune.lifecycle import ALLOWED
from ecolink.finetune.models import Job, JobEvent
from ecolink.finetune.outcomes import ActionRefused
from ecolink.finetune.retention import RETAINED_STATUSES
from ecolink.finetune.selectors import job_logs
from ecolink.ops import services
from ecolink.ops.forms import ReasonForm, RetentionForm
from ecolink.ops.selectors import job_bill_subquery

S = Job.Status
LOG_LINES = 100
ACTIONS = {
    "cancel": ("Cancel", ReasonForm),
    "pause": ("Pause", ReasonForm),
    "resume": ("Resume", ReasonForm),
    "mark_failed": ("Mark failed", ReasonForm),
    "extend_retention": ("Extend retention", RetentionForm),
}
# The states each action makes sense in (the actions' own rules), to show only the
# buttons that can work.
OFFERED = {
    "cancel": CANCELLABLE,
    "pause": PAUSABLE,
    "resume": (S.PAUSED,),
    "mark_failed": ALLOWED[S.FAILED],
    "extend_retention": RETAINED_STATUSES,
}


class ReadOnlyInline(admin.TabularInline):
    extra = 0
    can_delete = False
    show_change_link = False

    def has_add_permission(self, request, obj=None):
        return False

    def has_change_permission(self, request, obj=None):
        return False

    def has_delete_permission(self, request, obj=None):
        return False


class JobEventInline(ReadOnlyInline):
    model = JobEvent
    fields = ["created_at", "kind", "message", "run_id"]
    readonly_fields = fields
    verbose_name_plural = "events (per-step metrics left out)"

    def get_queryset(self, request):
        return super().get_queryset(request).exclude(kind="metrics")


class BillingSessionInline(ReadOnlyInline):
    model = BillingSession
    fields = ["run", "gpu_type", "gpu_count", "started_at", "ended_at", "charged_minutes", "cost"]
    readonly_fields = fields

    @admin.display(description="charged")
    def cost(self, obj: BillingSession) -> str:
        return dollars(obj.charged_micros)


@admin.register(Job)
class JobAdmin(admin.ModelAdmin):
    list_display = [
        "id",
        "name",
        "organization",
        "status",
        "gpu_type",
        "region",
        "progress",
        "live_cost",
        "created_at",
    ]
    list_filter = [
        "status",
        "gpu_type",
        "region",
        "method",
        "created_at",
        ("organization", admin.RelatedOnlyFieldListFilter),
    ]
    search_fields = ["=id", "name", "organization__name", "organization__slug", "pod_name"]
    date_hierarchy = "created_at"
    list_select_related = ["organization", "gpu_type", "region"]
    inlines = [BillingSessionInline, JobEventInline]
    actions = None  # every action is per job, with its reason: see `operate_view`
    fieldsets = [
        (None, {"fields": ["name", "organization", "created_by", "status", "status_reason"]}),
        (
            "Run",
            {
                "fields": [
                    "dataset",
                    "base_model",
                    "method",
                    "objective",
                    "gpu_type",
                    "gpu_count",
                    "region",
                    "progress",
                    "latest_loss",
                    "trained_tokens",
                    "run_number",
                    "pod_name",
                ]
            },
        ),
        (
            "Money",
            {
                "fields": [
                    "live_cost",
                    "estimate_range",
                    "estimate_seconds_low",
                    "estimate_seconds_high",
                ]
            },
        ),
        (
            "Outcome",
            {
                "fields": [
                    "pause_reason",
                    "error_class",
                    "checkpoint_path",
                    "checkpoint_step",
                    "adapter_path",
                    "final_metrics",
                    "retention_until",
                    "automatic_retries",
                    "created_at",
                    "started_at",
                    "finished_at",
                ]
            },
        ),
        ("Log", {"fields": ["log"]}),
        ("Configuration", {"classes": ["collapse"], "fields": ["hyperparameters", "run_config"]}),
    ]

    def get_readonly_fields(self, request, obj=None):
        # Every field: operators change a job only through the audited actions.
        return [f for _, opts in self.fieldsets for f in opts["fields"]]

    def get_queryset(self, request):
        return super().get_queryset(request).annotate(bill=job_bill_subquery())

    def has_add_permission(self, request):
        return False

    def has_delete_permission(self, request, obj=None):
        return False

    @admin.display(description="step")
    def progress(self, obj: Job) -> str:
        return f"{obj.current_step} / {obj.total_steps}"

    @admin.display(description="cost so far", ordering="bill")
    def live_cost(self, obj: Job) -> str:
        return dollars(obj.bill or 0)

    @admin.display(description="estimate")
    def estimate_range(self, obj: Job) -> str:
        return f"{dollars(obj.estimate_low_micros)} – {dollars(obj.estimate_high_micros)}"

    @admin.display(description="log")
    def log(self, obj: Job) -> str:
        """The last lines of the training log, read as the job page's Logs tab reads it."""
        return format_html(
            '<pre class="ops-log" style="max-height:24em;overflow:auto">{}</pre>',
            "\n".join(line.message for line in job_logs(obj, source="training")[-LOG_LINES:])
            or "(no log)",
        )

    # --- The audited actions.

    def get_urls(self):
        return [
            path(
                "<int:object_id>/operate/<str:action>/",
                self.admin_site.admin_view(self.operate_view),
                name="finetune_job_operate",
            ),
            *super().get_urls(),
        ]

    def change_view(self, request, object_id, form_url="", extra_context=None):
        job = self.get_object(request, object_id)
        offered = []
        if job is not None and request.user.has_perm("ops.operate_job"):
            offered = [
                (name, label, reverse("admin:finetune_job_operate", args=[job.pk, name]))
                for name, (label, _) in ACTIONS.items()
                if job.status in OFFERED[name]
            ]
        extra_context = {**(extra_context or {}), "operator_actions": offered}
        return super().change_view(request, object_id, form_url, extra_context)

    def operate_view(self, request: HttpRequest, object_id: int, action: str) -> HttpResponse:
        if action not in ACTIONS:
            return HttpResponse(status=404)
        if not request.user.has_perm("ops.operate_job"):
            return HttpResponse("You may not act on jobs.", status=403)
        job = get_object_or_404(Job.objects.select_related("organization"), pk=object_id)
        label, form_class = ACTIONS[action]
        form = form_class(request.POST or None)
        if request.method == "POST" and form.is_valid():
            try:
                done = self._perform(request, job, action, form.cleaned_data)
            except ActionRefused as refused:
                form.add_error(None, str(refused))
            else:
                said = "done" if done else "already so, nothing changed"
                self.message_user(request, f"{label}: {said} for job {job.pk}.", messages.SUCCESS)
                return HttpResponseRedirect(reverse("admin:finetune_job_change", args=[job.pk]))
        context = {
            **self.admin_site.each_context(request),
            "opts": self.model._meta,
            "title": f"{label} job {job.pk}",
            "job": job,
            "action_label": label,
            "form": form,
            "retention_days": settings.RETENTION_DAYS,
        }
        return TemplateResponse(request, "admin/finetune/job/operate.html", context)

    @staticmethod
    def _perform(request: HttpRequest, job: Job, action: str, data: dict) -> bool:
        """Run the operator action; whether it changed the job (else it already was so)."""
        if action == "extend_retention":
            services.operator_job_extend_retention(
                operator=request.user, job_id=job.pk, days=data["days"], reason=data["reason"]
            )
            return True
        result = services.JOB_ACTIONS[action](
            operator=request.user, job_id=job.pk, reason=data["reason"]
        )
        return result.done

    def get_search_fields(self, request: HttpRequest):
        # `=id` only makes sense for a number: leave it out for words.
        if request.GET.get("q", "").strip().isdigit():
            return self.search_fields
        return [f for f in self.search_fields if f != "=id"]
