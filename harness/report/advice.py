"""What to fix: for each breached SLO, the fault during which it broke and the mesh setting that governs it.

A breach is matched to the faults whose window overlaps the SLO's window; a recovery-phase breach
with none is matched to the last fault before it ("still breached after"); a breach with no fault at
all points at capacity. The setting comes from the declared mesh (MeshView): the VirtualService route
to the faulted service (retries, retryOn, timeout, perTryTimeout, subsets), its DestinationRule
(outlierDetection, connectionPool, localityLbSetting), each named by resource, field and file.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, replace

from harness.mesh.resources import DestinationRule
from harness.report.meshview import MeshView, RouteRef, declared_view
from harness.report.rundata import FaultWindow, RunRecord, SloRow

DEFAULT_RETRIES = ("Istio's default retry policy (2 retries on connect-failure, refused-stream, unavailable, "
                   "cancelled and 503)")
RETRIES = "{attempts: 3, perTryTimeout: 2s, retryOn: 5xx,reset,connect-failure,refused-stream}"
OUTLIER = "{consecutive5xxErrors: 2, interval: 1s, baseEjectionTime: 15s}"
TRAFFIC_POLICY = "spec.trafficPolicy"
POOL_FIX = ("raise http1MaxPendingRequests to the requests in flight at peak load and remove maxRequestsPerConnection "
            "(Istio leaves both unlimited), as harness/mesh/manifests/variants/connection-pool-for-load.yaml does")


@dataclass(frozen=True, kw_only=True)
class Fix:
    """One mesh setting to change, the breaches it explains and the faults they happened under."""

    resource: str  # "VirtualService/ai-agent-routing", or "VirtualService (none for user-service)"
    field: str  # "spec.http[2].retries"
    text: str  # what the setting does under the fault and what to set instead
    file: str | None = None  # the manifest declaring the resource
    faults: tuple[str, ...] = ()  # labels of the faults in effect; empty when none was
    slos: tuple[str, ...] = ()  # "ai-agent-availability in chaos (0.572 against >= 0.995)"


def what_to_fix(run: RunRecord, mesh: MeshView | None = None) -> list[Fix]:
    """Every breached SLO of the run explained by a mesh setting (of the declared mesh unless given), merged
    where several share one."""
    if mesh is None and any(row.breached for row in run.slos):
        mesh = declared_view()  # validating every manifest takes a second: only when there is a breach
    fixes: list[Fix] = []
    for row in run.slos:
        if row.breached and mesh is not None:
            found, after = _fixes_for(row, run, mesh)
            breach = describe_breach(row) + (", after the fault was reverted" if after else "")
            found = found or [_unexplained(row, run)]
            fixes += [replace(fix, slos=(breach,)) for fix in found]
    merged: dict[tuple[str, str, str], Fix] = {}
    for fix in fixes:
        key = (fix.resource, fix.field, fix.text)
        old = merged.get(key)
        merged[key] = fix if old is None else replace(old, faults=_union(old.faults, fix.faults),
                                                      slos=_union(old.slos, fix.slos))
    return list(merged.values())


def describe_breach(row: SloRow) -> str:
    """e.g. "ai-agent-availability in chaos (0.572 against >= 0.995)"."""
    value = "no data" if row.value is None else f"{row.value:.4g}"
    return f"{row.name} in {row.phase} ({value} against {row.comparator} {row.objective:g})"


def _fixes_for(row: SloRow, run: RunRecord, mesh: MeshView) -> tuple[list[Fix], bool]:
    """The fixes for one breach, and whether it came after its fault was reverted."""
    target = row.service or (mesh.ingress_service() if row.source == "client" else None)
    start, end = _request_window(row, run)
    during = [f for f in run.faults if f.overlaps(start, end)]
    if during:
        return [fix for fault in during for fix in _for_fault(row, fault, target, run.faults, mesh)], False
    before = [f for f in run.faults if f.end <= start]
    if before and row.phase == "recovery":
        last = max(before, key=lambda f: f.end)
        return _lingering(row, last, mesh) + _for_fault(row, last, target, run.faults, mesh), True
    return _no_fault(row, target, mesh), False


def _request_window(row: SloRow, run: RunRecord) -> tuple[float, float]:
    """When the requests a row judges were made (its phase), the time base of fault windows. A mesh row's
    own window is in Prometheus' sample time, later by the telemetry lag, so it reaches into the next
    phase: a baseline breach would be matched to the chaos's first fault."""
    return run.phases.get(row.phase, (row.window_start, row.window_end))


def _for_fault(row: SloRow, fault: FaultWindow, target: str | None, faults: Sequence[FaultWindow],
               mesh: MeshView) -> list[Fix]:
    services = mesh.services_in(fault.target) if fault.kind == "region" else [_service(fault, mesh)]
    fixes: list[Fix] = []
    for service in services:
        if fault.kind == "region":
            fixes += _failover(row, fault, service, faults, mesh)
            fixes += _surviving_pool(fault, service, faults, mesh) if row.kind == "availability" else []
        elif fault.kind == "scale":
            fixes += _pool(fault, service, mesh)
        elif row.kind == "latency":
            fixes += _latency(row, fault, service, target, mesh)
        else:
            fixes += _availability(row, fault, service, target, mesh)
    return [replace(fix, faults=(fault.label,)) for fix in fixes]


def _service(fault: FaultWindow, mesh: MeshView) -> str:
    """The service a fault hit: a killed pod's service (or the app the kill recorded), or the target itself."""
    service = mesh.service_of(fault.target)
    if service == fault.target.split(".")[0] and fault.details.get("service"):
        return mesh.service_of(str(fault.details["service"]))
    return service


def _availability(row: SloRow, fault: FaultWindow, service: str, target: str | None, mesh: MeshView) -> list[Fix]:
    routes = mesh.routes_for_tier(service, row.tier if service == target else None)
    if fault.kind == "abort" and fault.details.get("side") == "source":
        status = fault.details.get("http_status", 503)
        dependency = (f"; {target} fails whenever its call to {service} fails, so give that call a fallback "
                      f"in {target}" if target and target != service else "")
        return _retries(service, routes, "", needs="5xx", lead=(
            f"{service} answered {status} to calls as a source-side Istio fault: Istio turns that route's retries off "
            f"(istio#13705) and outlier detection never sees it, so no mesh setting absorbs it{dependency}. "
            f"Against a failing replica (a destination-side fault) retries would: "))
    if fault.kind == "kill":
        reset = not fault.details.get("app_only", False)
        why = ", which does not retry a connection reset by a killed pod" if reset else ""
        return (_retries(service, routes, why, needs="reset" if reset else "5xx")
                + _retry_budget(service, mesh) + _outlier(service, fault, mesh))
    if fault.kind == "abort":
        return _retries(service, routes, "", needs="5xx") + _outlier(service, fault, mesh)
    if fault.kind == "delay":
        return _timeouts(row, fault, service, routes, cut=True)
    return []


def _latency(row: SloRow, fault: FaultWindow, service: str, target: str | None, mesh: MeshView) -> list[Fix]:
    routes = mesh.routes_for_tier(service, row.tier if service == target else None)
    if fault.kind == "delay":
        fixes = _timeouts(row, fault, service, routes, cut=False)
        if target and target != service:
            fixes += _timeouts(row, fault, target, mesh.routes_for_tier(target, row.tier), cut=False,
                               slow_dependency=service)
        return fixes
    objective_s = row.objective / 1000.0
    fixes = [Fix(resource=ref.resource, field=f"{ref.path}.retries.perTryTimeout", file=ref.file, text=(
        f"route {ref.description} allows each attempt perTryTimeout {ref.route.retries.per_try_timeout_s:g}s, far "
        f"above the SLO's {row.objective:g} ms: an attempt stuck on a failing {service} host holds the request that "
        f"long before it is retried; set perTryTimeout to about {row.objective / 2:g}ms"))
        for ref in routes if ref.route.retries and (ref.route.retries.per_try_timeout_s or 0) > objective_s]
    return fixes + _retries(service, routes, "", needs="5xx") + _outlier(service, fault, mesh)


def _retries(service: str, routes: list[RouteRef], why: str, *, needs: str, lead: str = "") -> list[Fix]:
    if not routes:
        return [Fix(resource=f"VirtualService (none for {service})", field="spec.http[].retries", text=(
            f"{lead}no VirtualService routes {service}, so its callers get only {DEFAULT_RETRIES}{why}: declare "
            f"one for host {service} with retries {RETRIES}"))]
    fixes = []
    for ref in routes:
        retries = ref.route.retries
        if retries is None or retries.attempts == 0:
            fixes.append(Fix(resource=ref.resource, field=f"{ref.path}.retries", file=ref.file, text=(
                f"{lead}route {ref.description} declares no retries, so only {DEFAULT_RETRIES} applies{why}: add "
                f"retries {RETRIES}")))
        elif needs not in (retries.retry_on or "").split(","):
            fixes.append(Fix(resource=ref.resource, field=f"{ref.path}.retries.retryOn", file=ref.file, text=(
                f"{lead}route {ref.description} retries only on {retries.retry_on}: add {needs} to retryOn")))
    return fixes


def _timeouts(row: SloRow, fault: FaultWindow, service: str, routes: list[RouteRef], *,
              cut: bool, slow_dependency: str | None = None) -> list[Fix]:
    delay = fault.details.get("delay_ms", "?")
    suggest = f"{row.objective:g}ms" if row.kind == "latency" else "2s"
    subject = f"requests to {service} wait for their slow call to {slow_dependency}" if slow_dependency else \
        f"calls to {service} wait out the {delay} ms delay in full"
    if cut:
        subject = f"the {delay} ms delay on {service} ran into a timeout or the client's patience"
        advice = "add retries with a perTryTimeout below the delay so a slow attempt is retried on another host"
    else:
        advice = (f"set timeout: {suggest} (and retries.perTryTimeout below it) so a slow call is cut and retried; "
                  f"a timeout turns latency into errors, so the caller needs a fallback")
    if not routes:
        return [Fix(resource=f"VirtualService (none for {service})", field="spec.http[].timeout", text=(
            f"no VirtualService routes {service}, so {subject} with no timeout: declare one for host {service}; "
            f"{advice}"))]
    fixes = []
    for ref in routes:
        timeout = ref.route.timeout_s
        if timeout is None:
            fixes.append(Fix(resource=ref.resource, field=f"{ref.path}.timeout", file=ref.file, text=(
                f"route {ref.description} declares no timeout, so {subject}: {advice}")))
        elif row.kind == "latency" and timeout * 1000 > row.objective:
            fixes.append(Fix(resource=ref.resource, field=f"{ref.path}.timeout", file=ref.file, text=(
                f"route {ref.description} has timeout {timeout:g}s, above the SLO's {row.objective:g} ms, so "
                f"{subject}: {advice}")))
        elif cut and ref.route.retries is None:
            fixes.append(Fix(resource=ref.resource, field=f"{ref.path}.retries", file=ref.file, text=(
                f"route {ref.description} cuts calls at timeout {timeout:g}s without retries: {advice}")))
    return fixes


def _retry_budget(service: str, mesh: MeshView) -> list[Fix]:
    """connectionPool.http.maxRetries caps the retries in flight to all of a service's hosts at once
    (Envoy's circuit breaker max_retries; Istio's DestinationRule reference: unset, Istio allows
    2^32-1). When a killed pod's requests all come back 503 together, the retries past the cap are
    not made (Envoy counts them as upstream_rq_retry_overflow) and those requests fail."""
    rule = mesh.destination_rule(service)
    pool = rule.policy.pool if rule is not None and rule.policy is not None else None
    if pool is None or pool.max_retries is None:
        return []
    return [_rule_fix(rule, mesh, f"{TRAFFIC_POLICY}.connectionPool.http.maxRetries", text=(
        f"connectionPool.http.maxRetries {pool.max_retries} lets only {pool.max_retries} retries to {service} run at "
        f"once across all its hosts: when a killed pod's in-flight requests fail together, the retries past "
        f"{pool.max_retries} are not made and those requests fail (Envoy: upstream_rq_retry_overflow); raise it to "
        f"at least the requests in flight at peak load, or remove it (Istio then allows 2^32-1)"))]  # fmt: skip


def _outlier(service: str, fault: FaultWindow, mesh: MeshView) -> list[Fix]:
    rule = mesh.destination_rule(service)
    if rule is None:
        return [Fix(resource=f"DestinationRule (none for {service})", field=f"{TRAFFIC_POLICY}.outlierDetection",
                    text=f"no DestinationRule for {service}, so no outlier detection ejects a failing host: declare "
                         f"one with outlierDetection {OUTLIER}")]
    resource, file = f"DestinationRule/{rule.name}", mesh.file_of("DestinationRule", rule.name)
    outlier = rule.policy.outlier if rule.policy else None
    if outlier is None:
        return [Fix(resource=resource, field=f"{TRAFFIC_POLICY}.outlierDetection", file=file, text=(
            f"declares no outlierDetection for {service}, so a failing host keeps its share of requests: add "
            f"outlierDetection {OUTLIER}"))]
    errors = outlier.consecutive_5xx or outlier.consecutive_gateway_errors or 5
    lasted = fault.end - fault.start
    if outlier.interval_s <= max(1.0, lasted / 4) and errors <= 2:
        return []
    pct = float(fault.details.get("percentage", 100)) / 100 if fault.kind == "abort" else 1.0
    odds = f"; with {pct:.0%} of requests failing, {errors} in a row happen only once in {1 / pct ** errors:.0f}" \
        if pct < 1 else ""
    return [Fix(resource=resource, field=f"{TRAFFIC_POLICY}.outlierDetection", file=file, text=(
        f"outlierDetection ejects a {service} host only after consecutive5xxErrors {errors} and checks every "
        f"interval {outlier.interval_s:g}s, {'longer than' if outlier.interval_s >= lasted else 'much of'} the "
        f"time the fault lasted{odds}: it ejected too late; set "
        f"{OUTLIER}"))]


def _lingering(row: SloRow, fault: FaultWindow, mesh: MeshView) -> list[Fix]:
    """A breach after the fault ended: ejected hosts stay out for baseEjectionTime."""
    if fault.kind not in ("kill", "abort", "region"):
        return []
    window = row.window_end - row.window_start
    services = mesh.services_in(fault.target) if fault.kind == "region" else [_service(fault, mesh)]
    fixes = []
    for service in services:
        rule = mesh.destination_rule(service)
        outlier = rule.policy.outlier if rule and rule.policy else None
        if rule is not None and outlier is not None and outlier.base_ejection_time_s > window:
            fixes.append(_rule_fix(
                rule, mesh, f"{TRAFFIC_POLICY}.outlierDetection.baseEjectionTime", faults=(fault.label,), text=(
                    f"baseEjectionTime {outlier.base_ejection_time_s:g}s keeps an ejected {service} host out that "
                    f"long after it is healthy again (longer each time), beyond the {window:.0f}s recovery window: "
                    f"the remaining hosts carry the load; set baseEjectionTime: 15s")))
    return fixes


def _failover(row: SloRow, fault: FaultWindow, service: str, faults: Sequence[FaultWindow],
              mesh: MeshView) -> list[Fix]:
    region = fault.target
    down = {region} | {f.target for f in faults if f.kind == "region" and f.overlaps(fault.start, fault.end)}
    alive = [r for r in mesh.regions_of(service) if r not in down]
    path = f"{TRAFFIC_POLICY}.loadBalancer.localityLbSetting"
    rule = mesh.destination_rule(service)
    if rule is None or rule.policy is None:
        return [Fix(resource=f"DestinationRule (none for {service})", field=path, text=(
            f"no DestinationRule for {service}, so no locality failover steers its traffic from {region} to "
            f"{', '.join(alive) or 'another region'}: declare one with localityLbSetting failover and "
            f"outlierDetection"))]
    resource, file, policy = f"DestinationRule/{rule.name}", mesh.file_of("DestinationRule", rule.name), rule.policy
    fixes = _subsets_down(service, down, mesh)
    targets = [to for frm, to in policy.failover if frm == region]
    if not alive:
        fixes.append(Fix(resource=resource, field=f"{path}.failover", file=file, text=(
            f"every region with {service} pods ({', '.join(sorted(down))}) was down: no failover can help; run "
            f"{service} in a further region")))
    elif not policy.locality_enabled:
        fixes.append(Fix(resource=resource, field=f"{path}.enabled", file=file, text=(
            f"locality load balancing is off for {service}: enable it with a failover from {region} to {alive[0]}")))
    elif not targets:
        fixes.append(Fix(resource=resource, field=f"{path}.failover", file=file, text=(
            f"has no failover entry from {region} for {service}: add {{from: {region}, to: {alive[0]}}}")))
    elif _failover_end(region, policy.failover, down) in down:
        fixes.append(Fix(resource=resource, field=f"{path}.failover", file=file, text=(
            f"fails {service} over from {region} to {', '.join(targets)}, which was down too, and no entry leads on "
            f"to a region that is up: add {{from: {_failover_end(region, policy.failover, down)}, to: {alive[0]}}}")))
    if policy.outlier is None:
        fixes.append(Fix(resource=resource, field=f"{TRAFFIC_POLICY}.outlierDetection", file=file, text=(
            f"locality failover for {service} acts only with outlierDetection, which is missing: add {OUTLIER}")))
    elif row.kind == "latency" and (policy.pool.connect_timeout_s or 0) * 1000 > row.objective:
        fixes.append(Fix(resource=resource, field=f"{TRAFFIC_POLICY}.connectionPool.tcp.connectTimeout", file=file,
                         text=f"connectTimeout {policy.pool.connect_timeout_s:g}s lets a connection to an unreachable "
                              f"{region} host hang that long before another host is tried: set connectTimeout: 1s"))
    return fixes or _outlier(service, fault, mesh)


def _failover_end(region: str, failover: Sequence[tuple[str, str]], down: set[str]) -> str:
    """Follow the failover entries from a failed region while they lead to failed regions (bounded by their count)."""
    steps = dict(failover)
    current = region
    for _ in range(len(steps)):
        if current not in down or current not in steps:
            break
        current = steps[current]
    return current


def _subsets_down(service: str, down: set[str], mesh: MeshView) -> list[Fix]:
    """Routes sending traffic to a subset whose every pod was in a failed region: failover stays in the subset."""
    fixes = []
    for ref in mesh.routes_to(service):
        for i, destination in enumerate(ref.route.destinations):
            regions = mesh.subset_regions(service, destination.subset) if destination.subset else []
            if regions and set(regions) <= down and destination.weight > 0:
                fixes.append(Fix(resource=ref.resource, field=f"{ref.path}.route[{i}]", file=ref.file, text=(
                    f"route {ref.description} sends {destination.weight}% to subset {destination.subset}, whose pods "
                    f"all run in {', '.join(regions)}, which failed: locality failover cannot leave the subset; "
                    f"run {destination.subset} in another region or shift the weight to a subset that is up")))
    return fixes


def _pool(fault: FaultWindow, service: str, mesh: MeshView) -> list[Fix]:
    rule = mesh.destination_rule(service)
    replicas = fault.details.get("replicas", "fewer")
    if rule is None or rule.policy is None:
        return [Fix(resource=f"DestinationRule (none for {service})", field=f"{TRAFFIC_POLICY}.connectionPool", text=(
            f"with {service} scaled to {replicas}, the remaining pods take all its traffic and nothing sizes "
            f"their connection pool: declare one with connectionPool limits sized for the smaller replica count"))]
    pool = rule.policy.pool
    return [_rule_fix(rule, mesh, f"{TRAFFIC_POLICY}.connectionPool", text=(
        f"with {service} scaled to {replicas}, the remaining pods take all its traffic, but each host accepts at "
        f"most tcp.maxConnections {pool.max_connections} and http.http1MaxPendingRequests "
        f"{pool.http1_max_pending_requests} queued requests, past which Envoy answers 503: raise them for the "
        f"smaller replica count, or keep at least 2 replicas"))]  # fmt: skip


def _no_fault(row: SloRow, target: str | None, mesh: MeshView) -> list[Fix]:
    entry = row.kind == "availability" and target is not None and target == mesh.ingress_service()
    pools = _dependency_pools(target, mesh) if entry else []
    return _target_pool(row, target, mesh) + pools


def _dependency_pools(target: str | None, mesh: MeshView) -> list[Fix]:
    """Requests lost with no fault in effect: the connection pools of the services the target calls. Istio's
    ConnectionPoolSettings.HTTPSettings: past http1MaxPendingRequests requests waiting for a connection to
    a host, the caller's sidecar answers 503 at once (Envoy's circuit breaker max_pending_requests,
    counted as upstream_rq_pending_overflow), and maxRequestsPerConnection closes a connection after that
    many requests, so under load requests wait for new ones; unset, Istio leaves both unlimited. Only for
    the ingress service: its every request fans out to its upstreams, while a leaf service's own losses
    are its own pool's (_target_pool), and the manifests do not say which services are leaves."""
    callers: dict[str, list[str]] = {}
    rules: dict[str, DestinationRule] = {}
    for dependency in mesh.dependencies(target) if target else []:
        rule = mesh.destination_rule(dependency)
        pool = rule.policy.pool if rule is not None and rule.policy is not None else None
        if rule is not None and pool is not None and (
                pool.http1_max_pending_requests is not None or pool.max_requests_per_connection is not None):
            callers.setdefault(rule.name, []).append(dependency)
            rules[rule.name] = rule
    fixes = []
    for name, dependencies in callers.items():
        fixes.append(_rule_fix(rules[name], mesh, f"{TRAFFIC_POLICY}.connectionPool.http", text=(
            f"{target} calls {' and '.join(dependencies)} for each request, and this rule allows each "
            f"{'of their hosts' if len(dependencies) > 1 else 'host'} {_pool_limits(rules[name])}: under load the "
            f"queue overflows and the caller's sidecar answers 503 at once (Envoy: upstream_rq_pending_overflow), so "
            f"{target} fails the request; {POOL_FIX}")))
    return fixes


def _surviving_pool(fault: FaultWindow, service: str, faults: Sequence[FaultWindow], mesh: MeshView) -> list[Fix]:
    """A region down: the service's hosts elsewhere take all its traffic through the same per-host pool
    limits (http1MaxPendingRequests, maxRequestsPerConnection; see _dependency_pools), so a pool sized for
    the load spread over every region overflows on the hosts left."""
    down = {fault.target} | {f.target for f in faults if f.kind == "region" and f.overlaps(fault.start, fault.end)}
    alive = [r for r in mesh.regions_of(service) if r not in down]
    rule = mesh.destination_rule(service)
    pool = rule.policy.pool if rule is not None and rule.policy is not None else None
    if not alive or rule is None or pool is None or (
            pool.http1_max_pending_requests is None and pool.max_requests_per_connection is None):
        return []
    return [_rule_fix(rule, mesh, f"{TRAFFIC_POLICY}.connectionPool.http", text=(
        f"with {', '.join(sorted(down))} down, {service}'s hosts in {', '.join(alive)} take all its traffic, and this "
        f"rule allows each host {_pool_limits(rule)}: past that the callers' sidecars answer 503 at once (Envoy: "
        f"upstream_rq_pending_overflow); size the pool for the traffic the remaining regions must carry: {POOL_FIX}"))]


def _pool_limits(rule: DestinationRule) -> str:
    """e.g. "http1MaxPendingRequests 10 requests waiting for a connection and maxRequestsPerConnection 2 ..."."""
    pool = rule.policy.pool  # type: ignore[union-attr]
    limits = [f"http1MaxPendingRequests {pool.http1_max_pending_requests} requests waiting for a connection"
              ] if pool.http1_max_pending_requests is not None else []
    if pool.max_requests_per_connection is not None:
        limits.append(f"maxRequestsPerConnection {pool.max_requests_per_connection} requests per connection")
    return " and ".join(limits)


def _target_pool(row: SloRow, target: str | None, mesh: MeshView) -> list[Fix]:
    rule = mesh.destination_rule(target) if target else None
    if rule is None or rule.policy is None:
        return [Fix(resource="SLO objective", field=row.name, text=(
            f"breached with no fault in effect: the limit is capacity or the objective, not resilience; check the "
            f"load against {target or 'the service'} and the objective {row.comparator} {row.objective:g}"))]
    pool = rule.policy.pool
    return [_rule_fix(rule, mesh, f"{TRAFFIC_POLICY}.connectionPool", text=(
        f"breached with no fault in effect: the limit is capacity or the objective, not resilience; {target} hosts "
        f"accept tcp.maxConnections {pool.max_connections} and http.http1MaxPendingRequests "
        f"{pool.http1_max_pending_requests}, maxRequestsPerConnection {pool.max_requests_per_connection}: check them "
        f"against the load, or revisit the objective {row.comparator} {row.objective:g}"))]  # fmt: skip


def _rule_fix(rule: DestinationRule, mesh: MeshView, field: str, *, text: str, faults: tuple[str, ...] = ()) -> Fix:
    """A fix to a field of a declared DestinationRule, named with the file that declares it."""
    return Fix(resource=f"DestinationRule/{rule.name}", field=field, file=mesh.file_of("DestinationRule", rule.name),
               faults=faults, text=text)


def _unexplained(row: SloRow, run: RunRecord) -> Fix:
    """A breach no declared setting explains: say so rather than leave it out."""
    faults = tuple(f.label for f in run.faults if f.overlaps(*_request_window(row, run)))
    return Fix(resource="(no mesh setting found)", field=row.name, faults=faults, text=(
        "the routes and DestinationRules on the path already declare what this fault calls for (retries, "
        "timeouts, outlier detection); look at the service itself, the load, or the objective"))


def _union(a: tuple[str, ...], b: tuple[str, ...]) -> tuple[str, ...]:
    return a + tuple(x for x in b if x not in a)
