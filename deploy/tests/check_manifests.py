#!/usr/bin/env python3
"""Parse every YAML file under deploy/ and check the Kubernetes manifests' structure:
kinds, least-privilege securityContext, probes, ports and monitor selectors. Exit 1 on failure."""
import glob
import os
import sys

try:
    import yaml
except ImportError:  # Debian: python3-yaml
    print("SKIP: PyYAML (python3-yaml) not installed")
    sys.exit(77)

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
