import threading

import pytest
from django.db import connection
from django.urls import reverse

from ecolink.catalog.models import BaseModel, GpuType, Region, RegionCapacity
from ecolink.datasets.models import Dataset
from ecolink.finetune.models import Job, WizardDraft
from tests.finetune.factories import DatasetFactory, JobFactory
from worker.trainer.config import RunConfig

URL = reverse("finetune:new")
HYPERPARAMETERS = {
    "method": "auto",
    "objective": "sft",
    "epochs": 1,
    "learning_rate": 2e-4,
    "lora_r": 8,
    "lora_alpha": 16,
    "micro_batch_size": 4,
    "lora_dropout": 0.05,
    "gradient_accumulation": 2,
    "max_seq_length": 256,
    "save_steps": 10,
    "seed": 7,
    "warmup_steps": 0,
    "weight_decay": 0.01,
    "dpo_beta": 0.1,
    "target_modules": ["q_proj", "v_proj"],
}


def post(client, step, action="next", htmx=False, **data):
    headers = {"HX-Request": "true"} if htmx else {}
    return client.post(URL, {"step": step, "action": action, **data}, headers=headers)


def walk_to_approve(
    client, dataset, *, base="ecolink/tiny-qwen2", gpu="cpu", region="local", count=1, **hp
):
    base_model = BaseModel.objects.get(hf_id=base)
    gpu_type = GpuType.objects.get(slug=gpu)
    assert post(client, 1, dataset=dataset.pk).status_code == 302
    assert post(client, 2, base_model=base_model.pk).status_code == 302
    response = post(
        client, 3, gpu_type=gpu_type.pk, gpu_count=count, region=Region.objects.get(slug=region).pk
    )
    assert response.status_code == 302, response.content.decode()[:2000]
    response = post(client, 4, **{**HYPERPARAMETERS, **hp})
    assert response.status_code == 302, response.content.decode()[:3000]
    assert post(client, 5).status_code == 302


def huge_dataset(org):
    """Two billion tokens: fifty epochs of it cost far more than the $100 test balance."""
    return DatasetFactory(organization=org, example_count=5_000_000, token_count=2_000_000_000)


def approve(client, user, **extra):
    token = WizardDraft.objects.get(user=user, job__isnull=True).token
    return post(client, 6, action="approve", token=str(token), **extra)


@pytest.mark.django_db
def test_walking_all_steps_creates_one_queued_job_with_a_rendered_config(logged_in, user, dataset):
    walk_to_approve(logged_in, dataset)
    response = approve(logged_in, user)
    job = Job.objects.get()
    assert response.status_code == 302
    assert response["Location"] == reverse("finetune:detail", args=[job.pk])
    assert job.status == Job.Status.QUEUED
    assert job.method == "lora"
    config = job.run_config
    RunConfig.from_dict(config)  # the trainer accepts it as rendered
    assert config["base_model"] == job.base_model.local_path
    assert config["effective_batch_size"] == 4 * 2 * 1
    assert config["lora"] == {
        "r": 8,
        "alpha": 16,
        "dropout": 0.05,
        "target_modules": ["q_proj", "v_proj"],
    }
    assert config["max_seq_length"] == 256
    assert 0 < job.estimate_low_micros <= job.estimate_high_micros
    assert job.total_steps == -(-960 // 8)  # 80% of 1,200 examples, batches of 8, one epoch


@pytest.mark.django_db
def test_a_double_submit_creates_one_job(logged_in, user, dataset):
    walk_to_approve(logged_in, dataset)
    token = str(WizardDraft.objects.get(user=user).token)
    first = post(logged_in, 6, action="approve", token=token)
    second = post(logged_in, 6, action="approve", token=token)
    assert Job.objects.count() == 1
    assert first["Location"] == second["Location"]


@pytest.mark.django_db(transaction=True)
def test_concurrent_approvals_of_one_draft_create_one_job(client, user, dataset):
    from tests.factories import PASSWORD

    client.login(username=user.username, password=PASSWORD)
    walk_to_approve(client, dataset)
    token = str(WizardDraft.objects.get(user=user).token)
    cookies = client.cookies
    barrier, statuses = threading.Barrier(4), []

    def submit():
        from django.test import Client

        c = Client()
        c.cookies = cookies
        barrier.wait()
        statuses.append(post(c, 6, action="approve", token=token).status_code)
        connection.close()

    threads = [threading.Thread(target=submit) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert statuses == [302] * 4
    assert Job.objects.count() == 1


@pytest.mark.django_db
def test_the_balance_gate_holds_when_approve_is_posted_directly(logged_in, user, org):
    walk_to_approve(
        logged_in,
        huge_dataset(org),
        base="mistralai/Mistral-7B-Instruct-v0.3",
        gpu="nvidia-h100-80gb",
        region="us-east",
        count=8,
        epochs=50,
    )
    response = approve(logged_in, user)
    assert response.status_code == 200
    assert "below the upper estimate" in response.content.decode()
    assert not Job.objects.exists()


@pytest.mark.django_db
def test_the_capacity_gate_holds_when_approve_is_posted_directly(logged_in, user, org, dataset):
    local, cpu = Region.objects.get(slug="local"), GpuType.objects.get(slug="cpu")
    total = RegionCapacity.objects.get(region=local, gpu_type=cpu).total_gpus
    for _ in range(total):
        JobFactory(organization=org, status=Job.Status.TRAINING, gpu_count=1)
    walk_to_approve(logged_in, dataset)
    response = approve(logged_in, user)
    body = response.content.decode()
    assert "no free GPU of this type" in body
    assert "Estimated wait" in body
    assert Job.objects.filter(status=Job.Status.QUEUED).count() == 0


@pytest.mark.django_db
def test_step_six_disables_approve_and_links_top_up_when_the_balance_is_short(logged_in, user, org):
    walk_to_approve(
        logged_in,
        huge_dataset(org),
        base="mistralai/Mistral-7B-Instruct-v0.3",
        gpu="nvidia-h100-80gb",
        region="us-east",
        count=8,
        epochs=50,
    )
    body = logged_in.get(URL + "?step=6").content.decode()
    assert 'data-testid="balance-gate"' in body
    assert 'data-testid="top-up-link"' in body
    approve_button = body[body.index('data-testid="approve"') :]
    assert approve_button[: approve_button.index(">")].rstrip().endswith("disabled")


@pytest.mark.django_db
def test_another_orgs_dataset_is_refused(logged_in, dataset):
    foreign = DatasetFactory()
    response = post(logged_in, 1, dataset=foreign.pk)
    assert response.status_code == 200
    assert "Pick one of your datasets that is ready to train." in response.content.decode()
    assert logged_in.get(URL + f"?dataset={foreign.pk}").status_code == 200
    assert WizardDraft.objects.get().data.get("dataset") is None


@pytest.mark.django_db
def test_a_dataset_that_is_not_ready_is_refused(logged_in, org):
    validating = DatasetFactory(organization=org, status=Dataset.Status.VALIDATING)
    response = post(logged_in, 1, dataset=validating.pk)
    assert "Pick one of your datasets that is ready to train." in response.content.decode()


@pytest.mark.django_db
def test_a_base_off_the_allow_list_is_refused_even_if_the_draft_had_it(logged_in, user, dataset):
    walk_to_approve(logged_in, dataset)
    BaseModel.objects.filter(hf_id="ecolink/tiny-qwen2").update(allowed=False)
    response = approve(logged_in, user)
    assert "not on the allow-list" in response.content.decode()
    assert not Job.objects.exists()


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("field", "value", "message"),
    [
        ("learning_rate", 0.5, "Must be between 1e-06 and 0.01."),
        ("lora_r", 0, "Must be between 1 and 256."),
        ("epochs", 51, "Must be between 1 and 50."),
        ("max_seq_length", 4096, "reads at most 512 tokens"),
        ("objective", "dpo", "DPO needs a dataset of preference pairs."),
    ],
)
def test_hyperparameters_out_of_range_are_refused(logged_in, dataset, field, value, message):
    walk_to_approve(logged_in, dataset)
    response = post(logged_in, 4, **{**HYPERPARAMETERS, field: value})
    assert response.status_code == 200
    assert message in response.content.decode()


@pytest.mark.django_db
def test_the_train_button_link_prefills_the_dataset_and_a_reload_keeps_it(logged_in, dataset):
    logged_in.get(URL + f"?dataset={dataset.pk}")
    body = logged_in.get(URL + "?step=1").content.decode()
    assert f'<option value="{dataset.pk}" selected>' in body
    assert logged_in.get(URL).content.decode().count("2. Base model") >= 1


@pytest.mark.django_db
def test_a_small_dataset_gets_a_warning(logged_in, org):
    small = DatasetFactory(organization=org, example_count=300)
    body = logged_in.get(URL + f"?dataset={small.pk}&step=1").content.decode()
    assert 'data-testid="small-dataset-warning"' in body


@pytest.mark.django_db
def test_htmx_gets_the_wizard_body_and_the_step_in_the_url(logged_in, dataset):
    response = post(logged_in, 1, htmx=True, dataset=dataset.pk)
    body = response.content.decode()
    assert response.status_code == 200
    assert response["HX-Push-Url"] == URL + "?step=2"
    assert body.lstrip().startswith('<div id="wizard"')
    assert "<html" not in body


@pytest.mark.django_db
def test_a_seven_b_base_on_a_t4_shows_the_qlora_banner(logged_in, dataset):
    post(logged_in, 1, dataset=dataset.pk)
    post(logged_in, 2, base_model=BaseModel.objects.get(hf_id__contains="Mistral-7B").pk)
    response = post(
        logged_in,
        3,
        action="refresh",
        htmx=True,
        gpu_type=GpuType.objects.get(slug="nvidia-t4-16gb").pk,
        gpu_count=1,
        region=Region.objects.get(slug="us-east").pk,
    )
    body = response.content.decode()
    assert 'data-testid="method-banner"' in body
    assert "4-bit QLoRA" in body


@pytest.mark.django_db
def test_a_seventy_b_base_on_a_t4_names_a_gpu_that_fits(logged_in, dataset):
    post(logged_in, 1, dataset=dataset.pk)
    post(logged_in, 2, base_model=BaseModel.objects.get(hf_id__contains="70B").pk)
    body = post(
        logged_in,
        3,
        action="refresh",
        htmx=True,
        gpu_type=GpuType.objects.get(slug="nvidia-t4-16gb").pk,
        gpu_count=1,
        region=Region.objects.get(slug="us-east").pk,
    ).content.decode()
    assert "Does not fit" in body
    assert 'data-testid="suggested-gpu">nvidia-a100-80gb<' in body


@pytest.mark.django_db
def test_the_job_page_of_another_org_is_404(logged_in, org):
    other = JobFactory()
    assert logged_in.get(reverse("finetune:detail", args=[other.pk])).status_code == 404
    mine = JobFactory(organization=org)
    assert logged_in.get(reverse("finetune:detail", args=[mine.pk])).status_code == 200
