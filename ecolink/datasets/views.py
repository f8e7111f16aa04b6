import csv

from django.conf import settings
from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.exceptions import PermissionDenied
from django.core.paginator import Paginator
from django.db.models import ProtectedError
from django.http import HttpResponse
from django.shortcuts import redirect, render
from django.urls import NoReverseMatch, reverse
from django.views.decorators.csrf import csrf_exempt, csrf_protect
from django.views.decorators.http import require_http_methods, require_POST

from ecolink.accounts.scoping import current_organization, get_for_org, org_queryset
from ecolink.datasets.forms import DatasetUploadForm, RevalidateForm
from ecolink.datasets.models import Dataset
from ecolink.datasets.readers import human_bytes
from ecolink.datasets.selectors import (
    any_pending,
    datasets_for_list,
    preview_rows,
    report_errors,
)
from ecolink.datasets.services import (
    DatasetError,
    dataset_delete,
    dataset_revalidate,
    dataset_upload,
)
from ecolink.datasets.uploads import declared_too_large, limit_upload_size

POLL_SECONDS = 2


def fine_tune_url() -> str:
    """Where a ready dataset's Train button goes (the wizard, prefilled by `?dataset=`)."""
    try:
        return reverse("finetune:new")
    except NoReverseMatch:
        return "/fine-tune/new"


@login_required
def dataset_list(request):
    rows = datasets_for_list(org_queryset(request, Dataset))
    page = Paginator(rows, 50).get_page(request.GET.get("page"))
    context = {
        "page": page,
        "polling": any_pending(page),
        "poll_seconds": POLL_SECONDS,
        "train_url": fine_tune_url(),
    }
    if request.htmx:
        return render(request, "datasets/_table.html", context)
    context.update(_upload_context(DatasetUploadForm()))
    return render(request, "datasets/list.html", context)


@csrf_exempt  # CSRF is checked in _upload, once the size-limiting handler is in place
@login_required
@require_http_methods(["GET", "POST"])
def dataset_upload_view(request):
    if request.method == "GET":
        return render(request, "datasets/upload.html", _upload_context(DatasetUploadForm()))
    limit = settings.DATASET_MAX_UPLOAD_BYTES
    if declared_too_large(request, limit):
        # Refused before a byte of the body is read.
        return _upload_refused(request, limit)
    handler = limit_upload_size(request, limit)
    return _upload(request, handler)


@csrf_protect
def _upload(request, handler):
    form = DatasetUploadForm(request.POST, request.FILES)
    if handler.refused:
        return _upload_refused(request, handler.max_bytes)
    organization = current_organization(request)
    if organization is None:
        raise PermissionDenied("You do not belong to an organization.")
    if form.is_valid():
        data = form.cleaned_data
        try:
            dataset = dataset_upload(
                organization_id=organization.pk,
                file=data["file"],
                filename=data["file"].name,
                name=data["name"],
                format=data["format"],
                prompt_column=data["prompt_column"],
                answer_column=data["answer_column"],
                validation_file=data["validation_file"],
                validation_filename=data["validation_file"].name if data["validation_file"] else "",
                split_seed=data["split_seed"],
                max_seq_length=data["max_seq_length"],
                tokenizer_model=data["tokenizer_model"],
                uploaded_by_id=request.user.pk,
            )
        except DatasetError as error:
            form.add_error(None, str(error))
        else:
            if request.htmx:
                response = _render_upload_form(request, DatasetUploadForm(), uploaded=dataset)
                response["HX-Trigger"] = "datasets-changed"
                return response
            messages.success(request, f"Uploaded {dataset.name}: validating it now.")
            return redirect("datasets:list")
    return _render_upload_form(request, form, status=400)


def _upload_refused(request, limit: int):
    message = f"The file is larger than the {human_bytes(limit)} upload limit."
    return _render_upload_form(request, DatasetUploadForm(), status=413, error=message)


def _upload_context(form, **extra) -> dict:
    return {"form": form, "max_upload_bytes": settings.DATASET_MAX_UPLOAD_BYTES, **extra}


def _render_upload_form(request, form, *, status=200, uploaded=None, error=""):
    template = "datasets/_upload_form.html" if request.htmx else "datasets/upload.html"
    context = _upload_context(form, uploaded=uploaded, upload_error=error)
    return render(request, template, context, status=status)


@login_required
def dataset_detail(request, pk: int):
    dataset = get_for_org(request, Dataset, pk=pk)
    context = {
        "dataset": dataset,
        "report": dataset.report,
        "errors": report_errors(dataset),
        "preview": preview_rows(dataset),
        "poll_seconds": POLL_SECONDS,
        "train_url": fine_tune_url(),
        "revalidate_form": RevalidateForm(
            initial={
                "format": dataset.format,
                "prompt_column": dataset.prompt_column,
                "answer_column": dataset.answer_column,
            }
        ),
    }
    if request.htmx:
        return render(request, "datasets/_report.html", context)
    return render(request, "datasets/detail.html", context)


@login_required
@require_POST
def dataset_revalidate_view(request, pk: int):
    dataset = get_for_org(request, Dataset.objects.defer("report"), pk=pk)
    form = RevalidateForm(request.POST)
    if form.is_valid():
        try:
            dataset_revalidate(dataset_id=dataset.pk, **form.cleaned_data)
        except DatasetError as error:
            messages.error(request, str(error))
        else:
            messages.success(request, "Validating again.")
    else:
        messages.error(request, "Choose a format to validate with.")
    return redirect("datasets:detail", pk=dataset.pk)


@login_required
@require_http_methods(["GET", "POST"])
def dataset_delete_view(request, pk: int):
    dataset = get_for_org(request, Dataset.objects.defer("report"), pk=pk)
    if request.method == "POST":
        try:
            dataset_delete(dataset_id=dataset.pk)
        except ProtectedError:
            messages.error(request, f"{dataset.name} is used by a fine-tuning job: keep it.")
            return redirect("datasets:detail", pk=dataset.pk)
        messages.success(request, f"Deleted {dataset.name}.")
        return redirect("datasets:list")
    return render(request, "datasets/confirm_delete.html", {"dataset": dataset})


@login_required
def dataset_preview_csv(request, pk: int):
    """The preview rows as CSV, with formula-like cells neutralised for spreadsheets."""
    dataset = get_for_org(request, Dataset, pk=pk)
    response = HttpResponse(content_type="text/csv; charset=utf-8")
    response["Content-Disposition"] = f'attachment; filename="dataset-{dataset.pk}-preview.csv"'
    writer = csv.writer(response)
    writer.writerow(["number", "part", "content"])
    for row in preview_rows(dataset):
        for part in row["parts"]:
            writer.writerow([row["number"], part["label"], part["content"]])
    return response
