"""The CI templates, compose file and Kubernetes manifests cannot run here: parse them and check that
their wiring (ports, host names, paths, commands, variables) matches the local job."""

import re
import shutil
import subprocess
from pathlib import Path

import pytest
import yaml

from loadgate import job
from loadgate import options as opts

from .conftest import ROOT

CI = ROOT / "ci"
JOB_ENV = {o.env for o in opts.OPTIONS if o.in_job}
OTHER_ENV = {"LOADGATE_EMBEDDED_TARGET"}  # the Locust side's (not the job's), set on the web-UI master


def load_all(path: Path) -> list[dict]:
    return [doc for doc in yaml.safe_load_all(path.read_text()) if doc]


def expand(text: str, env: dict[str, str]) -> str:
    """Compose-style ${VAR:-default} with the given environment."""
    return re.sub(r"\$\{(\w+):-([^}]*)\}", lambda m: env.get(m.group(1), m.group(2)), text)


def job_config(command: list[str], env: dict[str, str]) -> job.JobConfig:
    """The config the job would run with, container paths (/loadgate/...) mapped onto this checkout."""
    assert command[:2] == ["bash", "ci/run_load_gate.sh"], command
    return job.parse_config(command[2:], env)


def worker_args(cfg: job.JobConfig, master_host: str, port: int) -> list[str]:
    """job.worker_command as a container spells it: `python`, repository-relative locustfile."""
    cmd = job.worker_command(cfg, master_host, port)
    return ["python", *[str(Path(a).relative_to(ROOT)) if a == str(cfg.locustfile) else a for a in cmd[1:]]]


@pytest.mark.parametrize("path", sorted(p for p in CI.rglob("*") if p.suffix in (".yml", ".yaml")), ids=str)
def test_every_loadgate_variable_is_one_the_job_reads(path):
    used = set(re.findall(r"\bLOADGATE_[A-Z_]+\b", path.read_text()))
    assert used <= JOB_ENV | OTHER_ENV, used - JOB_ENV - OTHER_ENV


def test_github_workflow():
    wf = yaml.safe_load((CI / "github" / "loadgate.yml").read_text())
    on = wf.get("on", wf.get(True))  # YAML 1.1 reads the bare key `on` as true
    assert on["schedule"][0]["cron"] == "17 3 * * *"
    assert set(on["workflow_dispatch"]["inputs"]) == {"host", "profile", "run_time", "users", "workers"}
    profiles = on["workflow_dispatch"]["inputs"]["profile"]["options"]
    assert sorted(profiles) == sorted([*opts.PROFILES, "none"]) and profiles[0] == "load"
    gate = wf["jobs"]["load-gate"]
    assert gate["env"]["LOADGATE_RESULTS"] == "results"
    steps = {s.get("name", s.get("uses")): s for s in gate["steps"]}
    run = steps["Load test and SLA gate"]
    assert run["run"].splitlines()[-1] == "bash ci/run_load_gate.sh"
    assert "LOADGATE_BASELINE=baseline/loadgate" in run["run"]
    assert run["env"] == {"OPENAI_API_KEY": "${{ secrets.OPENAI_API_KEY }}"}
    summary = steps["Verdict in the step summary"]
    assert (
        summary["if"] == "always()" and 'cat results/verdict.md >> "$GITHUB_STEP_SUMMARY"' in summary["run"]
    )
    upload = steps["Upload the results folder"]
    assert upload["uses"].startswith("actions/upload-artifact@") and upload["with"]["path"] == "results/"
    assert upload["if"] == "always()"
    report = steps["Upload the HTML report"]
    assert report["with"]["path"] == "results/report.html" and report["if"] == "always()"
    # the summary links both artifacts, so it comes after both uploads
    order = [s.get("name") for s in gate["steps"]]
    assert order.index("Verdict in the step summary") > order.index("Upload the HTML report")
    assert summary["env"] == {
        "REPORT_URL": "${{ steps." + report["id"] + ".outputs.artifact-url }}",
        "RESULTS_URL": "${{ steps." + upload["id"] + ".outputs.artifact-url }}",
    }
    assert "$REPORT_URL" in summary["run"] and "$RESULTS_URL" in summary["run"]
    # the table is in the summary once: only this step writes verdict.md there (the job keeps the gate
    # from appending its own copy; tests/ci/test_job.py checks that)
    assert sum("GITHUB_STEP_SUMMARY" in (s.get("run") or "") for s in gate["steps"]) == 1
    restore = steps["Restore the baseline (pull requests)"]
    save = steps["Save the baseline"]
    assert restore["if"] == "github.event_name == 'pull_request'"
    assert restore["with"]["path"] == save["with"]["path"] == "baseline"
    assert restore["with"]["restore-keys"] == "loadgate-baseline-${{ github.base_ref }}-"
    assert save["with"]["key"].startswith("loadgate-baseline-main-") and "refs/heads/main" in save["if"]
    copy = steps["Keep this run as the baseline (main, passing)"]["run"]
    assert f"results/{job.PREFIX_NAME}_*.csv" in copy


def test_gitlab_job_wires_junit_and_the_baseline_cache():
    ci = yaml.safe_load((CI / "gitlab" / ".gitlab-ci.yml").read_text())
    base = ci[".load-gate"]
    assert base["artifacts"]["reports"]["junit"] == "results/junit.xml"
    assert base["artifacts"]["when"] == "always" and base["artifacts"]["paths"] == ["results/"]
    assert ci["variables"]["LOADGATE_RESULTS"] == "results"
    assert "bash ci/run_load_gate.sh" in base["script"]
    assert (
        ci["load-gate"]["cache"]["policy"] == "pull" and ci["load-gate-baseline"]["cache"]["policy"] == "push"
    )
    assert ci["load-gate"]["cache"]["key"] == ci["load-gate-baseline"]["cache"]["key"]
    assert ci["load-gate-baseline"]["script"][0] == "bash ci/run_load_gate.sh"


def test_compose_master_workers_and_target_are_wired():
    text = (CI / "docker-compose.yml").read_text()
    compose = yaml.safe_load(text)["services"]
    target, master, worker = compose["target"], compose["master"], compose["worker"]
    env = {k: expand(str(v), {}) for k, v in master["environment"].items()}
    cfg = job_config([expand(a, {}) for a in master["command"]], env)
    assert cfg.host == "http://target:8000" and target["command"][-2:] == ["--port", "8000"]
    assert (
        cfg.expect_workers == int(expand(worker["deploy"]["replicas"], {})) == 2 and cfg.run_mode == "master"
    )
    assert (cfg.master_bind_host, cfg.master_port) == ("0.0.0.0", 5557)
    assert "5557" in master["expose"] and "8089:8089" in master["ports"]
    assert cfg.results == Path("/loadgate/results") and master["volumes"] == ["../results:/loadgate/results"]
    assert worker["command"] == worker_args(cfg, "master", 5557)
    assert (cfg.profile, cfg.run_time, cfg.users, cfg.warmup) == ("load", 40, 20, 10)
    assert master["depends_on"]["target"]["condition"] == "service_healthy"
    assert "OPENAI_API_KEY" in worker["environment"] and "OPENAI_API_KEY" in master["environment"]
    assert (CI / compose["master"]["build"]["dockerfile"].removeprefix("ci/")).is_file()


def test_compose_worker_count_lives_in_one_place():
    text = (CI / "docker-compose.yml").read_text()
    assert len(re.findall(r"\$\{LOADGATE_WORKERS", text)) == 1, "the worker count must be set once"
    compose = yaml.safe_load(text)
    assert compose["x-workers"] == "${LOADGATE_WORKERS:-2}"
    master, worker = compose["services"]["master"], compose["services"]["worker"]
    for workers in ("2", "5"):  # the containers started and the workers the master waits for move together
        env = {"LOADGATE_WORKERS": workers}
        cfg = job_config([expand(a, env) for a in master["command"]], {})
        assert cfg.expect_workers == int(expand(worker["deploy"]["replicas"], env)) == int(workers)
    assert "--scale" not in text


K8S_DIRS = (CI / "k8s", CI / "k8s-web-ui")
IMAGE_COMPONENT = CI / "k8s" / "image" / "kustomization.yaml"


def k8s() -> dict[tuple[str, str], dict]:
    docs = [
        d
        for folder in K8S_DIRS
        for p in sorted(folder.glob("*.yaml"))
        if p.name != "kustomization.yaml"
        for d in load_all(p)
    ]
    return {(d["kind"], d["metadata"]["name"]): d for d in docs}


def containers(obj: dict) -> list[dict]:
    return obj["spec"]["template"]["spec"]["containers"] if "template" in obj.get("spec", {}) else []


def test_kubernetes_master_job_service_and_workers_are_wired():
    objects = k8s()
    service = objects[("Service", "loadgate-master")]
    assert {p["port"] for p in service["spec"]["ports"]} == {5557, 8089}
    master_job = objects[("Job", "loadgate-master")]
    workers = objects[("Deployment", "loadgate-worker")]
    pod = master_job["spec"]["template"]
    assert pod["spec"]["restartPolicy"] == "Never" and master_job["spec"]["backoffLimit"] == 0
    for master in (master_job, objects[("Deployment", "loadgate-master")]):
        labels = master["spec"]["template"]["metadata"]["labels"]
        assert service["spec"]["selector"].items() <= labels.items()
    container = pod["spec"]["containers"][0]
    env = {e["name"]: e["value"] for e in container["env"] if "value" in e}
    cfg = job_config(container["command"], env)
    assert cfg.host == "http://loadgate-target:8000" and (cfg.master_bind_host, cfg.master_port) == (
        "0.0.0.0",
        5557,
    )
    assert cfg.expect_workers == workers["spec"]["replicas"] == 4 and cfg.expect_workers_max_wait == 300
    worker = workers["spec"]["template"]["spec"]["containers"][0]
    assert worker["command"] == worker_args(cfg, "loadgate-master", 5557)
    target = objects[("Service", "loadgate-target")]
    assert target["spec"]["ports"][0]["port"] == 8000
    mounts = {m["mountPath"]: m for m in container["volumeMounts"]}
    assert mounts["/loadgate/locustfiles"]["name"] == "locustfiles"
    assert mounts["/loadgate/sla/thresholds.yaml"]["subPath"] == "thresholds.yaml"
    assert str(cfg.thresholds) == str(ROOT / "sla" / "thresholds.yaml")  # the path the mount replaces
    assert str(cfg.locustfile) == str(ROOT / "locustfiles" / "locustfile.py")
    volumes = {v["name"]: v["configMap"]["name"] for v in pod["spec"]["volumes"] if "configMap" in v}
    assert volumes == {"locustfiles": "loadgate-locustfiles", "sla": "loadgate-sla"}
    secret = next(e for e in container["env"] if e["name"] == "OPENAI_API_KEY")
    assert secret["valueFrom"]["secretKeyRef"]["name"] == "loadgate-api-key"
    web_master = containers(objects[("Deployment", "loadgate-master")])[0]  # the SLA tab gets the same file
    command = web_master["command"]
    assert command[command.index("--sla") + 1] == "sla/thresholds.yaml"
    assert {m["mountPath"] for m in web_master["volumeMounts"]} == set(mounts) - {"/results"}


# The copies kustomize reads (it reads nothing outside ci/k8s) -> the repository file each must equal.
K8S_COPIES = {
    **{f"locustfiles/{p.name}": p for p in sorted((ROOT / "locustfiles").glob("*.py"))},
    "sla/thresholds.yaml": ROOT / "sla" / "thresholds.yaml",
}


def test_kustomization_generates_the_configmaps_from_copies_inside_ci_k8s():
    kustomization = yaml.safe_load((CI / "k8s" / "kustomization.yaml").read_text())
    for resource in kustomization["resources"]:
        assert (CI / "k8s" / resource).is_file(), resource
    generated = {g["name"]: g["files"] for g in kustomization["configMapGenerator"]}
    assert set(generated) == {"loadgate-locustfiles", "loadgate-sla"}
    files = [file for listed in generated.values() for file in listed]
    assert sorted(files) == sorted(K8S_COPIES)  # every locustfile, and nothing from outside the folder
    for file in files:
        assert not file.startswith(("/", "..")), file


@pytest.mark.parametrize("copy", sorted(K8S_COPIES))
def test_the_kubernetes_copies_equal_the_repository_files(copy):
    original = K8S_COPIES[copy]
    assert (CI / "k8s" / copy).read_bytes() == original.read_bytes(), (
        f"ci/k8s/{copy} differs from {original.relative_to(ROOT)}; copy it: "
        f"cp {original.relative_to(ROOT)} ci/k8s/{copy}"
    )


def test_the_image_is_named_in_one_place():
    component = yaml.safe_load(IMAGE_COMPONENT.read_text())
    assert component["kind"] == "Component"
    (image,) = component["images"]
    assert image["name"] == "loadgate"
    for (kind, name), obj in k8s().items():
        for container in containers(obj):
            assert container["image"] == "loadgate", (kind, name, container["name"])
    for folder in K8S_DIRS:
        kustomization = yaml.safe_load((folder / "kustomization.yaml").read_text())
        assert [(folder / c).resolve() for c in kustomization["components"]] == [IMAGE_COMPONENT.parent]


def kustomize(folder: Path) -> dict[tuple[str, str], dict]:
    done = subprocess.run(
        ["kubectl", "kustomize", str(folder)], capture_output=True, text=True, timeout=60, check=False
    )
    assert done.returncode == 0, done.stderr
    return {(d["kind"], d["metadata"]["name"]): d for d in yaml.safe_load_all(done.stdout) if d}


@pytest.mark.skipif(shutil.which("kubectl") is None, reason="kubectl is not installed")
def test_plain_kubectl_kustomize_builds_both_variants():
    """What `kubectl apply -k ci/k8s` (and `-k ci/k8s-web-ui`) applies, without any load-restrictor flag."""
    image = yaml.safe_load(IMAGE_COMPONENT.read_text())["images"][0]
    expected_image = f"{image['newName']}:{image['newTag']}"
    ci_objects, web_objects = kustomize(CI / "k8s"), kustomize(CI / "k8s-web-ui")
    assert ("Job", "loadgate-master") in ci_objects and ("Deployment", "loadgate-master") not in ci_objects
    assert ("Deployment", "loadgate-master") in web_objects and ("Job", "loadgate-master") not in web_objects
    for objects in (ci_objects, web_objects):
        for (kind, name), obj in objects.items():
            if kind != "Namespace":
                assert obj["metadata"]["namespace"] == "loadgate", (kind, name)
            for container in containers(obj):
                assert container["image"] == expected_image, (kind, name)
        locustfiles = objects[("ConfigMap", "loadgate-locustfiles")]["data"]
        sla = objects[("ConfigMap", "loadgate-sla")]["data"]
        assert locustfiles == {p.name: p.read_text() for p in (ROOT / "locustfiles").glob("*.py")}
        assert sla == {"thresholds.yaml": (ROOT / "sla" / "thresholds.yaml").read_text()}
