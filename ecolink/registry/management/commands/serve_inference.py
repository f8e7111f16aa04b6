"""Run the local inference server for a base model and register it as its instance,
until stopped (used by `make run` on the embedded default)."""

import signal
import subprocess
import sys
import time
import urllib.request

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError

from ecolink.catalog.models import BaseModel
from ecolink.registry.models import ModelInstance
from ecolink.registry.services import instance_register, instance_stop


class Command(BaseCommand):
    help = "Serve a local base model (transformers + peft) and register it as its instance."

    def add_arguments(self, parser):
        parser.add_argument("--base", default="ecolink/tiny-qwen2")
        parser.add_argument("--port", type=int, default=8100)
        parser.add_argument("--max-adapters", type=int, default=8)

    def handle(self, *args, **options):
        base = BaseModel.objects.filter(hf_id=options["base"]).first()
        if base is None or not base.local_path:
            raise CommandError(f"{options['base']} has no local weights in the catalog")
        url = f"http://127.0.0.1:{options['port']}"
        proc = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "worker.inference",
                "--model",
                base.local_path,
                "--served-model-name",
                base.hf_id,
                "--port",
                str(options["port"]),
            ],
            cwd=settings.BASE_DIR,
        )
        signal.signal(signal.SIGTERM, lambda *_: proc.terminate())
        try:
            self._wait_healthy(url, proc)
            instance = instance_register(
                name=f"local-{base.hf_id.replace('/', '-')}",
                base_model=base,
                backend=ModelInstance.Backend.LOCAL,
                endpoint_url=url,
                max_adapters=options["max_adapters"],
            )
            self.stdout.write(f"serving {base.hf_id} on {url}", self.style.SUCCESS)
            proc.wait()
            instance_stop(instance_id=instance.pk, message=f"exited with {proc.returncode}")
        except KeyboardInterrupt:
            proc.terminate()
            proc.wait(timeout=15)

    @staticmethod
    def _wait_healthy(url: str, proc: subprocess.Popen, timeout: float = 120) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if proc.poll() is not None:
                raise CommandError(f"the inference server exited with {proc.returncode}")
            try:
                urllib.request.urlopen(f"{url}/health", timeout=2).close()  # noqa: S310
                return
            except OSError:
                time.sleep(0.5)
        proc.terminate()
        raise CommandError("the inference server did not start in time")
