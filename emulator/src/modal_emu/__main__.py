"""Command line: ``python -m modal_emu serve|stop|env``.

python -m modal_emu serve --state-dir .modal-local            # foreground
python -m modal_emu serve --state-dir .modal-local --detach   # background, returns when ready
eval "$(python -m modal_emu env --state-dir .modal-local)"    # point modal at it
python -m modal_emu preempt --state-dir .modal-local   # rehearse a GPU preemption of running inputs
python -m modal_emu stop --state-dir .modal-local
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import fcntl
import io
import logging
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from .lifeline import alive
from .local import client_env
from .preempt import PreemptError, ask, valid_grace


def _print_env(url: str, state_dir: Path) -> None:
    for key, value in client_env(url, state_dir).items():
        print(f"export {key}={value}")


def _read_url(state_dir: Path) -> str | None:
    path = state_dir / "url"
    return path.read_text().strip() if path.exists() else None


def _served_dir(pid: int) -> Path | None:
    """The state folder that process ``pid`` serves, if it is an emulator server (``modal_emu serve``,
    not the ``--detach`` that launches one): read from its command line and working folder in /proc."""
    try:
        argv = [os.fsdecode(arg) for arg in Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")[:-1]]
    except OSError:
        return None
    at = next((i for i, arg in enumerate(argv) if arg == "modal_emu" or Path(arg).name == "modal-emu"), None)
    if at is None or argv[at + 1 : at + 2] != ["serve"]:
        return None
    try:
        cwd = os.readlink(f"/proc/{pid}/cwd")
        with contextlib.redirect_stderr(io.StringIO()):
            args, _ = build_parser().parse_known_args(argv[at + 1 :])
    except (OSError, SystemExit):
        return None
    return None if args.detach else Path(cwd, args.state_dir).resolve()


def servers(state_dir: Path) -> list[int]:
    """The pids of the running servers of ``state_dir``, this process aside. Found by their command
    lines, not by the folder's ``server.pid``: a state folder deleted while its server ran must not
    hide that server (it would be left running, and a second one started beside it). Without /proc
    (macOS), ``server.pid`` is all there is to go by."""
    if not Path("/proc/self/cmdline").exists():
        pid = _recorded_pid(state_dir)
        return [pid] if pid is not None and pid != os.getpid() and alive(pid) else []
    target = Path(state_dir).resolve()
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit() and int(entry.name) != os.getpid() and _served_dir(int(entry.name)) == target:
            found.append(int(entry.name))
    return sorted(pid for pid in found if alive(pid))


def _recorded_pid(state_dir: Path) -> int | None:
    try:
        return int((state_dir / "server.pid").read_text().strip() or 0) or None
    except (OSError, ValueError):
        return None


def _pid(state_dir: Path) -> int | None:
    return next(iter(servers(state_dir)), None)


def _files_gone(state_dir: Path, pid: int) -> str:
    """The error for a server whose files in its state folder are gone (the folder deleted while it ran)."""
    return (
        f"error: an emulator (pid {pid}) still serves {state_dir}, but its files there are gone (deleted while "
        f"it ran?): stop it with `python -m modal_emu stop --state-dir {state_dir}` (`make local-down` in a "
        "generated project), then start it again"
    )


def _has_its_files(state_dir: Path, pid: int) -> bool:
    return _recorded_pid(state_dir) == pid and _read_url(state_dir) is not None


def serve(args: argparse.Namespace) -> int:
    from .core import Config
    from .handlers.billing import load_rates
    from .service import run_forever

    state_dir = Path(args.state_dir)
    try:
        rates = load_rates(args.billing_rates) if args.billing_rates else {}
    except ValueError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    if args.detach:
        if args.billing_rates:  # the detached server reads it wherever it runs
            args.billing_rates = str(Path(args.billing_rates).resolve())
        return _detach(args, state_dir)
    if (pid := _pid(state_dir)) is not None:
        if not _has_its_files(state_dir, pid):
            print(_files_gone(state_dir, pid), file=sys.stderr)
            return 1
        stop_it = f"python -m modal_emu stop --state-dir {state_dir}"
        print(f"error: an emulator (pid {pid}) already serves {state_dir}; stop it first: {stop_it}", file=sys.stderr)
        return 1
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s")
    if args.verbose:  # our own lines only: the HTTP/2 libraries' debug output is megabytes per sweep
        logging.getLogger("modal_emu").setLevel(logging.DEBUG)
    config = Config(
        state_dir=state_dir,
        port=args.port,
        latency_ms=args.latency,
        concurrency=args.concurrency,
        result_ttl_s=args.result_ttl,
        container_idle_s=args.scaledown_window,
        heartbeat_timeout_s=args.heartbeat_timeout,
        mount_volumes=args.mount_volumes,
        billing_rates=rates,
    )
    asyncio.run(run_forever(config, on_ready=lambda url: _print_env(url, state_dir)))
    return 0


def serve_argv(parser: argparse.ArgumentParser, args: argparse.Namespace) -> list[str]:
    """The options of ``args`` as a command line for ``parser``, less ``--detach``: derived from
    the parser, so that every option (one added later too) reaches the detached server."""
    argv = []
    for action in parser._actions:
        if not action.option_strings or action.dest in ("help", "detach"):
            continue
        value, flag = getattr(args, action.dest), action.option_strings[-1]
        if action.nargs == 0:  # a flag: given when its value is what giving it sets
            if value == action.const:
                argv.append(flag)
        elif value is not None:
            argv += [flag, str(value)]
    return argv


def _detach(args: argparse.Namespace, state_dir: Path) -> int:
    """Start a server in the background, or find the one running. Two at once (two terminals' `make
    local-up`) take turns: the second finds the first's server once it is up, instead of taking it for
    one whose files were deleted."""
    state_dir.mkdir(parents=True, exist_ok=True)
    with open(state_dir / ".detach.lock", "a") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # released when the file closes, also if this process dies
        return _detach_alone(args, state_dir)


def _detach_alone(args: argparse.Namespace, state_dir: Path) -> int:
    if (pid := _pid(state_dir)) is not None:
        if not _has_its_files(state_dir, pid):
            print(_files_gone(state_dir, pid), file=sys.stderr)
            return 1
        print(f"already running (pid {pid})", file=sys.stderr)
        _print_env(_read_url(state_dir) or "", state_dir)
        return 0
    (state_dir / "url").unlink(missing_ok=True)
    args.state_dir = str(state_dir.resolve())  # the server's command line names its folder wherever it runs
    argv = [sys.executable, "-m", "modal_emu", "serve", *serve_argv(args.parser, args)]
    with open(state_dir / "server.log", "ab") as log:
        proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=log, stderr=log, start_new_session=True)
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        if url := _read_url(state_dir):
            print(f"local Modal emulator running (pid {proc.pid}), state in {state_dir}", file=sys.stderr)
            _print_env(url, state_dir)
            return 0
        if proc.poll() is not None:
            break
        time.sleep(0.05)
    tail = (state_dir / "server.log").read_text(errors="replace").strip().splitlines()[-1:] or ["no output"]
    print(f"error: the emulator did not start: {tail[0]} (see {state_dir / 'server.log'})", file=sys.stderr)
    return 1


def stop(args: argparse.Namespace) -> int:
    state_dir = Path(args.state_dir)
    pids = servers(state_dir)
    if not pids:
        print("not running", file=sys.stderr)
        return 0
    for pid in pids:  # one, unless an older version started a second beside a deleted folder's
        try:
            os.kill(pid, signal.SIGTERM)
        except ProcessLookupError:
            continue
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline and alive(pid):
            time.sleep(0.05)
        if alive(pid):
            os.kill(pid, signal.SIGKILL)
        print(f"stopped (pid {pid})", file=sys.stderr)
    return 0


def env(args: argparse.Namespace) -> int:
    state_dir = Path(args.state_dir)
    url, pid = _read_url(state_dir), _pid(state_dir)
    if pid is not None and not _has_its_files(state_dir, pid):
        print(_files_gone(state_dir, pid), file=sys.stderr)
        return 1
    if url is None or pid is None:
        print(f"error: no emulator running for {state_dir}: run `python -m modal_emu serve --detach`", file=sys.stderr)
        return 1
    _print_env(url, state_dir)
    return 0


def preempt(args: argparse.Namespace) -> int:
    state_dir = Path(args.state_dir)
    if (pid := _pid(state_dir)) is None:
        print(f"error: no emulator running for {state_dir}: run `python -m modal_emu serve --detach`", file=sys.stderr)
        return 1
    try:
        preempted = ask(state_dir, pid, args.call, args.grace)
    except (PreemptError, OSError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("interrupted: the request is withdrawn (inputs already preempted stay so)", file=sys.stderr)
        return 130
    if not preempted:
        which = f"of {args.call} " if args.call else ""
        print(f"error: no input {which}is running: nothing to preempt", file=sys.stderr)
        return 1
    for call_id, idx in preempted:
        print(f"preempted {call_id} input {idx}: SIGINT now, SIGKILL after {args.grace:g} s, then restarted")
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="modal_emu", description="Local emulator of Modal's API (127.0.0.1 only).")
    sub = parser.add_subparsers(dest="command", required=True)
    p_serve = sub.add_parser("serve", help="run the emulator")
    p_serve.add_argument("--state-dir", default=".modal-local", help="where state, files and logs live")
    p_serve.add_argument("--port", type=int, default=0, help="gRPC port on 127.0.0.1 (0 = any free port)")
    p_serve.add_argument("--latency", type=float, default=0.0, metavar="MS", help="delay added to every RPC")
    p_serve.add_argument("--concurrency", type=int, default=8, help="inputs running at once")
    p_serve.add_argument(
        "--result-ttl", type=float, default=7 * 24 * 3600, metavar="S", help="seconds a result is kept (Modal: 7 days)"
    )
    p_serve.add_argument(
        "--scaledown-window",
        type=float,
        default=60.0,
        metavar="S",
        help="seconds an idle container stays warm for the next input (Modal's scaledown_window)",
    )
    p_serve.add_argument(
        "--heartbeat-timeout",
        type=float,
        default=60.0,
        metavar="S",
        help="stop an ephemeral app (modal run) whose client sent no heartbeat for this long",
    )
    p_serve.add_argument(
        "--billing-rates",
        metavar="FILE.json",
        help='USD per second by rate key, e.g. {"gpu.H100": 0.001097, "cpu": 0.0000131}: the billing RPCs '
        "answer from these (without them they answer PERMISSION_DENIED, as without billing access)",
    )
    p_serve.add_argument("--detach", action="store_true", help="start in the background and return when ready")
    p_serve.add_argument("--verbose", action="store_true", help="log every RPC")
    p_serve.add_argument(
        "--no-mount-volumes",
        dest="mount_volumes",
        action="store_false",
        help="never mount Volumes at their mount paths (code finds them through MODAL_EMU_VOLUMES)",
    )
    p_serve.set_defaults(func=serve, parser=p_serve)
    for name, func, text in (("stop", stop, "stop a detached emulator"), ("env", env, "print the client environment")):
        p = sub.add_parser(name, help=text)
        p.add_argument("--state-dir", default=".modal-local")
        p.set_defaults(func=func)
    p_preempt = sub.add_parser(
        "preempt", help="take back the containers of running inputs, as Modal preempts one: SIGINT, grace, restart"
    )
    p_preempt.add_argument("--state-dir", default=".modal-local")
    p_preempt.add_argument("--call", metavar="FC_ID", help="only the inputs of this function call (default: all)")
    p_preempt.add_argument(
        "--grace", type=float, default=30.0, metavar="S", help="seconds between SIGINT and SIGKILL (default 30)"
    )
    p_preempt.set_defaults(func=preempt, parser=p_preempt)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.command == "preempt" and valid_grace(args.grace) is None:
        args.parser.error(f"--grace {args.grace:g}: give the seconds between SIGINT and SIGKILL, 0 or more")
    if args.command == "preempt" and args.call is not None and not args.call.startswith("fc-"):
        args.parser.error(f"--call {args.call}: not a function call id (those start with fc-)")
    if getattr(args, "concurrency", 1) < 1:
        parser.error("--concurrency must be at least 1")
    return args.func(args)


if __name__ == "__main__":
    sys.exit(main())
