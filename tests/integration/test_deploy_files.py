"""The deployment files, checked without a container engine or a cluster.

* compose: parses, references only services and volumes it defines, builds from Dockerfiles
  whose COPY sources exist, runs LoopLabel commands the CLI accepts, and its environment makes
  valid Settings that point at its own postgres/redis/minio services;
* Kubernetes: every manifest validates against the Kubernetes JSON schemas (bundled by the
  ``kubernetes-validate`` package, offline, strict: unknown fields fail) for the oldest and the
  newest supported version; the KEDA ScaledObject (a CRD, not in those schemas) passes a
  structural check; the kustomization lists exactly the manifest files; names referenced
  across manifests (ConfigMap, Secret, Service, Deployment, probe routes) exist.
"""

from __future__ import annotations

import re
import shlex
import tomllib
from pathlib import Path
from urllib.parse import urlsplit

import click
import kubernetes_validate
import pytest
import yaml

from backend.cli import main as cli_main
from backend.config import Settings

REPO = Path(__file__).resolve().parents[2]
DEPLOY = REPO / "deploy"
K8S = DEPLOY / "k8s"
K8S_VERSIONS = ("1.27.0", kubernetes_validate.utils.latest_version())
APP_SERVICES = ("migrations", "web", "worker", "trainer", "scheduler")


# --- loading --------------------------------------------------------------------------------------
class Reset:
    """Compose's ``!reset`` / ``!override`` tags in an override file."""

    def __init__(self, tag: str, value):
        self.tag, self.value = tag, value


class ComposeLoader(yaml.SafeLoader):
    pass


def _tagged(loader, tag_suffix, node):
    if isinstance(node, yaml.MappingNode):
        value = loader.construct_mapping(node, deep=True)
    elif isinstance(node, yaml.SequenceNode):
        value = loader.construct_sequence(node, deep=True)
    else:
        value = loader.construct_scalar(node)
    return Reset(tag_suffix, value)


ComposeLoader.add_multi_constructor("!", _tagged)


def load_compose(name: str) -> dict:
    return yaml.load((DEPLOY / name).read_text(), Loader=ComposeLoader)


@pytest.fixture(scope="module")
def compose() -> dict:
    return load_compose("compose.yaml")


def k8s_documents(path: Path) -> list[dict]:
    return [d for d in yaml.safe_load_all(path.read_text()) if d]


def kustomization() -> dict:
    return yaml.safe_load((K8S / "kustomization.yaml").read_text())


def kustomized_documents() -> list[dict]:
    return [d for name in kustomization()["resources"] for d in k8s_documents(K8S / name)]


def find(docs, kind: str, name: str) -> dict:
    matches = [d for d in docs if d["kind"] == kind and d["metadata"]["name"] == name]
    assert len(matches) == 1, f"expected one {kind} {name!r}, found {len(matches)}"
    return matches[0]


def pod_specs(docs):
    for d in docs:
        if d["kind"] in ("Deployment", "Job"):
            yield d, d["spec"]["template"]["spec"]


def containers(pod_spec):
    return list(pod_spec.get("initContainers", [])) + list(pod_spec["containers"])


_VAR = re.compile(r"\$\$|\$\{([A-Za-z_][A-Za-z0-9_]*)(?:(:?[-?])([^}]*))?\}")


def interpolate(text: str, env: dict[str, str]) -> str:
    """Compose variable interpolation: ${VAR}, ${VAR:-default}, ${VAR-default}, ${VAR:?err}, $$."""

    def replace(m):
        if m.group(0) == "$$":
            return "$"
        name, op, arg = m.group(1), m.group(2), m.group(3)
        value = env.get(name)
        if op == ":-":
            return value if value else arg
        if op == "-":
            return arg if value is None else value
        if op in (":?", "?"):
            if not value:
                raise AssertionError(f"compose requires ${name}: {arg}")
            return value
        return value or ""

    return _VAR.sub(replace, text)


def parse_cli(argv: list[str]) -> tuple[list[str], dict]:
    """Resolve ``looplabel ARGV`` with the real click CLI without running it.

    Returns the command path (e.g. ``["db", "upgrade"]``) and the parsed parameters; raises
    click.UsageError for an unknown command, option or choice.
    """
    assert argv[0] == "looplabel", f"not a looplabel command: {argv}"
    command, ctx, path = cli_main, cli_main.make_context("looplabel", list(argv[1:])), []
    while isinstance(command, click.Group):
        rest = list(ctx.__dict__.get("_protected_args") or []) + list(ctx.args)
        if not rest:
            raise click.UsageError(f"{' '.join(argv)}: no subcommand")
        name, command, rest = command.resolve_command(ctx, rest)
        path.append(name)
        ctx = command.make_context(name, rest, parent=ctx)
    return path, ctx.params


def argv_of(command) -> list[str]:
    return shlex.split(command) if isinstance(command, str) else list(command)


def app_routes() -> set[str]:
    """Rules of the real app (built on a throwaway SQLite instance)."""
    import tempfile

    from backend.app import build_app
    from backend.api import ops
    from backend.observability import init_observability

    with tempfile.TemporaryDirectory() as tmp:
        settings = Settings.from_env({"LOOPLABEL_INSTANCE": tmp, "SECRET_KEY": "x"})
        app = build_app(settings)
        if "ops" not in app.blueprints:  # until backend/app.py registers it
            app.register_blueprint(ops.bp)
            init_observability(app)
        app.extensions["looplabel"].close()
        return {rule.rule for rule in app.url_map.iter_rules()}


# --- Dockerfiles ------------------------------------------------------------------------------------
def dockerfile_stages(path: Path) -> list[list[str]]:
    """Instructions (continuation lines joined) grouped by FROM stage."""
    text = re.sub(r"\\\n", " ", path.read_text())
    stages: list[list[str]] = []
    for line in text.splitlines():
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        if line.upper().startswith("FROM "):
            stages.append([])
        if stages:
            stages[-1].append(line)
    return stages


@pytest.mark.parametrize("name", ["Dockerfile", "Dockerfile.gpu"])
def test_dockerfile_final_stage_runs_as_a_non_root_user(name):
    final = dockerfile_stages(DEPLOY / name)[-1]
    users = [line.split(None, 1)[1] for line in final if line.upper().startswith("USER ")]
    assert users, f"{name}: the final stage sets no USER"
    assert users[-1].split(":")[0] not in ("root", "0")


def test_cpu_image_has_no_build_tools_in_its_final_stage():
    stages = dockerfile_stages(DEPLOY / "Dockerfile")
    assert len(stages) >= 2, "multi-stage build expected: compile in one stage, run in another"
    final = " ".join(stages[-1])
    for tool in ("build-essential", "gcc", "g++", "make ", "-dev "):
        assert tool not in final, f"{tool!r} in the final stage"
    assert "COPY --from=build /opt/venv" in final


def test_gpu_image_builds_on_a_cuda_tensorflow_base():
    first_from = dockerfile_stages(DEPLOY / "Dockerfile.gpu")[0][0]
    assert re.search(r"tensorflow/tensorflow:\$\{TF_VERSION\}-gpu|tensorflow/tensorflow:[\d.]+-gpu", first_from)


@pytest.mark.parametrize("name", ["Dockerfile", "Dockerfile.gpu"])
def test_dockerfile_copy_sources_exist_and_are_not_ignored(name):
    ignore = (DEPLOY / f"{name}.dockerignore").read_text().splitlines()
    allowed = [p[1:].rstrip("/") for p in ignore if p.startswith("!")]
    assert "*" in ignore, "the .dockerignore is an allow-list"
    for stage in dockerfile_stages(DEPLOY / name):
        for line in stage:
            parts = line.split()
            if parts[0].upper() != "COPY" or any(p.startswith("--from") for p in parts):
                continue
            for source in [p for p in parts[1:-1] if not p.startswith("--")]:
                assert (REPO / source).exists(), f"{name}: COPY {source} does not exist"
                assert any(source.rstrip("/") == a or source.startswith(a + "/") for a in allowed), (
                    f"{name}: COPY {source} is excluded by {name}.dockerignore"
                )


# --- compose ------------------------------------------------------------------------------------------
def test_compose_defines_the_full_stack(compose):
    expected = {"web", "worker", "trainer", "migrations", "scheduler", "postgres", "redis", "minio", "minio-init"}
    assert expected <= set(compose["services"])


def test_compose_references_only_defined_services_and_volumes(compose):
    services, volumes = compose["services"], set(compose.get("volumes") or {})
    used_volumes = set()
    for name, svc in services.items():
        assert "image" in svc or "build" in svc, f"{name}: neither image nor build"
        deps = svc.get("depends_on") or {}
        for dep, cond in (deps.items() if isinstance(deps, dict) else ((d, {}) for d in deps)):
            assert dep in services, f"{name} depends on undefined service {dep!r}"
            condition = (cond or {}).get("condition", "service_started")
            assert condition in ("service_started", "service_healthy", "service_completed_successfully")
            if condition == "service_healthy":
                assert "healthcheck" in services[dep], f"{name} waits for {dep} to be healthy; it has no healthcheck"
            if condition == "service_completed_successfully":
                assert services[dep].get("restart") == "no", f"{dep} is waited on to finish; it must not restart"
        for mount in svc.get("volumes", []):
            source = mount.split(":")[0] if isinstance(mount, str) else mount.get("source")
            if source and not source.startswith((".", "/", "~")):
                assert source in volumes, f"{name} mounts undeclared volume {source!r}"
                used_volumes.add(source)
    assert used_volumes == volumes, f"declared but unused volumes: {volumes - used_volumes}"


def test_compose_has_healthchecks_for_the_long_running_services(compose):
    for name in ("postgres", "redis", "minio", "web", "worker", "trainer"):
        check = compose["services"][name].get("healthcheck")
        assert check and check.get("test"), f"{name} has no healthcheck"
        test = check["test"]
        if test[0] == "CMD" and test[1].startswith("python"):
            compile(test[-1], f"{name} healthcheck", "exec")


def test_compose_builds_from_existing_dockerfiles():
    for file in ("compose.yaml", "compose.cpu.yaml"):
        for name, svc in load_compose(file)["services"].items():
            build = svc.get("build")
            if not build:
                continue
            context = (DEPLOY / build["context"]).resolve()
            assert context == REPO, f"{file}:{name}: build context should be the repository root"
            assert (context / build["dockerfile"]).is_file(), f"{file}:{name}: no {build['dockerfile']}"


def test_compose_runs_commands_the_cli_accepts(compose):
    services = compose["services"]
    expected = {
        "migrations": (["db", "upgrade"], {}),
        "web": (["serve"], {"prod": True}),
        "worker": (["worker"], {"queues": ("default",)}),
        "trainer": (["worker"], {"queues": ("gpu",)}),
        "scheduler": (["scheduler"], {}),
    }
    for name, (path, params) in expected.items():
        got_path, got_params = parse_cli(argv_of(services[name]["command"]))
        assert got_path == path, name
        assert params.items() <= got_params.items(), f"{name}: {got_params}"


def test_compose_web_port_healthcheck_and_routes_agree(compose):
    web = compose["services"]["web"]
    _, params = parse_cli(argv_of(web["command"]))
    assert params["host"] == "0.0.0.0"
    published = [p.rsplit(":", 1)[1] for p in web["ports"]]
    assert published == [str(params["port"])]
    url = re.search(r"http://[^'\"]+", web["healthcheck"]["test"][-1]).group(0)
    parts = urlsplit(url)
    assert parts.port == params["port"]
    assert parts.path in app_routes()
    assert "PROMETHEUS_MULTIPROC_DIR" in web["environment"]
    assert web["environment"]["PROMETHEUS_MULTIPROC_DIR"] in web.get("tmpfs", [])


def test_compose_environment_makes_settings_that_use_its_own_services(compose, tmp_path):
    services = compose["services"]
    bucket_command = " ".join(argv_of(services["minio-init"]["command"]))
    created_bucket = re.search(r"mc mb (?:--ignore-existing )?local/([\w.-]+)", bucket_command).group(1)
    pg_env = {k: interpolate(str(v), {}) for k, v in services["postgres"]["environment"].items()}
    minio_env = {k: interpolate(str(v), {}) for k, v in services["minio"]["environment"].items()}
    for name in APP_SERVICES:
        env = {k: interpolate(str(v), {}) for k, v in services[name]["environment"].items()}
        env["LOOPLABEL_INSTANCE"] = str(tmp_path / name)  # the generated secret goes here, not /var/lib
        settings = Settings.from_env(env)
        db = urlsplit(settings.database_url)
        assert (db.hostname, db.username, db.password, db.path.lstrip("/")) == (
            "postgres", pg_env["POSTGRES_USER"], pg_env["POSTGRES_PASSWORD"], pg_env["POSTGRES_DB"])
        assert urlsplit(settings.redis_url).hostname == "redis"
        assert urlsplit(settings.s3_endpoint_url).hostname == "minio"
        assert urlsplit(settings.storage_url).netloc == created_bucket
        assert (env["AWS_ACCESS_KEY_ID"], env["AWS_SECRET_ACCESS_KEY"]) == (
            minio_env["MINIO_ROOT_USER"], minio_env["MINIO_ROOT_PASSWORD"])


def test_compose_trainer_reserves_one_nvidia_gpu(compose):
    devices = compose["services"]["trainer"]["deploy"]["resources"]["reservations"]["devices"]
    assert devices == [{"driver": "nvidia", "count": 1, "capabilities": ["gpu"]}]


def test_compose_cpu_override_drops_the_gpu_and_adds_tensorflow_cpu(compose):
    override = load_compose("compose.cpu.yaml")
    assert set(override["services"]) <= set(compose["services"])
    trainer = override["services"]["trainer"]
    assert isinstance(trainer["deploy"], Reset) and trainer["deploy"].tag == "reset"
    extras = set(trainer["build"]["args"]["EXTRAS"].split(","))
    defined = set(tomllib.loads((REPO / "pyproject.toml").read_text())["project"]["optional-dependencies"])
    assert "ml" in extras and extras <= defined


# --- Kubernetes ---------------------------------------------------------------------------------------
def test_kustomization_lists_every_manifest_and_only_existing_files():
    resources = kustomization()["resources"]
    assert len(resources) == len(set(resources))
    for name in resources:
        assert (K8S / name).is_file(), f"kustomization.yaml lists missing file {name}"
    on_disk = {p.name for p in K8S.glob("*.yaml")} - {"kustomization.yaml"}
    examples = {n for n in on_disk if n.endswith(".example.yaml")}
    assert set(resources) == on_disk - examples


def test_kustomization_images_are_the_images_the_manifests_use():
    renamed = {image["name"] for image in kustomization()["images"]}
    used = {c["image"] for _, spec in pod_specs(kustomized_documents()) for c in containers(spec)}
    assert used == renamed


@pytest.mark.parametrize("version", K8S_VERSIONS)
@pytest.mark.parametrize("path", sorted(p.name for p in K8S.glob("*.yaml") if p.name != "kustomization.yaml"))
def test_manifest_validates_against_the_kubernetes_schemas(path, version):
    docs = k8s_documents(K8S / path)
    assert docs, f"{path} is empty"
    for doc in docs:
        if doc["apiVersion"].startswith("keda.sh/"):
            continue  # a CRD: see test_keda_scaled_object_is_well_formed
        try:
            kubernetes_validate.validate(doc, version, strict=True)
        except kubernetes_validate.ValidationError as exc:
            where = ".".join(str(p) for p in exc.path)
            pytest.fail(f"{path}: {doc['kind']}/{doc['metadata']['name']} at {where}: {exc.message}")


KEDA_SPEC_KEYS = {"scaleTargetRef", "pollingInterval", "cooldownPeriod", "initialCooldownPeriod",
                  "idleReplicaCount", "minReplicaCount", "maxReplicaCount", "fallback", "advanced", "triggers"}
REDIS_TRIGGER_KEYS = {"address", "addressFromEnv", "host", "hostFromEnv", "port", "portFromEnv",
                      "usernameFromEnv", "passwordFromEnv", "databaseIndex", "listName", "listLength",
                      "activationListLength", "enableTLS", "unsafeSsl"}


def keda_problems(obj: dict, docs: list[dict], config: dict[str, str], secret_keys: set[str]) -> list[str]:
    """Structural problems of a KEDA ScaledObject (keda.sh/v1alpha1) with a Redis list trigger."""
    problems = []
    if obj.get("apiVersion") != "keda.sh/v1alpha1" or obj.get("kind") != "ScaledObject":
        return [f"not a keda.sh/v1alpha1 ScaledObject: {obj.get('apiVersion')} {obj.get('kind')}"]
    spec = obj.get("spec") or {}
    problems += [f"unknown spec field {k!r}" for k in set(spec) - KEDA_SPEC_KEYS]
    target_name = (spec.get("scaleTargetRef") or {}).get("name")
    targets = [d for d in docs if d["kind"] == "Deployment" and d["metadata"]["name"] == target_name]
    if not targets:
        return problems + [f"scaleTargetRef {target_name!r} is not a Deployment of the kustomization"]
    target = targets[0]
    if "replicas" in target["spec"]:
        problems.append("the scaled Deployment sets spec.replicas; KEDA's HPA would fight kubectl apply")
    lo, hi = spec.get("minReplicaCount", 0), spec.get("maxReplicaCount", 100)
    if not (isinstance(lo, int) and isinstance(hi, int) and 0 <= lo <= hi):
        problems.append(f"replica bounds {lo}..{hi}")
    triggers = spec.get("triggers") or []
    if not triggers:
        problems.append("no triggers")
    container = target["spec"]["template"]["spec"]["containers"][0]
    _, params = parse_cli(argv_of(container["command"]))
    env_names = set(config) | secret_keys | {e["name"] for e in container.get("env", [])}
    for trigger in triggers:
        meta = trigger.get("metadata") or {}
        if trigger.get("type") != "redis":
            problems.append(f"unexpected trigger type {trigger.get('type')!r}")
            continue
        problems += [f"unknown redis trigger field {k!r}" for k in set(meta) - REDIS_TRIGGER_KEYS]
        problems += [f"metadata.{k} must be a string (KEDA metadata is map[string]string)"
                     for k, v in meta.items() if not isinstance(v, str)]
        if not ({"address", "addressFromEnv"} & set(meta) or {"host", "port"} <= set(meta)):
            problems.append("no Redis address")
        for key in ("addressFromEnv", "passwordFromEnv", "usernameFromEnv", "hostFromEnv"):
            if key in meta and meta[key] not in env_names:
                problems.append(f"{key} names {meta[key]!r}, which the target container does not have")
        if not str(meta.get("listLength", "")).isdigit() or int(meta["listLength"]) < 1:
            problems.append(f"listLength {meta.get('listLength')!r} is not a positive integer")
        expected_lists = {f"rq:queue:{config.get('QUEUE_PREFIX', '')}{q}" for q in params["queues"]}
        if meta.get("listName") not in expected_lists:
            problems.append(f"listName {meta.get('listName')!r} is not the RQ list the worker reads "
                            f"({', '.join(sorted(expected_lists))})")
    return problems


def _config_and_secret_keys(docs):
    config = find(docs, "ConfigMap", "looplabel-config")["data"]
    secret = k8s_documents(K8S / "secret.example.yaml")[0]
    return config, set(secret["stringData"])


def test_keda_scaled_object_is_well_formed():
    docs = kustomized_documents()
    config, secret_keys = _config_and_secret_keys(docs)
    scaled = [d for d in docs if d["apiVersion"].startswith("keda.sh/")]
    assert [d["kind"] for d in scaled] == ["ScaledObject"]
    assert keda_problems(scaled[0], docs, config, secret_keys) == []


def test_keda_check_catches_a_wrong_list_and_unknown_fields():
    docs = kustomized_documents()
    config, secret_keys = _config_and_secret_keys(docs)
    scaled = yaml.safe_load(yaml.safe_dump(next(d for d in docs if d["kind"] == "ScaledObject")))
    scaled["spec"]["triggers"][0]["metadata"]["listName"] = "rq:queue:gpu"
    scaled["spec"]["triggers"][0]["metadata"]["listLength"] = 5
    scaled["spec"]["maxReplicas"] = 3
    problems = " | ".join(keda_problems(scaled, docs, config, secret_keys))
    assert "listName" in problems and "maxReplicas" in problems and "must be a string" in problems


def test_pods_read_the_configmap_and_secret_and_run_cli_commands():
    docs = kustomized_documents()
    config, secret_keys = _config_and_secret_keys(docs)
    secret_name = k8s_documents(K8S / "secret.example.yaml")[0]["metadata"]["name"]
    seen = {}
    for owner, spec in pod_specs(docs):
        for c in containers(spec):
            refs = {next(iter(k for k in ref if k.endswith("Ref"))): next(v for k, v in ref.items() if k.endswith("Ref"))["name"]
                    for ref in c.get("envFrom", [])}
            assert refs == {"configMapRef": "looplabel-config", "secretRef": secret_name}, owner["metadata"]["name"]
            argv = argv_of(c["command"])
            if argv[0] == "looplabel":
                seen[owner["metadata"]["name"]] = parse_cli(argv)
            else:  # the wait-for-migrations init container
                assert argv[:2] == ["python3", "-c"]
                compile(argv[2], f"{owner['metadata']['name']}/{c['name']}", "exec")
    assert seen["looplabel-migrate"][0] == ["db", "upgrade"]
    assert seen["looplabel-web"][0] == ["serve"] and seen["looplabel-web"][1]["prod"]
    assert seen["looplabel-worker"][1]["queues"] == ("default",)
    assert seen["looplabel-trainer"][1]["queues"] == ("gpu",)
    assert seen["looplabel-scheduler"][0] == ["scheduler"]
    assert {"DATABASE_URL", "REDIS_URL", "SECRET_KEY"} <= secret_keys


def test_configmap_and_secret_make_valid_settings(tmp_path):
    config, _ = _config_and_secret_keys(kustomized_documents())
    secret = k8s_documents(K8S / "secret.example.yaml")[0]["stringData"]
    settings = Settings.from_env({**config, **secret, "LOOPLABEL_INSTANCE": str(tmp_path)})
    assert settings.storage_url.startswith("s3://")
    assert settings.database_url.startswith("postgresql://") and settings.redis_url.startswith("redis://")
    assert urlsplit("redis://" + config["REDIS_ADDRESS"]).port, "REDIS_ADDRESS must be host:port"
    assert settings.secure_cookies


def test_every_container_has_requests_and_limits_and_the_trainer_a_gpu():
    for owner, spec in pod_specs(kustomized_documents()):
        for c in containers(spec):
            res = c.get("resources") or {}
            for part in ("requests", "limits"):
                assert {"cpu", "memory"} <= set(res.get(part) or {}), f"{owner['metadata']['name']}/{c['name']} {part}"
    trainer = find(kustomized_documents(), "Deployment", "looplabel-trainer")
    res = trainer["spec"]["template"]["spec"]["containers"][0]["resources"]
    assert res["limits"]["nvidia.com/gpu"] == 1


def test_web_is_probed_on_real_routes_and_wired_to_service_hpa_and_ingress():
    docs = kustomized_documents()
    web = find(docs, "Deployment", "looplabel-web")
    pod = web["spec"]["template"]
    container = pod["spec"]["containers"][0]
    port_names = {p["name"]: p["containerPort"] for p in container["ports"]}
    routes = app_routes()
    probes = {kind: container[kind]["httpGet"] for kind in ("livenessProbe", "readinessProbe", "startupProbe")}
    assert probes["livenessProbe"]["path"] == "/livez" and probes["readinessProbe"]["path"] == "/readyz"
    for probe in probes.values():
        assert probe["path"] in routes and probe["port"] in port_names
    _, params = parse_cli(argv_of(container["command"]))
    assert params["port"] == port_names["http"]
    assert pod["metadata"]["annotations"]["prometheus.io/port"] == str(params["port"])
    assert "/metrics" in routes

    service = find(docs, "Service", "looplabel-web")
    assert service["spec"]["selector"].items() <= pod["metadata"]["labels"].items()
    assert web["spec"]["selector"]["matchLabels"].items() <= pod["metadata"]["labels"].items()
    assert {p["targetPort"] for p in service["spec"]["ports"]} <= set(port_names)
    hpa = find(docs, "HorizontalPodAutoscaler", "looplabel-web")
    assert hpa["spec"]["scaleTargetRef"] == {"apiVersion": "apps/v1", "kind": "Deployment", "name": "looplabel-web"}
    service_ports = {p["name"] for p in service["spec"]["ports"]}
    for rule in find(docs, "Ingress", "looplabel")["spec"]["rules"]:
        for path in rule["http"]["paths"]:
            backend = path["backend"]["service"]
            assert backend["name"] == "looplabel-web" and backend["port"]["name"] in service_ports
