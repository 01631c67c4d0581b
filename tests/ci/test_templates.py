"""The CI templates, compose file and Kubernetes manifests cannot run here: parse them and check that
their wiring (ports, host names, paths, commands, variables) matches the local job."""

import re
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
    compose = yaml.safe_load((CI / "docker-compose.yml").read_text())["services"]
    target, master, worker = compose["target"], compose["master"], compose["worker"]
    env = {k: expand(str(v), {}) for k, v in master["environment"].items()}
    cfg = job_config([expand(a, {}) for a in master["command"]], env)
    assert cfg.host == "http://target:8000" and target["command"][-2:] == ["--port", "8000"]
    assert cfg.expect_workers == worker["deploy"]["replicas"] == 2 and cfg.run_mode == "master"
    assert (cfg.master_bind_host, cfg.master_port) == ("0.0.0.0", 5557)
    assert "5557" in master["expose"] and "8089:8089" in master["ports"]
    assert cfg.results == Path("/loadgate/results") and master["volumes"] == ["../results:/loadgate/results"]
    assert worker["command"] == worker_args(cfg, "master", 5557)
    assert (cfg.profile, cfg.run_time, cfg.users, cfg.warmup) == ("load", 40, 20, 10)
    assert master["depends_on"]["target"]["condition"] == "service_healthy"
    assert "OPENAI_API_KEY" in worker["environment"] and "OPENAI_API_KEY" in master["environment"]
    assert (CI / compose["master"]["build"]["dockerfile"].removeprefix("ci/")).is_file()


def k8s() -> dict[tuple[str, str], dict]:
    docs = [
        d for p in sorted((CI / "k8s").glob("*.yaml")) if p.name != "kustomization.yaml" for d in load_all(p)
    ]
    return {(d["kind"], d["metadata"]["name"]): d for d in docs}


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


def test_kustomization_generates_the_configmaps_from_the_repository_files():
    kustomization = yaml.safe_load((CI / "k8s" / "kustomization.yaml").read_text())
    for resource in kustomization["resources"]:
        assert (CI / "k8s" / resource).is_file(), resource
    generated = {g["name"]: g["files"] for g in kustomization["configMapGenerator"]}
    assert set(generated) == {"loadgate-locustfiles", "loadgate-sla"}
    for files in generated.values():
        for file in files:
            assert (CI / "k8s" / file).resolve().is_file(), file
    shipped = {p.name for p in (ROOT / "locustfiles").glob("*.py")}
    assert {Path(f).name for f in generated["loadgate-locustfiles"]} == shipped
