// Package check reads the Kubernetes manifests of deploy/kubernetes and
// checks them against each other, against the configuration the ConfigMap
// holds and against docker/Dockerfile. It is a module of its own so that
// k8s.io/api stays out of gstcapture's go.mod:
//
//	cd deploy/kubernetes/check && go test ./...
package check

import (
	"bufio"
	"bytes"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sort"
	"strings"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	policyv1 "k8s.io/api/policy/v1"
	utilyaml "k8s.io/apimachinery/pkg/util/yaml"
	"sigs.k8s.io/yaml"
)

// kustomization is the part of kustomize's Kustomization these manifests
// use; a key outside it is an error like an unknown field of a resource.
type kustomization struct {
	APIVersion string   `json:"apiVersion"`
	Kind       string   `json:"kind"`
	Namespace  string   `json:"namespace,omitempty"`
	Resources  []string `json:"resources"`
	Images     []struct {
		Name    string `json:"name"`
		NewName string `json:"newName,omitempty"`
		NewTag  string `json:"newTag,omitempty"`
	} `json:"images,omitempty"`
}

// labeled is what every manifest has: metadata with labels.
type labeled interface {
	GetName() string
	GetLabels() map[string]string
}

// manifests are the decoded documents of one directory.
type manifests struct {
	deployments []*appsv1.Deployment
	services    []*corev1.Service
	pdbs        []*policyv1.PodDisruptionBudget
	configMaps  []*corev1.ConfigMap
	secrets     []*corev1.Secret
	kust        *kustomization
	// objects are all of the above except kust, as "<file>: <Kind>
	// <name>" -> object, for the checks every kind shares.
	objects map[string]labeled
	files   []string // the file names, sorted
}

// readDir reads every *.yaml file of dir by name.
func readDir(dir string) (map[string][]byte, error) {
	paths, err := filepath.Glob(filepath.Join(dir, "*.yaml"))
	if err != nil {
		return nil, err
	}
	files := map[string][]byte{}
	for _, p := range paths {
		b, err := os.ReadFile(p)
		if err != nil {
			return nil, err
		}
		files[filepath.Base(p)] = b
	}
	return files, nil
}

// decode decodes every document of every file strictly into the type its
// apiVersion and kind name: an unknown field, a wrongly typed value or an
// unknown kind is a problem.
func decode(files map[string][]byte) (*manifests, []string) {
	m := &manifests{objects: map[string]labeled{}}
	var probs []string
	for name := range files {
		m.files = append(m.files, name)
	}
	sort.Strings(m.files)
	for _, name := range m.files {
		r := utilyaml.NewYAMLReader(bufio.NewReader(bytes.NewReader(files[name])))
		for i := 1; ; i++ {
			doc, err := r.Read()
			if err == io.EOF {
				break
			}
			if err != nil {
				probs = append(probs, fmt.Sprintf("%s: document %d: %v", name, i, err))
				break
			}
			if p := m.add(name, doc); p != "" {
				probs = append(probs, fmt.Sprintf("%s: document %d: %s", name, i, p))
			}
		}
	}
	return m, probs
}

// add decodes one document; "" when it was decoded (or holds only comments).
func (m *manifests) add(file string, doc []byte) string {
	var head struct {
		APIVersion string `json:"apiVersion"`
		Kind       string `json:"kind"`
	}
	var anything any
	if err := yaml.Unmarshal(doc, &anything); err != nil {
		return err.Error()
	}
	if anything == nil {
		return "" // comments only
	}
	if err := yaml.Unmarshal(doc, &head); err != nil {
		return err.Error()
	}
	var obj any
	switch head.APIVersion + " " + head.Kind {
	case "apps/v1 Deployment":
		d := &appsv1.Deployment{}
		m.deployments, obj = append(m.deployments, d), d
	case "v1 Service":
		s := &corev1.Service{}
		m.services, obj = append(m.services, s), s
	case "policy/v1 PodDisruptionBudget":
		p := &policyv1.PodDisruptionBudget{}
		m.pdbs, obj = append(m.pdbs, p), p
	case "v1 ConfigMap":
		c := &corev1.ConfigMap{}
		m.configMaps, obj = append(m.configMaps, c), c
	case "v1 Secret":
		s := &corev1.Secret{}
		m.secrets, obj = append(m.secrets, s), s
	case "kustomize.config.k8s.io/v1beta1 Kustomization":
		if m.kust != nil {
			return "a second Kustomization"
		}
		m.kust = &kustomization{}
		obj = m.kust
	default:
		return fmt.Sprintf("unknown kind %q of apiVersion %q (the check decodes Deployment, Service, PodDisruptionBudget, ConfigMap, Secret, Kustomization)", head.Kind, head.APIVersion)
	}
	if err := yaml.UnmarshalStrict(doc, obj); err != nil {
		return fmt.Sprintf("%s: %v", head.Kind, err)
	}
	if l, ok := obj.(labeled); ok {
		m.objects[fmt.Sprintf("%s: %s %s", file, head.Kind, l.GetName())] = l
	}
	return ""
}

// secret returns the Secret called name, nil if the manifests have none.
func (m *manifests) secret(name string) *corev1.Secret {
	for _, s := range m.secrets {
		if s.Name == name {
			return s
		}
	}
	return nil
}

// secretValue is key of s as the API server would store it.
func secretValue(s *corev1.Secret, key string) (string, bool) {
	if v, ok := s.StringData[key]; ok {
		return v, true
	}
	v, ok := s.Data[key]
	return string(v), ok
}

// secretKeys are the keys of s, from data and stringData.
func secretKeys(s *corev1.Secret) []string {
	var keys []string
	for k := range s.Data {
		keys = append(keys, k)
	}
	for k := range s.StringData {
		if _, dup := s.Data[k]; !dup {
			keys = append(keys, k)
		}
	}
	sort.Strings(keys)
	return keys
}

// dockerfile is what the checks need from docker/Dockerfile's final stage.
type dockerfile struct {
	user       string   // USER, "uid:gid" or "uid"
	entrypoint []string // ENTRYPOINT, exec form
	cmd        []string // CMD, exec form
	registry   string   // ENV GST_REGISTRY
}

func readDockerfile(path string) (dockerfile, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return dockerfile{}, err
	}
	var d dockerfile
	for _, line := range strings.Split(string(b), "\n") {
		word, rest, _ := strings.Cut(strings.TrimSpace(line), " ")
		rest = strings.TrimSpace(rest)
		switch word {
		case "USER":
			d.user = rest
		case "ENTRYPOINT", "CMD":
			var list []string
			if err := yaml.Unmarshal([]byte(rest), &list); err != nil {
				return d, fmt.Errorf("%s: %s is not in exec form: %v", path, word, err)
			}
			if word == "CMD" {
				d.cmd = list
			} else {
				d.entrypoint = list
			}
		case "ENV":
			if v, ok := strings.CutPrefix(rest, "GST_REGISTRY="); ok {
				d.registry, _, _ = strings.Cut(v, " ")
			}
		}
	}
	return d, nil
}
