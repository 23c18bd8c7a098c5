"""Watch a study in optuna-dashboard: ``python -m search.dashboard --study mnist``.

Serves the study's storage (where ``python -m search.run`` put it) and its artifact store,
so each trial's page lists its accuracy and loss curves. Binds to 127.0.0.1 unless told
otherwise; the page updates while the study runs. Ctrl-C stops it.
"""

from __future__ import annotations

import argparse
import socketserver
import sys
import wsgiref.simple_server

from search import signals

if __name__ == "__main__":  # before the imports below: a Ctrl-C while they load is no traceback
    signals.quiet_start()

import optuna_dashboard  # noqa: E402

from search import cli  # noqa: E402
from search.errors import SearchError  # noqa: E402
from search.locations import locate_stored  # noqa: E402
from search.study import artifact_store  # noqa: E402
from search.study.storage import open_for_reading  # noqa: E402


class _Server(socketserver.ThreadingMixIn, wsgiref.simple_server.WSGIServer):
    daemon_threads = True  # a browser's open connection must not keep Ctrl-C waiting


class _QuietHandler(wsgiref.simple_server.WSGIRequestHandler):
    def log_message(self, format: str, *args: object) -> None:  # one line per request is noise
        pass


def build_parser() -> argparse.ArgumentParser:
    parser = cli.Parser("python -m search.dashboard", __doc__)
    cli.add_study_flags(parser, "watch")
    parser.add_argument("--host", default="127.0.0.1",
                        help="address to listen on (default 127.0.0.1: this machine only)")
    parser.add_argument("--port", type=int, default=8080,
                        help="port to listen on (default 8080; 0 picks a free one)")
    return parser


def make_server(args: argparse.Namespace) -> tuple[wsgiref.simple_server.WSGIServer, str]:
    """The dashboard's HTTP server, bound but not yet serving, and its URL."""
    if not 0 <= args.port <= 65535:
        raise SearchError(f"--port must lie in 0..65535, not {args.port}")
    locations = locate_stored(args.study, args.storage, args.studies_dir, args.artifacts)
    rdb = open_for_reading(locations.storage_url, args.study)
    study_id = rdb.get_study_id_from_name(args.study)
    # Not checked here: a study that has attached nothing yet simply lists no artifacts.
    store = artifact_store.open_store(locations.artifacts)
    app = optuna_dashboard.wsgi(rdb, artifact_store=store)
    try:
        server = wsgiref.simple_server.make_server(args.host, args.port, app,
                                                   server_class=_Server,
                                                   handler_class=_QuietHandler)
    except OSError as error:
        raise SearchError(f"cannot listen on {args.host}:{args.port} ({error.strerror}); "
                          "pick another --port (or check --host)") from None
    host, port = server.server_address[:2]
    shown = f"[{host}]" if ":" in host else host
    return server, f"http://{shown}:{port}/dashboard/studies/{study_id}"


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        server, url = make_server(args)
    except SearchError as error:
        print(f"error: {error}", file=sys.stderr)
        return 1
    print(f"optuna-dashboard for study '{args.study}': {url}  (Ctrl-C stops it)", flush=True)
    with signals.interrupts_noted():
        try:
            signals.raise_if_interrupted()  # one that came while it started
            server.serve_forever()
        except KeyboardInterrupt:
            pass
        finally:
            server.server_close()
    return 0


if __name__ == "__main__":
    cli.run_command(main)
