"""Export a fine-tuned model to the Hugging Face Hub: the adapter with a model card (and
the manifest), or, optionally, the adapter merged into its base after the merge check.

The user's token is used for this one push and then dropped: it is not stored in the
database, sent through the task queue, logged, or echoed in any answer or error. (That is
why the push runs in the request rather than in a Celery task.)
"""

from __future__ import annotations

import json
import logging
import os
import re
import shutil
import tempfile
from pathlib import Path

from ecolink.registry.models import HubExport, RegisteredAdapter

log = logging.getLogger(__name__)

REPO_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,95}/[A-Za-z0-9][A-Za-z0-9._-]{0,95}$")
DEFAULT_ENDPOINT = "https://huggingface.co"


class ExportRefused(Exception):
    """The export was not made; the message (never containing the token) says why."""


def hub_endpoint() -> str:
    # huggingface_hub's own variable, so a mirror or a private Hub works the same way.
    return os.environ.get("HF_ENDPOINT") or DEFAULT_ENDPOINT


def model_card(adapter: RegisteredAdapter, *, merged: bool) -> str:
    """README.md: YAML metadata the Hub reads, then the lineage in prose."""
    base = adapter.base_model.hf_id
    hp = json.dumps(adapter.hyperparameters, indent=2, sort_keys=True)
    metrics = json.dumps(adapter.metrics, indent=2, sort_keys=True)
    kind = "model (LoRA merged into the base)" if merged else "LoRA adapter"
    header = ["---", f"base_model: {base}"]
    if not merged:
        header.append("library_name: peft")
    header += ["tags:", "- ecolink", f"- {adapter.method}", "---", ""]
    body = f"""# {adapter.model_id}

A fine-tuned {kind} of [{base}](https://huggingface.co/{base}), trained with EcoLink.

- Method: {adapter.method}
- Base model revision: {adapter.base_model_revision or "unknown"}
- Dataset hash: {adapter.dataset_hash or "unknown"}
- Registered: {adapter.created_at:%Y-%m-%d}

## Hyperparameters

```json
{hp}
```

## Metrics

```json
{metrics}
```
"""
    if not merged:
        body += f"""
## Use

```python
from peft import PeftModel
from transformers import AutoModelForCausalLM, AutoTokenizer

base = AutoModelForCausalLM.from_pretrained("{base}")
model = PeftModel.from_pretrained(base, "<this repo>")
tokenizer = AutoTokenizer.from_pretrained("<this repo>")
```
"""
    return "\n".join(header) + body


def _redact(text: str, token: str) -> str:
    return text.replace(token, "[redacted]") if token else text


def adapter_export_hub(
    *,
    adapter: RegisteredAdapter,
    token: str,
    repo_id: str,
    merged: bool = False,
    private: bool = True,
    endpoint: str | None = None,
) -> HubExport:
    """Push the model to `repo_id` on the Hub with the user's `token`; returns the
    recorded export (pushed, failed, or refused because the merge check failed)."""
    from huggingface_hub import HfApi

    from worker.inference.merge import MergeMismatch, merge_and_verify

    if not isinstance(token, str) or not token.strip():
        raise ExportRefused("A Hugging Face access token is required.")
    if not REPO_ID.match(repo_id or ""):
        raise ExportRefused("The repository must look like `user-or-org/model-name`.")
    if adapter.deleted_at is not None or not adapter.path or not Path(adapter.path).is_dir():
        raise ExportRefused("This model was deleted: there is nothing to export.")
    if merged and adapter.method not in ("lora", "qlora"):
        raise ExportRefused("Only LoRA adapters can be merged into their base.")
    if merged and not adapter.base_model.local_path:
        raise ExportRefused("The base model's weights are not on this server: export the adapter.")

    record = HubExport(
        organization_id=adapter.organization_id, adapter=adapter, repo_id=repo_id, merged=merged
    )
    staging = Path(tempfile.mkdtemp(prefix="ecolink-export-"))
    try:
        if merged:
            try:
                result = merge_and_verify(adapter.base_model.local_path, adapter.path, staging)
            except MergeMismatch as exc:
                record.status, record.max_logit_diff = HubExport.Status.REFUSED, exc.max_diff
                record.error = f"Merged model refused: {exc}"[:500]
                record.save()
                return record
            record.max_logit_diff = result.max_logit_diff
        else:
            shutil.copytree(adapter.path, staging, dirs_exist_ok=True)
        (staging / "README.md").write_text(model_card(adapter, merged=merged))
        (staging / "ecolink_manifest.json").write_text(
            json.dumps({**adapter.manifest, "model_id": adapter.model_id}, indent=2)
        )
        api = HfApi(endpoint=endpoint or hub_endpoint(), token=token)
        try:
            api.create_repo(repo_id=repo_id, repo_type="model", private=private, exist_ok=True)
            commit = api.upload_folder(
                folder_path=str(staging),
                repo_id=repo_id,
                repo_type="model",
                commit_message=f"Upload {adapter.model_id} from EcoLink",
            )
        except Exception as exc:  # the Hub's errors vary; none may carry the token out
            record.status = HubExport.Status.FAILED
            record.error = _redact(f"{type(exc).__name__}: {exc}", token)[:500]
            log.warning(
                "hub export of %s to %s failed: %s", adapter.model_id, repo_id, record.error
            )
        else:
            record.status = HubExport.Status.PUSHED
            record.commit_url = commit.commit_url[:500]
        record.save()
        return record
    finally:
        shutil.rmtree(staging, ignore_errors=True)
