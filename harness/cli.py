"""The `harness` command line: parses flags, calls the library, maps errors to exit codes.

Exit codes (harness.errors.ExitCode): 0 success; 1 a verdict failed; 2 invalid input or harness
error; 3 inconclusive; 130 interrupted.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path
from typing import Any, Sequence

from harness import environment
from harness.errors import ExitCode, HarnessError
from harness.platforms import DEFAULT_PLATFORM, get_platform, platform_names
from harness.platforms.base import Platform


def _option(parser: Any, *flags: str, env: str, help: str, **kwargs: Any) -> None:
    """A flag declared beside its HARNESS_* variable (as locust's env_var=): the variable, read through
    harness.environment, is the default, and the help names it. A switch is on when the variable is 1."""
    value = environment.get(env)
    if kwargs.get("action") == "store_true":
        kwargs["default"] = value == "1"
        help = f"{help} ({env}=1)"
    else:
        kwargs["default"] = value if value is not None else kwargs.get("default")
        help = f"{help} ({env})"
    parser.add_argument(*flags, help=help, **kwargs)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="harness", description="Mesh resilience harness.")
    sub = parser.add_subparsers(dest="command", required=True)

    def with_platform(p: argparse.ArgumentParser) -> argparse.ArgumentParser:
        _option(p, "--platform", env="HARNESS_PLATFORM", default=DEFAULT_PLATFORM, choices=platform_names(),
                help="where the mesh runs (default: local)")
        kind = p.add_argument_group("kind platform")
        kind.add_argument("--clusters", type=int, choices=(1, 3), default=None,
                          help="one kind cluster, or three regions in one mesh (HARNESS_CLUSTERS)")
        kind.add_argument("--allow-context", default=None, metavar="NAME",
                          help="act on a kube context whose name does not start with kind- (HARNESS_ALLOW_CONTEXT)")
        kind.add_argument("--dry-run", action="store_true", default=None,
                          help="print every command and API call in order and change nothing (HARNESS_DRY_RUN=1)")
        kind.add_argument("--context", default=None, metavar="NAME",
                          help="act on this kube context instead of kind-<name> (HARNESS_CONTEXT)")
        kind.add_argument("--no-create", action="store_true", default=None,
                          help="use the --context cluster as it is: create none, install Istio only if absent, "
                               "touch only the harness's namespaces (HARNESS_NO_CREATE=1)")
        kind.add_argument("--in-cluster", action="store_true", default=None,
                          help="run: Locust as Jobs in the cluster, master and --workers N (HARNESS_IN_CLUSTER=1)")
        kind.add_argument("--max-percent", type=float, default=None, metavar="PCT",
                          help="blast radius: at most this %% of a service's pods down at once (HARNESS_MAX_PERCENT; "
                               "default 50)")
        return p

    up = with_platform(sub.add_parser("up", help="stand up the mesh and wait until it is ready"))
    _option(up, "--profile", env="HARNESS_PROFILE", choices=("dev", "prod"),
            help="dev (access logs) or prod (proxy before app); default: dev")
    with_platform(sub.add_parser("down", help="stop everything the harness started"))
    status = with_platform(sub.add_parser("status", help="show pods, proxies and endpoints"))
    _option(status, "--json", env="HARNESS_JSON", action="store_true", help="machine-readable output")
    apply = with_platform(sub.add_parser("apply", help="apply Istio resources to the running mesh, live"))
    group = apply.add_mutually_exclusive_group(required=True)
    group.add_argument("-f", "--filename", action="append", type=Path, help="a YAML file (repeatable)")
    group.add_argument("--reset", action="store_true", help="return to the declared mesh (same as `harness reset`)")
    apply.add_argument("--delete", action="store_true", help="remove the resources in the files instead")
    with_platform(sub.add_parser("reset", help="return to the declared mesh: Istio resources, app knobs, held "
                                               "pods, scaled Deployments; clears faults left by killed runs"))
    kill = with_platform(sub.add_parser("kill", help="SIGKILL a pod; it is restarted like a ReplicaSet would"))
    kill.add_argument("pod")
    kill.add_argument("--app-only", action="store_true", help="kill only the app, not its sidecar")
    with_platform(sub.add_parser("demo", help="up, a little traffic through the ingress, and where things are"))
    run = with_platform(sub.add_parser("run", help="run a Chaos Toolkit experiment under load and judge its SLOs"))
    run.add_argument("experiment", type=Path, help="an experiment file (YAML or JSON)")
    _option(run, "--report-dir", env="HARNESS_REPORT_DIR", type=Path,
            help="where the run's journal goes; default runs/<time>-<name>/")
    _option(run, "--keep-up", env="HARNESS_KEEP_UP", action="store_true", help="leave the mesh up afterwards")
    _option(run, "--no-progress", env="HARNESS_NO_PROGRESS", action="store_true", help="no live progress line")
    add_load_overrides(run)
    validate = sub.add_parser("validate", help="check experiment files as `run` would, without running them")
    validate.add_argument("experiment", type=Path, nargs="+")
    add_load_overrides(validate)
    suite = with_platform(sub.add_parser("suite", help="run every experiment with a tag, one aggregate report"))
    suite.add_argument("tag", help="e.g. nightly")
    _option(suite, "--experiments-dir", env="HARNESS_EXPERIMENTS_DIR", type=Path, default=Path("experiments"),
            help="where the experiments are; default experiments/")
    _option(suite, "--report-dir", env="HARNESS_REPORT_DIR", type=Path,
            help="where the suite's reports go; default runs/<time>-suite-<tag>/")
    _option(suite, "--keep-up", env="HARNESS_KEEP_UP", action="store_true", help="leave the mesh up afterwards")
    _option(suite, "--no-progress", env="HARNESS_NO_PROGRESS", action="store_true", help="no live progress line")
    signoff = with_platform(sub.add_parser("signoff", help="release go/no-go: every `release` experiment against "
                                                        "its baseline, one report, exit 0 only if all is well"))
    _option(signoff, "--experiments-dir", env="HARNESS_EXPERIMENTS_DIR", type=Path, default=Path("experiments"),
            help="where the experiments are")
    signoff.add_argument("tag", nargs="?", default="release", help="the experiments to run (default: release)")
    _option(signoff, "--tolerance", env="HARNESS_TOLERANCE", default="",
            help="as for compare, e.g. p99=10%%,capacity=10%%")
    _option(signoff, "--baselines", env="HARNESS_BASELINE_DIR", type=Path, default=None,
            help="where baselines are saved (default baselines/)")
    _option(signoff, "--report-dir", env="HARNESS_REPORT_DIR", type=Path, help="where the sign-off report goes")
    _option(signoff, "--keep-up", env="HARNESS_KEEP_UP", action="store_true", help="leave the mesh up afterwards")
    _option(signoff, "--no-progress", env="HARNESS_NO_PROGRESS", action="store_true", help="no live progress line")
    gameday = with_platform(sub.add_parser("gameday", help="walk an experiment step by step with an operator"))
    gameday.add_argument("experiment", type=Path)
    _option(gameday, "--yes", env="HARNESS_YES", action="store_true", help="answer go to every step (a rehearsal)")
    _option(gameday, "--report-dir", env="HARNESS_REPORT_DIR", type=Path,
            help="where the run's journal goes; default runs/<time>-<name>/")
    _option(gameday, "--keep-up", env="HARNESS_KEEP_UP", action="store_true", help="leave the mesh up afterwards")
    report = sub.add_parser("report", help="regenerate report.html, junit.xml and summary.md of a run")
    report.add_argument("run_dir", type=Path)
    compare = sub.add_parser("compare", help="compare a run against a baseline run; regressions exit 1")
    compare.add_argument("run", type=Path)
    compare.add_argument("baseline", type=Path, nargs="?", help="default: the saved baseline of the experiment")
    _option(compare, "--tolerance", env="HARNESS_TOLERANCE", default="",
            help="e.g. p99=10%%,availability=0.1,throughput=10%%,capacity=10%%")
    baseline = sub.add_parser("baseline", help="manage baselines for sign-off")
    baseline_sub = baseline.add_subparsers(dest="baseline_command", required=True)
    save = baseline_sub.add_parser("save", help="mark a run as its experiment's baseline")
    save.add_argument("run", type=Path)
    save.add_argument("--force", action="store_true",
                      help="accept a run that did not PASS (FAIL or INCONCLUSIVE) as the baseline")
    return parser


def add_load_overrides(p: argparse.ArgumentParser) -> None:
    """Load and SLOs over the experiment's own (harness.run.overrides: each also a HARNESS_* variable)."""
    group = p.add_argument_group("load and SLOs (over the experiment's; a plain Chaos Toolkit experiment needs them)")
    group.add_argument("--users", help="concurrent Locust users (HARNESS_USERS)")
    group.add_argument("--rate", help="open-model target, requests/s over all users (HARNESS_RATE)")
    group.add_argument("--duration", help="the load runs at least this long, e.g. 60s (HARNESS_DURATION)")
    group.add_argument("--workers", help="Locust worker processes, at most one per CPU (HARNESS_WORKERS)")
    group.add_argument("--locustfile", help="the Locust file to run (HARNESS_LOCUSTFILE)")
    group.add_argument("--slo-file", help="the SLO file to judge (HARNESS_SLO_FILE)")
    group.add_argument("--slos", help="comma-separated SLO names of that file (HARNESS_SLOS)")


def load_overrides(args: argparse.Namespace) -> Any:
    from harness.run.overrides import FLAGS, collect

    return collect({name: getattr(args, flag[2:].replace("-", "_"), None) for name, (flag, _) in FLAGS.items()},
                   os.environ)


def _print(data: Any, as_json: bool = True) -> None:
    print(json.dumps(data, indent=2, default=str))


def _print_status(status: dict[str, Any]) -> None:
    from rich import box
    from rich.console import Console
    from rich.table import Table

    console = Console()
    console.print(f"platform    [bold]{status['platform']}[/] ({status.get('profile', '')})")
    console.print(f"ingress     {status['ingress_url']}  (Host: {status.get('ingress_host', '')})", soft_wrap=True)
    console.print(f"prometheus  {status['prometheus_url']}")
    # Every cell whole: on a narrow terminal, fewer columns (`status --json` has every field).
    columns = ["pod", "service", "ver", "region", "ready", "restarts", "pid", "sidecar pid", "admin", "inbound"]
    if console.width < 110:
        columns = ["pod", "ready", "restarts", "pid", "sidecar pid", "inbound"]
    table = Table(*columns, box=box.SIMPLE_HEAD, pad_edge=False)
    for pod in status["pods"]:
        cells = {"pod": pod["name"], "service": pod["service"], "ver": pod["version"], "region": pod["region"],
                 "ready": "yes" if pod["ready"] else "[red]no[/]", "restarts": str(pod["restarts"]),
                 "pid": str(pod["pid"]), "sidecar pid": str(pod["sidecar_pid"]),
                 "admin": pod["sidecar_admin_url"].rsplit(":", 1)[-1], "inbound": str(pod["inbound_port"])}
        table.add_row(*(cells[c] for c in columns))
    console.print(table)


def platform_options(args: argparse.Namespace) -> dict[str, Any]:
    return {key: getattr(args, key, None) for key in ("clusters", "allow_context", "dry_run", "context", "no_create",
                                                      "in_cluster", "max_percent")}


def run(args: argparse.Namespace) -> int:
    if args.command in ("run", "validate", "suite", "gameday", "report", "compare", "baseline", "signoff"):
        if args.command not in ("run", "suite", "gameday", "signoff"):  # those clean the faults up themselves
            _report_orphans(None)
        return _dispatch(args, None)
    platform = get_platform(args.platform, **platform_options(args))
    if args.command not in ("up", "reset", "down") and not getattr(args, "reset", False) and not args.dry_run:
        _report_orphans(platform)
    return _dispatch(args, platform)


def _report_orphans(platform: Platform) -> None:
    """Faults recorded by a process that is gone: one stderr line each (`harness reset` clears them)."""
    from harness.chaos.audit import report_orphans

    if platform is None:
        try:
            platform = get_platform(environment.get("HARNESS_PLATFORM") or DEFAULT_PLATFORM)
        except HarnessError:
            return
    for line in report_orphans(platform):
        print(f"{line}; `harness reset` undoes it", file=sys.stderr)


def _reset(platform: Platform) -> None:
    from harness.chaos.audit import reset_mesh

    result = reset_mesh(platform)
    for line in result.get("orphans_cleared", []):
        print(f"harness: cleared a fault of a process that is gone: {line}", file=sys.stderr)
    for line in result.get("live_entries", []):
        print(f"harness: a running process still has a fault recorded (it undoes it itself): {line}",
              file=sys.stderr)
    if not _print_steps(platform):
        _print(result)


def _print_steps(platform: Platform) -> bool:
    """A dry run's ordered commands and API calls; True when there were any to print."""
    for step in platform.steps:
        print(step)
    return bool(platform.steps)


def _dispatch(args: argparse.Namespace, platform: Platform) -> int:
    if args.command == "up":
        if not args.dry_run:
            from harness.chaos.audit import clean_orphans

            for record in clean_orphans(platform):  # before anything else
                print(f"harness: cleaned up a fault of a process that is gone: {record['description']} "
                      f"(left by pid {record['owner_pid']}): {record['outcome']}", file=sys.stderr)
        status = platform.up(profile=args.profile)
        if status.get("dry_run"):
            for step in status["dry_run"]:
                print(step)
            return 0
        if status.get("already_up"):
            print(f"the mesh is already up ({status['platform']}); nothing changed")
        for what, how in (status.get("install") or {}).items():  # kind: image loading, CA, Istio found
            print(f"{what}: {how}")
        _print_status(status)
    elif args.command == "down":
        stopped = platform.down()
        if not _print_steps(platform):
            print(platform.describe_down(stopped))
    elif args.command == "status":
        status = platform.status()
        _print(status) if args.json else _print_status(status)
    elif args.command == "apply":
        if args.reset:
            _reset(platform)
            return 0
        result = platform.apply(args.filename, delete=args.delete)
        if not _print_steps(platform):
            _print(result)
    elif args.command == "reset":
        _reset(platform)
    elif args.command == "kill":
        result = platform.kill(args.pod, app_only=args.app_only)
        if not _print_steps(platform):
            _print(result)
    elif args.command == "run":
        from harness.run.runner import run_file

        outcome = run_file(args.experiment, platform_name=args.platform, report_dir=args.report_dir,
                           keep_up=args.keep_up, progress=not args.no_progress,
                           platform_options=platform_options(args), overrides=load_overrides(args))
        return outcome.exit_code
    elif args.command == "suite":
        from harness.suite import run_suite

        outcome = run_suite(args.tag, experiments_dir=args.experiments_dir, platform_name=args.platform,
                            report_dir=args.report_dir, keep_up=args.keep_up, progress=not args.no_progress)
        print(f"suite report: {outcome.report_dir / 'index.html'}  junit: {outcome.junit}")
        return outcome.exit_code
    elif args.command == "signoff":
        from harness.suite.signoff import SIGNOFF_MD, run_signoff

        result = run_signoff(experiments_dir=args.experiments_dir, platform_name=args.platform, tolerance=args.tolerance,
                             report_dir=args.report_dir, store=args.baselines, tag=args.tag, keep_up=args.keep_up,
                             progress=not args.no_progress)
        print((result.report_dir / SIGNOFF_MD).read_text())
        print(f"sign-off report: {result.report_dir / SIGNOFF_MD}")
        return result.exit_code
    elif args.command == "gameday":
        from harness.suite import run_gameday

        return run_gameday(args.experiment, platform_name=args.platform, report_dir=args.report_dir, yes=args.yes,
                           keep_up=args.keep_up)
    elif args.command == "report":
        from harness.report import regenerate_report

        report = regenerate_report(args.run_dir)
        for path in report.written:
            print(f"wrote {path}")
        print(f"verdict: {report.run.verdict} (exit {report.run.exit_code}), resilience score {report.score}")
    elif args.command == "compare":
        from harness.report import compare_with_baseline, comparison_exit_code, render_comparison

        comparison = compare_with_baseline(args.run, args.baseline, args.tolerance)
        print(render_comparison(comparison), end="")
        return comparison_exit_code(comparison)
    elif args.command == "baseline":
        from harness.report import save_run_as_baseline

        saved = save_run_as_baseline(args.run, force=args.force)
        print(f"saved {args.run} ({saved.run.verdict}) as the baseline of {saved.run.title!r}: {saved.path}")
    elif args.command == "validate":
        from harness.run.runner import check_only
        from harness.run.validate import code_it_runs, load_experiment_file

        overrides = load_overrides(args)
        for path in args.experiment:
            check_only(path, overrides)
            print(f"{path}: valid")
            for line in code_it_runs(load_experiment_file(path)):  # experiments are code: say which
                print(f"  runs with your rights: {line}")
    elif args.command == "demo":
        from harness.demo import demo

        return demo(platform)
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        from harness.tracing import configure_tracing

        configure_tracing()
        return run(args)
    except HarnessError as exc:
        print(f"harness: error: {exc}", file=sys.stderr)
        return exc.exit_code
    except KeyboardInterrupt:
        print("harness: interrupted", file=sys.stderr)
        return ExitCode.INTERRUPTED


if __name__ == "__main__":
    sys.exit(main())
