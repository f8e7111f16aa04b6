"""How fine-tuning terms read on pages and in messages."""

METHOD_LABELS = {
    "lora": "16-bit LoRA",
    "qlora": "4-bit QLoRA",
    "full": "Full fine-tuning",
    "prompt_tuning": "Prompt tuning",
    "auto": "Automatic",
}
PHASE_LABELS = {
    "image_pull": "Image pull",
    "model_load": "Model load",
    "dataset_prep": "Dataset preparation",
    "training": "Training",
    "evaluation": "Evaluation",
    "register": "Register",
}


def method_label(method: str) -> str:
    return METHOD_LABELS.get(method, method)


def phase_label(phase: str) -> str:
    return PHASE_LABELS.get(phase, phase)
