package check

import (
	"fmt"
	"maps"
	"net"
	"path"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/util/intstr"
	"sigs.k8s.io/yaml"
)

const (
	nameLabel = "app.kubernetes.io/name"
	appName   = "gstcapture"
	envPrefix = "GSTCAPTURE_" // gstcapture's environment overrides
)

// problems is what a check found wrong, each naming the file and field.
type problems []string

func (p *problems) add(format string, args ...any) { *p = append(*p, fmt.Sprintf(format, args...)) }

// deployment is the one Deployment, its gstcapture container, the
// configuration it is told to read, and where each comes from.
type deployment struct {
	d          *appsv1.Deployment
	c          *corev1.Container
	configPath string            // --config
	configMap  *corev1.ConfigMap // the one mounted at path.Dir(configPath)
	config     map[string]any    // its configPath file, parsed
	env        map[string]corev1.EnvVar
}

// setting is a config key's value as gstcapture sees it: the Deployment's
// GSTCAPTURE_ variable when it sets one, else the file's. from says which.
func (d *deployment) setting(key string) (value any, from string, ok bool) {
	if e, set := d.env[envName(key)]; set && e.ValueFrom == nil {
		return e.Value, "env " + e.Name, true
	}
	v, ok := lookup(d.config, key)
	return v, "cameras.yaml " + key, ok
}

// envName is gstcapture's environment variable for a config key.
func envName(key string) string {
	return envPrefix + strings.ToUpper(strings.ReplaceAll(key, ".", "__"))
}

// lookup finds a dotted key in a parsed YAML document.
func lookup(doc map[string]any, key string) (any, bool) {
	var cur any = doc
	for _, part := range strings.Split(key, ".") {
		m, ok := cur.(map[string]any)
		if !ok {
			return nil, false
		}
		if cur, ok = m[part]; !ok {
			return nil, false
		}
	}
	return cur, true
}

// check runs every check over the decoded manifests; the problems sorted.
func (m *manifests) check(df dockerfile) problems {
	p := m.checkAll(df)
	slices.Sort(p)
	return p
}

func (m *manifests) checkAll(df dockerfile) problems {
	var p problems
	m.checkKinds(&p)
	m.checkKustomization(&p)
	for where, obj := range m.objects {
		if obj.GetLabels()[nameLabel] != appName {
			p.add("%s: label %s is %q, want %q", where, nameLabel, obj.GetLabels()[nameLabel], appName)
		}
	}
	for _, s := range m.secrets {
		if s.Type != corev1.SecretTypeOpaque {
			p.add("Secret %s: type %q, want Opaque", s.Name, s.Type)
		}
	}
	if len(m.deployments) != 1 {
		return p
	}
	d := m.deployment(&p, df)
	if d == nil {
		return p
	}
	m.checkPorts(&p, d)
	m.checkSelectors(&p, d)
	m.checkFleet(&p, d)
	m.checkTokens(&p, d)
	m.checkPasswords(&p, d)
	m.checkShutdown(&p, d)
	m.checkSecurity(&p, d, df)
	return p
}

func (m *manifests) checkKinds(p *problems) {
	for kind, n := range map[string]int{
		"Deployment": len(m.deployments), "Service": len(m.services),
		"PodDisruptionBudget": len(m.pdbs), "ConfigMap": len(m.configMaps),
	} {
		if n != 1 {
			p.add("%d %s manifests, want 1", n, kind)
		}
	}
}

// checkKustomization: kustomization.yaml lists every other file, and only
// files that exist, so that apply -k applies what this check read.
func (m *manifests) checkKustomization(p *problems) {
	if m.kust == nil {
		p.add("no kustomization.yaml (kubectl apply -k deploy/kubernetes)")
		return
	}
	listed := map[string]bool{}
	for _, r := range m.kust.Resources {
		listed[r] = true
		if !slices.Contains(m.files, r) {
			p.add("kustomization.yaml: resource %s is not a file of deploy/kubernetes", r)
		}
	}
	for _, f := range m.files {
		if f != "kustomization.yaml" && !listed[f] {
			p.add("kustomization.yaml: %s is not in resources", f)
		}
	}
}

// deployment finds the gstcapture container and the configuration it reads.
func (m *manifests) deployment(p *problems, df dockerfile) *deployment {
	dep := m.deployments[0]
	spec := dep.Spec.Template.Spec
	var c *corev1.Container
	for i := range spec.Containers {
		if spec.Containers[i].Name == appName {
			c = &spec.Containers[i]
		}
	}
	if c == nil {
		p.add("Deployment %s: no container named %s", dep.Name, appName)
		return nil
	}
	d := &deployment{d: dep, c: c, env: map[string]corev1.EnvVar{}}
	for _, e := range c.Env {
		d.env[e.Name] = e
	}
	if dep.Spec.Replicas == nil || *dep.Spec.Replicas < 2 {
		p.add("Deployment %s: replicas %v, want at least 2 (a fleet: another replica takes a failed one's cameras)", dep.Name, ptrString(dep.Spec.Replicas))
	}
	if spec.EnableServiceLinks == nil || *spec.EnableServiceLinks {
		p.add("Deployment %s: enableServiceLinks must be false: the kubelet's GSTCAPTURE_<SERVICE>_SERVICE_HOST variables of a Service named gstcapture-redis read as an unknown setting and stop gstcapture", dep.Name)
	}

	// What the container runs: command replaces the image's ENTRYPOINT
	// and then drops its CMD; args replaces CMD.
	argv := slices.Concat(df.entrypoint, df.cmd)
	switch {
	case len(c.Command) > 0:
		argv = slices.Concat(c.Command, c.Args)
	case len(c.Args) > 0:
		argv = slices.Concat(df.entrypoint, c.Args)
	}
	for i, a := range argv {
		if a == "--config" && i+1 < len(argv) {
			d.configPath = argv[i+1]
		} else if v, ok := strings.CutPrefix(a, "--config="); ok {
			d.configPath = v
		}
	}
	if !slices.Contains(argv, "run") || d.configPath == "" {
		p.add("Deployment %s: container runs %q, want gstcapture run --config FILE", dep.Name, argv)
		return nil
	}

	// The ConfigMap is mounted as the file's directory, without subPath.
	dir, file := path.Split(d.configPath)
	dir = path.Clean(dir)
	for _, vm := range c.VolumeMounts {
		vol := volume(spec, vm.Name)
		if vol == nil {
			p.add("Deployment %s: volumeMount %s has no volume", dep.Name, vm.Name)
			continue
		}
		if vol.ConfigMap == nil {
			continue
		}
		if vm.SubPath != "" || vm.SubPathExpr != "" {
			p.add("Deployment %s: ConfigMap volume %s is mounted with subPath at %s: a subPath mount never sees an update of the ConfigMap (gstcapture watches the directory's ..data link); mount the directory", dep.Name, vm.Name, vm.MountPath)
			continue
		}
		if path.Clean(vm.MountPath) != dir {
			continue
		}
		for _, cm := range m.configMaps {
			if cm.Name != vol.ConfigMap.Name {
				continue
			}
			key := file
			for _, it := range vol.ConfigMap.Items {
				if it.Path == file {
					key = it.Key
				}
			}
			if text, ok := cm.Data[key]; ok {
				d.configMap = cm
				if err := yaml.Unmarshal([]byte(text), &d.config); err != nil {
					p.add("ConfigMap %s: %s: %v", cm.Name, key, err)
					return nil
				}
			}
		}
	}
	if d.configMap == nil {
		p.add("Deployment %s: no ConfigMap of these manifests is mounted (as a directory, no subPath) at %s with the key %s that --config %s reads", dep.Name, dir, file, d.configPath)
		return nil
	}
	return d
}

func volume(spec corev1.PodSpec, name string) *corev1.Volume {
	for i := range spec.Volumes {
		if spec.Volumes[i].Name == name {
			return &spec.Volumes[i]
		}
	}
	return nil
}

func ptrString[T any](v *T) string {
	if v == nil {
		return "unset"
	}
	return fmt.Sprint(*v)
}

// checkPorts: containerPort, probes and the Service's targetPort are
// http.listen's port; the probes ask /healthz and /readyz.
func (m *manifests) checkPorts(p *problems, d *deployment) {
	if fromFile, ok := lookup(d.config, "http.listen"); ok {
		if e, set := d.env[envName("http.listen")]; set && e.Value != fmt.Sprint(fromFile) {
			p.add("Deployment %s: %s=%q disagrees with cameras.yaml http.listen %q", d.d.Name, e.Name, e.Value, fromFile)
		}
	}
	listen, from, ok := d.setting("http.listen")
	if !ok {
		p.add("ConfigMap %s: http.listen is not set: state the port the probes and the Service use", d.configMap.Name)
		return
	}
	_, portText, err := net.SplitHostPort(fmt.Sprint(listen))
	port, err2 := strconv.Atoi(portText)
	if err != nil || err2 != nil {
		p.add("%s %q: not host:port", from, listen)
		return
	}

	var named bool
	for _, cp := range d.c.Ports {
		if cp.Name == "http" {
			named = true
			if int(cp.ContainerPort) != port {
				p.add("Deployment %s: containerPort http is %d, %s says %d", d.d.Name, cp.ContainerPort, from, port)
			}
		}
	}
	if !named {
		p.add("Deployment %s: no containerPort named http", d.d.Name)
	}
	resolve := func(ip intstr.IntOrString) int {
		if ip.Type == intstr.Int {
			return int(ip.IntVal)
		}
		for _, cp := range d.c.Ports {
			if cp.Name == ip.StrVal {
				return int(cp.ContainerPort)
			}
		}
		return -1
	}
	for _, pr := range []struct {
		name  string
		probe *corev1.Probe
		path  string
		need  bool
	}{
		{"livenessProbe", d.c.LivenessProbe, "/healthz", true},
		{"readinessProbe", d.c.ReadinessProbe, "/readyz", true},
		{"startupProbe", d.c.StartupProbe, "/healthz", false},
	} {
		switch {
		case pr.probe == nil && pr.need:
			p.add("Deployment %s: no %s", d.d.Name, pr.name)
		case pr.probe == nil:
		case pr.probe.HTTPGet == nil:
			p.add("Deployment %s: %s is not httpGet %s", d.d.Name, pr.name, pr.path)
		default:
			if pr.probe.HTTPGet.Path != pr.path {
				p.add("Deployment %s: %s path %s, want %s", d.d.Name, pr.name, pr.probe.HTTPGet.Path, pr.path)
			}
			if got := resolve(pr.probe.HTTPGet.Port); got != port {
				p.add("Deployment %s: %s port %s is %d, %s says %d", d.d.Name, pr.name, pr.probe.HTTPGet.Port.String(), got, from, port)
			}
		}
	}

	for _, s := range m.services {
		var http bool
		for _, sp := range s.Spec.Ports {
			if sp.Name != "http" {
				continue
			}
			http = true
			if got := resolve(sp.TargetPort); got != port {
				p.add("Service %s: targetPort %s is %d, %s says %d", s.Name, sp.TargetPort.String(), got, from, port)
			}
		}
		if !http {
			p.add("Service %s: no port named http", s.Name)
		}
		if s.Spec.Type != "" && s.Spec.Type != corev1.ServiceTypeClusterIP {
			p.add("Service %s: type %s, want ClusterIP", s.Name, s.Spec.Type)
		}
	}
}

// checkSelectors: the Deployment's, the Service's and the PDB's selectors
// all select the pod template's labels.
func (m *manifests) checkSelectors(p *problems, d *deployment) {
	labels := d.d.Spec.Template.Labels
	selects := func(sel map[string]string) bool {
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
	if d.d.Spec.Selector == nil || len(d.d.Spec.Selector.MatchExpressions) > 0 || !selects(d.d.Spec.Selector.MatchLabels) {
		p.add("Deployment %s: selector does not select the pod template's labels %v", d.d.Name, labels)
	}
	for _, s := range m.services {
		if !selects(s.Spec.Selector) {
			p.add("Service %s: selector %v does not select the pod template's labels %v", s.Name, s.Spec.Selector, labels)
		}
	}
	for _, pdb := range m.pdbs {
		if pdb.Spec.Selector == nil || len(pdb.Spec.Selector.MatchExpressions) > 0 || !selects(pdb.Spec.Selector.MatchLabels) {
			p.add("PodDisruptionBudget %s: selector does not select the pod template's labels %v", pdb.Name, labels)
		}
		if mu := pdb.Spec.MaxUnavailable; mu == nil || mu.String() != "1" || pdb.Spec.MinAvailable != nil {
			p.add("PodDisruptionBudget %s: want maxUnavailable 1 (and no minAvailable)", pdb.Name)
		}
	}
}

// checkFleet: fleet.enabled is true and each replica's id is its pod name.
func (m *manifests) checkFleet(p *problems, d *deployment) {
	if v, from, _ := d.setting("fleet.enabled"); fmt.Sprint(v) != "true" {
		p.add("%s is %v, want true (this Deployment runs a fleet)", from, v)
	}
	e, ok := d.env[envName("fleet.replica_id")]
	if !ok || e.ValueFrom == nil || e.ValueFrom.FieldRef == nil || e.ValueFrom.FieldRef.FieldPath != "metadata.name" {
		p.add("Deployment %s: %s must come from the pod name (valueFrom.fieldRef.fieldPath metadata.name): unique in the fleet and stable for the pod's life", d.d.Name, envName("fleet.replica_id"))
	}
}

// checkTokens: http.auth.tokens_file is a key of a Secret volume mounted as
// a directory.
func (m *manifests) checkTokens(p *problems, d *deployment) {
	v, from, ok := d.setting("http.auth.tokens_file")
	file, _ := v.(string)
	if !ok || file == "" {
		p.add("%s is not set: with auth mode token the API answers 401 to everyone", from)
		return
	}
	if !path.IsAbs(file) {
		file = path.Join(path.Dir(d.configPath), file)
	}
	dir, name := path.Split(file)
	for _, vm := range d.c.VolumeMounts {
		vol := volume(d.d.Spec.Template.Spec, vm.Name)
		if vol == nil || vol.Secret == nil || path.Clean(vm.MountPath) != path.Clean(dir) {
			continue
		}
		if vm.SubPath != "" {
			p.add("Deployment %s: Secret volume %s is mounted with subPath: the tokens file would never be updated", d.d.Name, vm.Name)
		}
		key := name
		for _, it := range vol.Secret.Items {
			if it.Path == name {
				key = it.Key
			}
		}
		s := m.secret(vol.Secret.SecretName)
		if s == nil {
			p.add("Deployment %s: volume %s: Secret %s is not in these manifests", d.d.Name, vm.Name, vol.Secret.SecretName)
			return
		}
		if _, ok := secretValue(s, key); !ok {
			p.add("Secret %s has no key %s, which %s reads as %s", s.Name, key, from, file)
		}
		return
	}
	p.add("%s %s is not in a directory where a Secret volume is mounted", from, file)
}

var urlVarRe = regexp.MustCompile(`\$\{([A-Za-z_][A-Za-z0-9_]*)\}`)

// checkPasswords: every variable a camera reads (password_env, ${VAR} in
// its url) is set by the Deployment, from env or a Secret of envFrom.
func (m *manifests) checkPasswords(p *problems, d *deployment) {
	set := map[string]bool{}
	for name := range d.env {
		set[name] = true
	}
	for _, ef := range d.c.EnvFrom {
		if ef.SecretRef == nil {
			continue
		}
		s := m.secret(ef.SecretRef.Name)
		if s == nil {
			p.add("Deployment %s: envFrom Secret %s is not in these manifests", d.d.Name, ef.SecretRef.Name)
			continue
		}
		for _, k := range secretKeys(s) {
			set[ef.Prefix+k] = true
		}
	}
	cams, _ := d.config["cameras"].([]any)
	for i, c := range cams {
		cam, _ := c.(map[string]any)
		var need []string
		if v, ok := cam["password_env"].(string); ok {
			need = append(need, v)
		}
		if u, ok := cam["url"].(string); ok {
			for _, m := range urlVarRe.FindAllStringSubmatch(u, -1) {
				need = append(need, m[1])
			}
		}
		for _, name := range need {
			if !set[name] {
				p.add("cameras.yaml cameras[%d] (%v) reads %s, which the Deployment does not set", i, cam["id"], name)
			}
		}
	}
}

// checkShutdown: the grace period covers the flush and the leases'
// release; killed before, the replica's cameras wait out their leases.
func (m *manifests) checkShutdown(p *problems, d *deployment) {
	var total time.Duration
	for _, key := range []string{"shutdown.timeout", "redis.timeout"} {
		v, from, ok := d.setting(key)
		if !ok {
			p.add("ConfigMap %s: %s is not set: state it so that terminationGracePeriodSeconds can be checked against it", d.configMap.Name, key)
			return
		}
		dur, err := time.ParseDuration(fmt.Sprint(v))
		if err != nil {
			p.add("%s: %v", from, err)
			return
		}
		total += dur
	}
	grace := 30 * time.Second // Kubernetes' default
	if g := d.d.Spec.Template.Spec.TerminationGracePeriodSeconds; g != nil {
		grace = time.Duration(*g) * time.Second
	}
	if grace <= total {
		p.add("Deployment %s: terminationGracePeriodSeconds %s, want more than shutdown.timeout + redis.timeout (flush, then the leases' release) = %s", d.d.Name, grace, total)
	}
}

// checkSecurity: the image's user, no privileges, a read-only root with
// the directories gstcapture writes on emptyDirs, and a memory limit for
// memory.budget auto.
func (m *manifests) checkSecurity(p *problems, d *deployment, df dockerfile) {
	spec := d.d.Spec.Template.Spec
	psc, csc := spec.SecurityContext, d.c.SecurityContext
	if psc == nil {
		psc = &corev1.PodSecurityContext{}
	}
	if csc == nil {
		csc = &corev1.SecurityContext{}
	}
	pick := func(c, p *int64) *int64 {
		if c != nil {
			return c
		}
		return p
	}
	uid, gid, _ := strings.Cut(df.user, ":")
	if got := ptrString(pick(csc.RunAsUser, psc.RunAsUser)); got != uid {
		p.add("Deployment %s: runAsUser %s, want %s (docker/Dockerfile USER %s)", d.d.Name, got, uid, df.user)
	}
	if gid != "" {
		if got := ptrString(pick(csc.RunAsGroup, psc.RunAsGroup)); got != gid {
			p.add("Deployment %s: runAsGroup %s, want %s (docker/Dockerfile USER %s)", d.d.Name, got, gid, df.user)
		}
	}
	nonRoot := csc.RunAsNonRoot
	if nonRoot == nil {
		nonRoot = psc.RunAsNonRoot
	}
	if nonRoot == nil || !*nonRoot {
		p.add("Deployment %s: runAsNonRoot must be true", d.d.Name)
	}
	if csc.ReadOnlyRootFilesystem == nil || !*csc.ReadOnlyRootFilesystem {
		p.add("Deployment %s: readOnlyRootFilesystem must be true", d.d.Name)
	}
	if csc.AllowPrivilegeEscalation == nil || *csc.AllowPrivilegeEscalation {
		p.add("Deployment %s: allowPrivilegeEscalation must be false", d.d.Name)
	}
	if csc.Privileged != nil && *csc.Privileged {
		p.add("Deployment %s: privileged", d.d.Name)
	}
	if csc.Capabilities == nil || !slices.Equal(csc.Capabilities.Drop, []corev1.Capability{"ALL"}) || len(csc.Capabilities.Add) > 0 {
		p.add("Deployment %s: capabilities must drop ALL and add none", d.d.Name)
	}
	seccomp := csc.SeccompProfile
	if seccomp == nil {
		seccomp = psc.SeccompProfile
	}
	if seccomp == nil || seccomp.Type != corev1.SeccompProfileTypeRuntimeDefault {
		p.add("Deployment %s: seccompProfile must be RuntimeDefault", d.d.Name)
	}
	if spec.AutomountServiceAccountToken == nil || *spec.AutomountServiceAccountToken {
		p.add("Deployment %s: automountServiceAccountToken must be false (gstcapture does not use the Kubernetes API)", d.d.Name)
	}

	// What gstcapture writes with a read-only root.
	writable := map[string]bool{path.Dir(df.registry): false, "/tmp": false}
	for _, vm := range d.c.VolumeMounts {
		if vol := volume(spec, vm.Name); vol != nil && vol.EmptyDir != nil {
			if _, ok := writable[path.Clean(vm.MountPath)]; ok {
				writable[path.Clean(vm.MountPath)] = true
			}
		}
	}
	for _, dir := range slices.Sorted(maps.Keys(writable)) {
		if !writable[dir] {
			p.add("Deployment %s: %s is not an emptyDir mount, and the root filesystem is read-only (GST_REGISTRY=%s, DOT dumps in /tmp)", d.d.Name, dir, df.registry)
		}
	}

	lim, req := d.c.Resources.Limits, d.c.Resources.Requests
	memLimit, ok := lim[corev1.ResourceMemory]
	if !ok {
		p.add("Deployment %s: no memory limit: memory.budget auto takes 75 %% of it, and without one frames are not bounded", d.d.Name)
	} else if r, ok := req[corev1.ResourceMemory]; !ok || r.Cmp(memLimit) > 0 {
		p.add("Deployment %s: memory request must be set and at most the limit", d.d.Name)
	}
	if _, ok := req[corev1.ResourceCPU]; !ok {
		p.add("Deployment %s: no cpu request", d.d.Name)
	}
}
