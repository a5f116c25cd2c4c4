#!/usr/bin/env python3
"""Parse every YAML file under deploy/ and check the Kubernetes manifests: each document
against the JSON Schema of its kind (k8s_schema.py, written from the Kubernetes and
prometheus-operator API references: unknown fields, types, enums, required fields), and their
structure: kinds, least-privilege securityContext, probes, ports, monitor selectors, and the
image reference = what deploy/container/build-image.sh builds for this version. The schemas
must also reject a few broken copies of the manifests (so the validation cannot pass by
accepting anything). Exit 1 on failure, 77 when PyYAML or jsonschema is missing."""
import glob
import os
import sys

try:
    import yaml
except ImportError:  # Debian: python3-yaml
    print("SKIP: PyYAML (python3-yaml) not installed")
    sys.exit(77)
try:
    import jsonschema
except ImportError:  # Debian: python3-jsonschema
    print("SKIP: jsonschema (python3-jsonschema) not installed")
    sys.exit(77)
import copy
import re

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from k8s_schema import SCHEMAS  # noqa: E402

DEPLOY = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
PORT = 9433
CAPS = {"NET_RAW", "BPF", "PERFMON"}
errors = []


def check(cond, msg):
    if not cond:
        errors.append(msg)


docs = {}
files = sorted(glob.glob(f"{DEPLOY}/**/*.yml", recursive=True)
               + glob.glob(f"{DEPLOY}/**/*.yaml", recursive=True))
for path in files:
    try:
        with open(path) as f:
            loaded = [d for d in yaml.safe_load_all(f) if d is not None]
    except yaml.YAMLError as e:
        errors.append(f"{path}: {e}")
        continue
    check(loaded, f"{path}: empty")
    if "/kubernetes/" in path:
        for d in loaded:
            check("kind" in d and "apiVersion" in d, f"{path}: document without kind/apiVersion")
            docs.setdefault(d.get("kind"), []).append((path, d))
print(f"parsed {len(files)} YAML files")


def schema_errors(d):
    schema = SCHEMAS.get((d.get("apiVersion"), d.get("kind")))
    if schema is None:
        return [f"no schema for apiVersion {d.get('apiVersion')} kind {d.get('kind')}"]
    v = jsonschema.Draft202012Validator(schema)
    return [f"{'/'.join(str(p) for p in e.absolute_path) or '(top)'}: {e.message}"
            for e in sorted(v.iter_errors(d), key=lambda e: list(map(str, e.absolute_path)))]


validated = 0
for kind, entries in sorted(docs.items(), key=lambda kv: str(kv[0])):
    for path, d in entries:
        for e in schema_errors(d):
            errors.append(f"{os.path.relpath(path, DEPLOY)} {kind}: {e}")
        validated += 1
print(f"validated {validated} Kubernetes objects against their schemas")

# The validator must see these mistakes (each one a real kubectl/API server rejection).
if docs.get("DaemonSet") and docs.get("ServiceMonitor"):
    def broken(kind, change):
        d = copy.deepcopy(docs[kind][0][1])
        change(d)
        return d
    ctr = lambda d: d["spec"]["template"]["spec"]["containers"][0]  # noqa: E731
    mutants = {
        "misspelt readinessProbe": broken("DaemonSet", lambda d: ctr(d).update(
            readinesProbe=ctr(d).pop("readinessProbe"))),
        "containerPort as a string": broken("DaemonSet", lambda d: ctr(d)["ports"][0].update(
            containerPort="9433")),
        "capabilities in the pod securityContext": broken("DaemonSet", lambda d: d["spec"]["template"]
            ["spec"]["securityContext"].update(capabilities={"add": ["NET_RAW"]})),
        "unknown dnsPolicy": broken("DaemonSet", lambda d: d["spec"]["template"]["spec"].update(
            dnsPolicy="HostNetwork")),
        "port name longer than 15": broken("DaemonSet", lambda d: ctr(d)["ports"][0].update(
            name="prometheus-metrics")),
        "no selector": broken("DaemonSet", lambda d: d["spec"].pop("selector")),
        "extensions/v1beta1 DaemonSet": broken("DaemonSet", lambda d: d.update(
            apiVersion="extensions/v1beta1")),
        "ServiceMonitor interval 30": broken("ServiceMonitor", lambda d: d["spec"]["endpoints"][0]
            .update(interval="30")),
        "ServiceMonitor endpoints at the top": broken("ServiceMonitor", lambda d: d.update(
            endpoints=d["spec"]["endpoints"])),
    }
    for name, d in mutants.items():
        found = schema_errors(d)
        check(found, f"schema self-test: accepted a DaemonSet/ServiceMonitor with {name}")
        if os.environ.get("VERBOSE"):
            print(f"  {name}: {found[:1]}")
    print(f"schema self-test: {len(mutants)} broken copies")

# The image the DaemonSet runs is the one deploy/container/build-image.sh tags by default.
with open(os.path.join(DEPLOY, "..", "CMakeLists.txt")) as f:
    version = re.search(r"project\(pgtlsmon VERSION ([0-9.]+)", f.read()).group(1)
with open(os.path.join(DEPLOY, "container", "build-image.sh")) as f:
    repo = re.search(r"^repo=(\S+)$", f.read(), re.M).group(1)

for kind in ("DaemonSet", "Service", "ServiceMonitor", "PodMonitor", "ServiceAccount"):
    check(len(docs.get(kind, [])) == 1, f"expected exactly one {kind}, got {len(docs.get(kind, []))}")

ds = docs["DaemonSet"][0][1] if docs.get("DaemonSet") else {}
if ds:
    check(ds["apiVersion"] == "apps/v1", "DaemonSet apiVersion")
    labels = ds["spec"]["selector"]["matchLabels"]
    tmpl = ds["spec"]["template"]
    check(all(tmpl["metadata"]["labels"].get(k) == v for k, v in labels.items()),
          "DaemonSet selector does not match the pod template labels")
    pod = tmpl["spec"]
    check(pod.get("hostNetwork") is True, "hostNetwork must be true (capture sees the node)")
    check(pod.get("dnsPolicy") == "ClusterFirstWithHostNet", "dnsPolicy with hostNetwork")
    check(pod.get("automountServiceAccountToken") is False, "no API token needed")
    psc = pod.get("securityContext", {})
    check(psc.get("runAsNonRoot") is True and psc.get("runAsUser", 0) != 0, "runAsNonRoot")
    check(psc.get("seccompProfile", {}).get("type") == "RuntimeDefault", "seccomp RuntimeDefault")
    check(len(pod["containers"]) == 1, "one container")
    c = pod["containers"][0]
    check(c.get("image") == f"{repo}:{version}",
          f"image {c.get('image')} is not what build-image.sh builds: {repo}:{version}")
    sc = c.get("securityContext", {})
    check(sc.get("privileged") in (None, False), "must not be privileged")
    check(sc.get("readOnlyRootFilesystem") is True, "readOnlyRootFilesystem")
    check(sc.get("capabilities", {}).get("drop") == ["ALL"], "capabilities.drop must be [ALL]")
    check(set(sc.get("capabilities", {}).get("add", [])) == CAPS,
          f"capabilities.add must be exactly {sorted(CAPS)}")
    args = [str(a) for a in c.get("args", [])]
    check(args[:1] == ["watch"], "args must start with the watch subcommand")
    check("--interface" in args, "--interface missing")
    check("--listen" in args and args[args.index("--listen") + 1] == f"0.0.0.0:{PORT}",
          f"--listen 0.0.0.0:{PORT} (Prometheus must reach the pod)")
    ports = {p["name"]: p for p in c.get("ports", [])}
    check(ports.get("metrics", {}).get("containerPort") == PORT, f"port metrics={PORT}")
    for probe in ("livenessProbe", "readinessProbe"):
        hg = c.get(probe, {}).get("httpGet", {})
        check(hg.get("path") == "/healthz", f"{probe} path /healthz")
        check(hg.get("port") in ("metrics", PORT), f"{probe} port")
    lim = c.get("resources", {}).get("limits", {})
    check("cpu" in lim and "memory" in lim, "resource limits cpu+memory")
    check("cpu" in c.get("resources", {}).get("requests", {}), "resource requests")
    defined = {e["name"] for e in c.get("env", [])}
    for a in args:
        if a.startswith("$(") and a.endswith(")"):
            check(a[2:-1] in defined, f"arg {a} references an undefined env var")

svc = docs["Service"][0][1] if docs.get("Service") else {}
if svc and ds:
    check(all(ds["spec"]["template"]["metadata"]["labels"].get(k) == v
              for k, v in svc["spec"]["selector"].items()), "Service selector misses the pods")
    sp = {p["name"]: p for p in svc["spec"]["ports"]}
    check(sp.get("metrics", {}).get("port") == PORT, "Service port metrics")
    check(svc["metadata"]["namespace"] == ds["metadata"]["namespace"], "namespaces differ")

sm = docs["ServiceMonitor"][0][1] if docs.get("ServiceMonitor") else {}
if sm and svc:
    check(sm["apiVersion"] == "monitoring.coreos.com/v1", "ServiceMonitor apiVersion")
    check(all(svc["metadata"]["labels"].get(k) == v
              for k, v in sm["spec"]["selector"]["matchLabels"].items()),
          "ServiceMonitor selector misses the Service")
    check([e.get("port") for e in sm["spec"]["endpoints"]] == ["metrics"], "ServiceMonitor port")
    check(sm["spec"]["endpoints"][0].get("path", "/metrics") == "/metrics", "ServiceMonitor path")

pm = docs["PodMonitor"][0][1] if docs.get("PodMonitor") else {}
if pm and ds:
    check(pm["apiVersion"] == "monitoring.coreos.com/v1", "PodMonitor apiVersion")
    check(all(ds["spec"]["template"]["metadata"]["labels"].get(k) == v
              for k, v in pm["spec"]["selector"]["matchLabels"].items()),
          "PodMonitor selector misses the pods")
    check([e.get("port") for e in pm["spec"]["podMetricsEndpoints"]] == ["metrics"],
          "PodMonitor port")

kz = os.path.join(DEPLOY, "kubernetes", "kustomization.yaml")
if os.path.exists(kz):
    with open(kz) as f:
        for r in yaml.safe_load(f)["resources"]:
            check(os.path.exists(os.path.join(DEPLOY, "kubernetes", r)), f"kustomization: {r} missing")

for e in errors:
    print("FAIL:", e)
print("OK" if not errors else f"{len(errors)} failure(s)")
sys.exit(1 if errors else 0)
