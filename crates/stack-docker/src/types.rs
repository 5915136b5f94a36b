//! Docker's request bodies, as far as stack reads them. Field names are
//! Docker's (PascalCase); fields a client sends that stack does not know
//! are ignored, as dockerd's decoder ignores them, but a known field of the
//! wrong type is a 400. Answers are built as JSON values by the backend in
//! Docker's shapes (see `schemas/docker-engine-api.yaml`).

use std::collections::BTreeMap;

use serde::Deserialize;
use serde_json::Value;

/// A JSON `null` read as the type's default (clients send `null` for
/// empty lists and maps).
fn nullable<'de, D, T>(d: D) -> Result<T, D::Error>
where
    D: serde::Deserializer<'de>,
    T: Default + Deserialize<'de>,
{
    Ok(Option::<T>::deserialize(d)?.unwrap_or_default())
}

/// `Cmd`, `Entrypoint`: a list, or a string (old clients; split by the
/// shell's rules would be wrong, so as `sh -c` would: one argument).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct StrSlice(pub Option<Vec<String>>);

impl<'de> Deserialize<'de> for StrSlice {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        #[derive(Deserialize)]
        #[serde(untagged)]
        enum Either {
            One(String),
            Many(Vec<String>),
        }
        Ok(StrSlice(Option::<Either>::deserialize(d)?.map(
            |e| match e {
                Either::One(s) => vec![s],
                Either::Many(v) => v,
            },
        )))
    }
}

/// `POST /containers/create`: `Config` at the top, with `HostConfig` and
/// `NetworkingConfig` beside it.
#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "PascalCase", default)]
pub struct CreateContainer {
    pub hostname: String,
    pub domainname: String,
    pub user: String,
    pub attach_stdin: bool,
    pub attach_stdout: bool,
    pub attach_stderr: bool,
    #[serde(deserialize_with = "nullable")]
    pub exposed_ports: BTreeMap<String, Value>,
    pub tty: bool,
    pub open_stdin: bool,
    pub stdin_once: bool,
    #[serde(deserialize_with = "nullable")]
    pub env: Vec<String>,
    pub cmd: StrSlice,
    pub healthcheck: Option<HealthConfig>,
    pub image: String,
    #[serde(deserialize_with = "nullable")]
    pub volumes: BTreeMap<String, Value>,
    pub working_dir: String,
    pub entrypoint: StrSlice,
    pub network_disabled: bool,
    pub mac_address: String,
    #[serde(deserialize_with = "nullable")]
    pub labels: BTreeMap<String, String>,
    pub stop_signal: String,
    pub stop_timeout: Option<i64>,
    pub host_config: HostConfig,
    pub networking_config: NetworkingConfig,
}

#[derive(Debug, Default, Deserialize, Clone)]
#[serde(rename_all = "PascalCase", default)]
pub struct HealthConfig {
    #[serde(deserialize_with = "nullable")]
    pub test: Vec<String>,
    pub interval: i64,
    pub timeout: i64,
    pub start_period: i64,
    pub start_interval: i64,
    pub retries: i64,
}

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "PascalCase", default)]
pub struct HostConfig {
    #[serde(deserialize_with = "nullable")]
    pub binds: Vec<String>,
    pub log_config: LogConfig,
    pub network_mode: String,
    #[serde(deserialize_with = "nullable")]
    pub port_bindings: BTreeMap<String, Option<Vec<PortBinding>>>,
    pub restart_policy: RestartPolicy,
    pub auto_remove: bool,
    #[serde(deserialize_with = "nullable")]
    pub volumes_from: Vec<String>,
    #[serde(deserialize_with = "nullable")]
    pub mounts: Vec<MountSpec>,
    #[serde(deserialize_with = "nullable")]
    pub cap_add: Vec<String>,
    #[serde(deserialize_with = "nullable")]
    pub cap_drop: Vec<String>,
    #[serde(deserialize_with = "nullable")]
    pub dns: Vec<String>,
    #[serde(deserialize_with = "nullable")]
    pub dns_options: Vec<String>,
    #[serde(deserialize_with = "nullable")]
    pub dns_search: Vec<String>,
    #[serde(deserialize_with = "nullable")]
    pub extra_hosts: Vec<String>,
    #[serde(deserialize_with = "nullable")]
    pub group_add: Vec<String>,
    pub ipc_mode: String,
    pub pid_mode: String,
    #[serde(rename = "UTSMode")]
    pub uts_mode: String,
    pub userns_mode: String,
    pub cgroup: String,
    #[serde(deserialize_with = "nullable")]
    pub links: Vec<String>,
    pub oom_score_adj: i32,
    pub privileged: bool,
    pub publish_all_ports: bool,
    pub readonly_rootfs: bool,
    #[serde(deserialize_with = "nullable")]
    pub security_opt: Vec<String>,
    #[serde(deserialize_with = "nullable")]
    pub tmpfs: BTreeMap<String, String>,
    pub shm_size: i64,
    #[serde(deserialize_with = "nullable")]
    pub sysctls: BTreeMap<String, String>,
    pub runtime: String,
    pub isolation: String,
    pub init: Option<bool>,
    // Resources.
    pub cpu_shares: i64,
    pub memory: i64,
    pub cgroup_parent: String,
    pub cpu_period: i64,
    pub cpu_quota: i64,
    pub cpuset_cpus: String,
    pub cpuset_mems: String,
    #[serde(deserialize_with = "nullable")]
    pub devices: Vec<DeviceMapping>,
    #[serde(deserialize_with = "nullable")]
    pub device_cgroup_rules: Vec<String>,
    #[serde(deserialize_with = "nullable")]
    pub device_requests: Vec<Value>,
    pub memory_reservation: i64,
    pub memory_swap: i64,
    pub memory_swappiness: Option<i64>,
    pub nano_cpus: i64,
    pub oom_kill_disable: Option<bool>,
    pub pids_limit: Option<i64>,
    #[serde(deserialize_with = "nullable")]
    pub ulimits: Vec<Ulimit>,
    pub blkio_weight: u16,
    #[serde(deserialize_with = "nullable")]
    pub blkio_weight_device: Vec<WeightDevice>,
    #[serde(deserialize_with = "nullable")]
    pub blkio_device_read_bps: Vec<ThrottleDevice>,
    #[serde(deserialize_with = "nullable")]
    pub blkio_device_write_bps: Vec<ThrottleDevice>,
    #[serde(rename = "BlkioDeviceReadIOps", deserialize_with = "nullable")]
    pub blkio_device_read_iops: Vec<ThrottleDevice>,
    #[serde(rename = "BlkioDeviceWriteIOps", deserialize_with = "nullable")]
    pub blkio_device_write_iops: Vec<ThrottleDevice>,
    #[serde(deserialize_with = "nullable")]
    pub storage_opt: BTreeMap<String, String>,
    #[serde(deserialize_with = "nullable")]
    pub console_size: Vec<u16>,
}

#[derive(Debug, Default, Deserialize, Clone)]
#[serde(rename_all = "PascalCase", default)]
pub struct LogConfig {
    #[serde(rename = "Type")]
    pub kind: String,
    #[serde(deserialize_with = "nullable")]
    pub config: BTreeMap<String, String>,
}

#[derive(Debug, Default, Deserialize, Clone)]
#[serde(rename_all = "PascalCase", default)]
pub struct PortBinding {
    pub host_ip: String,
    pub host_port: String,
}

#[derive(Debug, Default, Deserialize, Clone)]
#[serde(rename_all = "PascalCase", default)]
pub struct RestartPolicy {
    pub name: String,
    pub maximum_retry_count: i64,
}

#[derive(Debug, Default, Deserialize, Clone)]
#[serde(rename_all = "PascalCase", default)]
pub struct MountSpec {
    #[serde(rename = "Type")]
    pub kind: String,
    pub source: String,
    pub target: String,
    pub read_only: bool,
    pub volume_options: Option<Value>,
    pub tmpfs_options: Option<TmpfsOptions>,
    pub bind_options: Option<Value>,
}

#[derive(Debug, Default, Deserialize, Clone)]
#[serde(rename_all = "PascalCase", default)]
pub struct TmpfsOptions {
    pub size_bytes: i64,
    pub mode: u32,
}

#[derive(Debug, Default, Deserialize, Clone)]
#[serde(rename_all = "PascalCase", default)]
pub struct DeviceMapping {
    pub path_on_host: String,
    pub path_in_container: String,
    pub cgroup_permissions: String,
}

#[derive(Debug, Default, Deserialize, Clone)]
#[serde(rename_all = "PascalCase", default)]
pub struct Ulimit {
    pub name: String,
    pub soft: i64,
    pub hard: i64,
}

#[derive(Debug, Default, Deserialize, Clone)]
#[serde(rename_all = "PascalCase", default)]
pub struct WeightDevice {
    pub path: String,
    pub weight: u16,
}

#[derive(Debug, Default, Deserialize, Clone)]
#[serde(rename_all = "PascalCase", default)]
pub struct ThrottleDevice {
    pub path: String,
    pub rate: u64,
}

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "PascalCase", default)]
pub struct NetworkingConfig {
    #[serde(deserialize_with = "nullable")]
    pub endpoints_config: BTreeMap<String, EndpointSettings>,
}

#[derive(Debug, Default, Deserialize, Clone)]
#[serde(rename_all = "PascalCase", default)]
pub struct EndpointSettings {
    #[serde(rename = "IPAMConfig")]
    pub ipam_config: Option<EndpointIpam>,
    #[serde(deserialize_with = "nullable")]
    pub aliases: Vec<String>,
    #[serde(deserialize_with = "nullable")]
    pub links: Vec<String>,
    pub mac_address: String,
}

#[derive(Debug, Default, Deserialize, Clone)]
#[serde(default)]
pub struct EndpointIpam {
    #[serde(rename = "IPv4Address")]
    pub ipv4: String,
    #[serde(rename = "IPv6Address")]
    pub ipv6: String,
}

/// `POST /containers/{id}/exec`.
#[derive(Debug, Default, Deserialize, Clone)]
#[serde(rename_all = "PascalCase", default)]
pub struct ExecConfig {
    pub attach_stdin: bool,
    pub attach_stdout: bool,
    pub attach_stderr: bool,
    pub tty: bool,
    #[serde(deserialize_with = "nullable")]
    pub cmd: Vec<String>,
    #[serde(deserialize_with = "nullable")]
    pub env: Vec<String>,
    pub working_dir: String,
    pub user: String,
    pub privileged: bool,
    #[serde(deserialize_with = "nullable")]
    pub console_size: Vec<u16>,
    pub detach_keys: String,
}

/// `POST /exec/{id}/start`.
#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "PascalCase", default)]
pub struct ExecStart {
    pub detach: bool,
    pub tty: bool,
    #[serde(deserialize_with = "nullable")]
    pub console_size: Vec<u16>,
}

/// `POST /networks/create`.
#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "PascalCase", default)]
pub struct CreateNetwork {
    pub name: String,
    pub check_duplicate: bool,
    pub driver: String,
    pub internal: bool,
    pub attachable: bool,
    #[serde(rename = "EnableIPv6")]
    pub enable_ipv6: Option<bool>,
    #[serde(rename = "IPAM")]
    pub ipam: Option<Ipam>,
    #[serde(deserialize_with = "nullable")]
    pub options: BTreeMap<String, String>,
    #[serde(deserialize_with = "nullable")]
    pub labels: BTreeMap<String, String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "PascalCase", default)]
pub struct Ipam {
    pub driver: String,
    #[serde(deserialize_with = "nullable")]
    pub config: Vec<IpamPool>,
    #[serde(deserialize_with = "nullable")]
    pub options: BTreeMap<String, String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "PascalCase", default)]
pub struct IpamPool {
    pub subnet: String,
    #[serde(rename = "IPRange")]
    pub ip_range: String,
    pub gateway: String,
}

/// `POST /networks/{id}/connect` and `disconnect`.
#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "PascalCase", default)]
pub struct ConnectNetwork {
    pub container: String,
    pub endpoint_config: Option<EndpointSettings>,
    pub force: bool,
}

/// `POST /volumes/create`.
#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "PascalCase", default)]
pub struct CreateVolume {
    pub name: String,
    pub driver: String,
    #[serde(deserialize_with = "nullable")]
    pub driver_opts: BTreeMap<String, String>,
    #[serde(deserialize_with = "nullable")]
    pub labels: BTreeMap<String, String>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_cli_create_body_reads() {
        let body = r#"{"Hostname":"","Env":null,"Cmd":["echo","hi"],"Image":"busybox",
            "Labels":{"a":"b"},"Entrypoint":null,"ExposedPorts":{"80/tcp":{}},
            "HostConfig":{"Binds":["/tmp:/x:ro"],"PortBindings":{"80/tcp":[{"HostIp":"","HostPort":"8080"}]},
              "AutoRemove":true,"RestartPolicy":{"Name":"no","MaximumRetryCount":0},"Tmpfs":null,
              "Unknown":{"x":1}},
            "NetworkingConfig":{"EndpointsConfig":{"n1":{"Aliases":["web"]}}},
            "SomethingNew":true}"#;
        let c: CreateContainer = serde_json::from_str(body).unwrap();
        assert_eq!(c.cmd.0, Some(vec!["echo".to_string(), "hi".to_string()]));
        assert_eq!(c.entrypoint.0, None);
        assert!(c.host_config.auto_remove);
        assert_eq!(
            c.host_config.port_bindings["80/tcp"].as_ref().unwrap()[0].host_port,
            "8080"
        );
        assert_eq!(c.networking_config.endpoints_config["n1"].aliases, ["web"]);
        let wrong = r#"{"Image": 5}"#;
        assert!(serde_json::from_str::<CreateContainer>(wrong).is_err());
        let one: CreateContainer = serde_json::from_str(r#"{"Cmd":"echo hi"}"#).unwrap();
        assert_eq!(one.cmd.0, Some(vec!["echo hi".to_string()]));
    }
}
