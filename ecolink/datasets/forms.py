from pathlib import Path

from django import forms

from ecolink.catalog.models import BaseModel
from ecolink.datasets.models import Dataset

ACCEPTED_EXTENSIONS = ".jsonl,.json,.ndjson,.txt,.csv,.tsv,.parquet,.pq"


def local_tokenizer_choices() -> list[tuple[str, str]]:
    """Catalog base models whose tokenizer is on this machine, for counting tokens."""
    choices = [("", "Tiny local model (default)")]
    for hf_id, name, local_path in BaseModel.objects.exclude(local_path="").values_list(
        "hf_id", "display_name", "local_path"
    ):
        if (Path(local_path) / "tokenizer.json").is_file():
            choices.append((hf_id, name))
    return choices


class DatasetUploadForm(forms.Form):
    file = forms.FileField(
        allow_empty_file=True,  # an empty file becomes an invalid dataset that says so
        widget=forms.ClearableFileInput(attrs={"accept": ACCEPTED_EXTENSIONS}),
    )
    name = forms.CharField(max_length=200, required=False, help_text="Defaults to the file name.")
    format = forms.ChoiceField(
        choices=Dataset.Format.choices,
        initial=Dataset.Format.AUTO,
        required=False,
        help_text="Detected from the file unless you choose one.",
    )
    prompt_column = forms.CharField(
        max_length=200, required=False, help_text="For prompt/completion rows: default 'prompt'."
    )
    answer_column = forms.CharField(
        max_length=200,
        required=False,
        help_text="For prompt/completion rows: default 'completion'.",
    )
    validation_file = forms.FileField(
        required=False,
        allow_empty_file=True,
        widget=forms.ClearableFileInput(attrs={"accept": ACCEPTED_EXTENSIONS}),
        help_text="Optional. Without it, 15% of the examples become the validation split.",
    )
    split_seed = forms.IntegerField(min_value=0, max_value=2**31 - 1, initial=42, required=False)
    max_seq_length = forms.IntegerField(
        required=False,
        min_value=128,
        max_value=32768,
        initial=2048,
        help_text="The report counts examples longer than this many tokens.",
    )
    tokenizer_model = forms.ChoiceField(required=False, label="Count tokens with")

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["tokenizer_model"].choices = local_tokenizer_choices()

    def clean(self):
        data = super().clean()
        # Left blank (or posted by a script without them): the defaults.
        if data.get("split_seed") is None:
            data["split_seed"] = 42
        if data.get("max_seq_length") is None:
            data["max_seq_length"] = 2048
        data["format"] = data.get("format") or Dataset.Format.AUTO
        return data


class RevalidateForm(forms.Form):
    format = forms.ChoiceField(choices=Dataset.Format.choices)
    prompt_column = forms.CharField(max_length=200, required=False)
    answer_column = forms.CharField(max_length=200, required=False)
