"""`make bench-datasets`: validate generated chat JSONL files of 10k, 100k and 1M rows and
print rows/s and peak RSS for each. The last line is
`datasets: <rows/s at 1M> rows/s, peak <MB> MB`.

Each size runs in a fresh process, so its peak RSS is its own, through the real path: the
upload stored in artifact storage, then `dataset_validate` (stream, normalise, count
tokens with the tiny model's tokenizer, deduplicate, split, store the split files), on a
throwaway database created here and dropped at the end.
"""

import json
import os
import random
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "ecolink.settings")

SIZES = (10_000, 100_000, 1_000_000)
WORDS = (
    "the a an of to and in is it you that was for on are with as they be at one have this "
    "from or had by word but what some we can out other were all there when up use your how "
    "said each she which do their time if will way about many then them write would like so "
    "these her long make thing see him two has look more day could go come did number sound "
    "model train data loss step batch token learn rate adapter layer weight answer question "
    "hello thanks please yes okay why where fine tune GPU cost balance pause resume dataset"
).split()
SYSTEM_PROMPTS = ["You are a helpful assistant.", "Answer briefly.", "You are a support agent."]


def generate(directory: Path) -> dict[int, Path]:
    """One pass writes the 1M-row file and its 10k and 100k prefixes."""
    rng = random.Random(1234)
    # Pools of phrases keep generation fast; the row number keeps every row distinct.
    questions = [
        " ".join(rng.choice(WORDS) for _ in range(rng.randint(6, 18))).capitalize()
        for _ in range(5000)
    ]
    answers = [
        " ".join(rng.choice(WORDS) for _ in range(rng.randint(12, 40))).capitalize() + "."
        for _ in range(5000)
    ]
    paths = {size: directory / f"chat-{size}.jsonl" for size in SIZES}
    files = {size: open(path, "w") for size, path in paths.items()}  # noqa: SIM115
    dumps = json.JSONEncoder().encode
    try:
        for i in range(max(SIZES)):
            line = (
                dumps(
                    {
                        "messages": [
                            {"role": "system", "content": SYSTEM_PROMPTS[i % 3]},
                            {"role": "user", "content": f"{questions[i % 4999]} (ticket {i})?"},
                            {"role": "assistant", "content": answers[(i * 7) % 4993]},
                        ]
                    }
                )
                + "\n"
            )
            for size, f in files.items():
                if i < size:
                    f.write(line)
    finally:
        for f in files.values():
            f.close()
    return paths


def peak_rss_mb() -> float:
    """This process's peak resident memory. Linux's VmHWM belongs to the process image;
    ru_maxrss would also carry the parent's peak across fork and exec."""
    try:
        with open("/proc/self/status") as status:
            for line in status:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) / 1024
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def child(path: Path, rows: int) -> None:
    """Store `path` as a dataset and validate it; print one JSON line of results."""
    import django

    django.setup()
    from django.core.files import File
    from django.core.files.storage import default_storage

    from ecolink.accounts.models import Organization
    from ecolink.datasets.models import Dataset
    from ecolink.datasets.services import dataset_validate

    org = Organization.objects.create(name=f"Bench {rows}", slug=f"bench-{rows}-{os.getpid()}")
    dataset = Dataset.objects.create(
        organization=org, name=path.name, original_filename=path.name, size_bytes=0
    )
    with open(path, "rb") as f:
        key = default_storage.save(f"datasets/{org.pk}/{dataset.pk}/source/{path.name}", File(f))
    Dataset.objects.filter(pk=dataset.pk).update(file=key, size_bytes=path.stat().st_size)

    started = time.perf_counter()
    dataset = dataset_validate(dataset_id=dataset.pk)
    seconds = time.perf_counter() - started
    assert dataset.status == Dataset.Status.READY, dataset.error
    assert dataset.example_count == rows
    print(
        json.dumps(
            {
                "rows": rows,
                "seconds": seconds,
                "rows_per_s": rows / seconds,
                "peak_mb": peak_rss_mb(),
                "tokens_per_row": dataset.report["tokens"]["total"] / rows,
                "mb": path.stat().st_size / 1024 / 1024,
            }
        )
    )


def main() -> None:
    import django

    django.setup()
    from django.conf import settings
    from django.db import connection

    from ecolink.catalog.tiny_model import ensure_tiny_model

    with tempfile.TemporaryDirectory(prefix="ecolink-bench-datasets-") as tmp:
        tmp = Path(tmp)
        t0 = time.perf_counter()
        paths = generate(tmp)
        print(f"generated {len(SIZES)} files in {time.perf_counter() - t0:.1f}s", flush=True)
        tiny = ensure_tiny_model(tmp / "tiny-qwen2")

        db = settings.DATABASES["default"]
        sqlite = db["ENGINE"].endswith("sqlite3")
        test_name = str(tmp / "bench.sqlite3") if sqlite else f"test_ecolink_bench_{os.getpid()}"
        db["TEST"]["NAME"] = test_name
        old_name = db["NAME"]
        connection.creation.create_test_db(verbosity=0, autoclobber=True, serialize=False)
        try:
            url = (
                f"sqlite:///{test_name}"
                if sqlite
                else f"postgresql://{db['USER'] or 'postgres'}"
                f"{':' + db['PASSWORD'] if db['PASSWORD'] else ''}"
                f"@{db['HOST'] or '127.0.0.1'}:{db['PORT'] or 5432}/{test_name}"
            )
            env = {
                **os.environ,
                "DATABASE_URL": url,
                "ECOLINK_ARTIFACTS_DIR": str(tmp / "artifacts"),
                "ECOLINK_TINY_MODEL_DIR": str(tiny),
                "LOG_LEVEL": "WARNING",
            }
            results = []
            for size in SIZES:
                out = subprocess.run(
                    [sys.executable, __file__, "--child", str(paths[size]), str(size)],
                    env=env,
                    check=True,
                    capture_output=True,
                    text=True,
                )
                result = json.loads(out.stdout.strip().splitlines()[-1])
                results.append(result)
                print(
                    f"{size:>9,} rows ({result['mb']:.0f} MB, "
                    f"{result['tokens_per_row']:.0f} tokens/row): "
                    f"{result['rows_per_s']:>9,.0f} rows/s in {result['seconds']:.1f}s, "
                    f"peak RSS {result['peak_mb']:.0f} MB",
                    flush=True,
                )
        finally:
            connection.creation.destroy_test_db(old_name, verbosity=0)
    last = results[-1]
    print(f"datasets: {last['rows_per_s']:.0f} rows/s, peak {last['peak_mb']:.0f} MB")


if __name__ == "__main__":
    if len(sys.argv) == 4 and sys.argv[1] == "--child":
        child(Path(sys.argv[2]), int(sys.argv[3]))
    else:
        main()
