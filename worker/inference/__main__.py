"""Entry point: load the base model once, then serve until SIGTERM or Ctrl-C."""

import argparse
import logging
import signal
import sys
import threading


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m worker.inference", description=__doc__)
    parser.add_argument("--model", required=True, help="Folder of the base model (HF format).")
    parser.add_argument(
        "--served-model-name", required=True, help="The name requests use for the bare base."
    )
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8100)
    parser.add_argument("--device", default="cpu")
    args = parser.parse_args(argv)
    logging.basicConfig(
        level=logging.INFO, stream=sys.stderr, format="%(asctime)s %(levelname)s %(message)s"
    )

    from worker.inference.engine import Engine
    from worker.inference.server import serve

    engine = Engine(args.model, served_name=args.served_model_name, device=args.device)
    server = serve(engine, args.host, args.port)

    def stop(*_: object) -> None:
        threading.Thread(target=server.shutdown, daemon=True).start()

    signal.signal(signal.SIGTERM, stop)
    logging.info("serving %s on http://%s:%s", args.served_model_name, args.host, args.port)
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        server.server_close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
