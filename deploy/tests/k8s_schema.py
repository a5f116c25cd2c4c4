"""JSON Schemas (draft 2020-12) of the Kubernetes objects deploy/kubernetes/ uses, written for
check_manifests.py from the API references, since neither kubeconform nor kubeval is packaged
in Debian 12 and no schema can be downloaded here:
  - Kubernetes API reference v1.31 (kubernetes.io/docs/reference/kubernetes-api/): Namespace,
    ServiceAccount, Service, DaemonSet and the types under them (ObjectMeta, LabelSelector,
    PodTemplateSpec, PodSpec, Container, Probe, SecurityContext, Volume, ...);
  - prometheus-operator v0.75 API reference (prometheus-operator.dev/docs/api-reference/api/):
    ServiceMonitor, PodMonitor (monitoring.coreos.com/v1).
Every object lists ALL the field names its type has (additionalProperties: false), so a
misspelt or misplaced field fails as it would with `kubectl apply --validate=strict`; types,
enums, required fields and formats are given for the fields pgtlsmon's manifests set and for
the simple ones. A field that is not described in detail is accepted with any value."""

ANY = {}
STR = {"type": "string"}
BOOL = {"type": "boolean"}
INT = {"type": "integer"}
INT32 = {"type": "integer", "minimum": -2**31, "maximum": 2**31 - 1}
PORT = {"type": "integer", "minimum": 1, "maximum": 65535}
STRMAP = {"type": "object", "additionalProperties": {"type": "string"}}
STRLIST = {"type": "array", "items": STR}
# IANA_SVC_NAME: at most 15 characters, lower case letters, digits and '-', one letter at least.
PORT_NAME = {"type": "string", "maxLength": 15, "pattern": "^(?=.*[a-z])[a-z0-9]([-a-z0-9]*[a-z0-9])?$"}
INT_OR_STRING = {"anyOf": [{"type": "integer"}, {"type": "string"}]}
INT_OR_PORT_NAME = {"anyOf": [PORT, PORT_NAME]}
QUANTITY = {"anyOf": [{"type": "number"},
                      {"type": "string",
                       "pattern": r"^[+-]?([0-9]+(\.[0-9]*)?|\.[0-9]+)(([KMGTPE]i)|[numkMGTPE]|([eE][+-]?[0-9]+))?$"}]}
DNS_LABEL = {"type": "string", "maxLength": 63, "pattern": "^[a-z0-9]([-a-z0-9]*[a-z0-9])?$"}
DNS_SUBDOMAIN = {"type": "string", "maxLength": 253,
                 "pattern": r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$"}
# Prometheus duration (monitoring.coreos.com Duration).
DURATION = {"type": "string",
            "pattern": "^(0|(([0-9]+)y)?(([0-9]+)w)?(([0-9]+)d)?(([0-9]+)h)?(([0-9]+)m)?(([0-9]+)s)?(([0-9]+)ms)?)$"}


def obj(fields, required=()):
    """An object whose properties are exactly `fields` (a dict name -> schema, or a string of
    space-separated names accepted with any value)."""
    if isinstance(fields, str):
        fields = {n: ANY for n in fields.split()}
    return {"type": "object", "properties": fields, "additionalProperties": False,
            "required": list(required)}


def with_any(fields, names):
    out = dict(fields)
    out.update({n: ANY for n in names.split() if n not in out})
    return out


def const(v):
    return {"const": v}


def enum(*v):
    return {"enum": list(v)}


def arr(items):
    return {"type": "array", "items": items}


LABEL_KEY = {"type": "string", "maxLength": 316,
             "pattern": r"^([a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*/)?"
                        r"[A-Za-z0-9]([-A-Za-z0-9_.]{0,61}[A-Za-z0-9])?$"}
LABEL_VALUE = {"type": "string", "maxLength": 63,
               "pattern": r"^(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?$"}
LABELS = {"type": "object", "propertyNames": LABEL_KEY, "additionalProperties": LABEL_VALUE}

OBJECT_META = obj(with_any({
    "name": DNS_SUBDOMAIN, "namespace": DNS_LABEL, "labels": LABELS,
    "annotations": {"type": "object", "propertyNames": LABEL_KEY, "additionalProperties": STR},
}, "generateName uid resourceVersion generation creationTimestamp deletionTimestamp "
   "deletionGracePeriodSeconds finalizers ownerReferences managedFields selfLink"))

LABEL_SELECTOR = obj({
    "matchLabels": LABELS,
    "matchExpressions": arr(obj({"key": LABEL_KEY, "operator": enum("In", "NotIn", "Exists", "DoesNotExist"),
                                 "values": STRLIST}, ["key", "operator"])),
})

CAPABILITY = {"type": "string", "pattern": "^[A-Z_]+$"}
SECCOMP = obj({"type": enum("Localhost", "RuntimeDefault", "Unconfined"), "localhostProfile": STR},
              ["type"])
SECURITY_CONTEXT = obj(with_any({
    "allowPrivilegeEscalation": BOOL, "privileged": BOOL, "readOnlyRootFilesystem": BOOL,
    "runAsNonRoot": BOOL, "runAsUser": INT, "runAsGroup": INT, "seccompProfile": SECCOMP,
    "capabilities": obj({"add": arr(CAPABILITY), "drop": arr(CAPABILITY)}),
    "procMount": enum("Default", "Unmasked"),
}, "appArmorProfile seLinuxOptions windowsOptions"))
POD_SECURITY_CONTEXT = obj(with_any({
    "runAsNonRoot": BOOL, "runAsUser": INT, "runAsGroup": INT, "fsGroup": INT,
    "seccompProfile": SECCOMP, "supplementalGroups": arr(INT),
    "fsGroupChangePolicy": enum("OnRootMismatch", "Always"),
}, "appArmorProfile seLinuxOptions sysctls windowsOptions"))

HTTP_GET = obj({"host": STR, "httpHeaders": arr(obj({"name": STR, "value": STR}, ["name", "value"])),
                "path": STR, "port": INT_OR_PORT_NAME, "scheme": enum("HTTP", "HTTPS")}, ["port"])
PROBE = obj(with_any({
    "httpGet": HTTP_GET, "initialDelaySeconds": INT32, "periodSeconds": {"type": "integer", "minimum": 1},
    "timeoutSeconds": {"type": "integer", "minimum": 1}, "failureThreshold": {"type": "integer", "minimum": 1},
    "successThreshold": {"type": "integer", "minimum": 1},
}, "exec grpc tcpSocket terminationGracePeriodSeconds"))

ENV_VAR = obj({
    "name": {"type": "string", "minLength": 1}, "value": STR,
    "valueFrom": obj(with_any({"fieldRef": obj({"apiVersion": STR, "fieldPath": STR}, ["fieldPath"])},
                              "configMapKeyRef resourceFieldRef secretKeyRef")),
}, ["name"])
CONTAINER_PORT = obj({"containerPort": PORT, "hostIP": STR, "hostPort": PORT, "name": PORT_NAME,
                      "protocol": enum("TCP", "UDP", "SCTP")}, ["containerPort"])
RESOURCES = obj({"claims": ANY, "limits": {"type": "object", "additionalProperties": QUANTITY},
                 "requests": {"type": "object", "additionalProperties": QUANTITY}})
VOLUME_MOUNT = obj(with_any({"name": STR, "mountPath": {"type": "string", "pattern": "^/"}, "readOnly": BOOL},
                            "mountPropagation recursiveReadOnly subPath subPathExpr"),
                   ["name", "mountPath"])
CONTAINER = obj(with_any({
    "name": DNS_LABEL, "image": {"type": "string", "minLength": 1},
    "imagePullPolicy": enum("Always", "Never", "IfNotPresent"),
    "args": STRLIST, "command": STRLIST, "env": arr(ENV_VAR), "ports": arr(CONTAINER_PORT),
    "livenessProbe": PROBE, "readinessProbe": PROBE, "startupProbe": PROBE,
    "resources": RESOURCES, "securityContext": SECURITY_CONTEXT, "volumeMounts": arr(VOLUME_MOUNT),
    "workingDir": STR, "terminationMessagePolicy": enum("File", "FallbackToLogsOnError"),
}, "envFrom lifecycle resizePolicy restartPolicy stdin stdinOnce terminationMessagePath tty "
   "volumeDevices"), ["name"])
VOLUME = obj(with_any({
    "name": DNS_LABEL,
    "emptyDir": obj({"medium": enum("", "Memory"), "sizeLimit": QUANTITY}),
}, "awsElasticBlockStore azureDisk azureFile cephfs cinder configMap csi downwardAPI ephemeral "
   "fc flexVolume flocker gcePersistentDisk gitRepo glusterfs hostPath image iscsi nfs "
   "persistentVolumeClaim photonPersistentDisk portworxVolume projected quobyte rbd scaleIO "
   "secret storageos vsphereVolume"), ["name"])
POD_SPEC = obj(with_any({
    "containers": {"type": "array", "items": CONTAINER, "minItems": 1},
    "initContainers": arr(CONTAINER),
    "automountServiceAccountToken": BOOL, "enableServiceLinks": BOOL, "hostNetwork": BOOL,
    "hostPID": BOOL, "hostIPC": BOOL,
    "dnsPolicy": enum("ClusterFirstWithHostNet", "ClusterFirst", "Default", "None"),
    "restartPolicy": enum("Always", "OnFailure", "Never"),
    "serviceAccountName": DNS_SUBDOMAIN, "priorityClassName": STR,
    "terminationGracePeriodSeconds": {"type": "integer", "minimum": 0},
    "nodeSelector": STRMAP, "securityContext": POD_SECURITY_CONTEXT, "volumes": arr(VOLUME),
    "tolerations": arr(obj("effect key operator tolerationSeconds value")),
}, "activeDeadlineSeconds affinity dnsConfig ephemeralContainers hostAliases hostUsers hostname "
   "imagePullSecrets nodeName os overhead preemptionPolicy priority readinessGates "
   "resourceClaims runtimeClassName schedulerName schedulingGates serviceAccount "
   "setHostnameAsFQDN shareProcessNamespace subdomain topologySpreadConstraints"), ["containers"])
POD_TEMPLATE = obj({"metadata": OBJECT_META, "spec": POD_SPEC})

DAEMONSET = obj({
    "apiVersion": const("apps/v1"), "kind": const("DaemonSet"), "metadata": OBJECT_META,
    "spec": obj({
        "selector": LABEL_SELECTOR, "template": POD_TEMPLATE,
        "updateStrategy": obj({"type": enum("RollingUpdate", "OnDelete"),
                               "rollingUpdate": obj({"maxUnavailable": INT_OR_STRING,
                                                     "maxSurge": INT_OR_STRING})}),
        "minReadySeconds": INT32, "revisionHistoryLimit": INT32,
    }, ["selector", "template"]),
    "status": ANY,
}, ["apiVersion", "kind", "metadata", "spec"])

SERVICE_PORT = obj({"appProtocol": STR, "name": PORT_NAME, "nodePort": PORT, "port": PORT,
                    "protocol": enum("TCP", "UDP", "SCTP"), "targetPort": INT_OR_PORT_NAME}, ["port"])
SERVICE = obj({
    "apiVersion": const("v1"), "kind": const("Service"), "metadata": OBJECT_META,
    "spec": obj(with_any({
        "clusterIP": STR, "ports": arr(SERVICE_PORT), "selector": STRMAP,
        "type": enum("ClusterIP", "NodePort", "LoadBalancer", "ExternalName"),
        "publishNotReadyAddresses": BOOL,
    }, "allocateLoadBalancerNodePorts clusterIPs externalIPs externalName externalTrafficPolicy "
       "healthCheckNodePort internalTrafficPolicy ipFamilies ipFamilyPolicy loadBalancerClass "
       "loadBalancerIP loadBalancerSourceRanges sessionAffinity sessionAffinityConfig "
       "trafficDistribution")),
    "status": ANY,
}, ["apiVersion", "kind", "metadata"])
SERVICE_ACCOUNT = obj({
    "apiVersion": const("v1"), "kind": const("ServiceAccount"), "metadata": OBJECT_META,
    "automountServiceAccountToken": BOOL, "imagePullSecrets": ANY, "secrets": ANY,
}, ["apiVersion", "kind", "metadata"])
NAMESPACE = obj({
    "apiVersion": const("v1"), "kind": const("Namespace"), "metadata": OBJECT_META,
    "spec": obj("finalizers"), "status": ANY,
}, ["apiVersion", "kind", "metadata"])

RELABEL = obj({
    "action": enum("replace", "Replace", "keep", "Keep", "drop", "Drop", "hashmod", "HashMod",
                   "labelmap", "LabelMap", "labeldrop", "LabelDrop", "labelkeep", "LabelKeep",
                   "lowercase", "Lowercase", "uppercase", "Uppercase", "keepequal", "KeepEqual",
                   "dropequal", "DropEqual"),
    "modulus": INT, "regex": STR, "replacement": STR, "separator": STR,
    "sourceLabels": arr({"type": "string", "pattern": "^[a-zA-Z_][a-zA-Z0-9_]*$"}),
    "targetLabel": STR,
})
_ENDPOINT_COMMON = {
    "port": STR, "targetPort": INT_OR_STRING, "path": STR, "scheme": enum("http", "https"),
    "interval": DURATION, "scrapeTimeout": DURATION, "honorLabels": BOOL, "honorTimestamps": BOOL,
    "relabelings": arr(RELABEL), "metricRelabelings": arr(RELABEL),
    "params": {"type": "object", "additionalProperties": STRLIST},
}
_ENDPOINT_ANY = ("authorization basicAuth bearerTokenSecret enableHttp2 filterRunning "
                 "followRedirects oauth2 proxyUrl tlsConfig trackTimestampsStaleness")
SM_ENDPOINT = obj(with_any(_ENDPOINT_COMMON, _ENDPOINT_ANY + " bearerTokenFile"))
PM_ENDPOINT = obj(with_any(dict(_ENDPOINT_COMMON, portNumber=PORT), _ENDPOINT_ANY))
NAMESPACE_SELECTOR = obj({"any": BOOL, "matchNames": STRLIST})
_MONITOR_ANY = ("attachMetadata bodySizeLimit keepDroppedTargets labelLimit labelNameLengthLimit "
                "labelValueLengthLimit podTargetLabels sampleLimit scrapeClass scrapeProtocols "
                "targetLimit")
SERVICE_MONITOR = obj({
    "apiVersion": const("monitoring.coreos.com/v1"), "kind": const("ServiceMonitor"),
    "metadata": OBJECT_META,
    "spec": obj(with_any({"endpoints": arr(SM_ENDPOINT), "selector": LABEL_SELECTOR,
                          "namespaceSelector": NAMESPACE_SELECTOR, "jobLabel": STR,
                          "targetLabels": STRLIST}, _MONITOR_ANY), ["selector"]),
}, ["apiVersion", "kind", "metadata", "spec"])
POD_MONITOR = obj({
    "apiVersion": const("monitoring.coreos.com/v1"), "kind": const("PodMonitor"),
    "metadata": OBJECT_META,
    "spec": obj(with_any({"podMetricsEndpoints": arr(PM_ENDPOINT), "selector": LABEL_SELECTOR,
                          "namespaceSelector": NAMESPACE_SELECTOR, "jobLabel": STR}, _MONITOR_ANY),
                ["selector"]),
}, ["apiVersion", "kind", "metadata", "spec"])
KUSTOMIZATION = obj(with_any({
    "apiVersion": const("kustomize.config.k8s.io/v1beta1"), "kind": const("Kustomization"),
    "namespace": DNS_LABEL, "resources": STRLIST,
}, "metadata bases commonLabels commonAnnotations components configMapGenerator images labels "
   "namePrefix nameSuffix patches patchesStrategicMerge patchesJson6902 replacements replicas "
   "secretGenerator generatorOptions crds openapi sortOptions buildMetadata helmCharts"),
    ["apiVersion", "kind"])

JOB = obj({
    "apiVersion": const("batch/v1"), "kind": const("Job"), "metadata": OBJECT_META,
    "spec": obj(with_any({
        "template": POD_TEMPLATE, "completions": INT32, "parallelism": INT32,
        "completionMode": enum("NonIndexed", "Indexed"), "backoffLimit": INT32,
        "backoffLimitPerIndex": INT32, "maxFailedIndexes": INT32,
        "ttlSecondsAfterFinished": INT32, "activeDeadlineSeconds": INT,
        "suspend": BOOL, "selector": LABEL_SELECTOR, "manualSelector": BOOL,
    }, "managedBy podFailurePolicy podReplacementPolicy successPolicy"), ["template"]),
    "status": ANY,
}, ["apiVersion", "kind", "metadata", "spec"])
CONFIG_MAP = obj({
    "apiVersion": const("v1"), "kind": const("ConfigMap"), "metadata": OBJECT_META,
    "data": STRMAP, "binaryData": STRMAP, "immutable": BOOL,
}, ["apiVersion", "kind", "metadata"])

# (apiVersion, kind) -> schema. The API server knows these apiVersions; anything else fails.
SCHEMAS = {
    ("apps/v1", "DaemonSet"): DAEMONSET,
    ("v1", "Service"): SERVICE,
    ("v1", "ServiceAccount"): SERVICE_ACCOUNT,
    ("v1", "Namespace"): NAMESPACE,
    ("monitoring.coreos.com/v1", "ServiceMonitor"): SERVICE_MONITOR,
    ("monitoring.coreos.com/v1", "PodMonitor"): POD_MONITOR,
    ("kustomize.config.k8s.io/v1beta1", "Kustomization"): KUSTOMIZATION,
    ("batch/v1", "Job"): JOB,
    ("v1", "ConfigMap"): CONFIG_MAP,
}
