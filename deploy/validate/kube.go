package main

import (
	"encoding/json"
	"fmt"
	"net"
	"path"
	"path/filepath"
	"reflect"
	"strconv"
	"strings"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	policyv1 "k8s.io/api/policy/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/validation"
	"k8s.io/kube-openapi/pkg/validation/spec"
	"k8s.io/kube-openapi/pkg/validation/strfmt"
	"k8s.io/kube-openapi/pkg/validation/validate"
	"sigs.k8s.io/kustomize/api/krusty"
	"sigs.k8s.io/kustomize/kyaml/filesys"
	"sigs.k8s.io/yaml"
)

// object is one rendered Kubernetes object.
type object struct {
	apiVersion, kind, name string
	raw                    []byte         // YAML
	m                      map[string]any // decoded
}

func (o object) id() string { return o.kind + "/" + o.name }

// typed are the Kubernetes API types the rendered objects are strictly
// decoded into: an unknown or misspelt field, or a wrong type, is an error.
var typed = map[string]func() any{
	"v1/ServiceAccount":             func() any { return &corev1.ServiceAccount{} },
	"v1/Service":                    func() any { return &corev1.Service{} },
	"v1/ConfigMap":                  func() any { return &corev1.ConfigMap{} },
	"v1/Secret":                     func() any { return &corev1.Secret{} },
	"apps/v1/StatefulSet":           func() any { return &appsv1.StatefulSet{} },
	"apps/v1/Deployment":            func() any { return &appsv1.Deployment{} },
	"policy/v1/PodDisruptionBudget": func() any { return &policyv1.PodDisruptionBudget{} },
}

// loadCRDs reads the openAPIV3Schema of every version of every
// CustomResourceDefinition in the directories, keyed group/version/Kind.
func loadCRDs(dirs []string, p *problems) map[string]*spec.Schema {
	schemas := map[string]*spec.Schema{}
	for _, dir := range dirs {
		if dir == "" {
			continue
		}
		files, _ := filepath.Glob(filepath.Join(dir, "*.yaml"))
		for _, f := range files {
			var crd struct {
				Kind string `json:"kind"`
				Spec struct {
					Group string `json:"group"`
					Names struct {
						Kind string `json:"kind"`
					} `json:"names"`
					Versions []struct {
						Name   string `json:"name"`
						Served bool   `json:"served"`
						Schema struct {
							OpenAPIV3Schema map[string]any `json:"openAPIV3Schema"`
						} `json:"schema"`
					} `json:"versions"`
				} `json:"spec"`
			}
			if err := yaml.Unmarshal(readFile(f, p), &crd); err != nil || crd.Kind != "CustomResourceDefinition" {
				continue
			}
			for _, v := range crd.Spec.Versions {
				if !v.Served || v.Schema.OpenAPIV3Schema == nil {
					continue
				}
				strictify(v.Schema.OpenAPIV3Schema)
				b, _ := json.Marshal(v.Schema.OpenAPIV3Schema)
				s := new(spec.Schema)
				if err := s.UnmarshalJSON(b); err != nil {
					p.add("%s: schema of %s: %v", f, v.Name, err)
					continue
				}
				schemas[crd.Spec.Group+"/"+v.Name+"/"+crd.Spec.Names.Kind] = s
			}
		}
	}
	if len(schemas) == 0 {
		p.add("no CRD schemas found in %q", dirs)
	}
	return schemas
}

// strictify makes a structural schema refuse unknown fields, as the API
// server does with strict field validation (kubectl --validate=strict): an
// object with properties and neither additionalProperties nor
// x-kubernetes-preserve-unknown-fields allows no other field.
func strictify(s map[string]any) {
	props, hasProps := s["properties"].(map[string]any)
	_, hasAP := s["additionalProperties"]
	if hasProps && !hasAP && s["x-kubernetes-preserve-unknown-fields"] != true {
		s["additionalProperties"] = false
	}
	for _, v := range props {
		if m, ok := v.(map[string]any); ok {
			strictify(m)
		}
	}
	for _, k := range []string{"items", "additionalProperties"} {
		if m, ok := s[k].(map[string]any); ok {
			strictify(m)
		}
	}
	for _, k := range []string{"allOf", "anyOf", "oneOf"} {
		if l, ok := s[k].([]any); ok {
			for _, v := range l {
				if m, ok := v.(map[string]any); ok {
					strictify(m)
				}
			}
		}
	}
}

func render(dir string) ([]object, error) {
	k := krusty.MakeKustomizer(krusty.MakeDefaultOptions())
	rm, err := k.Run(filesys.MakeFsOnDisk(), dir)
	if err != nil {
		return nil, err
	}
	var objs []object
	for _, r := range rm.Resources() {
		b, err := r.AsYAML()
		if err != nil {
			return nil, err
		}
		o := object{apiVersion: r.GetApiVersion(), kind: r.GetKind(), name: r.GetName(), raw: b}
		if err := yaml.Unmarshal(b, &o.m); err != nil {
			return nil, err
		}
		objs = append(objs, o)
	}
	return objs, nil
}

// checkKustomization renders a kustomization and checks every object.
func checkKustomization(dir, bin string, fi flagInfo, schemas map[string]*spec.Schema, p *problems) {
	objs, err := render(dir)
	if err != nil {
		p.add("%s: kustomize: %v", dir, err)
		return
	}
	name := filepath.Base(dir)
	var ids []string
	byKind := map[string][]object{}
	for _, o := range objs {
		where := fmt.Sprintf("%s: %s", name, o.id())
		ids = append(ids, o.id())
		byKind[o.kind] = append(byKind[o.kind], o)
		for _, msg := range validation.IsDNS1123Subdomain(o.name) {
			p.add("%s: name: %s", where, msg)
		}
		gvk := o.apiVersion + "/" + o.kind
		if mk, ok := typed[gvk]; ok {
			if err := yaml.UnmarshalStrict(o.raw, mk()); err != nil {
				p.add("%s: not a valid %s: %v", where, gvk, err)
			}
			continue
		}
		s, ok := schemas[gvk]
		if !ok {
			p.add("%s: no schema for %s (neither a Kubernetes type known here nor a CRD given with -crds)", where, gvk)
			continue
		}
		res := validate.NewSchemaValidator(s, nil, "", strfmt.Default).Validate(o.m)
		for _, e := range res.Errors {
			p.add("%s: against the %s CRD: %v", where, gvk, e)
		}
		var meta struct {
			Metadata metav1.ObjectMeta `json:"metadata"`
		}
		metaOnly, _ := json.Marshal(map[string]any{"metadata": o.m["metadata"]})
		if err := yaml.UnmarshalStrict(metaOnly, &meta); err != nil {
			p.add("%s: metadata: %v", where, err)
		}
	}
	for _, o := range objs {
		for k, v := range labelsOf(o.m, "metadata", "labels") {
			for _, msg := range validation.IsValidLabelValue(v) {
				p.add("%s: %s: label %s: %s", name, o.id(), k, msg)
			}
		}
	}
	checkWorkloads(name, dir, bin, fi, objs, byKind, p)
	fmt.Printf("kube: %s: %d objects: %s\n", dir, len(objs), strings.Join(ids, ", "))
}

// get walks a decoded object.
func get(m any, keys ...string) any {
	for _, k := range keys {
		mm, ok := m.(map[string]any)
		if !ok {
			return nil
		}
		m = mm[k]
	}
	return m
}

func labelsOf(m any, keys ...string) map[string]string {
	out := map[string]string{}
	if mm, ok := get(m, keys...).(map[string]any); ok {
		for k, v := range mm {
			out[k] = fmt.Sprint(v)
		}
	}
	return out
}

// selects reports whether a selector's labels are all among labels.
func selects(sel, labels map[string]string) bool {
	if len(sel) == 0 {
		return false
	}
	for k, v := range sel {
		if labels[k] != v {
			return false
		}
	}
	return true
}

// envOK are the environment variables riskmon's container may set besides
// its own: the Go runtime's.
var envOK = map[string]bool{"GOMEMLIMIT": true, "GOMAXPROCS": true, "GOGC": true, "GODEBUG": true, "TZ": true}

// knownKafkaTrigger are the metadata keys of KEDA's Kafka scaler.
var knownKafkaTrigger = map[string]bool{"bootstrapServers": true, "bootstrapServersFromEnv": true, "consumerGroup": true,
	"consumerGroupFromEnv": true, "topic": true, "topicFromEnv": true, "lagThreshold": true, "activationLagThreshold": true,
	"offsetResetPolicy": true, "allowIdleConsumers": true, "scaleToZeroOnInvalidOffset": true, "excludePersistentLag": true,
	"limitToPartitionsWithLag": true, "ensureEvenDistributionOfPartitions": true, "version": true, "partitionLimitation": true,
	"sasl": true, "tls": true, "unsafeSsl": true}

type podTemplate struct {
	owner    string
	replicas *int32
	labels   map[string]string
	spec     corev1.PodSpec
	grace    int64
}

func checkWorkloads(name, dir, bin string, fi flagInfo, objs []object, byKind map[string][]object, p *problems) {
	configMaps := map[string]corev1.ConfigMap{}
	for _, o := range byKind["ConfigMap"] {
		var cm corev1.ConfigMap
		yaml.Unmarshal(o.raw, &cm)
		configMaps[cm.Name] = cm
	}
	var pods []podTemplate
	for _, o := range byKind["StatefulSet"] {
		var s appsv1.StatefulSet
		if yaml.Unmarshal(o.raw, &s) != nil {
			continue
		}
		pt := podTemplate{owner: o.id(), replicas: s.Spec.Replicas, labels: s.Spec.Template.Labels, spec: s.Spec.Template.Spec}
		if s.Spec.Selector == nil || !selects(s.Spec.Selector.MatchLabels, s.Spec.Template.Labels) {
			p.add("%s: %s: its selector does not select its own pods", name, o.id())
		}
		found := false
		for _, svc := range byKind["Service"] {
			found = found || svc.name == s.Spec.ServiceName
		}
		if !found {
			p.add("%s: %s: serviceName %q is no Service here", name, o.id(), s.Spec.ServiceName)
		}
		pods = append(pods, pt)
	}
	for _, o := range byKind["Deployment"] {
		var d appsv1.Deployment
		if yaml.Unmarshal(o.raw, &d) != nil {
			continue
		}
		if d.Spec.Selector == nil || !selects(d.Spec.Selector.MatchLabels, d.Spec.Template.Labels) {
			p.add("%s: %s: its selector does not select its own pods", name, o.id())
		}
		pods = append(pods, podTemplate{owner: o.id(), replicas: d.Spec.Replicas, labels: d.Spec.Template.Labels, spec: d.Spec.Template.Spec})
	}
	if len(pods) != 1 {
		p.add("%s: expected one riskmon workload (StatefulSet or Deployment), found %d", name, len(pods))
		return
	}
	pod := pods[0]
	ps := pod.spec
	where := name + ": " + pod.owner
	env := map[string]string{}
	c := corev1.Container{}
	for _, cc := range ps.Containers {
		if cc.Name == "riskmon" {
			c = cc
		}
	}
	if c.Name == "" {
		p.add("%s: no container named riskmon", where)
		return
	}
	// Security.
	psc := ps.SecurityContext
	if psc == nil {
		psc = &corev1.PodSecurityContext{}
	}
	csc := c.SecurityContext
	if csc == nil {
		p.add("%s: container riskmon has no securityContext", where)
		csc = &corev1.SecurityContext{}
	}
	if !(isTrue(csc.RunAsNonRoot) || isTrue(psc.RunAsNonRoot)) {
		p.add("%s: runAsNonRoot is not set", where)
	}
	if (csc.RunAsUser != nil && *csc.RunAsUser == 0) || (psc.RunAsUser != nil && *psc.RunAsUser == 0) {
		p.add("%s: runs as user 0 (root)", where)
	}
	if !isTrue(csc.ReadOnlyRootFilesystem) {
		p.add("%s: readOnlyRootFilesystem is not true", where)
	}
	if csc.AllowPrivilegeEscalation == nil || *csc.AllowPrivilegeEscalation {
		p.add("%s: allowPrivilegeEscalation is not false", where)
	}
	if isTrue(csc.Privileged) {
		p.add("%s: privileged", where)
	}
	if csc.Capabilities == nil || !containsCap(csc.Capabilities.Drop, "ALL") || len(csc.Capabilities.Add) > 0 {
		p.add("%s: capabilities must drop ALL and add none", where)
	}
	seccomp := psc.SeccompProfile
	if csc.SeccompProfile != nil {
		seccomp = csc.SeccompProfile
	}
	if seccomp == nil || seccomp.Type != corev1.SeccompProfileTypeRuntimeDefault {
		p.add("%s: seccompProfile is not RuntimeDefault", where)
	}
	if c.Resources.Requests.Cpu().IsZero() || c.Resources.Requests.Memory().IsZero() || c.Resources.Limits.Memory().IsZero() {
		p.add("%s: needs cpu and memory requests and a memory limit", where)
	}
	// Environment and flags.
	for _, e := range c.Env {
		env[e.Name] = e.Value
		if e.ValueFrom != nil {
			env[e.Name] = "(from " + describeSource(e.ValueFrom) + ")"
		}
	}
	if len(c.Args) == 0 || c.Args[0] != "run" {
		p.add("%s: args must start with the run command, got %q", where, c.Args)
	}
	flags := map[string]string{}
	for i := 1; i < len(c.Args); i++ {
		a := c.Args[i]
		if !strings.HasPrefix(a, "-") {
			p.add("%s: argument %q is not a flag", where, a)
			continue
		}
		k, v, ok := strings.Cut(strings.TrimLeft(a, "-"), "=")
		if !ok && i+1 < len(c.Args) {
			i++
			v = c.Args[i]
		}
		if _, known := fi.flags[k]; !known {
			p.add("%s: riskmon run has no flag --%s", where, k)
		}
		flags[k] = v
	}
	setting := func(flag string) string { // flag, then environment, then riskmon's default
		if v, ok := flags[flag]; ok {
			return v
		}
		for e, f := range fi.env {
			if f == flag {
				if v, ok := env[e]; ok {
					return v
				}
			}
		}
		return fi.flags[flag]
	}
	// The configuration file.
	mounts := map[string]corev1.VolumeMount{}
	for _, m := range c.VolumeMounts {
		mounts[m.MountPath] = m
	}
	volumes := map[string]corev1.Volume{}
	for _, v := range ps.Volumes {
		volumes[v.Name] = v
	}
	for _, m := range c.VolumeMounts {
		if _, ok := volumes[m.Name]; !ok && !isClaimTemplate(objs, pod.owner, m.Name) {
			p.add("%s: volumeMount %s names no volume", where, m.Name)
		}
	}
	var cfg struct {
		Stream struct {
			ShutdownSeconds *int   `json:"shutdown_seconds"`
			StateDir        string `json:"state_dir"`
			SASL            struct {
				PasswordFile string `json:"password_file"`
				PasswordEnv  string `json:"password_env"`
			} `json:"sasl"`
		} `json:"stream"`
	}
	var tlsFiles struct {
		Stream struct {
			TLS struct {
				CAFile   string `json:"ca_file"`
				CertFile string `json:"cert_file"`
				KeyFile  string `json:"key_file"`
			} `json:"tls"`
		} `json:"stream"`
	}
	if cfgPath := setting("config"); cfgPath != "none" && cfgPath != "" {
		mount, rel := mountOf(c.VolumeMounts, cfgPath)
		vol, ok := volumes[mount.Name]
		switch {
		case mount.Name == "":
			p.add("%s: --config %s is on no mounted volume", where, cfgPath)
		case !ok || vol.ConfigMap == nil:
			p.add("%s: --config %s is not on a ConfigMap volume", where, cfgPath)
		default:
			cm, ok := configMaps[vol.ConfigMap.Name]
			if !ok {
				p.add("%s: ConfigMap %s (volume %s) is not among the objects", where, vol.ConfigMap.Name, vol.Name)
				break
			}
			data, ok := cm.Data[rel]
			if !ok {
				p.add("%s: ConfigMap %s has no key %s for --config %s", where, cm.Name, rel, cfgPath)
				break
			}
			if rs := riskmonValidate(bin, cm.Name+"/"+rel, []byte(data), p); rs != "" {
				note := "the built-in detector configuration"
				if b := builtinRuleset(bin); rs != b {
					note = "differs from the built-in " + b + " (a site's own, or config/default.yml changed since)"
				}
				fmt.Printf("kube: %s: configuration %s/%s: ruleset %s, %s\n", name, cm.Name, rel, rs, note)
			}
			yaml.Unmarshal([]byte(data), &cfg)
			yaml.Unmarshal([]byte(data), &tlsFiles)
		}
	}
	for _, f := range []string{tlsFiles.Stream.TLS.CAFile, tlsFiles.Stream.TLS.CertFile, tlsFiles.Stream.TLS.KeyFile, cfg.Stream.SASL.PasswordFile} {
		if f == "" {
			continue
		}
		if m, rel := mountOf(c.VolumeMounts, f); m.Name == "" {
			p.add("%s: %s (from the configuration) is on no mounted volume", where, f)
		} else if v := volumes[m.Name]; v.Secret != nil && len(v.Secret.Items) > 0 && !hasItem(v.Secret.Items, rel) {
			p.add("%s: %s: Secret volume %s does not project %s", where, f, m.Name, rel)
		}
	}
	for e := range env {
		switch {
		case fi.env[e] != "":
		case e == cfg.Stream.SASL.PasswordEnv:
		case envOK[e]:
		default:
			p.add("%s: environment variable %s is not read by riskmon (run --help lists RISKMON_* variables)", where, e)
		}
	}
	if pe := cfg.Stream.SASL.PasswordEnv; pe != "" {
		if _, ok := env[pe]; !ok {
			p.add("%s: the configuration reads the SASL password from %s, which the container does not set", where, pe)
		}
	}
	// Shutdown: longer grace than riskmon's own bound.
	shutdown := 15
	if cfg.Stream.ShutdownSeconds != nil {
		shutdown = *cfg.Stream.ShutdownSeconds
	}
	grace := int64(30)
	if ps.TerminationGracePeriodSeconds != nil {
		grace = *ps.TerminationGracePeriodSeconds
	}
	if grace < int64(shutdown)+15 {
		p.add("%s: terminationGracePeriodSeconds %d leaves no room after riskmon's shutdown_seconds %d for the checkpoint (want >= %d)", where, grace, shutdown, shutdown+15)
	}
	// State: a subdirectory of a writable volume.
	stateDir := setting("state-dir")
	if stateDir == "none" || stateDir == "" {
		stateDir = cfg.Stream.StateDir
	}
	if stateDir == "" {
		p.add("%s: no --state-dir: every restart forgets what the detectors and the model learned", where)
	} else if m, rel := mountOf(c.VolumeMounts, stateDir); m.Name == "" || rel == "" || m.ReadOnly {
		p.add("%s: state dir %s must be a subdirectory of a writable volume (a checkpoint is written beside it and renamed into place; the root filesystem is read-only)", where, stateDir)
	}
	// Metrics port and probes.
	addr := setting("metrics-addr")
	host, port, err := net.SplitHostPort(addr)
	if err != nil {
		p.add("%s: metrics address %q: %v", where, addr, err)
	}
	if host == "127.0.0.1" || host == "localhost" || host == "::1" {
		p.add("%s: metrics address %s listens on loopback only: probes and Prometheus cannot reach it", where, addr)
	}
	ports := map[string]int32{}
	for _, cp := range c.Ports {
		ports[cp.Name] = cp.ContainerPort
		if strconv.Itoa(int(cp.ContainerPort)) != port && cp.Name == "metrics" {
			p.add("%s: container port metrics is %d but riskmon listens on %s", where, cp.ContainerPort, addr)
		}
	}
	if _, ok := ports["metrics"]; !ok {
		p.add("%s: no container port named metrics", where)
	}
	probe := func(kind string, pr *corev1.Probe, wantPath string) {
		if pr == nil || pr.HTTPGet == nil {
			p.add("%s: no HTTP %s probe", where, kind)
			return
		}
		if pr.HTTPGet.Path != wantPath {
			p.add("%s: %s probe on %s, want %s", where, kind, pr.HTTPGet.Path, wantPath)
		}
		pp := pr.HTTPGet.Port
		if pp.StrVal != "" {
			if _, ok := ports[pp.StrVal]; !ok {
				p.add("%s: %s probe port %s is no container port", where, kind, pp.StrVal)
			}
		} else if strconv.Itoa(int(pp.IntVal)) != port {
			p.add("%s: %s probe port %d is not riskmon's metrics port %s", where, kind, pp.IntVal, port)
		}
	}
	probe("liveness", c.LivenessProbe, "/healthz")
	probe("readiness", c.ReadinessProbe, "/readyz")
	if c.StartupProbe != nil {
		probe("startup", c.StartupProbe, "/healthz")
	}
	if strings.Contains(dir, "overlays") && (strings.HasSuffix(c.Image, ":latest") || !strings.Contains(path.Base(c.Image), ":")) {
		p.add("%s: image %s: an overlay pins a version", where, c.Image)
	}
	// Services, monitors, budgets, scaler.
	svcLabels := map[string]map[string]string{}
	for _, o := range byKind["Service"] {
		var s corev1.Service
		yaml.Unmarshal(o.raw, &s)
		svcLabels[s.Name] = s.Labels
		if !selects(s.Spec.Selector, pod.labels) {
			p.add("%s: %s: its selector %v does not select riskmon's pods", name, o.id(), s.Spec.Selector)
		}
		for _, sp := range s.Spec.Ports {
			if sp.TargetPort.StrVal != "" {
				if _, ok := ports[sp.TargetPort.StrVal]; !ok {
					p.add("%s: %s: targetPort %s is no container port", name, o.id(), sp.TargetPort.StrVal)
				}
			}
		}
	}
	for _, o := range byKind["PodDisruptionBudget"] {
		var b policyv1.PodDisruptionBudget
		yaml.Unmarshal(o.raw, &b)
		if b.Spec.Selector == nil || !selects(b.Spec.Selector.MatchLabels, pod.labels) {
			p.add("%s: %s: does not select riskmon's pods", name, o.id())
		}
	}
	monitors := 0
	for _, o := range byKind["ServiceMonitor"] {
		monitors++
		sel := labelsOf(o.m, "spec", "selector", "matchLabels")
		matched := ""
		for svc, l := range svcLabels {
			if selects(sel, l) {
				matched = svc
			}
		}
		if matched == "" {
			p.add("%s: %s: selects no Service", name, o.id())
		}
		eps, _ := get(o.m, "spec", "endpoints").([]any)
		for _, ep := range eps {
			if pn, _ := get(ep, "port").(string); pn != "" && pn != "metrics" {
				p.add("%s: %s: endpoint port %s is not the Service's metrics port", name, o.id(), pn)
			}
		}
	}
	for _, o := range byKind["PodMonitor"] {
		monitors++
		if !selects(labelsOf(o.m, "spec", "selector", "matchLabels"), pod.labels) {
			p.add("%s: %s: selects no riskmon pod", name, o.id())
		}
	}
	if monitors == 0 {
		p.add("%s: no ServiceMonitor or PodMonitor", name)
	}
	for _, o := range byKind["PrometheusRule"] {
		if !reflect.DeepEqual(get(o.m, "spec", "groups"), rulesGroups(p)) {
			p.add("%s: %s: its groups differ from deploy/prometheus/riskmon.rules.yml: run `go run . sync-prometheusrule` in deploy/validate", name, o.id())
		}
	}
	if len(byKind["PrometheusRule"]) == 0 {
		p.add("%s: no PrometheusRule", name)
	}
	auths := map[string]bool{}
	for _, o := range byKind["TriggerAuthentication"] {
		auths[o.name] = true
	}
	if len(byKind["ScaledObject"]) == 0 {
		p.add("%s: no ScaledObject", name)
	}
	for _, o := range byKind["ScaledObject"] {
		w := name + ": " + o.id()
		kind, _ := get(o.m, "spec", "scaleTargetRef", "kind").(string)
		if kind == "" {
			kind = "Deployment"
		}
		if target := kind + "/" + fmt.Sprint(get(o.m, "spec", "scaleTargetRef", "name")); target != pod.owner {
			p.add("%s: scales %s, not %s", w, target, pod.owner)
		}
		if get(o.m, "spec", "maxReplicaCount") == nil {
			p.add("%s: no maxReplicaCount (set it to the partition count)", w)
		}
		triggers, _ := get(o.m, "spec", "triggers").([]any)
		for i, t := range triggers {
			if get(t, "type") != "kafka" {
				continue
			}
			md := labelsOf(t, "metadata")
			for k := range md {
				if !knownKafkaTrigger[k] {
					p.add("%s: trigger %d: %s is no parameter of KEDA's Kafka scaler", w, i, k)
				}
			}
			if md["allowIdleConsumers"] != "false" {
				p.add("%s: trigger %d: allowIdleConsumers must be \"false\", so that KEDA never runs more instances than partitions", w, i)
			}
			if _, err := strconv.Atoi(md["lagThreshold"]); err != nil {
				p.add("%s: trigger %d: lagThreshold %q is not a whole number", w, i, md["lagThreshold"])
			}
			for k, flag := range map[string]string{"bootstrapServers": "brokers", "consumerGroup": "group", "topic": "declarations-topic"} {
				if md[k] != setting(flag) {
					p.add("%s: trigger %d: %s %q differs from riskmon's --%s %q", w, i, k, md[k], flag, setting(flag))
				}
			}
			if ref, _ := get(t, "authenticationRef", "name").(string); ref != "" && !auths[ref] {
				p.add("%s: trigger %d: TriggerAuthentication %s is not among the objects", w, i, ref)
			}
		}
	}
	var external []string
	for _, v := range ps.Volumes {
		if v.Secret != nil {
			external = append(external, "Secret "+v.Secret.SecretName)
		}
	}
	for _, e := range c.Env {
		if e.ValueFrom != nil && e.ValueFrom.SecretKeyRef != nil {
			external = append(external, "Secret "+e.ValueFrom.SecretKeyRef.Name+" (key "+e.ValueFrom.SecretKeyRef.Key+")")
		}
	}
	fmt.Printf("kube: %s: %s: image %s, grace %ds > shutdown %ds, state in %s; site-provided: %s\n", name, pod.owner, c.Image, grace, shutdown, stateDir, strings.Join(external, ", "))
}

func isTrue(b *bool) bool { return b != nil && *b }

func containsCap(l []corev1.Capability, c corev1.Capability) bool {
	for _, x := range l {
		if x == c {
			return true
		}
	}
	return false
}

func hasItem(items []corev1.KeyToPath, p string) bool {
	for _, it := range items {
		if it.Path == p {
			return true
		}
	}
	return false
}

func describeSource(s *corev1.EnvVarSource) string {
	switch {
	case s.SecretKeyRef != nil:
		return "Secret " + s.SecretKeyRef.Name
	case s.ConfigMapKeyRef != nil:
		return "ConfigMap " + s.ConfigMapKeyRef.Name
	}
	return "a reference"
}

// mountOf finds the volume mount holding a path and the path inside it.
func mountOf(mounts []corev1.VolumeMount, p string) (corev1.VolumeMount, string) {
	best := corev1.VolumeMount{}
	rel := ""
	for _, m := range mounts {
		mp := strings.TrimRight(m.MountPath, "/")
		if p == mp || strings.HasPrefix(p, mp+"/") {
			if len(mp) > len(best.MountPath) {
				best, rel = m, strings.TrimPrefix(strings.TrimPrefix(p, mp), "/")
			}
		}
	}
	return best, rel
}

func isClaimTemplate(objs []object, owner, vol string) bool {
	for _, o := range objs {
		if o.id() != owner {
			continue
		}
		tpls, _ := get(o.m, "spec", "volumeClaimTemplates").([]any)
		for _, t := range tpls {
			if get(t, "metadata", "name") == vol {
				return true
			}
		}
	}
	return false
}
