import factory

from ecolink.billing.models import BillingSession
from ecolink.catalog.models import BaseModel, GpuType, Region
from ecolink.datasets.models import Dataset
from ecolink.finetune.models import Job
from tests.factories import OrganizationFactory


class DatasetFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Dataset

    organization = factory.SubFactory(OrganizationFactory)
    name = factory.Sequence(lambda n: f"dataset-{n}")
    original_filename = factory.LazyAttribute(lambda d: f"{d.name}.jsonl")
    file = factory.LazyAttribute(lambda d: f"uploads/{d.name}.jsonl")
    format = Dataset.Format.OPENAI
    status = Dataset.Status.READY
    example_count = 1200
    token_count = 240_000
    content_hash = "0" * 64
    train_file = factory.LazyAttribute(lambda d: f"datasets/{d.name}/train.jsonl")
    validation_file = factory.LazyAttribute(lambda d: f"datasets/{d.name}/validation.jsonl")


class JobFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Job

    organization = factory.SubFactory(OrganizationFactory)
    name = factory.Sequence(lambda n: f"job-{n}")
    dataset = factory.SubFactory(
        DatasetFactory, organization=factory.SelfAttribute("..organization")
    )
    base_model = factory.LazyFunction(lambda: BaseModel.objects.get(hf_id="ecolink/tiny-qwen2"))
    gpu_type = factory.LazyFunction(lambda: GpuType.objects.get(slug="cpu"))
    region = factory.LazyFunction(lambda: Region.objects.get(slug="local"))
    method = Job.Method.LORA
    estimate_seconds_high = 600


class BillingSessionFactory(factory.django.DjangoModelFactory):
    """A pod run of a job, metered from the job's creation unless told otherwise."""

    class Meta:
        model = BillingSession

    job = factory.SubFactory(JobFactory)
    organization = factory.SelfAttribute("job.organization")
    run = 1
    gpu_type = factory.SelfAttribute("job.gpu_type")
    gpu_count = 1
    started_at = factory.SelfAttribute("job.created_at")
