"""The catalog in the admin: a GPU rate change needs a reason, is audited, and applies only
to minutes the meter charges after it."""

from datetime import timedelta

import pytest
from django.utils import timezone

from ecolink.billing.meter import meter_tick
from ecolink.billing.models import BillingSession, LedgerEntry
from ecolink.billing.rates import minute_charge_micros
from ecolink.catalog.models import BaseModel, GpuType, ThroughputEfficiency
from ecolink.finetune.models import Job
from ecolink.ops import services
from ecolink.ops.models import AuditLog
from tests.finetune.factories import JobFactory

pytestmark = pytest.mark.django_db


def test_a_rate_change_applies_to_later_minutes_and_past_entries_never_change(
    org, operator, settings
):
    settings.BILLING_MINUTE_SECONDS = 60
    gpu = GpuType.objects.get(slug="cpu")
    old_rate, new_rate = gpu.hourly_rate_micros, gpu.hourly_rate_micros * 3
    start = timezone.now() - timedelta(hours=1)
    job = JobFactory(organization=org, status=Job.Status.TRAINING, run_number=1)
    BillingSession.objects.create(
        organization=org, job=job, run=1, gpu_type=gpu, gpu_count=1, started_at=start
    )

    meter_tick(now=start + timedelta(seconds=90))  # minutes 0 and 1 have started
    old_entries = list(LedgerEntry.objects.filter(kind="meter").order_by("pk").values())
    old_charge = minute_charge_micros(hourly_rate_micros=old_rate, gpu_count=1)
    assert [e["amount_micros"] for e in old_entries] == [-old_charge, -old_charge]

    services.gpu_rate_change(
        operator=operator, gpu_type_id=gpu.pk, hourly_rate_micros=new_rate, reason="New tariff"
    )
    meter_tick(now=start + timedelta(seconds=150))  # minute 2

    entries = list(LedgerEntry.objects.filter(kind="meter").order_by("pk").values())
    assert entries[:2] == old_entries
    new_charge = minute_charge_micros(hourly_rate_micros=new_rate, gpu_count=1)
    assert [e["amount_micros"] for e in entries[2:]] == [-new_charge]
    assert entries[2]["key"].endswith(":2")
    audit = AuditLog.objects.get(action="gpu_rate_change")
    assert audit.before == {"hourly_rate_micros": old_rate}
    assert audit.after == {"hourly_rate_micros": new_rate}


def gpu_form(gpu: GpuType, **changes) -> dict:
    data = {
        f.name: getattr(gpu, f.attname)
        for f in GpuType._meta.fields
        if f.name != "id" and not isinstance(getattr(gpu, f.attname), bool)
    }
    data.update(is_cpu="on" if gpu.is_cpu else "")
    data.update(
        {
            "efficiencies-TOTAL_FORMS": 0,
            "efficiencies-INITIAL_FORMS": 0,
            "efficiencies-MIN_NUM_FORMS": 0,
            "efficiencies-MAX_NUM_FORMS": 1000,
        }
    )
    data.update(changes)
    return {k: v for k, v in data.items() if v != ""}


def test_the_admin_refuses_a_rate_change_without_a_reason(org, operator_client):
    gpu = GpuType.objects.get(slug="nvidia-t4-16gb")
    ThroughputEfficiency.objects.filter(gpu_type=gpu).delete()
    url = f"/admin/catalog/gputype/{gpu.pk}/change/"
    refused = operator_client.post(url, gpu_form(gpu, hourly_rate_micros=700_000))
    assert refused.status_code == 200 and b"Give a reason for the rate change" in refused.content
    assert GpuType.objects.get(pk=gpu.pk).hourly_rate_micros == 590_000

    done = operator_client.post(
        url, gpu_form(gpu, hourly_rate_micros=700_000, rate_change_reason="Supplier price up")
    )
    assert done.status_code == 302
    assert GpuType.objects.get(pk=gpu.pk).hourly_rate_micros == 700_000
    audit = AuditLog.objects.get()
    assert audit.reason == "Supplier price up" and audit.target_type == "catalog.gputype"

    # Other fields change without a reason, and without an audit row.
    operator_client.post(url, gpu_form(GpuType.objects.get(pk=gpu.pk), image_pull_seconds=90))
    assert GpuType.objects.get(pk=gpu.pk).image_pull_seconds == 90
    assert AuditLog.objects.count() == 1


def test_operators_edit_the_allow_list_from_the_base_model_list(org, operator_client):
    model = BaseModel.objects.get(hf_id="Qwen/Qwen2.5-7B-Instruct")
    page = operator_client.get(f"/admin/catalog/basemodel/{model.pk}/change/")
    assert page.status_code == 200
    for text in (b"Allow-list", b"Architecture", b"num_kv_heads"):
        assert text in page.content
    assert operator_client.get("/admin/catalog/regioncapacity/").status_code == 200
    assert operator_client.get("/admin/catalog/throughputefficiency/").status_code == 200
