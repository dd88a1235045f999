// Declarations of kind's Cluster config (kind.x-k8s.io/v1alpha4), transcribed without their comments
// from kubernetes-sigs/kind (Apache-2.0), pkg/apis/config/v1alpha4/types.go at commit
// 00b38e3bbfdd20ec214924967fcfa7b5b0f51373 (the version the project's source search holds). Every
// type, field, tag and constant is as upstream. kind decodes its config strictly (an unknown field is
// an error). harness/platforms/kind/operator_schema.py parses this file.

package v1alpha4

type Cluster struct {
	TypeMeta `yaml:",inline" json:",inline"`
	Name string `yaml:"name,omitempty" json:"name,omitempty"`
	Nodes []Node `yaml:"nodes,omitempty" json:"nodes,omitempty"`
	Networking Networking `yaml:"networking,omitempty" json:"networking,omitempty"`
	FeatureGates map[string]bool `yaml:"featureGates,omitempty" json:"featureGates,omitempty"`
	RuntimeConfig map[string]string `yaml:"runtimeConfig,omitempty" json:"runtimeConfig,omitempty"`
	KubeadmConfigPatches []string `yaml:"kubeadmConfigPatches,omitempty" json:"kubeadmConfigPatches,omitempty"`
	KubeadmConfigPatchesJSON6902 []PatchJSON6902 `yaml:"kubeadmConfigPatchesJSON6902,omitempty" json:"kubeadmConfigPatchesJSON6902,omitempty"`
	ContainerdConfigPatches []string `yaml:"containerdConfigPatches,omitempty" json:"containerdConfigPatches,omitempty"`
	ContainerdConfigPatchesJSON6902 []string `yaml:"containerdConfigPatchesJSON6902,omitempty" json:"containerdConfigPatchesJSON6902,omitempty"`
}

type TypeMeta struct {
	Kind       string `yaml:"kind,omitempty" json:"kind,omitempty"`
	APIVersion string `yaml:"apiVersion,omitempty" json:"apiVersion,omitempty"`
}

type Node struct {
	Role NodeRole `yaml:"role,omitempty" json:"role,omitempty"`
	Image string `yaml:"image,omitempty" json:"image,omitempty"`
	Labels map[string]string `yaml:"labels,omitempty" json:"labels,omitempty"`
	ExtraMounts []Mount `yaml:"extraMounts,omitempty" json:"extraMounts,omitempty"`
	ExtraPortMappings []PortMapping `yaml:"extraPortMappings,omitempty" json:"extraPortMappings,omitempty"`
	GPUs string `yaml:"gpus,omitempty" json:"gpus,omitempty"`
	KubeadmConfigPatches []string `yaml:"kubeadmConfigPatches,omitempty" json:"kubeadmConfigPatches,omitempty"`
	KubeadmConfigPatchesJSON6902 []PatchJSON6902 `yaml:"kubeadmConfigPatchesJSON6902,omitempty" json:"kubeadmConfigPatchesJSON6902,omitempty"`
}

type NodeRole string

const (
	ControlPlaneRole NodeRole = "control-plane"
	WorkerRole NodeRole = "worker"
)

type Networking struct {
	IPFamily ClusterIPFamily `yaml:"ipFamily,omitempty" json:"ipFamily,omitempty"`
	APIServerPort int32 `yaml:"apiServerPort,omitempty" json:"apiServerPort,omitempty"`
	APIServerAddress string `yaml:"apiServerAddress,omitempty" json:"apiServerAddress,omitempty"`
	PodSubnet string `yaml:"podSubnet,omitempty" json:"podSubnet,omitempty"`
	ServiceSubnet string `yaml:"serviceSubnet,omitempty" json:"serviceSubnet,omitempty"`
	DisableDefaultCNI bool `yaml:"disableDefaultCNI,omitempty" json:"disableDefaultCNI,omitempty"`
	KubeProxyMode ProxyMode `yaml:"kubeProxyMode,omitempty" json:"kubeProxyMode,omitempty"`
	DNSSearch *[]string `yaml:"dnsSearch,omitempty" json:"dnsSearch,omitempty"`
}

type ClusterIPFamily string

const (
	IPv4Family ClusterIPFamily = "ipv4"
	IPv6Family ClusterIPFamily = "ipv6"
	DualStackFamily ClusterIPFamily = "dual"
)

type ProxyMode string

const (
	IPTablesProxyMode ProxyMode = "iptables"
	IPVSProxyMode ProxyMode = "ipvs"
)

type PatchJSON6902 struct {
	Group   string `yaml:"group" json:"group"`
	Version string `yaml:"version" json:"version"`
	Kind    string `yaml:"kind" json:"kind"`
	Patch string `yaml:"patch" json:"patch"`
}

type Mount struct {
	ContainerPath string `yaml:"containerPath,omitempty" json:"containerPath,omitempty"`
	HostPath string `yaml:"hostPath,omitempty" json:"hostPath,omitempty"`
	Readonly bool `yaml:"readOnly,omitempty" json:"readOnly,omitempty"`
	SelinuxRelabel bool `yaml:"selinuxRelabel,omitempty" json:"selinuxRelabel,omitempty"`
	Propagation MountPropagation `yaml:"propagation,omitempty" json:"propagation,omitempty"`
}

type PortMapping struct {
	ContainerPort int32 `yaml:"containerPort,omitempty" json:"containerPort,omitempty"`
	HostPort int32 `yaml:"hostPort,omitempty" json:"hostPort,omitempty"`
	ListenAddress string `yaml:"listenAddress,omitempty" json:"listenAddress,omitempty"`
	Protocol PortMappingProtocol `yaml:"protocol,omitempty" json:"protocol,omitempty"`
}

type MountPropagation string

const (
	MountPropagationNone MountPropagation = "None"
	MountPropagationHostToContainer MountPropagation = "HostToContainer"
	MountPropagationBidirectional MountPropagation = "Bidirectional"
)

type PortMappingProtocol string

const (
	PortMappingProtocolTCP PortMappingProtocol = "TCP"
	PortMappingProtocolUDP PortMappingProtocol = "UDP"
	PortMappingProtocolSCTP PortMappingProtocol = "SCTP"
)
