//! The mapping, on projects read by the real loader and files given as data.

use std::collections::BTreeMap;
use std::path::PathBuf;

use serde_json::{json, Value as J};

use super::*;

/// Files and variables given as data; directories are the prefixes of files.
#[derive(Default)]
struct Data {
    files: BTreeMap<String, Vec<u8>>,
    vars: BTreeMap<String, String>,
}

impl Sources for Data {
    fn read(&self, path: &str) -> Result<Vec<u8>, String> {
        self.files
            .get(path)
            .cloned()
            .ok_or_else(|| "no such file".into())
    }
    fn stat(&self, path: &str) -> Option<Entry> {
        if let Some(f) = self.files.get(path) {
            return Some(Entry::File {
                size: f.len() as u64,
            });
        }
        let dir = format!("{path}/");
        self.files
            .keys()
            .any(|k| k.starts_with(&dir))
            .then_some(Entry::Dir)
    }
    fn list(&self, path: &str) -> Result<Vec<String>, String> {
        let dir = format!("{path}/");
        let mut names: Vec<String> = self
            .files
            .keys()
            .filter_map(|k| k.strip_prefix(&dir))
            .map(|r| r.split('/').next().unwrap_or(r).to_string())
            .collect();
        names.dedup();
        Ok(names)
    }
    fn var(&self, name: &str) -> Option<String> {
        self.vars.get(name).cloned()
    }
    fn env_file(&self, f: &stack_model::EnvFile) -> Result<Option<Vec<(String, String)>>, String> {
        match self.files.get(&f.path) {
            Some(text) => Ok(Some(
                String::from_utf8_lossy(text)
                    .lines()
                    .filter_map(|l| l.split_once('='))
                    .map(|(k, v)| (k.to_string(), v.to_string()))
                    .collect(),
            )),
            None if !f.required => Ok(None),
            None => Err("no such file".into()),
        }
    }
}

/// The project directory of this test (its thread); it exists while the
/// loader reads the env files written there.
fn dir() -> String {
    thread_local! {
        static DIR: String = {
            let nanos = std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .unwrap()
                .as_nanos();
            let d = std::env::temp_dir().join(format!("stack-kube-{nanos}"));
            d.to_string_lossy().into_owned()
        };
    }
    DIR.with(Clone::clone)
}

/// A project as `stack config` loads it, from `compose.yaml` in [`dir`].
fn load(yaml: &str, data: &Data) -> Project {
    let dir = PathBuf::from(dir());
    std::fs::create_dir_all(&dir).unwrap();
    // Env files are read by the loader: the same ones are given as data.
    for (path, content) in &data.files {
        if path.ends_with(".env") {
            std::fs::write(path, content).unwrap();
        }
    }
    let opts = stack_loader::Options {
        working_dir: dir.clone(),
        files: vec!["-".into()],
        stdin: Some(yaml.to_string()),
        project_name: Some("demo".into()),
        ..Default::default()
    };
    let loaded = stack_loader::load(&opts);
    std::fs::remove_dir_all(&dir).unwrap();
    loaded.unwrap_or_else(|e| panic!("{e}")).project
}

fn gen(yaml: &str, data: &Data, o: &Options) -> Manifests {
    generate(&load(yaml, data), o, data)
}

fn find<'a>(m: &'a Manifests, kind: &str, name: &str) -> &'a J {
    m.objects
        .iter()
        .find(|o| o["kind"] == kind && o["metadata"]["name"] == name)
        .unwrap_or_else(|| panic!("no {kind} {name} in {}", yaml(&m.objects)))
}

fn container<'a>(m: &'a Manifests, kind: &str, name: &str) -> &'a J {
    &find(m, kind, name)["spec"]["template"]["spec"]["containers"][0]
}

fn warned(m: &Manifests, object: &str, key: &str) -> bool {
    m.warnings
        .iter()
        .any(|w| w.object == object && w.key == key)
}

#[test]
fn workload_kinds_follow_the_stack() {
    let m = gen(
        r#"
services:
  web: {image: nginx, deploy: {replicas: 3}}
  db: {image: postgres, scale: 2, volumes: ["data:/var/lib/postgresql/data"]}
  agent: {image: agent, deploy: {mode: global}}
  migrate: {image: app, command: ["migrate"]}
  app:
    image: app
    depends_on: {migrate: {condition: service_completed_successfully}}
  single: {image: redis, volumes: ["cache:/data"]}
  forced: {image: x, x-kubernetes: {kind: StatefulSet}}
volumes: {data: {}, cache: {}}
"#,
        &Data::default(),
        &Options::default(),
    );
    assert_eq!(find(&m, "Deployment", "web")["spec"]["replicas"], 3);
    let db = find(&m, "StatefulSet", "db");
    assert_eq!(db["spec"]["replicas"], 2);
    assert_eq!(db["spec"]["serviceName"], "db-headless");
    assert_eq!(
        db["spec"]["volumeClaimTemplates"][0]["metadata"]["name"],
        "data"
    );
    assert_eq!(
        find(&m, "Service", "db-headless")["spec"]["clusterIP"],
        "None"
    );
    // A claim per replica: no shared claim of that volume.
    assert!(!m
        .objects
        .iter()
        .any(|o| o["kind"] == "PersistentVolumeClaim" && o["metadata"]["name"] == "data"));
    assert!(find(&m, "DaemonSet", "agent")["spec"]
        .get("replicas")
        .is_none());
    let job = find(&m, "Job", "migrate");
    assert_eq!(job["apiVersion"], "batch/v1");
    assert_eq!(job["spec"]["template"]["spec"]["restartPolicy"], "Never");
    assert_eq!(job["spec"]["backoffLimit"], 0);
    // One replica with a volume: a Deployment on a claim, the old pod first.
    let single = find(&m, "Deployment", "single");
    assert_eq!(single["spec"]["strategy"]["type"], "Recreate");
    find(&m, "PersistentVolumeClaim", "cache");
    find(&m, "StatefulSet", "forced");
}

#[test]
fn services_keep_names_resolving() {
    let m = gen(
        r#"
services:
  web:
    image: nginx
    ports: ["8080:80", "53:53/udp", "9000"]
    networks: {default: {aliases: [www, front_end]}}
  api: {image: api, expose: ["3000", "4000-4001"]}
  db: {image: postgres}
  worker:
    image: w
    environment: {DATABASE_URL: "postgres://u:p@db:5432/x"}
"#,
        &Data::default(),
        &Options {
            publish: Publish::NodePort,
            ..Default::default()
        },
    );
    // Inside the cluster: the containers' ports, as services reach each other.
    let web = find(&m, "Service", "web");
    assert!(web["spec"].get("type").is_none());
    let ports = web["spec"]["ports"].as_array().unwrap();
    assert_eq!(ports.len(), 3);
    assert_eq!(
        ports[0],
        json!({"name": "tcp-80", "port": 80, "targetPort": 80, "protocol": "TCP"})
    );
    assert_eq!(ports[1]["protocol"], "UDP");
    assert_eq!(ports[2]["port"], 9000);
    // Outside: the published ports only, on a NodePort Service.
    let public = find(&m, "Service", "web-public");
    assert_eq!(public["spec"]["type"], "NodePort");
    let ports = public["spec"]["ports"].as_array().unwrap();
    assert_eq!(ports.len(), 2, "{ports:?}");
    assert_eq!(
        ports[0],
        json!({"name": "tcp-8080", "port": 8080, "targetPort": 80, "protocol": "TCP"})
    );
    assert_eq!(public["spec"]["selector"], web["spec"]["selector"]);
    // Aliases are Services of their own (ClusterIP), names made valid.
    let www = find(&m, "Service", "www");
    assert!(www["spec"].get("type").is_none());
    assert_eq!(www["spec"]["selector"], web["spec"]["selector"]);
    find(&m, "Service", "front-end");
    assert!(m
        .renamed
        .contains(&("alias".into(), "front_end".into(), "front-end".into())));
    // `expose` alone: a ClusterIP Service.
    let api = find(&m, "Service", "api");
    assert!(api["spec"].get("type").is_none());
    let ports: Vec<u64> = api["spec"]["ports"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["port"].as_u64().unwrap())
        .collect();
    assert_eq!(ports, [3000, 4000, 4001]);
    // Reached by name with no port: headless, and said, with the port its users name.
    assert_eq!(find(&m, "Service", "db")["spec"]["clusterIP"], "None");
    let w = m
        .warnings
        .iter()
        .find(|w| w.object == "service db" && w.key == "ports")
        .unwrap();
    assert!(w.message.contains("worker's environment names it"), "{w}");
    assert!(w.message.contains("expose: [\"5432\"]"), "{w}");
    // Nobody reaches the worker: no Service.
    assert!(!m
        .objects
        .iter()
        .any(|o| o["kind"] == "Service" && o["metadata"]["name"] == "worker"));
}

#[test]
fn depends_on_becomes_init_containers_in_start_order() {
    let m = gen(
        r#"
services:
  db: {image: postgres, expose: ["5432"], healthcheck: {test: ["CMD", "pg_isready"]}}
  cache: {image: redis}
  migrate: {image: app}
  app:
    image: app
    depends_on:
      db: {condition: service_healthy}
      cache: {condition: service_started}
      migrate: {condition: service_completed_successfully}
"#,
        &Data::default(),
        &Options::default(),
    );
    let pod = &find(&m, "Deployment", "app")["spec"]["template"]["spec"];
    let inits = pod["initContainers"].as_array().unwrap();
    let by_name = |n: &str| inits.iter().find(|c| c["name"] == n).unwrap();
    let db = by_name("wait-for-db");
    assert_eq!(db["image"], WAIT_IMAGE);
    assert!(db["command"][2]
        .as_str()
        .unwrap()
        .contains("nc -z -w 2 db 5432"));
    // No port: the name of its headless Service.
    assert!(by_name("wait-for-cache")["command"][2]
        .as_str()
        .unwrap()
        .contains("nslookup cache"));
    let migrate = by_name("wait-for-migrate");
    assert_eq!(migrate["image"], KUBECTL_IMAGE);
    assert_eq!(migrate["command"][4], "job/migrate");
    // The account that may watch Jobs.
    assert_eq!(pod["serviceAccountName"], "demo-job-waiter");
    let role = find(&m, "Role", "demo-job-waiter");
    assert_eq!(role["rules"][0]["resources"][0], "jobs");
    find(&m, "RoleBinding", "demo-job-waiter");
    // Healthy means ready: the dependency has a readiness probe.
    assert!(container(&m, "Deployment", "db")
        .get("readinessProbe")
        .is_some());
    // Jobs come before what waits for them.
    let pos = |k: &str| m.objects.iter().position(|o| o["kind"] == k).unwrap();
    assert!(pos("Job") < pos("Deployment"));
}

#[test]
fn healthchecks_become_probes() {
    let m = gen(
        r#"
services:
  a:
    image: a
    healthcheck: {test: "curl -f localhost", interval: 10s, timeout: 3s, retries: 4, start_period: 30s, start_interval: 2s}
  b:
    image: b
    x-stack-probe: {http: {port: 8080, path: /health}, interval: 5s}
  c: {image: c, x-stack-probe: {tcp: {port: 6379}}}
  d: {image: d, healthcheck: {disable: true}}
"#,
        &Data::default(),
        &Options::default(),
    );
    let a = container(&m, "Deployment", "a");
    assert_eq!(
        a["readinessProbe"],
        json!({"exec": {"command": ["/bin/sh", "-c", "curl -f localhost"]},
            "periodSeconds": 10, "timeoutSeconds": 3, "failureThreshold": 4})
    );
    assert_eq!(a["livenessProbe"]["failureThreshold"], 12);
    assert_eq!(a["startupProbe"]["periodSeconds"], 2);
    assert_eq!(a["startupProbe"]["failureThreshold"], 15 + 4);
    let b = container(&m, "Deployment", "b");
    assert_eq!(
        b["readinessProbe"]["httpGet"],
        json!({"path": "/health", "port": 8080})
    );
    assert_eq!(b["readinessProbe"]["periodSeconds"], 5);
    assert_eq!(
        container(&m, "Deployment", "c")["livenessProbe"]["tcpSocket"]["port"],
        6379
    );
    assert!(container(&m, "Deployment", "d")
        .get("readinessProbe")
        .is_none());
}

#[test]
fn storage_configs_and_secrets_carry_their_content() {
    let mut data = Data::default();
    data.files
        .insert(format!("{}/nginx.conf", dir()), b"server {}\n".to_vec());
    data.files
        .insert(format!("{}/site/index.html", dir()), b"<p>hi</p>".to_vec());
    data.files.insert(
        format!("{}/site/logo.png", dir()),
        vec![0x89, 0x50, 0xff, 0x00],
    );
    data.files
        .insert(format!("{}/big.bin", dir()), vec![0; 2 << 20]);
    data.files
        .insert(format!("{}/db_password.txt", dir()), b"s3cret".to_vec());
    data.vars.insert("API_KEY".into(), "k-123".into());
    let m = gen(
        r#"
services:
  web:
    image: nginx
    volumes:
      - ./nginx.conf:/etc/nginx/nginx.conf:ro
      - ./site:/usr/share/nginx/html:ro
      - ./big.bin:/big.bin
      - ./data:/data
      - /var/run/docker.sock:/var/run/docker.sock
      - shared:/shared
      - type: tmpfs
        target: /cache
        tmpfs: {size: 64m}
    tmpfs: ["/run:size=16m"]
    shm_size: 256m
    configs: [app_config, {source: inline, target: /etc/inline.txt, mode: 0440}]
    secrets: [db_password, api_key]
  other: {image: x, volumes: ["shared:/s"]}
volumes: {shared: {x-kubernetes: {size: 5Gi, storageClass: fast}}}
configs:
  app_config: {content: "debug = true"}
  inline: {content: "hello"}
secrets:
  db_password: {file: ./db_password.txt}
  api_key: {environment: API_KEY}
"#,
        &data,
        &Options::default(),
    );
    let pod = &find(&m, "Deployment", "web")["spec"]["template"]["spec"];
    let mounts = pod["containers"][0]["volumeMounts"].as_array().unwrap();
    let volumes = pod["volumes"].as_array().unwrap();
    let volume_of = |target: &str| -> (&J, &J) {
        let mount = mounts
            .iter()
            .find(|m| m["mountPath"] == target)
            .unwrap_or_else(|| panic!("no mount at {target}"));
        let v = volumes.iter().find(|v| v["name"] == mount["name"]).unwrap();
        (mount, v)
    };
    // A small file: a ConfigMap with its content, mounted as the file.
    let (mount, v) = volume_of("/etc/nginx/nginx.conf");
    assert_eq!(mount["subPath"], "nginx.conf");
    let cm = find(&m, "ConfigMap", v["configMap"]["name"].as_str().unwrap());
    assert_eq!(cm["data"]["nginx.conf"], "server {}\n");
    // A small read-only directory: text as data, the rest as binaryData.
    let (_, v) = volume_of("/usr/share/nginx/html");
    let cm = find(&m, "ConfigMap", v["configMap"]["name"].as_str().unwrap());
    assert_eq!(cm["data"]["index.html"], "<p>hi</p>");
    assert_eq!(
        cm["binaryData"]["logo.png"],
        base64(&[0x89, 0x50, 0xff, 0x00])
    );
    // Too big, missing, an engine socket: said.
    assert!(mounts.iter().all(|m| m["mountPath"] != "/big.bin"));
    assert!(mounts
        .iter()
        .all(|m| m["mountPath"] != "/var/run/docker.sock"));
    let (_, v) = volume_of("/data");
    assert_eq!(v["emptyDir"], json!({}));
    let bind_warnings = m
        .warnings
        .iter()
        .filter(|w| w.object == "service web" && w.key == "volumes")
        .count();
    assert_eq!(bind_warnings, 3, "{:#?}", m.warnings);
    // A volume two services mount: one claim, ReadWriteMany, its size and class.
    let (_, v) = volume_of("/shared");
    assert_eq!(v["persistentVolumeClaim"]["claimName"], "shared");
    let pvc = find(&m, "PersistentVolumeClaim", "shared");
    assert_eq!(
        pvc["spec"],
        json!({"accessModes": ["ReadWriteMany"], "resources": {"requests": {"storage": "5Gi"}}, "storageClassName": "fast"})
    );
    // tmpfs in memory, with their sizes.
    assert_eq!(
        volume_of("/cache").1["emptyDir"],
        json!({"medium": "Memory", "sizeLimit": "64Mi"})
    );
    assert_eq!(volume_of("/run").1["emptyDir"]["sizeLimit"], "16Mi");
    assert_eq!(volume_of("/dev/shm").1["emptyDir"]["sizeLimit"], "256Mi");
    // Configs and secrets with their content, where compose mounts them.
    assert_eq!(
        find(&m, "ConfigMap", "app-config")["data"]["app_config"],
        "debug = true"
    );
    let (mount, v) = volume_of("/etc/inline.txt");
    assert_eq!(mount["subPath"], "inline");
    assert_eq!(v["configMap"]["items"][0]["mode"], 0o440);
    volume_of("/app_config");
    let s = find(&m, "Secret", "db-password");
    assert_eq!(s["data"]["db_password"], base64(b"s3cret"));
    assert_eq!(
        find(&m, "Secret", "api-key")["data"]["api_key"],
        base64(b"k-123")
    );
    let (_, v) = volume_of("/run/secrets/db_password");
    assert_eq!(v["secret"]["secretName"], "db-password");
}

#[test]
fn env_files_become_a_config_map_and_environment_wins() {
    let mut data = Data::default();
    data.files.insert(
        format!("{}/app.env", dir()),
        b"LEVEL=debug\nPORT=80\nODD KEY=x\n".to_vec(),
    );
    let m = gen(
        r#"
services:
  my_app:
    image: app
    env_file: [{path: app.env, format: raw}]
    environment: {PORT: "8080", PATTERN: "$$(not a var)"}
"#,
        &data,
        &Options::default(),
    );
    let c = container(&m, "Deployment", "my-app");
    assert_eq!(c["envFrom"][0]["configMapRef"]["name"], "my-app-env");
    let cm = find(&m, "ConfigMap", "my-app-env");
    assert_eq!(cm["data"], json!({"LEVEL": "debug"}));
    let env: BTreeMap<String, String> = c["env"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| {
            (
                e["name"].as_str().unwrap().into(),
                e["value"].as_str().unwrap().into(),
            )
        })
        .collect();
    assert_eq!(env["PORT"], "8080");
    // A key that cannot be a ConfigMap key stays in env.
    assert_eq!(env["ODD KEY"], "x");
    // `$(` is escaped: Kubernetes would expand it.
    assert_eq!(env["PATTERN"], "$$(not a var)");
    assert!(m
        .renamed
        .contains(&("service".into(), "my_app".into(), "my-app".into())));
}

#[test]
fn container_settings_and_what_cannot_be_said() {
    let m = gen(
        r#"
services:
  app:
    image: app
    entrypoint: ["/init"]
    command: ["serve", "--port", "80"]
    working_dir: /srv
    user: "1000:1001"
    read_only: true
    privileged: false
    cap_add: [NET_ADMIN]
    cap_drop: [ALL]
    init: true
    stop_grace_period: 1m30s
    hostname: my_host
    extra_hosts: ["a.local=10.0.0.1", "b.local=10.0.0.1"]
    security_opt: ["no-new-privileges:true"]
    sysctls: {net.core.somaxconn: "1024"}
    pull_policy: always
    labels: {com.example.team: core}
    ulimits: {nofile: 1024}
    deploy:
      resources:
        limits: {cpus: "0.5", memory: 512m, pids: 100}
        reservations: {memory: 128m}
    restart: "no"
"#,
        &Data::default(),
        &Options::default(),
    );
    let d = find(&m, "Deployment", "app");
    let pod = &d["spec"]["template"]["spec"];
    let c = &pod["containers"][0];
    assert_eq!(c["command"], json!(["/init"]));
    assert_eq!(c["args"], json!(["serve", "--port", "80"]));
    assert_eq!(c["workingDir"], "/srv");
    assert_eq!(c["imagePullPolicy"], "Always");
    assert_eq!(
        c["securityContext"],
        json!({"runAsUser": 1000, "runAsGroup": 1001, "readOnlyRootFilesystem": true,
            "capabilities": {"add": ["NET_ADMIN"], "drop": ["ALL"]}, "allowPrivilegeEscalation": false})
    );
    assert_eq!(
        c["resources"],
        json!({"limits": {"cpu": "500m", "memory": "512Mi"}, "requests": {"memory": "128Mi"}})
    );
    assert_eq!(pod["shareProcessNamespace"], true);
    assert_eq!(pod["terminationGracePeriodSeconds"], 90);
    assert_eq!(pod["hostname"], "my-host");
    assert_eq!(
        pod["hostAliases"],
        json!([{"ip": "10.0.0.1", "hostnames": ["a.local", "b.local"]}])
    );
    assert_eq!(
        pod["securityContext"]["seccompProfile"]["type"],
        "RuntimeDefault"
    );
    assert_eq!(
        pod["securityContext"]["sysctls"][0]["name"],
        "net.core.somaxconn"
    );
    assert_eq!(
        d["spec"]["template"]["metadata"]["annotations"]["com.example.team"],
        "core"
    );
    for (key, why) in [
        ("ulimits", "no per-container ulimits"),
        ("deploy.resources.limits.pids", "pids"),
        ("restart", "restart: no"),
        ("hostname", "not a label"),
    ] {
        assert!(warned(&m, "service app", key), "{why}: {:#?}", m.warnings);
    }
}

#[test]
fn pushed_images_and_namespaces() {
    let m = gen(
        r#"
services:
  web: {build: ., image: demo/web}
"#,
        &Data::default(),
        &Options {
            namespace: Some("team-a".into()),
            images: [(
                "web".to_string(),
                "127.0.0.1:5000/demo/web@sha256:abc".to_string(),
            )]
            .into(),
            ..Default::default()
        },
    );
    assert_eq!(m.objects[0]["kind"], "Namespace");
    assert!(m
        .objects
        .iter()
        .skip(1)
        .all(|o| o["metadata"]["namespace"] == "team-a"));
    let c = container(&m, "Deployment", "web");
    assert_eq!(c["image"], "127.0.0.1:5000/demo/web@sha256:abc");
    assert_eq!(c["imagePullPolicy"], "IfNotPresent");
    assert!(!warned(&m, "service web", "build"));
    // Not pushed: said.
    let m = gen(
        "services:\n  web: {build: .}\n",
        &Data::default(),
        &Options::default(),
    );
    assert_eq!(container(&m, "Deployment", "web")["image"], "demo-web");
    assert!(warned(&m, "service web", "build"));
}

#[test]
fn networks_become_policies_on_request() {
    let yaml = r#"
services:
  web: {image: nginx, ports: ["80:80"], networks: [front]}
  api: {image: api, networks: [front, back]}
  db: {image: postgres, networks: [back]}
networks:
  front: {}
  back: {internal: true}
"#;
    let m = gen(yaml, &Data::default(), &Options::default());
    assert!(!m.objects.iter().any(|o| o["kind"] == "NetworkPolicy"));
    let m = gen(
        yaml,
        &Data::default(),
        &Options {
            network_policies: true,
            ..Default::default()
        },
    );
    let peers = |name: &str| -> Vec<String> {
        let p = find(&m, "NetworkPolicy", name);
        p["spec"]["ingress"][0]["from"][0]["podSelector"]["matchExpressions"][0]["values"]
            .as_array()
            .unwrap()
            .iter()
            .map(|v| v.as_str().unwrap().to_string())
            .collect()
    };
    assert_eq!(peers("db"), ["api", "db"]);
    assert_eq!(peers("web"), ["api", "web"]);
    assert_eq!(peers("api"), ["api", "db", "web"]);
    // A published port is open to all; an internal-only service reaches only its peers.
    let web = find(&m, "NetworkPolicy", "web");
    assert_eq!(web["spec"]["ingress"][1]["ports"][0]["port"], 80);
    let db = find(&m, "NetworkPolicy", "db");
    assert_eq!(db["spec"]["policyTypes"], json!(["Ingress", "Egress"]));
    assert!(find(&m, "NetworkPolicy", "api")["spec"]
        .get("egress")
        .is_none());
}

#[test]
fn every_name_is_a_dns_label_and_unique() {
    let m = gen(
        r#"
services:
  Web_1: {image: x, ports: ["80"]}
  web-1: {image: x, ports: ["80"]}
  9lives: {image: x, expose: ["1"], volumes: ["My_Data:/d"]}
volumes: {My_Data: {}}
"#,
        &Data::default(),
        &Options::default(),
    );
    let mut seen = std::collections::BTreeSet::new();
    for o in &m.objects {
        let n = o["metadata"]["name"].as_str().unwrap();
        assert!(names::is_label(n), "{n}");
        assert!(
            seen.insert((o["kind"].to_string(), n.to_string())),
            "{n} twice"
        );
    }
    find(&m, "Deployment", "web-1");
    find(&m, "Deployment", "web-1-2");
    find(&m, "Service", "s-9lives");
    find(&m, "PersistentVolumeClaim", "my-data");
}

#[test]
fn a_chart_templates_images_replicas_and_resources() {
    let m = gen(
        r#"
services:
  web: {image: nginx, deploy: {replicas: 2, resources: {limits: {memory: 64m}}}, ports: ["80:80"]}
"#,
        &Data::default(),
        &Options::default(),
    );
    let files: BTreeMap<String, String> = chart(&m, "demo").into_iter().collect();
    assert!(files["Chart.yaml"].contains("name: demo"));
    let values: J = serde_yaml::from_str(&files["values.yaml"]).unwrap();
    assert_eq!(
        values["services"]["web"],
        json!({"image": "nginx", "resources": {"limits": {"memory": "64Mi"}}, "replicas": 2})
    );
    let t = &files["templates/web-deployment.yaml"];
    assert!(
        t.contains("replicas: {{ (index .Values.services \"web\").replicas }}"),
        "{t}"
    );
    assert!(
        t.contains("image: {{ (index .Values.services \"web\").image | quote }}"),
        "{t}"
    );
    assert!(
        t.contains("resources:\n")
            && t.contains("{{- toYaml (index .Values.services \"web\").resources | nindent"),
        "{t}"
    );
    assert!(files.contains_key("templates/web-service.yaml"));
}

#[test]
fn what_the_api_server_would_refuse_is_not_made() {
    let mut data = Data::default();
    data.files
        .insert(format!("{}/a/app.conf", dir()), b"a".to_vec());
    data.files
        .insert(format!("{}/b/app.conf", dir()), b"b".to_vec());
    let m = gen(
        r#"
services:
  web:
    image: x
    volumes: ["./a/app.conf:/etc/a/app.conf:ro", "./b/app.conf:/etc/b/app.conf:ro"]
    deploy: {labels: {"traefik.http.middlewares.my-redirect-middleware-for-everything.redirectscheme.permanent": "true", ok: "yes"}}
    cap_add: [cap_net_admin]
  db:
    image: postgres
    scale: 2
    volumes:
      - data:/a
      - {type: volume, source: data, target: /b, volume: {subpath: b}}
      - ./seed:/data:ro
  dns: {image: dns, ports: ["53:53/udp"]}
  app: {image: app, depends_on: [dns], privileged: true, security_opt: ["no-new-privileges:true"], init: true, pid: host}
  host: {image: h, network_mode: host, ports: [{target: 80, published: "8080", mode: host}]}
  local: {image: l, ports: ["127.0.0.1:5432:5432"]}
  alias1: {image: a, expose: ["1"], networks: {default: {aliases: [shared]}}}
  alias2: {image: a, expose: ["1"], networks: {default: {aliases: [shared]}}}
  wait-for-db: {image: w, depends_on: [db]}
  cleared: {image: c, entrypoint: [], command: ["run", "it"]}
volumes: {data: {}}
"#,
        &data,
        &Options {
            namespace: Some("1Team".into()),
            network_policies: true,
            ..Default::default()
        },
    );
    // One namespace name everywhere, a digit first allowed.
    assert_eq!(m.objects[0]["metadata"]["name"], "1team");
    assert!(m
        .objects
        .iter()
        .skip(1)
        .all(|o| o["metadata"]["namespace"] == "1team"));
    // Two files of one name: two ConfigMaps, each with its content.
    let pod = &find(&m, "Deployment", "web")["spec"]["template"]["spec"];
    let cms: Vec<&str> = pod["volumes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v["configMap"]["name"].as_str().unwrap())
        .collect();
    assert_eq!(cms.len(), 2);
    assert_ne!(cms[0], cms[1]);
    assert_eq!(find(&m, "ConfigMap", cms[1])["data"]["app.conf"], "b");
    // A bad label key is said and left out, not made an annotation.
    let meta = &find(&m, "Deployment", "web")["metadata"];
    assert!(meta.get("annotations").is_none(), "{meta}");
    assert_eq!(meta["labels"]["ok"], "yes");
    assert!(warned(&m, "service web", "deploy.labels"));
    assert_eq!(
        pod["containers"][0]["securityContext"]["capabilities"]["add"],
        json!(["NET_ADMIN"])
    );
    // A volume mounted twice: one claim template; a bind does not take its name.
    let db = find(&m, "StatefulSet", "db");
    assert_eq!(
        db["spec"]["volumeClaimTemplates"].as_array().unwrap().len(),
        1
    );
    let pod = &db["spec"]["template"]["spec"];
    assert!(pod["volumes"]
        .as_array()
        .unwrap()
        .iter()
        .all(|v| v["name"] != "data"));
    // A UDP-only dependency is waited for by name, never by a TCP connect.
    let app = &find(&m, "Deployment", "app")["spec"]["template"]["spec"];
    assert!(app["initContainers"][0]["command"][2]
        .as_str()
        .unwrap()
        .contains("nslookup dns"));
    // privileged with no-new-privileges, init with the host's PIDs: not both.
    assert!(app["containers"][0]["securityContext"]
        .get("allowPrivilegeEscalation")
        .is_none());
    assert!(app.get("shareProcessNamespace").is_none());
    assert_eq!(app["hostPID"], true);
    // The host's network: no hostPort; no NetworkPolicy for it.
    let host = &find(&m, "Deployment", "host")["spec"]["template"]["spec"];
    assert_eq!(host["hostNetwork"], true);
    assert!(host["containers"][0]["ports"][0].get("hostPort").is_none());
    assert!(!m
        .objects
        .iter()
        .any(|o| o["kind"] == "NetworkPolicy" && o["metadata"]["name"] == "host"));
    // A port on this host's loopback is not published.
    assert!(!m
        .objects
        .iter()
        .any(|o| o["metadata"]["name"] == "local-public"));
    // One alias, two services: one Service, said.
    assert_eq!(
        m.objects
            .iter()
            .filter(|o| o["metadata"]["name"] == "shared")
            .count(),
        1
    );
    assert!(warned(&m, "service alias2", "aliases"));
    // Init containers never take the main container's name.
    let w = &find(&m, "Deployment", "wait-for-db")["spec"]["template"]["spec"];
    assert_ne!(w["initContainers"][0]["name"], w["containers"][0]["name"]);
    // An empty entrypoint: the command runs alone.
    let c = container(&m, "Deployment", "cleared");
    assert_eq!(c["command"], json!(["run", "it"]));
    assert!(c.get("args").is_none());
}

#[test]
fn a_chart_keeps_template_like_text_as_it_is() {
    let m = gen(
        r#"
services:
  web: {image: nginx, configs: [tpl], environment: {FORMAT: "{{.Name}} @@x@@"}}
configs:
  tpl: {content: "url=@@API@@ name={{ .Values.x }}"}
"#,
        &Data::default(),
        &Options::default(),
    );
    let files: BTreeMap<String, String> = chart(&m, "demo").into_iter().collect();
    let cm = &files["templates/tpl-configmap.yaml"];
    assert!(
        cm.contains(r#"url=@@API@@ name={{ "{{" }} .Values.x }}"#),
        "{cm}"
    );
    let d = &files["templates/web-deployment.yaml"];
    assert!(d.contains(r#"{{ "{{" }}.Name}} @@x@@"#), "{d}");
    assert!(
        d.contains("image: {{ (index .Values.services \"web\").image | quote }}"),
        "{d}"
    );
}
