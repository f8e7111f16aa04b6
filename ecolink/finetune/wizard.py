"""The six steps of /fine-tune/new: their forms, and what a draft holds so far."""

from dataclasses import dataclass, field

from django import forms
from django.conf import settings
from django.db.models import QuerySet

from ecolink.catalog.models import BaseModel, GpuType, Region, RegionCapacity
from ecolink.datasets.models import Dataset
from ecolink.finetune import hyperparams
from ecolink.finetune.hyperparams import RANGES
from ecolink.finetune.models import WizardDraft
from ecolink.finetune.planning.planner import LORA_TARGETS
from ecolink.finetune.planning.quote import Quote, make_quote

STEPS = [
    (1, "Dataset"),
    (2, "Base model"),
    (3, "GPU"),
    (4, "Hyperparameters"),
    (5, "Cost estimate"),
    (6, "Approve & Train"),
]
RECOMMENDED_EXAMPLES = 1000


def eligible_bases() -> QuerySet[BaseModel]:
    return BaseModel.objects.filter(
        allowed=True, fine_tune_eligible=True, has_active_deployment=True
    ).order_by("family", "parameter_count")


class DatasetStep(forms.Form):
    dataset = forms.ModelChoiceField(queryset=Dataset.objects.none(), empty_label="Choose…")

    def __init__(self, *args, datasets: QuerySet[Dataset], **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["dataset"].queryset = datasets.filter(status=Dataset.Status.READY)
        self.fields["dataset"].error_messages["invalid_choice"] = (
            "Pick one of your datasets that is ready to train."
        )

    def values(self) -> dict:
        return {"dataset": self.cleaned_data["dataset"].pk}


class BaseModelStep(forms.Form):
    base_model = forms.ModelChoiceField(queryset=BaseModel.objects.none(), empty_label="Choose…")

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["base_model"].queryset = eligible_bases()
        self.fields["base_model"].error_messages["invalid_choice"] = (
            "That base model is not on the allow-list for fine-tuning."
        )

    def values(self) -> dict:
        return {"base_model": self.cleaned_data["base_model"].pk}


class GpuStep(forms.Form):
    gpu_type = forms.ModelChoiceField(queryset=GpuType.objects.all(), empty_label="Choose…")
    gpu_count = forms.IntegerField(min_value=1, max_value=settings.MAX_GPUS_PER_JOB, initial=1)
    region = forms.ModelChoiceField(queryset=Region.objects.all(), empty_label="Choose…")

    def clean(self):
        cleaned = super().clean()
        gpu, count = cleaned.get("gpu_type"), cleaned.get("gpu_count")
        if gpu and count:
            for name, message in gpu_choice_problems(gpu, count, cleaned.get("region")).items():
                self.add_error(name, message)
        return cleaned

    def values(self) -> dict:
        c = self.cleaned_data
        return {"gpu_type": c["gpu_type"].pk, "gpu_count": c["gpu_count"], "region": c["region"].pk}


def gpu_choice_problems(gpu: GpuType, count: int, region: Region | None) -> dict[str, str]:
    """What is wrong with running `count` × `gpu` in `region`, by field: the GPU type's own
    limit and the platform's, and whether the region has that type at all."""
    problems = {}
    most = min(gpu.max_count, settings.MAX_GPUS_PER_JOB)
    if not 1 <= count <= most:
        problems["gpu_count"] = f"{gpu.display_name} runs at most {most} per job."
    if region and not RegionCapacity.objects.filter(region=region, gpu_type=gpu).exists():
        problems["region"] = f"{region.display_name} has no {gpu.display_name}."
    return problems


def _range_field(name: str) -> forms.Field:
    r = RANGES[name]
    message = f"Must be between {r.low:g} and {r.high:g}."
    common = {
        "help_text": r.help,
        "label": r.label or None,
        "error_messages": {"min_value": message, "max_value": message},
    }
    if r.integer:
        return forms.IntegerField(min_value=int(r.low), max_value=int(r.high), **common)
    return forms.FloatField(min_value=r.low, max_value=r.high, **common)


class HyperparametersStep(forms.Form):
    method = forms.ChoiceField(
        choices=[
            ("auto", "Automatic: LoRA, or QLoRA when the base doesn't fit in 16-bit"),
            ("lora", "16-bit LoRA"),
            ("qlora", "4-bit QLoRA"),
            ("full", "Full fine-tuning"),
            ("prompt_tuning", "Prompt tuning"),
        ]
    )
    objective = forms.ChoiceField(
        choices=[("sft", "Supervised (SFT)"), ("dpo", "Preference (DPO)")]
    )
    target_modules = forms.MultipleChoiceField(
        choices=[(m, m) for m in LORA_TARGETS],
        widget=forms.CheckboxSelectMultiple,
        help_text="Which projections the adapter modifies.",
    )

    def __init__(self, *args, dataset: Dataset | None, base_model: BaseModel | None, **kwargs):
        super().__init__(*args, **kwargs)
        for name in RANGES:
            self.fields[name] = _range_field(name)
        self.dataset, self.base_model = dataset, base_model

    def clean(self):
        cleaned = super().clean()
        objective = cleaned.get("objective")
        if self.dataset and objective == "dpo" and not self.dataset.is_preference:
            self.add_error("objective", "DPO needs a dataset of preference pairs.")
        if self.dataset and objective == "sft" and self.dataset.is_preference:
            self.add_error("objective", "A preference-pair dataset trains with DPO.")
        if objective == "dpo" and cleaned.get("method") == "prompt_tuning":
            self.add_error("method", "Prompt tuning trains with SFT only.")
        length = cleaned.get("max_seq_length")
        if self.base_model and length and length > self.base_model.context_length:
            self.add_error(
                "max_seq_length",
                f"{self.base_model.display_name} reads at most "
                f"{self.base_model.context_length} tokens.",
            )
        return cleaned

    def values(self) -> dict:
        return {"hyperparameters": dict(self.cleaned_data)}


@dataclass
class DraftState:
    """The draft's choices resolved to rows, with the quote once enough is chosen."""

    draft: WizardDraft
    dataset: Dataset | None = None
    base_model: BaseModel | None = None
    gpu_type: GpuType | None = None
    gpu_count: int = 1
    region: Region | None = None
    hyperparameters: dict | None = None
    quote: Quote | None = None
    problems: dict[int, str] = field(default_factory=dict)

    def complete(self, step: int) -> bool:
        return {
            1: self.dataset is not None,
            2: self.base_model is not None,
            3: self.gpu_type is not None and self.region is not None,
            4: self.hyperparameters is not None,
            5: self.quote is not None,
            6: False,
        }[step]

    @property
    def furthest_step(self) -> int:
        """The first step not yet complete: the user can't skip past it."""
        for number, _ in STEPS:
            if not self.complete(number):
                return number
        return STEPS[-1][0]


def resolve_draft(draft: WizardDraft, datasets: QuerySet[Dataset]) -> DraftState:
    """Re-validate everything the draft holds, step by step, as if posted again now.

    A dataset deleted or a base taken off the allow-list since it was chosen makes its step
    incomplete again, with the reason.
    """
    data, state = draft.data, DraftState(draft=draft)
    step1 = DatasetStep({"dataset": data.get("dataset")}, datasets=datasets)
    if data.get("dataset") is None:
        return state
    if not step1.is_valid():
        state.problems[1] = step1.errors["dataset"][0]
        return state
    state.dataset = step1.cleaned_data["dataset"]

    step2 = BaseModelStep({"base_model": data.get("base_model")})
    if data.get("base_model") is None:
        return state
    if not step2.is_valid():
        state.problems[2] = step2.errors["base_model"][0]
        return state
    state.base_model = step2.cleaned_data["base_model"]

    step3 = GpuStep({k: data.get(k) for k in ("gpu_type", "gpu_count", "region")})
    if data.get("gpu_type") is None:
        return state
    if not step3.is_valid():
        state.problems[3] = "; ".join(e for errs in step3.errors.values() for e in errs)
        return state
    state.gpu_type = step3.cleaned_data["gpu_type"]
    state.gpu_count = step3.cleaned_data["gpu_count"]
    state.region = step3.cleaned_data["region"]

    hp = data.get("hyperparameters")
    if hp is None:
        return state
    step4 = HyperparametersStep(hp, dataset=state.dataset, base_model=state.base_model)
    if not step4.is_valid():
        state.problems[4] = "; ".join(e for errs in step4.errors.values() for e in errs)
        return state
    state.hyperparameters = step4.cleaned_data
    state.quote = make_quote(
        organization=draft.organization,
        dataset=state.dataset,
        base_model=state.base_model,
        gpu_type=state.gpu_type,
        gpu_count=state.gpu_count,
        region=state.region,
        hyperparameters=state.hyperparameters,
    )
    return state


def step_form(step: int, state: DraftState, datasets: QuerySet[Dataset], data=None):
    """The form for `step`, bound to `data` when posted, else prefilled from the draft."""
    draft = state.draft.data
    if step == 1:
        return DatasetStep(data, datasets=datasets, initial={"dataset": draft.get("dataset")})
    if step == 2:
        return BaseModelStep(data, initial={"base_model": draft.get("base_model")})
    if step == 3:
        initial = {k: draft.get(k) for k in ("gpu_type", "gpu_count", "region")}
        initial["gpu_count"] = initial["gpu_count"] or 1
        return GpuStep(data, initial=initial)
    if step == 4:
        context = state.base_model.context_length if state.base_model else 2048
        initial = draft.get("hyperparameters") or hyperparams.default_hyperparameters(
            context_length=context
        )
        if state.dataset and state.dataset.is_preference and not draft.get("hyperparameters"):
            initial = {**initial, "objective": "dpo"}
        return HyperparametersStep(
            data, initial=initial, dataset=state.dataset, base_model=state.base_model
        )
    return None
