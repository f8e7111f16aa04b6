"""Record a running inference server (vLLM or local) for a base model."""

from django.core.management.base import BaseCommand, CommandError

from ecolink.catalog.models import BaseModel
from ecolink.registry.models import ModelInstance
from ecolink.registry.services import instance_register


class Command(BaseCommand):
    help = (
        "Register a running inference server for a base model. A vLLM server must run with "
        "--enable-lora and VLLM_ALLOW_RUNTIME_LORA_UPDATING=True, and see the adapter "
        "folders at the platform's paths."
    )

    def add_arguments(self, parser):
        parser.add_argument("--base", required=True, help="Hugging Face id of the base model.")
        parser.add_argument("--url", required=True, help="Server root, e.g. http://gpu-1:8000")
        parser.add_argument("--backend", choices=ModelInstance.Backend.values, default="vllm")
        parser.add_argument("--name", help="Instance name (default: <backend>-<base>).")
        parser.add_argument("--served-model-name", default="", help="Default: the base's id.")
        parser.add_argument("--max-adapters", type=int, default=8)

    def handle(self, *args, **options):
        base = BaseModel.objects.filter(hf_id=options["base"]).first()
        if base is None:
            raise CommandError(f"{options['base']} is not in the catalog")
        name = options["name"] or f"{options['backend']}-{base.hf_id.replace('/', '-')}"
        instance = instance_register(
            name=name,
            base_model=base,
            backend=options["backend"],
            endpoint_url=options["url"],
            served_model_name=options["served_model_name"],
            max_adapters=options["max_adapters"],
        )
        self.stdout.write(f"registered {instance}")
