"""`make run`: the web server, a Celery worker and Celery beat side by side, until Ctrl-C."""

import argparse
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--port", type=int, default=int(os.environ.get("PORT", "8000")))
    args = parser.parse_args()
    python = sys.executable
    var = Path(os.environ.get("ECOLINK_VAR_DIR", ROOT / "var"))
    var.mkdir(parents=True, exist_ok=True)
    commands = {
        "web": [python, "manage.py", "runserver", "--noreload", f"127.0.0.1:{args.port}"],
        "worker": [
            python,
            "-m",
            "celery",
            "-A",
            "worker",
            "worker",
            "--loglevel=INFO",
            "--concurrency=2",
        ],
        "beat": [
            python,
            "-m",
            "celery",
            "-A",
            "worker",
            "beat",
            "--loglevel=INFO",
            "--schedule",
            str(var / "celerybeat-schedule"),
        ],
        # The local inference server for the tiny model, which deployed adapters attach to.
        "inference": [python, "manage.py", "serve_inference", "--port", str(args.port + 100)],
    }
    procs = {name: subprocess.Popen(cmd, cwd=ROOT) for name, cmd in commands.items()}
    print(f"EcoLink is serving on http://127.0.0.1:{args.port} (Ctrl-C stops it)", flush=True)

    def stop(*_):
        for proc in procs.values():
            if proc.poll() is None:
                proc.terminate()

    signal.signal(signal.SIGTERM, stop)
    try:
        while all(proc.poll() is None for proc in procs.values()):
            time.sleep(0.5)
        failed = [name for name, proc in procs.items() if proc.poll() not in (None, 0)]
        if failed:
            print(f"stopped because {', '.join(failed)} exited", file=sys.stderr)
    except KeyboardInterrupt:
        pass
    finally:
        stop()
        for proc in procs.values():
            try:
                proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                proc.kill()
    return 0


if __name__ == "__main__":
    sys.exit(main())
